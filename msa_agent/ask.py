"""`msa ask` and `msa route`: routing, the router-driven memory interleave, sparse generation,
citations.

Each round routes with the question plus the newest evidence, injects the raw text of the best
documents not yet injected, and stops when routing finds nothing new above a margin, or the
evidence budget is spent. The answer is generated with the backbone's chat template; in the router
layers it also attends to the pooled K̄/V̄ of the documents routing selected.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .engine import Engine
from .fusion import coverage
from .memory import MemoryIndex, RecordingSelector, resolve_mode
from .focus import focus
from .reader import ReadPolicy, read_answer, read_table
from .reading import SYSTEM, content_words, evidence_block, is_abstention, locate_quote, prompt_pieces
from .store import Store

__all__ = ["SYSTEM", "ask", "route", "excerpt"]


@dataclass
class RouteHit:
    index: int  # into MemoryIndex.docs
    score: float


@dataclass
class Round:
    query: str
    routed: list[dict] = field(default_factory=list)
    injected: list[int] = field(default_factory=list)
    ms: float = 0.0


@dataclass
class AskResult:
    answer: str
    citations: list[dict]
    rounds: list[dict]
    timing: dict
    mode: str
    reading: dict = field(default_factory=dict)  # how the answer was read (`reader.Read.as_dict`)

    def as_dict(self) -> dict:
        return {"answer": self.answer, "citations": self.citations, "rounds": self.rounds,
                "timing": self.timing, "mode": self.mode, "reading": self.reading}


class Router:
    """Routes one query text over a collection's memory in a given mode."""

    def __init__(self, store: Store, engine: Engine, collection: str | None, mode: str, top_k: int | None,
                 memory: MemoryIndex | None = None) -> None:
        """`memory`: a resident index of the same collection to reuse (`msa serve`), else one is
        loaded from the store."""
        self.store, self.engine = store, engine
        store.check_model(engine.fingerprint, engine.name)
        self.mode = resolve_mode(mode, engine.cfg)
        if memory is not None and memory.collection != collection:
            raise ValueError(f"resident memory of collection {memory.collection!r} used for {collection!r}")
        self.memory = memory if memory is not None else MemoryIndex(store, collection, engine.cfg)
        self.top_k = top_k or engine.cfg.msa.top_k_docs
        self.collection = collection

    def lexical(self, text: str) -> tuple[list[int], dict[int, float]]:
        hits = self.store.lexical_search(self.collection, text, limit=max(64, 4 * self.top_k),
                                         phrases=date_phrases(text))
        order, scores = [], {}
        for doc_id, s in hits:
            i = self.memory.doc_index.get(doc_id)
            if i is not None:
                order.append(i)
                scores[i] = s
        return order, scores

    def selector(self, query_text: str, query_mask: torch.Tensor | None, attend: bool = True) -> tuple[RecordingSelector, dict[int, float]]:
        order, scores = self.lexical(query_text) if self.mode != "msa" else ([], {})
        top = self.memory.docs[order[0]] if order else None
        cov = coverage(query_text, f"{top.path}\n{top.title}\n{top.text}",
                       [w for w, _ in date_phrases(query_text)]) if top is not None else 1.0
        sel = MaskedSelector(self.memory, self.mode, self.top_k, lexical=order,
                             lexical_scores=[scores[i] for i in order], lexical_coverage=cov, attend_memory=attend)
        sel.query_mask = query_mask
        return sel, scores

    def ranking(self, sel: RecordingSelector, lex_scores: dict[int, float]) -> list[RouteHit]:
        if self.mode == "lexical":
            return [RouteHit(i, lex_scores[i]) for i in sel.lexical]
        return [RouteHit(i, s) for i, s in sel.combined()]


def date_phrases(text: str) -> list[tuple[str, float]]:
    """The dates `text` names, however written ("July 4th 2013", "4 Jul 2013"), as the word
    sequences the lexical index holds for them ("2013 07 04": 2013/07/04, 2013-07-04 14:02): a
    full date at weight 1, a month and day or a year and month at 1/2."""
    from .focus import question_dates

    months = "jan feb mar apr may jun jul aug sep oct nov dec".split()
    out = []
    for d in question_dates(text):
        parts = [p for p in d.label.split("-") if p]
        out.append((" ".join(parts), 1.0 if len(parts) == 3 else 0.5))
        if len(parts) == 3:  # 20-Aug-03, 04/Jul/2013: day, month's name, year
            y, m, day = parts
            mon = months[int(m) - 1]
            for form in dict.fromkeys([f"{int(day)} {mon} {y}", f"{day} {mon} {y}", f"{int(day)} {mon} {y[2:]}",
                                       f"{day} {mon} {y[2:]}"]):
                out.append((form, 1.0))
    return out


@dataclass
class MaskedSelector(RecordingSelector):
    """Routes with only the masked prompt tokens (question and newest evidence) as queries."""

    query_mask: torch.Tensor | None = None

    def select(self, layer: int, q_r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.query_mask is not None:
            q_r = q_r[:, self.query_mask]  # (H, S_q, D)
        return super().select(layer, q_r)


def _prompt(engine: Engine, evidence: list[str], new_from: int, question: str) -> tuple[list[int], torch.Tensor]:
    """User-turn token ids and the routing-query mask (newest evidence and the question)."""
    tok = engine.tok
    ids: list[int] = []
    mask: list[bool] = []
    for text, j in prompt_pieces(evidence, question):
        p = tok.encode(text)
        ids += p
        mask += [j == -2 or j >= new_from] * len(p)
    tail = tok.chat_prompt("")
    ids += tail
    mask += [False] * len(tail)
    return ids, torch.tensor(mask)


def _evidence_block(n: int, doc, text: str | None = None) -> str:  # noqa: ANN001
    return evidence_block(n, doc.path, doc.anchor, doc.text if text is None else text)


MIN_EXCERPT_TOKENS = 96


def excerpt(text: str, query: str, budget: int, encode: Callable[[str], list[int]]) -> str:
    """The lines of `text` around those sharing most content words with `query`, within
    `budget` tokens; elided runs are marked with "…"."""
    lines = text.splitlines()
    words = _content_words(query)
    score = [len(words & _content_words(line)) for line in lines]
    best = max(range(len(lines)), key=lambda i: (score[i], -i)) if lines else 0
    lo = hi = best
    cost = len(encode(lines[best])) if lines else 0
    if cost > budget:  # one enormous line: cut it
        return lines[best][: budget * 3] + " …"
    while True:
        grew = False
        for j in (lo - 1, hi + 1):  # grow towards whichever side matches better first
            if 0 <= j < len(lines) and (j < lo or j > hi):
                c = len(encode(lines[j])) + 1
                if cost + c <= budget:
                    cost += c
                    lo, hi = min(lo, j), max(hi, j)
                    grew = True
        if not grew:
            break
    out = lines[lo : hi + 1]
    return "\n".join((["…"] if lo > 0 else []) + out + (["…"] if hi < len(lines) - 1 else []))


def _hit_dict(router: Router, h: RouteHit) -> dict:
    d = router.memory.docs[h.index]
    return {"doc_id": d.id, "path": d.path, "kind": d.kind, "anchor": d.anchor, "score": round(float(h.score), 6)}


def route(store: Store, engine: Engine, question: str, *, collection: str | None = None,
          top_k: int | None = None, mode: str = "auto", memory: MemoryIndex | None = None) -> dict:
    """Routing only: the documents routing picks for a question, best first. `memory`: a resident
    index of `collection` to reuse."""
    t0 = time.perf_counter()
    _check_question(question)
    router = Router(store, engine, collection, mode, top_k, memory)
    if collection is not None and len(router.memory) == 0:
        from .errors import BadInput

        raise BadInput(f"{store.path}: no documents in collection {collection!r}")
    hits = _route_round(router, engine, question, [], 0)
    ms = (time.perf_counter() - t0) * 1000
    return {"mode": router.mode, "docs": [_hit_dict(router, h) for h in hits[: router.top_k]],
            "timing": {"route_ms": round(ms, 1)}, "memory": {"documents": len(router.memory), "chunks": router.memory.n_chunks}}


_SENTENCE = re.compile(r"(?<=[.!?;])\s+(?=[A-Z0-9\"'(])")


MIN_BRIDGE_WORDS = 2


def bridge_lines(question: str, new_docs: list[str]) -> list[str]:
    """What a later round routes with, besides the question: the sentences of the newest evidence
    that share the most content words with the question (the bridge: "Project X is run by the Y
    Squad." for "who is on call for the team behind project X?"). The whole evidence would drown
    the bridge in the words every document of its kind shares, and the sentences of weaker
    documents would bring in their own bridges. Empty when no sentence shares at least
    `MIN_BRIDGE_WORDS` words (one shared word, "alarm" in a code comment, is no bridge): the round
    then routes with the whole newest evidence."""
    qwords = content_words(question)
    lines = [u.strip() for text in new_docs for ln in text.splitlines() for u in _SENTENCE.split(ln) if u.strip()]
    scores = [len(qwords & content_words(ln)) for ln in lines]
    best = max(scores, default=0)
    return [] if best < MIN_BRIDGE_WORDS else list(dict.fromkeys(ln for ln, sc in zip(lines, scores) if sc == best))


def _route_round(router: Router, engine: Engine, question: str, evidence: list[str], new_from: int) -> list[RouteHit]:
    """One routing round: the router layers query with the question and the newest evidence
    (prompt-token mask), the lexical index with their text."""
    query_text = "\n".join([question, *evidence[new_from:]])
    if router.mode == "lexical":
        order, scores = router.lexical(query_text)
        return [RouteHit(i, scores[i]) for i in order]
    ids, mask = _prompt(engine, evidence, new_from, question)
    sel, lex = router.selector(query_text, mask, attend=True)
    engine.model.prefill(engine.tok.chat_prefix(SYSTEM), ids, sel)
    return router.ranking(sel, lex)


def ask(
    store: Store,
    engine: Engine,
    question: str,
    *,
    collection: str | None = None,
    top_k: int | None = None,
    rounds: int = 3,
    mode: str = "auto",
    max_new_tokens: int = 96,
    evidence_budget: int = 1200,
    first_round_docs: int = 3,
    per_round_docs: int = 2,
    margin: float = 0.5,
    attend_memory: bool = True,
    on_token: Callable[[str], None] | None = None,
    policy: ReadPolicy | None = None,
    memory: MemoryIndex | None = None,
) -> AskResult:
    """Answer a question from memory, with citations. See the module docstring for the loop.
    `memory`: a resident index of `collection` to reuse (`msa serve`), else one is loaded."""
    t0 = time.perf_counter()
    _check_question(question)
    policy = policy or ReadPolicy()
    hop_attempt: dict = {}  # a two-hop decomposition tried and given up: said in the result's reading
    if policy.hops and engine.protocol != "reference":
        from dataclasses import replace

        from .hops import ask_two_hops, decompose

        hops = decompose(question)
        if hops is not None:
            # one hop at a time: the thing the question names by a clause first, then the question
            # about it; either hop without an answer leaves the question to be asked whole
            one = replace(policy, hops=False)
            two = ask_two_hops(lambda q, **kw: ask(store, engine, q, **kw), question, hops, hop_attempt,
                               collection=collection,
                               top_k=top_k, rounds=rounds, mode=mode, max_new_tokens=max_new_tokens,
                               evidence_budget=evidence_budget, first_round_docs=first_round_docs,
                               per_round_docs=per_round_docs, margin=margin, attend_memory=attend_memory,
                               policy=one, memory=memory)
            if two is not None:
                if on_token is not None:
                    on_token(two.answer)
                return two
            policy = one
    router = Router(store, engine, collection, mode, top_k, memory)
    if len(router.memory) == 0:
        from .errors import BadInput

        raise BadInput(f"{store.path}: no documents in collection {collection or 'any'} (run `msa ingest` first)")
    if engine.protocol == "reference":
        from .interleave import ask_reference

        answer, hits, log, timing = ask_reference(router, engine, question, rounds=rounds,
                                                  max_new_tokens=max_new_tokens, on_token=on_token)
        timing["total_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        return AskResult(answer, _cite(router, hits, answer) if hits else [], log, timing, router.mode)
    tok = engine.tok
    injected: list[RouteHit] = []
    evidence: list[str] = []
    spent = 0
    round_log: list[dict] = []
    new_from = 0
    new_docs: list[str] = []  # the last round's documents' text
    for r in range(max(1, rounds)):
        tr = time.perf_counter()
        bridge = bridge_lines(question, new_docs) if r > 0 else []
        # What the bridge adds to the question (the entity to follow): a later round injects only
        # documents that mention some of it, not more documents like the ones it has.
        novel = content_words(" ".join(bridge)) - content_words(question)
        if bridge:  # route with the question and the bridge in place of the newest evidence
            hits = _route_round(router, engine, question, [*evidence[:new_from], "\n".join(bridge)], new_from)
        else:
            hits = _route_round(router, engine, question, evidence, new_from)
        if r == 0:
            first_hits = hits
        have = {h.index for h in injected}
        fresh = [h for h in hits if h.index not in have]
        limit = first_round_docs if r == 0 else per_round_docs
        # The margin's reference: the round's best hit; with a bridge, the best new one (the
        # bridge's own document, already injected, tops a round that follows it).
        ref = fresh if novel else hits
        top_score = ref[0].score if ref else 0.0
        chosen: list[tuple[RouteHit, str]] = []
        for h in fresh:
            if len(chosen) >= limit:
                break
            # Later rounds only add what scores near the round's best: no filler evidence.
            if r > 0 and top_score > 0 and h.score < margin * top_score:
                break
            doc = router.memory.docs[h.index]
            if novel and not novel & content_words(doc.text):
                continue
            block = _evidence_block(len(evidence) + len(chosen) + 1, doc)
            cost = len(tok.encode(block))
            left = evidence_budget - spent
            if cost > left:
                # Too long for what is left: keep the passage around the lines that match the
                # question best, not the document's head.
                if left < MIN_EXCERPT_TOKENS:
                    continue
                block = _evidence_block(len(evidence) + len(chosen) + 1, doc,
                                        excerpt(doc.text, question, left - 24, tok.encode))
                cost = len(tok.encode(block))
            chosen.append((h, block))
            spent += cost
        new_from = len(evidence)
        new_docs = [router.memory.docs[h.index].text for h, _ in chosen]
        for h, block in chosen:
            evidence.append(block)
            injected.append(h)
        round_log.append({
            "round": r + 1,
            "routed": [_hit_dict(router, h) for h in hits[: router.top_k]],
            "injected": [router.memory.docs[h.index].id for h, _ in chosen],
            "ms": round((time.perf_counter() - tr) * 1000, 1),
        })
        if not chosen:
            break
    route_ms = (time.perf_counter() - t0) * 1000

    # Reading: the reader sees the lines of the injected documents that match the question (with
    # their documents' heads), not the documents whole; router layers attend to the memory that
    # routing selects for the question.
    tg = time.perf_counter()
    if policy.focus and policy.focus_docs > len(injected):
        # The focused reader picks lines, not documents: it also looks at the next documents of
        # the first round's ranking (a CSV window or log slice beside the one routed first).
        have = {h.index for h in injected}
        extra = [h for h in first_hits if h.index not in have][: policy.focus_docs - len(injected)]
        injected = injected + extra
        if extra:
            round_log[-1]["read"] = [router.memory.docs[h.index].id for h in extra]
    docs = [router.memory.docs[h.index] for h in injected]
    table = None
    if policy.tables and docs:
        # A question over CSV rows reads the whole of the routed CSV files (their windows in line
        # order): a range or a maximum needs rows routing did not pick.
        rows = table_documents(router.memory, injected)
        table = read_table(question, [(d.path, d.anchor, d.text) for _, d in rows], on_token=on_token)
        if table is not None:
            injected = [RouteHit(rows[j][0], 1.0) for j in table[1]] or injected
            shown = {i for r in round_log for i in r["injected"] + r.get("read", [])}
            more = [router.memory.docs[h.index].id for h in injected if router.memory.docs[h.index].id not in shown]
            if more:  # the rows the answer came from are read, and cited, like any other document
                round_log[-1]["read"] = round_log[-1].get("read", []) + more
    if table is not None:
        read = table[0]
        ids: list[int] = []
    elif policy.focus and docs:
        focused = focus([(d.path, d.anchor, d.text) for d in docs], question, policy.focus_budget, tok.encode,
                        max_units=policy.focus_units)
        blocks = focused.blocks
    else:
        focused, blocks = None, evidence
    if table is None:
        ids, mask = _prompt(engine, blocks, len(blocks), question)
        sel, _ = router.selector(question, mask, attend=attend_memory)
        read = read_answer(engine, ids, sel, policy, focused, max_new_tokens=max_new_tokens, on_token=on_token)
    gen_s = time.perf_counter() - tg
    answer = read.answer
    # An abstention cites nothing: no document supports it.
    citations = [] if is_abstention(answer) else _cite(router, injected, answer, question)
    timing = {
        "route_ms": round(route_ms, 1), "generate_ms": round(gen_s * 1000, 1),
        "first_token_ms": round(read.first_token_ms, 1), "tokens": read.tokens,
        "tokens_per_s": round(read.tokens / gen_s, 1) if gen_s > 0 else 0.0,
        "prompt_tokens": len(ids), "total_ms": round((time.perf_counter() - t0) * 1000, 1),
    }
    result = AskResult(answer, citations, round_log, timing, router.mode)
    result.reading = read.as_dict()
    if hop_attempt:
        result.reading["bridge"] = hop_attempt
    return result


TABLE_FILES = 2  # routed CSV files a table question reads whole
TABLE_DOCS = 20_000  # documents (windows) of one file, at most


def table_documents(memory, hits: list[RouteHit]) -> list[tuple[int, object]]:  # noqa: ANN001 - MemoryIndex
    """(index, document) of every window of the CSV files among `hits` (the first `TABLE_FILES`
    such files, in routing order), each file's windows in ingest (line) order."""
    from msa_agent.ingest.logs import CSV_EXTS

    paths: list[str] = []
    for h in hits:
        p = memory.docs[h.index].path
        if p not in paths and Path(p).suffix.lower() in CSV_EXTS:
            paths.append(p)
    paths = paths[:TABLE_FILES]
    if not paths:
        return []
    return [(i, memory.docs[i]) for p in paths for i in memory.by_path.get(p, [])[:TABLE_DOCS]]


def _check_question(question: str) -> None:
    if not question.strip():
        from .errors import BadInput

        raise BadInput("the question is empty")


def _content_words(text: str) -> set[str]:
    return content_words(text)


def _cite(router: Router, injected: list[RouteHit], answer: str, question: str = "") -> list[dict]:
    """Cite the injected documents that support the answer, best supported first: those holding
    the answer verbatim, then by shared content words; when none overlaps, the best-routed
    document. Each citation carries the supporting lines the system located (`quote`, a verbatim
    substring of the document text, and `quote_lines` within it), or `quote: None`."""
    words = content_words(answer)
    scored = []
    for order, h in enumerate(injected):
        d = router.memory.docs[h.index]
        support = len(words & content_words(d.text)) / len(words) if words else 0.0
        q = locate_quote(d.text, answer, question)
        scored.append((bool(q and q.exact), support, -order, h, q))
    scored.sort(key=lambda t: (-t[0], -t[1], -t[2]))
    best = scored[0][1] if scored else 0.0
    keep = [t for t in scored if t[0] or (t[1] > 0 and t[1] >= 0.5 * best)] or scored[:1]
    out = []
    for _, support, _, h, q in keep:
        c = _hit_dict(router, h)
        c["support"] = round(support, 3)
        c.update(q.as_dict() if q else {"quote": None})
        out.append(c)
    return out
