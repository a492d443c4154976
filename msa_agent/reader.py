"""The answer step: the reader generates from the focused evidence, and the system decides, from
how well the evidence supports the question and whether the answer is in it, what to say.

A 135M reader says "Not stated." whenever the question's words are not the evidence's, and now
and then writes a value that is in no document. So:

- the reader's first-token probability of the abstention phrase is read off the prefill logits;
- the reader's abstention stands only when it is confident (its first-token probability of the
  abstention at least `abstain_confidence`); a hesitant one is overruled: the abstention's first
  token is banned and the reader answers;
- the answer must be grounded: its numbers and most of its words occur in the evidence it was
  given. One that is not is replaced by the evidence line that matches the question best when
  support is strong (`extract_at`), else by "Not stated.";
- with almost no support (`abstain_below`) msa abstains without reading;
- a value the reader took from a weaker line while the best-matching line holds exactly one value
  of the same shape is replaced by that value (`snap_to_best`: the next row's time, a neighbouring
  number);
- a question that asks for several things ("which packages…", "list…", "both…") is answered
  with the evidence lines that match it best (`list_lines` at most, each scoring at least
  `list_ratio` of the best), verbatim, even when the reader abstains: the 135M reader names one
  value where several are asked, and says "Not stated." to most list questions;
- a question over CSV rows (a lookup, a filter, a maximum, a two-hop "the wind on the hottest
  day") is answered by `tableqa` from the routed CSV files' rows, without the reader;
- a question that asks for a kind of span (a version, a date, a CVE…; `spans.answer_type`) and
  got an answer not of that kind is answered with the evidence span of that kind the reader
  scores best (`best_span`); one written in part is completed (`complete_span`).

`Read.how` records which of these produced the answer; `ask` puts it in its JSON ("reading").
The thresholds are module defaults chosen on the dev set's tuning split (bench/devset/).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from .focus import Focused
from .reading import ABSTAIN, SYSTEM, content_words, is_abstention

_NUM = re.compile(r"\d+(?:[.,:]\d+)*")


@dataclass
class ReadPolicy:
    focus: bool = True  # the reader sees the focused lines, not the injected documents whole
    focus_budget: int = 480  # tokens of focused evidence
    focus_units: int = 8
    focus_docs: int = 6  # documents the focused lines are taken from: the injected ones, then the next routed
    # The reader's abstention stands only at this first-token probability (>1: always). Chosen on the
    # dev set's tune split: the highest that kept correct abstentions at or above 80% there.
    abstain_confidence: float = 0.95
    abstain_below: float = 0.0  # coverage under which msa abstains without reading
    grounding: bool = True  # an answer not in the evidence is replaced
    extract_at: float = 0.6  # coverage at which an ungrounded answer becomes the best line, not an abstention
    snap: bool = True  # a value read off a weaker line is taken from the best line instead (`snap_to_best`)
    lists: bool = True  # list questions are answered with the matching evidence lines
    list_lines: int = 6
    list_ratio: float = 0.6
    # Extractive answers (`best_span`): "off"; "typed": an answer not of the kind the question asks
    # for (a version, a date…) is replaced by the evidence span of that kind the reader scores best;
    # "always": the best-scoring span of the asked kind, the reader's own answer competing
    spans: str = "typed"
    tables: bool = True  # a question over CSV rows is answered by `tableqa` when it can be
    hops: bool = True  # a question naming a thing by a relative clause is asked in two hops (`hops`)

    @classmethod
    def plain(cls) -> ReadPolicy:
        """The reader as it was: whole documents, its own words, no checks."""
        return cls(focus=False, abstain_confidence=0.0, abstain_below=0.0, grounding=False, lists=False, spans="off",
                   tables=False, hops=False)


@dataclass
class Read:
    answer: str
    how: str  # generated | forced (abstention overruled) | extracted | abstained | unsupported | ungrounded
    p_abstain: float
    coverage: float
    grounded: bool
    tokens: int
    first_token_ms: float
    generated: str = ""  # the reader's own words, when the system replaced them

    def as_dict(self) -> dict:
        d = asdict(self)
        d["p_abstain"] = round(d["p_abstain"], 4)
        d["coverage"] = round(d["coverage"], 4)
        d["first_token_ms"] = round(d["first_token_ms"], 1)
        return d


def grounded(answer: str, evidence: str) -> bool:
    """Every number of the answer occurs in the evidence, and at least half its content words."""
    ev = evidence.lower()
    nums = _NUM.findall(answer)
    if any(not re.search(rf"(?<![0-9]){re.escape(n)}(?![0-9])", ev) for n in nums):
        return False
    ws = {w for w in content_words(answer) if not _NUM.fullmatch(w)}
    if not ws:
        return bool(nums)
    evw = content_words(evidence)
    return sum(w in evw for w in ws) * 2 >= len(ws)


def _abstain_ids(tok) -> list[int]:  # noqa: ANN001
    ids = {tok.encode(ABSTAIN)[0], tok.encode(" " + ABSTAIN)[0]}
    return sorted(ids)


def read_answer(engine, ids: list[int], sel, policy: ReadPolicy, focused: Focused | None, *,  # noqa: ANN001
                max_new_tokens: int = 96, on_token: Callable[[str], None] | None = None) -> Read:
    """Generate the answer to the prompt `ids` (a user turn from `ask._prompt`) and apply the
    policy. Tokens stream to `on_token` as they come only when the policy cannot replace the
    answer afterwards (no grounding check); otherwise the final answer is sent once."""
    tok = engine.tok
    t0 = time.perf_counter()
    cov = focused.coverage if focused is not None else 1.0
    evidence = "\n".join(focused.blocks) if focused is not None else ""
    if focused is not None and cov < policy.abstain_below:
        return _emit(Read(ABSTAIN, "unsupported", 1.0, cov, False, 0, 0.0), on_token, t0)
    logits, cache, pos = engine.answerer.prefill(tok.chat_prefix(SYSTEM), ids, sel)
    banned = _abstain_ids(tok)
    probs = torch.softmax(logits.float(), dim=-1)
    p_abstain = float(probs[banned].sum())
    how = "generated"
    if focused is not None and p_abstain < policy.abstain_confidence and int(torch.argmax(logits)) in banned:
        logits = logits.clone()
        logits[banned] = float("-inf")
        how = "forced"
    first_logits = logits
    use_spans = focused is not None and policy.spans != "off" and cache is not None
    if use_spans:  # the spans are scored over the prompt's cache, kept as it is before decoding
        from msa_agent.model.model import KVCache

        cache_ = KVCache(len(cache.k))
        cache_.k, cache_.v = list(cache.k), list(cache.v)
        pos_ = pos
    stream = on_token if not policy.grounding else None
    out: list[int] = []
    shown = ""
    first_ms = None
    for t in engine.answerer.decode(logits, cache, pos, max_new_tokens=max_new_tokens, stop_ids=tok.stop_ids):
        if first_ms is None:
            first_ms = (time.perf_counter() - t0) * 1000
        out.append(t)
        if stream is not None:
            text = tok.decode(out)
            if len(text) > len(shown):
                stream(text[len(shown):])
            shown = text
    answer = tok.decode(out).strip()
    read = Read(answer, how, p_abstain, cov, False, len(out), first_ms or 0.0)
    if is_abstention(answer):
        read.answer, read.how = ABSTAIN, "abstained"
    elif focused is not None and policy.grounding:
        read.grounded = grounded(answer, evidence)
        if not read.grounded:
            read.generated = answer
            if cov >= policy.extract_at and focused.ranked:
                read.answer, read.how = focused.ranked[0].text.strip(), "extracted"
            else:
                read.answer, read.how = ABSTAIN, "ungrounded"
    else:
        read.grounded = grounded(answer, evidence) if focused is not None else False
    if use_spans and read.how in ("generated", "forced") and not (policy.lists and is_list_question(focused.question)):
        span = best_span(engine, first_logits, cache_, pos_, focused, answer, policy.spans)
        if span is not None and span != read.answer:
            read.generated = read.generated or answer
            read.answer, read.how, read.grounded = span, "span", True
    if focused is not None and policy.spans != "off" and read.how in ("generated", "forced", "span"):
        whole = complete_span(read.answer, focused)
        if whole is not None:
            read.generated = read.generated or answer
            read.answer, read.how = whole, "completed"
    if focused is not None and policy.snap and read.how in ("generated", "forced") and read.grounded:
        snapped = snap_to_best(read.answer, focused)
        if snapped is not None:
            read.generated, read.answer, read.how = read.answer, snapped, "snapped"
    # A list question is answered with its lines even when the reader abstains: it abstains on most
    # list questions whatever the evidence holds (tune split: 3 answered right for 1 unanswerable lost)
    if focused is not None and policy.lists and is_list_question(focused.question):
        lines = list_lines(focused, policy)
        if len(lines) > 1:
            read.generated = read.generated or answer
            read.answer, read.how = "\n".join(f"- {ln}" for ln in lines), "listed"
    if stream is None and on_token is not None:
        on_token(read.answer)
    return read


_PLURAL_EXCEPT = frozenset("does was has is this its status process address class access series always less "
                           "across various previous analysis basis bus gas plus yes thus news".split())
_LIST_CUE = re.compile(r"(^|[,;:]\s*)(please\s+)?(list|enumerate|name)\b|\b(both|all the|each of|which ones)\b"
                       r"|\b(which|what)\s+(two|three|four|five|six|several)\b", re.I)
_WH = re.compile(r"\b(which|what)\s+((?:[\w'/-]+\s*){1,5})", re.I)
_AFTER_PLURAL = frozenset("are were did do does have had can could should will would must may might got "
                          "of in for from on at with that between during".split())


def is_list_question(question: str) -> bool:
    """The question asks for several things: a list cue ("list …", "both", "all the", a number
    word), or "which"/"what" followed by "are"/"were", or by a plural noun (within three words)
    that an auxiliary verb or a preposition follows ("which packages were…", "what fields
    does…", "which foggy days in…")."""
    if _LIST_CUE.search(question):
        return True
    for m in _WH.finditer(question):
        ws = [w.lower().strip("?,.") for w in m.group(2).split()]
        if ws and ws[0] in ("are", "were"):
            return True
        for i, w in enumerate(ws[:3]):
            nxt = ws[i + 1] if i + 1 < len(ws) else ""
            if (len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")) and w not in _PLURAL_EXCEPT
                    and nxt in _AFTER_PLURAL):
                return True
    return False


def snap_to_best(answer: str, focused: Focused) -> str | None:
    """The neighbouring-value fix: when the reader's value (a short answer with digits) is in none
    of the best-matching lines, and those lines hold exactly one value of the same shape (digits
    for digits, the rest as written: 02:21:00Z → 02:17:00Z), that value. None otherwise."""
    a = answer.strip()
    if not focused.ranked or len(a) > 32 or not re.search(r"\d", a) or focused.ranked[0].score <= 0:
        return None
    best = focused.ranked[0].score
    top = [u.text for u in focused.ranked if u.score >= best - 1e-9]
    if any(a.lower() in t.lower() for t in top):
        return None
    shape = re.compile(r"(?<![\d.])" + "".join(r"\d" if ch.isdigit() else re.escape(ch) for ch in a) + r"(?![\d])")
    found = {m.group() for t in top for m in shape.finditer(t)}
    return found.pop() if len(found) == 1 else None


def list_lines(focused: Focused, policy: ReadPolicy) -> list[str]:
    """The evidence units that answer a list question: the best ones, each at least `list_ratio`
    of the best score, at most `list_lines`, in document and line order."""
    if not focused.ranked or focused.ranked[0].score <= 0:
        return []
    floor = policy.list_ratio * focused.ranked[0].score
    best = [u for u in focused.ranked[: policy.list_lines] if u.score >= floor]
    best = _named(best, focused.question)
    best.sort(key=lambda u: (u.doc, u.first))
    return list(dict.fromkeys(u.text.strip() for u in best if u.text.strip()))


_NAME = re.compile(r"[A-Za-z][\w.]*[-_][\w.-]*[A-Za-z0-9]|[A-Za-z]+\d[\w.-]*|\d+[A-Za-z][\w.-]*")


def _named(units: list, question: str) -> list:
    """The question names something by a name of letters joined with digits, hyphens or
    underscores ("shady-clover", "postgresql-15", "pump-3"): when some of the units hold one of
    those names, the units that hold none are a look-alike record's ("coastal-clover"), not an
    item of the list, and are left out."""
    names = {m.group(0).lower() for m in _NAME.finditer(question) if len(m.group(0)) >= 4}
    if not names:
        return units
    holding = [u for u in units if any(n in u.text.lower() for n in names)]
    return holding if holding else units


def best_span(engine, first_logits: torch.Tensor, cache, pos: int, focused: Focused, answer: str,  # noqa: ANN001
              mode: str) -> str | None:
    """The span of the evidence, of the kind the question asks for (`spans.answer_type`: a
    version, a date, a CVE…), that the reader most likely writes (`spans.score_spans`), when the
    reader's own `answer` is not of that kind ("typed"), or always ("always": the answer competes
    as one more span when it is evidence text). None when the question's kind is not known, the
    answer is of it, or the best lines hold no span of it."""
    from .spans import TYPED, answer_type, candidates, score_spans

    kind = answer_type(focused.question)
    if kind is None:
        return None
    forms = ("number", "numword") if kind == "number" else ("ident", "quoted") if kind == "ident" else (kind,)
    of_kind = any(TYPED[f].search(answer) for f in forms)
    if mode == "typed" and of_kind:
        return None
    texts = [s.text for s in candidates(focused, kind) if s.kind in forms]
    if mode == "always" and of_kind and any(answer.lower() in u.text.lower() for u in focused.ranked[:4]):
        texts.append(answer)
    if not texts:
        return None
    if len(texts) == 1:
        return texts[0]
    tok = engine.tok
    scores = score_spans(engine.answerer, first_logits, cache, pos, [tok.encode(t) for t in texts], tok.im_end)
    return texts[max(range(len(texts)), key=lambda i: scores[i])]


_WHOLE_KINDS = ("datetime", "version", "path", "email", "cve", "ident")


def complete_span(answer: str, focused: Focused, units: int = 3) -> str | None:
    """The whole value when the reader wrote part of it: the question asks for a kind of span (a
    time, a version, a path…; `spans.answer_type`) and the best line holding the answer holds
    exactly one span of that kind that contains it and is longer ("2026-09-22" → "2026-09-22 04:45:53",
    "2.36-9" → "2.36-9+deb12u14"). None otherwise."""
    from .spans import TYPED, answer_type

    kind = answer_type(focused.question)
    a = answer.strip()
    if kind not in _WHOLE_KINDS or not a or len(a) > 60 or not focused.ranked or focused.ranked[0].score <= 0:
        return None
    floor = 0.5 * focused.ranked[0].score
    for u in focused.ranked[:units]:  # the best line that holds the answer decides
        if u.score < floor:
            break
        found = {m.group() for m in TYPED[kind].finditer(u.text)}
        longer = {f for f in found if a in f and re.sub(r"\s+", " ", f) != a}
        if a in found or len(longer) > 1:
            return None
        if longer:
            return longer.pop()
    return None


def read_table(question: str, docs: list[tuple[str, str, str]], *,
               on_token: Callable[[str], None] | None = None) -> tuple[Read, list[int]] | None:
    """The answer `tableqa` gives over the CSV rows of `docs`, and which documents (indices into
    `docs`) hold the rows it used; None when it gives none (not a table question, or not sure)."""
    from .tableqa import answer_table

    t0 = time.perf_counter()
    tab = answer_table(question, docs)
    if tab is None:
        return None
    used = list(dict.fromkeys(d for d, _ in tab.cells))
    return _emit(Read(tab.answer, f"table:{tab.how}", 0.0, 1.0, True, 0, 0.0), on_token, t0), used


def _emit(read: Read, on_token: Callable[[str], None] | None, t0: float) -> Read:
    read.first_token_ms = (time.perf_counter() - t0) * 1000
    if on_token is not None:
        on_token(read.answer)
    return read


def read_documents(engine, question: str, docs: list[tuple[str, str, str]], policy: ReadPolicy, *,  # noqa: ANN001
                   max_new_tokens: int = 48, budget: int = 1200) -> Read:
    """Answer from given documents ((path, anchor, text), no memory, no routing) as `ask` reads
    its injected documents: focused per `policy`, else whole (cut around the best-matching lines
    to `budget` tokens, as `ask` cuts evidence)."""
    from .ask import _prompt, excerpt
    from .focus import focus
    from .reading import evidence_block

    tok = engine.tok
    if policy.tables:
        tab = read_table(question, docs)
        if tab is not None:
            return tab[0]
    if policy.focus:
        focused = focus(docs, question, policy.focus_budget, tok.encode, max_units=policy.focus_units)
        blocks = focused.blocks
    else:
        focused, blocks, spent = None, [], 0
        for n, (path, anchor, text) in enumerate(docs, 1):
            block = evidence_block(n, path, anchor, text)
            cost = len(tok.encode(block))
            if cost > budget - spent:
                if budget - spent < 96:
                    break
                block = evidence_block(n, path, anchor, excerpt(text, question, budget - spent - 24, tok.encode))
                cost = len(tok.encode(block))
            blocks.append(block)
            spent += cost
    ids, _ = _prompt(engine, blocks, len(blocks), question)
    return read_answer(engine, ids, None, policy, focused, max_new_tokens=max_new_tokens)
