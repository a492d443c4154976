"""Focused evidence for a small reader: of the documents routing chose, the lines that answer.

A 135M reader given three whole documents (1,200 tokens) takes a neighbouring row's value, the
first constant of a class instead of the asked one, or says "Not stated." when the question's
words are not the evidence's. Given the few lines that match the question, with their document's
header (a CSV window's column names, a file's title), it reads far better. This module finds those
lines; no model, no store:

- `units` cuts a document into lines, and long prose lines into sentences;
- `QueryTerms` are the question's content words (lightly stemmed, identifiers split) and its
  dates, normalised so that "July 4th 2013", "4 Jul 2013" and "2013-07-04" match one another;
- `rank_units` scores every unit of the evidence by the inverse document frequency (over the
  evidence's units) of the query terms it holds;
- `focus` lays out the best units, with a line of context either side and each document's head,
  within a token budget, in document order, as `reading.evidence_block`s.

`coverage` (the share of the question's term weight the best unit holds) is the support signal
`ask` uses to decide between an answer and "Not stated.".
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from .reading import evidence_block

_STOP = frozenset("""
the a an of to and or in on at for is are was were be been being by with that this these those it its as from
which what who whom whose when where why how does do did done not no yes can could should would will shall may
might must than then there their they them he she his her we our you your i me my any all each some such into
onto over under about after before between during per via if else also only just more most less much many
give tell show list name find say says said please value number exactly does much long there here get got
""".split())

# Numbers keep their decimal point and clock colons but not commas: "1913,456" (a CSV row) is two
# numbers, and "4,750" in a question splits the same way as in the evidence.
_TOKEN = re.compile(r"\d{4}-\d{2}-\d{2}|\d+(?:[.:]\d+)*%?|[A-Za-z_][A-Za-z0-9_]*")
_CLOCK = re.compile(r"\b(\d{1,2})(?::(\d{2}))?\s*([ap])\.?m\.?\b", re.I)
_CAMEL = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_MONTHS = {m: i + 1 for i, m in enumerate(
    "january february march april may june july august september october november december".split())}
_MON3 = {m[:3]: i for m, i in _MONTHS.items()}
_MONTH_RE = r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
_ORD = r"(\d{1,2})(?:st|nd|rd|th)?"
_DATE_FORMS = (
    (re.compile(rf"\b{_MONTH_RE}\.?\s+{_ORD},?\s+(\d{{4}})\b", re.I), ("m", "d", "y")),
    (re.compile(rf"\b{_ORD}\s+(?:of\s+)?{_MONTH_RE}\.?,?\s+(\d{{4}})\b", re.I), ("d", "m", "y")),
    (re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b"), ("y", "m", "d")),
    (re.compile(r"\b(\d{4})/(\d{1,2})/(\d{1,2})\b"), ("y", "m", "d")),
    (re.compile(rf"\b{_MONTH_RE}\.?\s+{_ORD}\b(?!\s*,?\s*\d{{4}})", re.I), ("m", "d")),
    (re.compile(rf"\b{_ORD}\s+(?:of\s+)?{_MONTH_RE}\b(?!\.?,?\s+\d{{4}})", re.I), ("d", "m")),
    (re.compile(rf"\b{_MONTH_RE}\s+(\d{{4}})\b", re.I), ("m", "y")),
)


def stem(word: str) -> str:
    """A light, predictable stem: lower case, plural and common verb endings off."""
    w = word.lower()
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    for suf in ("ing", "ed", "es", "s"):
        if len(w) > len(suf) + 2 and w.endswith(suf) and not w.endswith("ss"):
            w = w[: -len(suf)]
            break
    # "upgrade", "upgraded", "upgrades", "upgrading" → "upgrad"
    return w[:-1] if len(w) > 4 and w.endswith("e") else w


def words(text: str) -> list[str]:
    """Stemmed word and number tokens of `text`; identifiers also give their parts
    (`emergency_stop` → emergency_stop, emergency, stop; `maxRetries` → maxretries, max, retries)."""
    out: list[str] = []
    for t in _TOKEN.findall(text):
        if t[0].isdigit():
            out.append(t.rstrip(".,"))
            continue
        out.append(stem(t))
        parts = [p for chunk in t.split("_") for p in _CAMEL.findall(chunk)]
        if len(parts) > 1:
            out += [stem(p) for p in parts if len(p) > 1]
    return out


@dataclass
class DateTerm:
    """A date of the question, as the patterns that find it in evidence text."""

    label: str
    patterns: list[re.Pattern] = field(default_factory=list)

    def found(self, text: str) -> bool:
        return any(p.search(text) for p in self.patterns)


def _month(s: str) -> int:
    s = s.lower().rstrip(".")
    return _MONTHS.get(s) or _MON3.get(s[:3], 0)


def _date_term(y: int | None, m: int, d: int | None) -> DateTerm | None:
    if not 1 <= m <= 12 or (d is not None and not 1 <= d <= 31):
        return None
    mon = [k for k, v in _MON3.items() if v == m][0]
    pats: list[str] = []
    if d is not None and y is not None:
        pats += [rf"{y}-{m:02d}-{d:02d}", rf"{y}/{m:02d}/{d:02d}", rf"(?i:{d:02d}/{mon}/{y})", rf"{m:02d}/{d:02d}/{y}",
                 rf"(?i:{mon}[a-z]*\.?\s+0?{d}(?:st|nd|rd|th)?,?\s+{y})", rf"(?i:0?{d}\s+{mon}[a-z]*\.?,?\s+{y})",
                 rf"(?i:{mon}\s+{d:2d}\b.*\b{y})", rf"(?<!\d){y % 100:02d}{m:02d}{d:02d}(?!\d)"]
        label = f"{y}-{m:02d}-{d:02d}"
    elif d is not None:
        pats += [rf"\d{{4}}-{m:02d}-{d:02d}", rf"(?i:\b{mon}[a-z]*\.?\s+0?{d}\b)", rf"(?i:\b{mon}\s+{d:2d}\b)",
                 rf"(?i:\b0?{d}[ /]{mon})"]
        label = f"--{m:02d}-{d:02d}"
    elif y is not None:
        pats += [rf"{y}-{m:02d}(?!\d)", rf"(?i:\b{mon}[a-z]*\.?\s+(?:\d{{1,2}},?\s+)?{y})", rf"{m:02d}/\d{{2}}/{y}"]
        label = f"{y}-{m:02d}"
    else:
        return None
    return DateTerm(label, [re.compile(p) for p in pats])


def question_dates(question: str) -> list[DateTerm]:
    """The dates a question names, however written, as patterns over evidence text."""
    out: dict[str, DateTerm] = {}
    taken: list[tuple[int, int]] = []
    for rx, order in _DATE_FORMS:
        for m in rx.finditer(question):
            if any(a < m.end() and m.start() < b for a, b in taken):
                continue
            parts = dict(zip(order, m.groups()))
            try:
                mon = _month(parts["m"]) if not parts["m"].isdigit() else int(parts["m"])
                term = _date_term(int(parts["y"]) if "y" in parts else None, mon,
                                  int(parts["d"]) if "d" in parts else None)
            except (ValueError, KeyError):
                continue
            if term is not None:
                taken.append((m.start(), m.end()))
                out.setdefault(term.label, term)
    return list(out.values())


@dataclass
class QueryTerms:
    words: set[str]
    dates: list[DateTerm]

    @classmethod
    def of(cls, question: str) -> QueryTerms:
        dates = question_dates(question)
        text = question
        for d in dates:  # a date's numbers are matched as a date, not as loose numbers
            for p in d.patterns:
                text = p.sub(" ", text)
        stripped = re.sub(rf"\b{_MONTH_RE}\b", " ", text, flags=re.I) if dates else text
        # "3 pm" is 15:00 in the evidence
        clocks = {f"{(int(h) % 12) + (12 if ap.lower() == 'p' else 0):02d}:{mm or '00'}" for h, mm, ap in _CLOCK.findall(stripped)}
        stripped = _CLOCK.sub(" ", stripped)
        ws = {w for w in words(stripped) if w not in _STOP and len(w) > 1 and not re.fullmatch(r"\d(st|nd|rd|th)", w)}
        return cls(ws | clocks, dates)


@dataclass
class Unit:
    doc: int  # index into the documents given
    first: int  # 0-based line range within the document text
    last: int
    text: str
    score: float = 0.0
    matched: frozenset = frozenset()


_SENT = re.compile(r"(?<=[.;:!?])\s+(?=[A-Z0-9(\"'])")
LONG_LINE = 240  # characters: a longer line (a prose paragraph) is cut into sentences


def units(text: str, doc: int = 0) -> list[Unit]:
    out = []
    for i, line in enumerate(text.split("\n")):
        if not line.strip():
            continue
        if len(line) > LONG_LINE:
            out += [Unit(doc, i, i, s) for s in _SENT.split(line) if s.strip()]
        else:
            out.append(Unit(doc, i, i, line))
    return out


def rank_units(texts: list[str], question: str) -> tuple[list[Unit], float]:
    """Every unit of `texts`, best first, and the question's total term weight. A unit's score
    is the summed IDF (over all units) of the question's words and dates it holds; ties go to
    earlier documents (routing's order) and earlier lines."""
    q = QueryTerms.of(question)
    us = [u for j, t in enumerate(texts) for u in units(t, j)]
    if not us:
        return [], 0.0
    bags = [set(words(u.text)) for u in us]
    # A CSV row is read with its column names: the header's words count for every row under it
    # (so the row's own date or key decides among rows), and the header alone scores nothing (it
    # is shown beside any chosen row).
    lines = [t.split("\n") for t in texts]
    header_bag: dict[tuple[int, int], set[str]] = {}
    for k, u in enumerate(us):
        h = _header_line(lines[u.doc], u.first)
        if h is not None:
            hb = header_bag.setdefault((u.doc, h), set(words(lines[u.doc][h])))
            bags[k] = bags[k] | hb
    for k, u in enumerate(us):
        if (u.doc, u.first) in header_bag:
            bags[k] = set()
    n = len(us)
    idf: dict[str, float] = {}
    for w in q.words:
        df = sum(1 for b in bags if w in b)
        idf[w] = math.log(1 + n / (df + 0.5))
    date_hits = [[d.found(u.text) for d in q.dates] for u in us]
    didf = [math.log(1 + n / (sum(h[k] for h in date_hits) + 0.5)) * 1.5 for k in range(len(q.dates))]
    # A term no unit holds still counts in the total: the evidence lacks it.
    total = sum(math.log(1 + n / 0.5) if idf[w] == math.log(1 + n / 0.5) else idf[w] for w in q.words) + sum(
        math.log(1 + n / 0.5) * 1.5 for _ in q.dates)
    for u, bag, dh in zip(us, bags, date_hits):
        hit = {w for w in q.words if w in bag}
        u.score = sum(idf[w] for w in hit) + sum(s for s, h in zip(didf, dh) if h)
        u.matched = frozenset(hit | {d.label for d, h in zip(q.dates, dh) if h})
    order = sorted(range(n), key=lambda i: (-us[i].score, us[i].doc, us[i].first))
    return [us[i] for i in order], total


def coverage(ranked: list[Unit], total: float) -> float:
    """The share of the question's term weight that its best unit holds (0 to 1)."""
    return ranked[0].score / total if ranked and total > 0 else 0.0


@dataclass
class Focused:
    blocks: list[str]  # evidence blocks, one per document kept, in the order given
    docs: list[int]  # which documents they are
    ranked: list[Unit]
    total: float
    question: str = ""

    @property
    def coverage(self) -> float:
        return coverage(self.ranked, self.total)


HEAD_LINES = 1  # every document keeps its first line(s): a title, a window's summary
CONTEXT = 1  # lines kept either side of a chosen unit


def _header_line(lines: list[str], at: int) -> int | None:
    """The CSV header above line `at` (the nearest line above with the same number of commas and
    no digits), so a chosen row is read with its column names."""
    n = lines[at].count(",")
    if n < 1:
        return None
    for i in range(at - 1, -1, -1):
        ln = lines[i]
        if ln.count(",") == n and not re.search(r"\d", ln):
            return i
        if ln.count(",") != n:
            return None
    return None


def focus(docs: list[tuple[str, str, str]], question: str, budget: int, encode: Callable[[str], list[int]],
          *, max_units: int = 8, min_score: float = 1e-9, min_ratio: float = 0.5) -> Focused:
    """The evidence a small reader should see: `docs` are (path, anchor, text) in routing's order;
    the best units (at most `max_units`, each scoring above `min_score` and at least `min_ratio` of
    the best) with `CONTEXT` lines
    either side, each document's head and CSV header, within `budget` tokens. A document with no
    chosen unit is left out; when no unit matches at all, the first document's head is kept."""
    texts = [t for _, _, t in docs]
    ranked, total = rank_units(texts, question)
    lines = [t.split("\n") for t in texts]
    keep: dict[int, set[int]] = {}
    cost = 0
    taken = 0

    def lines_cost(j: int, idx: set[int]) -> int:
        return sum(len(encode(lines[j][i])) + 1 for i in idx)

    floor = max(min_score, min_ratio * ranked[0].score) if ranked else min_score
    for u in ranked:
        if taken >= max_units or u.score <= min_score or u.score < floor:
            break
        j = u.doc
        want = set(range(max(0, u.first - CONTEXT), min(len(lines[j]), u.last + CONTEXT + 1)))
        want |= set(range(min(HEAD_LINES, len(lines[j]))))
        h = _header_line(lines[j], u.first)
        if h is not None:
            want.add(h)
        new = want - keep.get(j, set())
        c = lines_cost(j, new) + (len(encode(f"[9] {docs[j][0]} ({docs[j][1]})")) + 2 if j not in keep else 0)
        if cost + c > budget:
            # the unit alone (no context) if that fits
            new = {u.first} - keep.get(j, set()) if u.first == u.last else set()
            c = lines_cost(j, new) + (len(encode(f"[9] {docs[j][0]} ({docs[j][1]})")) + 2 if j not in keep else 0)
            if not new or cost + c > budget:
                continue
        keep.setdefault(j, set()).update(new)
        cost += c
        taken += 1
    if not keep and docs:
        keep[0] = set(range(min(3, len(lines[0]))))
    order = sorted(keep)
    blocks = [evidence_block(n + 1, docs[j][0], docs[j][1], _elide(lines[j], keep[j])) for n, j in enumerate(order)]
    return Focused(blocks, order, ranked, total, question)


def _elide(lines: list[str], idx: set[int]) -> str:
    out: list[str] = []
    prev = -1
    for i in sorted(idx):
        if i > prev + 1:
            out.append("…")
        out.append(lines[i])
        prev = i
    if prev < len(lines) - 1 and any(ln.strip() for ln in lines[prev + 1:]):
        out.append("…")
    return "\n".join(out)
