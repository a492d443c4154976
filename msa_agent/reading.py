"""What the reader sees and says: the system prompt, the evidence layout of the user turn, the
abstention phrase, and the quote that the system (not the model) finds for an answer.

No store and no model here: `ask`, the reader's training data and `msa bench reader` all build
prompts with these functions, so training and inference see the same token sequence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SYSTEM = (
    "You answer questions about a company's documents. Use only the documents given. "
    "Answer briefly and exactly, copying names, numbers and dates from the documents. "
    "If the documents do not say, answer: Not stated."
)
# Every abstention starts with this phrase (the fine-tuned reader is trained to write it).
ABSTAIN = "Not stated."
_ABSTAIN_FORMS = ("not stated", "the documents do not say", "the documents don't say", "not mentioned in the",
                  "no information", "i don't know", "i do not know", "cannot be determined", "not specified")

_WORD = re.compile(r"[A-Za-z0-9_.%-]+")
_STOP = frozenset("the a an of to and or in on at for is are was were be by with that this it as from "
                  "which what who when where how does do did its their not no".split())


def content_words(text: str) -> set[str]:
    return {w.lower().strip(".,") for w in _WORD.findall(text) if w.lower() not in _STOP and len(w) > 1}


def evidence_block(n: int, path: str, anchor: str, text: str) -> str:
    """One injected document: `[n] path (anchor)` then its text."""
    return f"[{n}] {path} ({anchor})\n{text.strip()}"


def prompt_pieces(evidence: list[str], question: str) -> list[tuple[str, int]]:
    """The user turn as (text, evidence index or -1) pieces, each tokenized on its own (as `ask`
    does, so that the routing-query mask can mark the newest evidence)."""
    pieces: list[tuple[str, int]] = []
    if evidence:
        pieces.append(("Documents:\n\n", -1))
        pieces += [(text + "\n\n", j) for j, text in enumerate(evidence)]
    pieces.append((f"Question: {question}", -2))
    return pieces


def is_abstention(answer: str) -> bool:
    """The answer says the documents do not support one."""
    a = answer.strip().lower()
    return any(a.startswith(f) for f in _ABSTAIN_FORMS) or not a


# ---- quotes ---------------------------------------------------------------------------------------


@dataclass
class Quote:
    text: str  # verbatim lines of the document text
    first_line: int  # 1-based, within the document text
    last_line: int
    exact: bool  # the answer span occurs in the quote verbatim (case-insensitively)

    def as_dict(self) -> dict:
        return {"quote": self.text, "quote_lines": [self.first_line, self.last_line], "quote_exact": self.exact}


_TRIM = " \t\n\"'`.,;:!?()[]"


def _spans(answer: str) -> list[str]:
    """Candidate verbatim spans of an answer, longest first: the whole answer, its first line,
    and its clauses."""
    a = answer.strip()
    cands = [a, a.splitlines()[0] if a else ""]
    cands += re.split(r"[;\n]|, (?:and|or) |\. ", a)
    out = []
    for c in cands:
        c = c.strip(_TRIM)
        if len(c) >= 2 and c not in out:
            out.append(c)
    return sorted(out, key=len, reverse=True)


def locate_quote(text: str, answer: str, question: str = "") -> Quote | None:
    """The lines of `text` that support `answer`: the line(s) holding the answer verbatim, else
    the line sharing most of the answer's content words (ties: most of the question's); None
    when no line shares at least half of them. The quote is always a substring of `text`."""
    if not text.strip() or is_abstention(answer):
        return None
    lines = text.split("\n")
    starts = []
    pos = 0
    for line in lines:
        starts.append(pos)
        pos += len(line) + 1
    qwords = content_words(question)
    spans = _spans(answer)
    if spans and spans[0] == answer.strip().strip(_TRIM):  # the whole answer first, then a list's items
        if at := _occurrence(text, lines, starts, spans.pop(0), qwords):
            return _quote(lines, *at, exact=True)
    if (items := _covering_items(text, lines, starts, answer, qwords)) is not None:
        return _quote(lines, *items, exact=True)
    for span in spans:
        if at := _occurrence(text, lines, starts, span, qwords):
            return _quote(lines, *at, exact=True)
    words = content_words(answer)
    if not words:
        return None
    scored = [(len(words & content_words(line)), len(qwords & content_words(line)), -i) for i, line in enumerate(lines)]
    hit, qhit, neg_i = max(scored)
    if hit * 2 < len(words):
        return None
    return _quote(lines, -neg_i, -neg_i, exact=False)


LIST_QUOTE_LINES = 12  # a list answer is quoted whole when its items lie within this many lines


def _occurrence(text: str, lines: list[str], starts: list[int], span: str, qwords: set[str]) -> tuple[int, int] | None:
    """The (first, last) lines of `span`'s occurrence in `text` on the lines that best match the
    question; word boundaries at the span's ends ("59" is not found inside "159")."""
    pat = re.compile(rf"(?<![A-Za-z0-9]){re.escape(span)}(?![A-Za-z0-9])", re.IGNORECASE)
    best, best_score = None, -1
    for m in pat.finditer(text):
        f, l = _line_of(starts, m.start()), _line_of(starts, m.end() - 1)
        sc = len(qwords & content_words(" ".join(lines[f:l + 1])))
        if sc > best_score:
            best, best_score = (f, l), sc
    return best


def list_items(answer: str) -> list[str]:
    """The items of a list answer ("72.6, 72.8"; "a, b and c"; "- x" lines); [] for one value."""
    a = answer.strip()
    parts = [p.strip().lstrip("-•* ").strip(_TRIM) for p in a.splitlines()] if "\n" in a else \
        re.split(r"\s*;\s*|,(?!\d{3}(?!\d))\s*(?:and\s+|or\s+)?|\s+and\s+", a)
    items = [p.strip(_TRIM) for p in parts if p and p.strip(_TRIM)]
    return items if len(items) >= 2 else []


def _covering_items(text: str, lines: list[str], starts: list[int], answer: str,
                    qwords: set[str]) -> tuple[int, int] | None:
    """For a list answer whose items each occur in `text`: the line range covering all of them,
    when it is at most LIST_QUOTE_LINES long (the rows or lines the list was read from)."""
    items = list_items(answer)
    if not items:
        return None
    found = [_occurrence(text, lines, starts, it, qwords) for it in items]
    if any(f is None for f in found):
        return None
    first, last = min(f[0] for f in found), max(f[1] for f in found)
    return (first, last) if last - first < LIST_QUOTE_LINES else None


def _line_of(starts: list[int], offset: int) -> int:
    lo, hi = 0, len(starts) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if starts[mid] <= offset:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _quote(lines: list[str], first: int, last: int, *, exact: bool) -> Quote:
    # Leading and trailing blanks trimmed: still a substring of the document text.
    return Quote("\n".join(lines[first:last + 1]).strip(), first + 1, last + 1, exact)
