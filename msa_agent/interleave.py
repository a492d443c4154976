"""Memory interleave in the reference protocol, for models trained to emit document ids.

The transcript after the memory slots, round by round (../shared/reference/msa-reference-code.md §2):

    \\nPlease answer the question based on the above historical document information\\n\\n{question}
    \\nPlease return all documents related to the question\\n<|im_end|>\\n<|im_start|>
    [3][7]<|object_ref_end|>                       <- generated: ids, then the round delimiter
    [3]. {text}\\n[7]. {text}\\n<|object_ref_end|>     <- injected evidence
    [12]<|object_ref_end|>  ...                     <- next round, re-routed with question + newest evidence
    <End-of-Retrieve>                               <- the model has enough
    <|im_start|>The user's question is: {question}\\n<|object_ref_end|>   <- injected answer prompt
    The answer to the question is: {answer}<|im_end|>

Each round re-prefills the transcript with routing: the routing queries are the question region
and the newest evidence block. Ids that routing did not select this round are dropped, never
injected or cited. Rounds are bounded; when the bound is reached the answer prompt is injected.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from msa_agent.model.model import KVCache

from .engine import Engine

TEMPLATE_HEAD = "<|im_start|>user\n"
FIRST_PROMPT = (
    "\nPlease answer the question based on the above historical document information\n\n{question}\n"
    "Please return all documents related to the question\n"
)
TEMPLATE_TAIL = "<|im_end|>\n<|im_start|>"
ANSWER_PROMPT = "<|im_start|>The user's question is: {question}\n<|object_ref_end|>"
ANSWER_PREFIX = "The answer to the question is:"
_ID = re.compile(r"\[(\d+)\]")

# (logits, cache, position, stop-after ids, max tokens) -> generated token ids (a stop-after id
# is included as the last token; an end-of-turn id ends generation and is not).
Generate = Callable[[torch.Tensor, KVCache, int, set[int], int], list[int]]


def model_generate(engine: Engine) -> Generate:
    def run(logits: torch.Tensor, cache: KVCache, pos: int, stop_after: set[int], max_tokens: int) -> list[int]:
        return list(engine.model.decode(logits, cache, pos, max_new_tokens=max_tokens, stop_ids=engine.tok.stop_ids,
                                        should_stop=lambda out: out[-1] in stop_after))
    return run


@dataclass
class _Piece:
    ids: list[int]
    routes: bool  # part of the routing query


def _flatten(pieces: list[_Piece]) -> tuple[list[int], torch.Tensor]:
    ids: list[int] = []
    mask: list[bool] = []
    for p in pieces:
        ids += p.ids
        mask += [p.routes] * len(p.ids)
    return ids, torch.tensor(mask)


def parse_ids(text: str) -> list[int]:
    """Document ids in generated text, in order, without repeats."""
    return list(dict.fromkeys(int(m) for m in _ID.findall(text)))


def answer_text(text: str) -> str:
    """The answer after the reference's answer prefix (the whole text when it is missing)."""
    i = text.find(ANSWER_PREFIX)
    return (text[i + len(ANSWER_PREFIX):] if i >= 0 else text).strip()


def ask_reference(
    router,  # noqa: ANN001 - msa_agent.ask.Router (imported lazily to avoid a cycle)
    engine: Engine,
    question: str,
    *,
    rounds: int = 3,
    max_new_tokens: int = 96,
    max_id_tokens: int = 64,
    generate: Generate | None = None,
    on_token: Callable[[str], None] | None = None,
) -> tuple[str, list, list[dict], dict]:
    """Run the reference protocol. Returns (answer, injected route hits, round log, timing)."""
    from .ask import RouteHit, _hit_dict

    tok = engine.tok
    gen = generate or model_generate(engine)
    t0 = time.perf_counter()
    prefix = tok.encode(TEMPLATE_HEAD)
    pieces = [_Piece(tok.encode(FIRST_PROMPT.format(question=question)), True), _Piece(tok.encode(TEMPLATE_TAIL), False)]
    by_id = {d.id: i for i, d in enumerate(router.memory.docs)}
    injected: list[RouteHit] = []
    log: list[dict] = []
    newest_text = ""
    finished = False
    logits = cache = None
    pos = 0
    for r in range(max(1, rounds)):
        tr = time.perf_counter()
        ids, mask = _flatten(pieces)
        sel, lex = router.selector("\n".join([question, newest_text]), mask, attend=True)
        logits, cache, pos = engine.model.prefill(prefix, ids, sel)
        ranking = router.ranking(sel, lex)
        routed = {router.memory.docs[h.index].id: h for h in ranking}
        for ch in sel.choices:
            for i, s in zip(ch.docs, ch.scores):
                routed.setdefault(router.memory.docs[i].id, RouteHit(i, s))
        before = cache.length(0)
        out = gen(logits, cache, pos, {tok.object_ref_end, tok.end_of_retrieve}, max_id_tokens)
        fed = cache.length(0) - before  # decoding feeds every token but the one it stopped on
        pos += fed
        unfed = out[fed:]
        said = tok.decode(out) if out else ""
        asked = parse_ids(tok._tok.decode(out, skip_special_tokens=False) if out else "")
        have = {router.memory.docs[h.index].id for h in injected}
        valid = sorted(i for i in asked if i in routed and i in by_id and i not in have)
        entry = {"round": r + 1, "routed": [_hit_dict(router, h) for h in ranking[: router.top_k]],
                 "generated": said, "requested": asked, "injected": valid}
        stop = not out or out[-1] != tok.object_ref_end or not valid
        if stop:
            entry["injected"] = []  # ids said with <End-of-Retrieve> or without the delimiter are not injected
            finished = bool(out) and out[-1] == tok.end_of_retrieve
            entry["ms"] = round((time.perf_counter() - tr) * 1000, 1)
            log.append(entry)
            pieces.append(_Piece(out, False))
            break
        evidence = "".join(f"[{i}]. {router.memory.docs[by_id[i]].text}\n" for i in valid) + "<|object_ref_end|>"
        for p in pieces:  # only the newest evidence (and the question) routes the next round
            if p is not pieces[0]:
                p.routes = False
        pieces.append(_Piece(out, False))
        pieces.append(_Piece(tok.encode(evidence), True))
        newest_text = evidence
        injected += [routed[i] if routed[i].index == by_id[i] else RouteHit(by_id[i], routed[i].score) for i in valid]
        entry["ms"] = round((time.perf_counter() - tr) * 1000, 1)
        log.append(entry)
    route_ms = (time.perf_counter() - t0) * 1000

    # Answer: continue the last round's cache with the answer prompt (after <End-of-Retrieve>,
    # which is added when the model never said it within the bound).
    tg = time.perf_counter()
    if log and log[-1]["injected"]:
        # The bound cut the loop after an injection that was never prefilled: prefill it now.
        ids, mask = _flatten(pieces)
        sel, _ = router.selector("\n".join([question, newest_text]), mask, attend=True)
        logits, cache, pos = engine.model.prefill(prefix, ids, sel)
        unfed = []
    tail = unfed + ([] if finished else [tok.end_of_retrieve]) + tok.encode(ANSWER_PROMPT.format(question=question))
    logits = engine.model.feed(tail, cache, pos)
    pos += len(tail)
    out = gen(logits, cache, pos, set(), max_new_tokens)
    text = tok.decode(out)
    if on_token is not None and text:
        on_token(answer_text(text))
    gen_ms = (time.perf_counter() - tg) * 1000
    timing = {"route_ms": round(route_ms, 1), "generate_ms": round(gen_ms, 1), "tokens": len(out),
              "tokens_per_s": round(len(out) / (gen_ms / 1000), 1) if gen_ms > 0 else 0.0,
              "prompt_tokens": len(_flatten(pieces)[0]) + len(tail)}
    return answer_text(text), injected, log, timing
