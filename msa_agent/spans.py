"""Extractive answers: spans of the focused evidence, scored by the reader.

A 135M reader that writes freely takes a neighbouring value, writes a number that is in no line,
or names the thing asked about instead of the answer ("ls -sh" for "which prefixes does ls -sh
use"). Asked instead how likely it is to write each of a few dozen spans cut from the lines that
match the question, it ranks them well: choosing among evidence spans is easier than writing.

- `answer_type` reads what kind of thing the question asks for (a version, a CVE, an e-mail
  address, a date or time, a number, a code name, a path), from its wording alone;
- `candidates` cuts spans from the best-matching units: typed spans (`TYPED`), the value of a
  `Key: value` line, quoted strings, and short word n-grams that do not merely repeat the
  question;
- `score_spans` is the reader's log-probability of writing each span and stopping, given the
  prompt, batched over one cached prefill (`MSAModel.feed` semantics, several rows at once).

Every span is verbatim evidence text, so the answer it gives can be quoted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from .focus import Focused, stem

TYPED: dict[str, re.Pattern] = {
    "cve": re.compile(r"\bCVE-\d{4}-\d{3,}\b"),
    "email": re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),
    "datetime": re.compile(
        r"\b\d{4}-\d{2}-\d{2}(?:[ T]+\d{2}:\d{2}(?::\d{2})?Z?)?"
        r"|\b\d{4}/\d{2}/\d{2}\b"
        r"|\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} \w{3} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}"
        r"|\b\d{2}:\d{2}(?::\d{2})?Z?\b"),
    # a package or release version: digits with dots/dashes/pluses/tildes, an optional epoch, letters
    "version": re.compile(r"(?<![\w.:+~-])(?:\d+:)?\d+(?:[.~+-][0-9A-Za-z]+)+(?![\w+~-])"),
    "path": re.compile(r"(?<![\w/])/(?:[\w.+-]+/)*[\w.+-]+"),
    "number": re.compile(
        r"(?:(?:USD|EUR|GBP|US\$|\$|€|£)\s?)?[-+]?\d[\d,]*(?:\.\d+)?(?:\s?%|:\d+)?"
        r"(?:\s(?:days?|weeks?|months?|years?|hours?|minutes?|seconds?|ms|bytes?|[KMGT]i?B))?"),
    "numword": re.compile(
        r"\b(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|"
        r"forty|fifty|hundred)(?:\s(?:days?|weeks?|months?|years?|hours?|minutes?|members?|times))?\b", re.I),
    "ident": re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+\b|\b[a-z0-9]+_[a-z0-9_]+\b"
                        r"|\b[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+\b|\b[A-Z]{2,}[A-Z0-9_]*\b"),
    "quoted": re.compile(r"\"([^\"\n]{1,60})\"|'([^'\n]{1,60})'|`([^`\n]{1,60})`"),
}

# What the question asks for, by its wording: the first rule that matches wins.
_ASKS: list[tuple[str, re.Pattern]] = [
    ("cve", re.compile(r"\bCVEs?\b", re.I)),
    ("email", re.compile(r"\be-?mail\b|\baddress\b.*\b(report|contact|send|write)", re.I)),
    ("version", re.compile(r"\bversions?\b|\bupgraded to\b|\brelease (number|string)\b", re.I)),
    ("datetime", re.compile(r"^\s*when\b|\bwhat (date|time|day)\b|\bat what time\b|\bwhich (date|day)\b|\btimestamp\b",
                            re.I)),
    ("path", re.compile(r"\b(path|directory|directories|folder|file name)\b", re.I)),
    ("number", re.compile(r"\bhow (many|much|long|often|far|large|big|old)\b|\bwhat (number|percentage|priority|"
                          r"quorum|fee|amount|size|port|limit|value|count|majority|minimum|maximum)\b|\b(priority|"
                          r"quorum|majority|denominator|exponent|base|threshold|timeout|limit)\b", re.I)),
    ("ident", re.compile(r"\bwhich (function|class|exception|method|attribute|constant|decorator|module|"
                         r"strategy|argument|parameter|key|field|variable)\b|\bwhat (function|class|exception|"
                         r"method|attribute|constant|decorator|module|argument|parameter)\b", re.I)),
]


def answer_type(question: str) -> str | None:
    """The kind of span the question asks for, or None when its wording does not say."""
    for kind, rx in _ASKS:
        if rx.search(question):
            return kind
    return None


_STOPWORDS = frozenset("""a an the of to and or in on at for is are was were be been by with that this these those it its as
from which what who when where how not no can may must shall will should would could than then there their they
any all each such into over under about after before between during per if also only other under upon""".split())
_WORD = re.compile(r"[A-Za-z0-9][\w'&+./:-]*")
_KEYVAL = re.compile(r"^\s*[A-Za-z][\w -]{0,30}:\s+(\S.{0,100}?)\s*$")


@dataclass
class Span:
    text: str
    kind: str  # a TYPED kind, "value" (of a Key: value line), "ngram"
    unit: int  # rank of the unit it came from (0: best)


def _ngrams(text: str, qstems: set[str], max_n: int) -> list[str]:
    toks = [(m.group().rstrip(".,;:"), m.start()) for m in _WORD.finditer(text)]
    out = []
    for i in range(len(toks)):
        for n in range(1, max_n + 1):
            part = toks[i:i + n]
            if len(part) < n:
                break
            ws = [w for w, _ in part]
            if ws[0].lower() in _STOPWORDS or ws[-1].lower() in _STOPWORDS or not ws[-1]:
                continue
            if all(stem(w) in qstems or w.lower() in _STOPWORDS for w in ws):
                continue  # merely repeats the question
            start = part[0][1]
            end = part[-1][1] + len(part[-1][0])
            out.append(text[start:end])
    return out


def candidates(focused: Focused, kind: str | None, *, units: int = 4, max_n: int = 4,
               limit: int = 96) -> list[Span]:
    """Spans of the best `units` units (each scoring at least half the best), best unit first:
    of the asked `kind` when the question says and the units hold some; else every typed span,
    `Key: value` values and n-grams of up to `max_n` words that are not all question words."""
    from .focus import QueryTerms

    if not focused.ranked or focused.ranked[0].score <= 0:
        return []
    floor = 0.5 * focused.ranked[0].score
    top = [u for u in focused.ranked[:units] if u.score >= floor]
    qstems = set(QueryTerms.of(focused.question).words)
    seen: set[str] = set()
    typed: list[Span] = []
    loose: list[Span] = []

    def add(bucket: list[Span], text: str, k: str, r: int) -> None:
        t = text.strip().strip(",;")
        if t and len(t) <= 100 and t.lower() not in seen:
            seen.add(t.lower())
            bucket.append(Span(t, k, r))

    for r, u in enumerate(top):
        for k, rx in TYPED.items():
            for m in rx.finditer(u.text):
                add(typed, next((g for g in m.groups() if g), m.group()) if m.groups() else m.group(), k, r)
        m = _KEYVAL.match(u.text)
        if m:
            add(loose, m.group(1), "value", r)
    want = {"number": ("number", "numword"), "ident": ("ident", "quoted")}.get(kind or "", (kind,))
    if kind is not None:
        asked = [s for s in typed if s.kind in want]
        if asked:
            return asked[:limit]
    for r, u in enumerate(top):
        for g in _ngrams(u.text, qstems, max_n):
            add(loose, g, "ngram", r)
    return (typed + loose)[:limit]


@torch.inference_mode()
def score_spans(model, first_logits: torch.Tensor, cache, pos: int, spans: list[list[int]], stop_id: int,  # noqa: ANN001
                batch: int = 32) -> list[float]:
    """The log-probability that the model, after the prompt whose last logits are `first_logits`
    and whose keys and values are in `cache` (next position `pos`), writes each token list of
    `spans` and then `stop_id`. The cache is read, never changed."""
    from msa_agent.model.model import KVCache

    first = torch.log_softmax(first_logits.float(), dim=-1)
    out: list[float] = []
    dev = first_logits.device
    for b in range(0, len(spans), batch):
        group = spans[b:b + batch]
        B = len(group)
        seqs = [s + [stop_id] for s in group]
        T = max(len(s) for s in seqs)
        ids = torch.full((B, T), stop_id, dtype=torch.long, device=dev)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s, device=dev)
        view = KVCache(len(cache.k))
        view.k = [None if k is None else k.expand(B, *k.shape[1:]) for k in cache.k]
        view.v = [None if v is None else v.expand(B, *v.shape[1:]) for v in cache.v]
        positions = torch.arange(pos, pos + T, device=dev).expand(B, T)
        # inputs are every token but the last (the first token's logits are `first_logits`)
        h = model.hidden(ids[:, :-1], positions[:, :-1], view) if T > 1 else None
        for i, s in enumerate(seqs):
            lp = float(first[s[0]])
            if len(s) > 1:
                logp = torch.log_softmax(model.logits(h[i:i + 1, : len(s) - 1])[0].float(), dim=-1)
                lp += float(logp.gather(1, torch.tensor(s[1:], device=dev)[:, None]).sum())
            out.append(lp)
    return out
