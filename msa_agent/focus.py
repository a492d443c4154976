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
_HHMM = re.compile(r"(\d{1,2}):(\d{2})(:\d{2})?")
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
            t = t.rstrip(".,")
            m = _HHMM.fullmatch(t)
            if m:  # "7:28" and "07:28:46" both give "07:28"
                hm = f"{int(m.group(1)):02d}:{m.group(2)}"
                out += [hm] if t == hm or not m.group(3) else [t, hm]
            else:
                out.append(t)
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


# "March 14th, 15th and 16th 2015", "December 14th to 19th 2012", "July 1st-7th, 2010": every day
# named gets the month and the year
_DAY_LIST = re.compile(rf"\b{_MONTH_RE}\.?\s+((?:{_ORD}\s*(?:,|and|or|to|through|until|-|–)\s*)+{_ORD}),?\s+(\d{{4}})\b",
                       re.I)


def question_dates(question: str) -> list[DateTerm]:
    """The dates a question names, however written, as patterns over evidence text."""
    out: dict[str, DateTerm] = {}
    taken: list[tuple[int, int]] = []
    for m in _DAY_LIST.finditer(question):
        mon, y = _month(m.group(1)), int(m.groups()[-1])
        for d in re.findall(r"\d{1,2}", m.group(2)):
            term = _date_term(y, mon, int(d))
            if term is not None:
                out.setdefault(term.label, term)
        taken.append((m.start(), m.end()))
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
    # "between December 14th and December 19th 2012": a day without a year takes the one year the
    # question's full dates share
    years = {k[:4] for k in out if not k.startswith("-") and len(k) == 10}
    if len(years) == 1:
        y = int(years.pop())
        for k in [k for k in out if k.startswith("--")]:
            term = _date_term(y, int(k[2:4]), int(k[5:7]))
            del out[k]
            if term is not None:
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
    span: tuple[int, int] | None = None  # characters of line `first`, when the unit is a piece of a long line
    own: float = 0.0  # the score of the unit's own terms, without its record's
    head: tuple[int, int] | None = field(default=None, repr=False)  # (doc, line) of its record's first line
    body: tuple[int, int] | None = field(default=None, repr=False)  # lines of the small record it opens


_SENT = re.compile(r"(?<=[.;:!?])\s+(?=[A-Z0-9(\"'])")
LONG_LINE = 240  # characters: a longer line (a prose paragraph, an apt package list) is cut into pieces
PIECE = 160  # characters a piece of a long line aims at, cut at sentence ends, else at commas
_COMMA = re.compile(r"(?<=[,;])\s+")


def _pieces(line: str) -> list[tuple[int, int]]:
    """Character spans cutting a long line into sentences, and a long sentence at commas, so that
    one package of a 50-package `Install:` line costs a few tokens, not the whole line."""
    cuts = [0] + [m.end() for m in _SENT.finditer(line)] + [len(line)]
    out: list[tuple[int, int]] = []
    for a, b in zip(cuts, cuts[1:]):
        if b - a <= PIECE + PIECE // 2:
            out.append((a, b))
            continue
        start = a
        for m in _COMMA.finditer(line, a, b):
            if m.start() - start >= PIECE:
                out.append((start, m.start()))
                start = m.end()
        out.append((start, b))
    return [(a, b) for a, b in out if line[a:b].strip()]


def units(text: str, doc: int = 0) -> list[Unit]:
    out = []
    for i, line in enumerate(text.split("\n")):
        if not line.strip():
            continue
        if len(line) > LONG_LINE:
            out += [Unit(doc, i, i, line[a:b].strip(), span=(a, b)) for a, b in _pieces(line)]
        else:
            out.append(Unit(doc, i, i, line))
    return out


# ---- records: the apt run, changelog entry, def or numbered clause a line belongs to -----------------

RECORD_MAX = 40  # lines: a longer block (a whole CSV window, a log without blank lines) is no record
INNER, OUTER = 0.5, 0.25  # weight of the query terms a unit's record (and the record around that) holds
RECORD_CAP = 1.5  # a record lifts a unit by at most this times its own score
SMALL_RECORD = 16  # lines: the best unit opening a record this short is shown with the record
LEAD = 1.2  # ... when it scores this many times the best unit outside the record
_STAMP = re.compile(r"(\d{4}-\d\d-\d\d[ T]+\d\d:\d\d|[A-Z][a-z]{2} [ \d]\d \d\d:\d\d)")
_ANCHOR = re.compile(r"\blines? (\d+)(?:-(\d+))?$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t")) + line[: len(line) - len(line.lstrip(" \t"))].count("\t") * 3


def records(lines: list[str]) -> list[list[tuple[int, int]]]:
    """For every line, the records holding it, smallest first, as inclusive line ranges of at most
    `RECORD_MAX` lines: its blank-line-separated block (an apt history entry, a paragraph), its
    indentation block (a def with its body, a numbered clause with its wrapped lines, a changelog
    entry from header to trailer) and its run of lines stamped with the same minute (dpkg)."""
    n = len(lines)
    blank = [not ln.strip() for ln in lines]
    cands: list[set[tuple[int, int]]] = [set() for _ in range(n)]

    def add(a: int, b: int) -> None:
        while b > a and blank[b]:
            b -= 1
        if 1 <= b - a < RECORD_MAX:
            for i in range(a, b + 1):
                cands[i].add((a, b))

    i = 0
    while i < n:  # blank-line blocks
        if blank[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and not blank[j + 1]:
            j += 1
        add(i, j)
        i = j + 1
    stack: list[tuple[int, int]] = []  # indentation blocks: (indent, header line)
    last = -1
    for i in range(n + 1):
        if i < n and blank[i]:
            continue
        k = _indent(lines[i]) if i < n else -1
        while stack and stack[-1][0] >= k:
            _, h = stack.pop()
            if last > h:
                add(h, last)
        if i < n:
            stack.append((k, i))
            last = i
    i = 0
    while i < n:  # same-minute runs
        m = _STAMP.search(lines[i][:48])
        j = i
        while m and j + 1 < n and (m2 := _STAMP.search(lines[j + 1][:48])) and m2.group(1) == m.group(1):
            j += 1
        if m:
            add(i, j)
        i = j + 1
    return [sorted(c, key=lambda r: (r[1] - r[0], -r[0])) for c in cands]


def _streams(sources: list[tuple[str, str]] | None, texts: list[str]) -> list[tuple[int, int]]:
    """For each document, (stream, offset): documents that are adjacent windows of one file (the
    same path, one's first line right after the other's last) form one stream of lines, so that an
    apt run cut by the chunker is still one record."""
    out = [(j, 0) for j in range(len(texts))]
    if not sources:
        return out
    span: dict[int, tuple[str, int, int]] = {}
    for j, (path, anchor) in enumerate(sources):
        m = _ANCHOR.search(anchor or "")
        if m:
            a = int(m.group(1))
            span[j] = (path, a, int(m.group(2) or a))
    by_end = {(p, b): j for j, (p, _, b) in span.items()}
    for j in sorted(span, key=lambda j: span[j][1]):
        p, a, _ = span[j]
        prev = by_end.get((p, a - 1))
        if prev is not None and prev != j:
            s, off = out[prev]
            out[j] = (s, off + texts[prev].count("\n") + 1)
    return out


# ---- matching: light morphology, synonyms, the shape of the answer --------------------------------

PREFIX, SYNONYM, ANSWER_TYPE = 0.7, 0.6, 0.7  # weight of a match by prefix, by synonym, by answer shape
_SYNONYM_GROUPS = [
    "longest maximum max largest biggest highest greatest upper",
    "shortest minimum min smallest lowest least fewest",
    "deadline within later latest",
    "often frequency frequently every interval",
    "finish end ended finished complete completed",
    "start begin began started commence",
    "email mail address",
    "allow permit permitted allowed",
    "forbid prohibit prohibited forbidden",
    "fee cost price charge pay",
    "delete remove removed deleted purge",
    "error exception raise raised",
]
_SYNONYMS: dict[str, set[str]] = {}
for _g in _SYNONYM_GROUPS:
    _stems = {stem(w) for w in _g.split()}
    for _w in _stems:
        _SYNONYMS.setdefault(_w, set()).update(_stems - {_w})
_NUMWORD = r"(?:\d+(?:\.\d+)?|an?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty)"
_ANSWER_TYPES = [  # (the question asks for, a unit holding one looks like)
    (re.compile(r"\bhow (?:long|often|soon|frequently)\b|\bdeadline\b|\bhow many (?:second|minute|hour|day|week|month|year)s\b", re.I),
     re.compile(rf"\b{_NUMWORD}[ -](?:second|minute|hour|day|week|month|year)s?\b|\b(?:every|within)\b|"
                r"\b(?:hourly|daily|weekly|monthly|yearly|annually)\b", re.I)),
    (re.compile(r"\be-?mail\b|\baddress\b", re.I), re.compile(r"[\w.+-]+@[\w-]+\.\w")),
    (re.compile(r"\b(?:url|link|website|web page)\b", re.I), re.compile(r"https?://")),
    (re.compile(r"^\s*when\b|\bwhat (?:time|date|day)\b|\bat what time\b", re.I), re.compile(r"\d{4}-\d\d-\d\d|\d\d:\d\d")),
    (re.compile(r"\b(?:which|what) version\b", re.I), re.compile(r"\d+\.\d+")),
]


def _expansions(w: str, vocab: set[str]) -> dict[str, float]:
    """The evidence tokens that count for query word `w`, with their weight."""
    out = {w: 1.0} if w in vocab else {}
    if len(w) >= 5 and not w[0].isdigit():
        for v in vocab:
            if v != w and len(v) >= 5 and (v.startswith(w) or w.startswith(v)) and min(len(v), len(w)) >= 0.6 * max(len(v), len(w)):
                out.setdefault(v, PREFIX)
    for v in _SYNONYMS.get(w, ()):
        if v in vocab:
            out.setdefault(v, SYNONYM)
    return out


def rank_units(texts: list[str], question: str, sources: list[tuple[str, str]] | None = None) -> tuple[list[Unit], float]:
    """Every unit of `texts`, best first, and the question's total term weight. A unit's own score
    is the summed IDF (over all units) of the question's words and dates it holds (a word's prefix
    relative or synonym at reduced weight) and of the answer's shape where the question asks for one
    (a duration, an address); its score adds, at `INNER` and `OUTER` weight, the question's terms
    its records hold elsewhere (`records`). `sources` (path, anchor) lets adjacent windows of one
    file share records. Ties go to earlier documents (routing's order) and earlier lines."""
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
    vocab = set().union(*bags)
    exp = {w: _expansions(w, vocab) for w in q.words}
    # each term's weight in each unit that holds it: 1 for the word itself, less for a relative
    hold: list[dict[str, float]] = []
    for bag in bags:
        h: dict[str, float] = {}
        for w, alts in exp.items():
            best = max((f for v, f in alts.items() if v in bag), default=0.0)
            if best:
                h[w] = best
        hold.append(h)
    idf: dict[str, float] = {}
    for w in q.words:
        df = sum(1 for h in hold if w in h)
        idf[w] = math.log(1 + n / (df + 0.5))
    date_hits = [[d.found(u.text) for d in q.dates] for u in us]
    didf = [math.log(1 + n / (sum(h[k] for h in date_hits) + 0.5)) * 1.5 for k in range(len(q.dates))]
    shapes = [rx for ask, rx in _ANSWER_TYPES if ask.search(question)]
    shape_hits = [[bool(rx.search(u.text)) for rx in shapes] for u in us]
    sidf = [math.log(1 + n / (sum(h[k] for h in shape_hits) + 0.5)) * ANSWER_TYPE for k in range(len(shapes))]
    # A term no unit holds still counts in the total: the evidence lacks it.
    total = sum(idf[w] for w in q.words) + sum(math.log(1 + n / 0.5) * 1.5 for _ in q.dates)
    terms: list[dict[str, float]] = []  # each unit's own terms and their weight in it
    for u, h, dh, sh in zip(us, hold, date_hits, shape_hits):
        t = {w: idf[w] * f for w, f in h.items()}
        t |= {d.label: s for d, s, x in zip(q.dates, didf, dh) if x}
        u.own = sum(t.values())
        t |= {f"<{k}>": s for k, (s, x) in enumerate(zip(sidf, sh)) if x}
        terms.append(t)
        u.matched = frozenset(w for w in t if not w.startswith("<"))
    # records, over streams of adjacent windows of one file
    where = _streams(sources, texts)
    stream_lines: dict[int, list[str]] = {}
    for j, (s, off) in enumerate(where):
        sl = stream_lines.setdefault(s, [])
        sl += [""] * (off + len(lines[j]) - len(sl))
        sl[off: off + len(lines[j])] = lines[j]
    recs = {s: records(sl) for s, sl in stream_lines.items()}
    home: dict[tuple[int, int], tuple[int, int]] = {}  # (stream, line) → (doc, line)
    for j, (s, off) in enumerate(where):
        for i in range(len(lines[j])):
            home.setdefault((s, off + i), (j, i))
    at: dict[tuple[int, int], list[int]] = {}  # (stream, line) → units
    for k, u in enumerate(us):
        s, off = where[u.doc]
        at.setdefault((s, off + u.first), []).append(k)
    rec_terms: dict[tuple[int, int, int], dict[str, float]] = {}

    def held(s: int, a: int, b: int) -> dict[str, float]:
        if (s, a, b) not in rec_terms:
            out: dict[str, float] = {}
            for i in range(a, b + 1):
                for k in at.get((s, i), ()):
                    for w, v in terms[k].items():
                        if not w.startswith("<"):  # the answer's shape is the unit's own business
                            out[w] = max(out.get(w, 0.0), v)
            rec_terms[(s, a, b)] = out
        return rec_terms[(s, a, b)]

    rows = {(u.doc, u.first) for k, u in enumerate(us) if _header_line(lines[u.doc], u.first) is not None}
    for k, u in enumerate(us):
        s, off = where[u.doc]
        mine = terms[k]
        score = sum(mine.values())
        seen = set(mine)
        # a CSV row is a record by itself: its neighbours are other days, other sensors
        bonus = 0.0
        for weight, r in zip((INNER, OUTER), [] if (u.doc, u.first) in rows else recs[s][off + u.first]):
            more = {w: v for w, v in held(s, *r).items() if w not in seen}
            bonus += weight * sum(more.values())
            seen |= set(more)
        # the record lifts a unit by at most its own score: a page of prose without blank lines is
        # one record, and its title line must not win on the words of the page
        u.score = score + min(bonus, RECORD_CAP * score)
        r = recs[s][off + u.first]
        if r and r[0][0] != off + u.first and (s, r[0][0]) in home:
            u.head = home[(s, r[0][0])]
        n_lines = texts[u.doc].count("\n") + 1
        if r and r[0][0] == off + u.first and r[0][1] - r[0][0] < SMALL_RECORD and u.span is None:
            u.body = (u.first, min(n_lines - 1, r[0][1] - off))  # a changelog entry's header, say
    # Two hops over a shared minute: lines of other files stamped with the best unit's minute (the
    # dpkg lines of the apt run whose alternatives line answered the question's first half)
    best = max(range(n), key=lambda i: us[i].score)
    m = _STAMP.search(us[best].text[:48])
    if m and us[best].own > 0:
        for u in us:
            if where[u.doc][0] != where[us[best].doc][0] and u.own > 0 and (m2 := _STAMP.search(u.text[:48])) \
                    and m2.group(1) == m.group(1):
                u.score += OUTER * us[best].own
    order = sorted(range(n), key=lambda i: (-us[i].score, us[i].doc, us[i].first, us[i].span or (0, 0)))
    return [us[i] for i in order], total


def coverage(ranked: list[Unit], total: float) -> float:
    """The share of the question's term weight that its best unit holds by itself (0 to 1)."""
    if not ranked or total <= 0:
        return 0.0
    return min(1.0, max(u.own or u.score for u in ranked) / total)


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


Shown = dict[int, "set[tuple[int, int]] | None"]  # line → None (all of it) or the character spans shown


def _brief(line: str) -> set[tuple[int, int]] | None:
    """A context line as shown: whole, or a long one's beginning."""
    if len(line) <= LONG_LINE:
        return None
    return {_pieces(line)[0]} if line.strip() else None


_KEY = re.compile(r"^\s*[\w.-]{1,30}:\s")


def _render(line: str, spans: set[tuple[int, int]] | None) -> str:
    if spans is None:
        return line
    merged: list[list[int]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    key = _KEY.match(line)
    out = [line[: key.end()].rstrip()] if key and merged[0][0] >= key.end() else []
    if merged[0][0] > (key.end() if out else 0):
        out.append("…")
    for k, (a, b) in enumerate(merged):
        if k:
            out.append("…")
        out.append(line[a:b].strip())
    if merged[-1][1] < len(line.rstrip()):
        out.append("…")
    return " ".join(out)


def _merge(old: Shown, new: Shown) -> Shown:
    out = dict(old)
    for i, v in new.items():
        if i not in out:
            out[i] = None if v is None else set(v)
        elif out[i] is not None:
            out[i] = None if v is None else out[i] | v
    return out


def focus(docs: list[tuple[str, str, str]], question: str, budget: int, encode: Callable[[str], list[int]],
          *, max_units: int = 8, min_score: float = 1e-9, min_ratio: float = 0.5) -> Focused:
    """The evidence a small reader should see: `docs` are (path, anchor, text) in routing's order;
    the best units (at most `max_units`, each scoring above `min_score` and at least `min_ratio` of
    the best) with `CONTEXT` lines either side, each document's head and CSV header, then, as the
    budget allows, the first line of each chosen unit's record (its apt run's Start-Date, its
    def's signature), within `budget` tokens. A piece of a long line is shown alone, after the
    line's key (`Install:`), and a long context line by its beginning. A document with no chosen
    unit is left out; when no unit matches at all, the first document's head is kept."""
    texts = [t for _, _, t in docs]
    ranked, total = rank_units(texts, question, [(p, a) for p, a, _ in docs])
    lines = [t.split("\n") for t in texts]
    keep: dict[int, Shown] = {}
    cost = 0
    taken = 0

    def cost_of(j: int, shown: Shown) -> int:
        return sum(len(encode(_render(lines[j][i], v))) + 1 for i, v in shown.items())

    def title(j: int) -> int:
        return len(encode(f"[9] {docs[j][0]} ({docs[j][1]})")) + 2 if j not in keep else 0

    def delta(j: int, want: Shown) -> tuple[Shown, int]:
        old = keep.get(j, {})
        new = _merge(old, want)
        touched = {i: new[i] for i in new if i not in old or new[i] != old[i]}
        return new, cost_of(j, touched) - cost_of(j, {i: old[i] for i in touched if i in old}) + title(j)

    floor = max(min_score, min_ratio * ranked[0].score) if ranked else min_score
    chosen: list[Unit] = []
    for u in ranked:
        if taken >= max_units or u.score <= min_score or u.score < floor:
            break
        j = u.doc
        own: Shown = {i: None for i in range(u.first, u.last + 1)}
        if u.span is not None:
            own = {u.first: {u.span}}
        want: Shown = {i: _brief(lines[j][i]) for i in range(max(0, u.first - CONTEXT), min(len(lines[j]), u.last + CONTEXT + 1))
                       if i not in own}
        want |= {i: _brief(lines[j][i]) for i in range(min(HEAD_LINES, len(lines[j]))) if i not in own}
        h = _header_line(lines[j], u.first)
        if h is not None:
            want[h] = None
        want |= own
        new, c = delta(j, want)
        if cost + c > budget:
            new, c = delta(j, own)  # the unit alone (no context) if that fits
            if cost + c > budget:
                continue
        keep[j] = new
        cost += c
        taken += 1
        chosen.append(u)
    if chosen and chosen[0].body is not None:
        # The best line opens a short record (a changelog entry's header naming the version asked
        # about, an apt run's Start-Date) and leads the rest: the answer is in the record's body,
        # whose lines hold none of the question's words. Show the body, as the budget allows.
        u = chosen[0]
        a, b = u.body
        rest = next((v.score for v in ranked if v.doc != u.doc or not a <= v.first <= b), 0.0)
        if u.score >= LEAD * rest:
            for i in range(a + 1, b + 1):
                if i in keep.get(u.doc, {}) or not lines[u.doc][i].strip():
                    continue
                new, c = delta(u.doc, {i: _brief(lines[u.doc][i])})
                if cost + c > budget:
                    break
                keep[u.doc] = new
                cost += c
    for u in chosen:  # the records' first lines, as the budget allows
        if u.head is None:
            continue
        j, i = u.head
        if i in keep.get(j, {}):
            continue
        new, c = delta(j, {i: _brief(lines[j][i])})
        if cost + c <= budget:
            keep[j] = new
            cost += c
    if not keep and docs:
        keep[0] = {i: _brief(lines[0][i]) for i in range(min(3, len(lines[0])))}
    order = sorted(keep)
    blocks = [evidence_block(n + 1, docs[j][0], docs[j][1], _elide(lines[j], keep[j])) for n, j in enumerate(order)]
    return Focused(blocks, order, ranked, total, question)


def _elide(lines: list[str], shown: Shown) -> str:
    out: list[str] = []
    prev = -1
    for i in sorted(shown):
        if i > prev + 1:
            out.append("…")
        out.append(_render(lines[i], shown[i]))
        prev = i
    if prev < len(lines) - 1 and any(ln.strip() for ln in lines[prev + 1:]):
        out.append("…")
    return "\n".join(out)
