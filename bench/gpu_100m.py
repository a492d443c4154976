"""A 100M-token memory from one command: build, route, find the needles, at 1M, 10M and 100M.

    python bench/gpu_100m.py --work /tmp/m100 --out $OUT              (device machine, MSA_MODEL set)
    python bench/gpu_100m.py --keys-only --out $OUT                    (random keys, no model)
    python bench/gpu_100m.py --device cpu --model DIR --sizes 20000,60000 --work W --out O   (CPU, tiny)

Documents: prose haystack (`msa_agent.evals.haystack` paragraphs, else RULER's noise) in
documents of about --doc-tokens tokens, each unit tokenised once and documents assembled from
the units' ids inside the memory-document template; --questions of them hold one RULER needle
each ("One of the special magic numbers for KEY is: VALUE."), spread over the first 1M tokens'
documents and beyond, so every size has needles. The sizes are prefixes of one document stream,
so each size only encodes what the last one did not.

Build: `encode_fn(docs) -> Encoded` (default `MSAModel.encode` on length-sorted batches of
--batch-tokens padded tokens; swap it for the packed encoder in one place), then segments of the
store's format: through `Store.commit` (rows, raw text, lexical index) up to --store-max tokens,
and `write_segment` alone beyond (the JSON says which path each part took, and how long commits
took). Resumable: the work dir keeps finished parts; a call stops encoding after --budget-s
seconds and the next call with the same arguments goes on.

Routing: each size's routing keys are loaded once onto the device (float16; `KeyShard`, as
memory-parallel routing serves them) and scored by the Triton kernel on CUDA (the reference on
CPU). A question round is `MSAModel.prefill` of the question with routing at every router layer
and the selected documents' K̄/V̄ fetched from the segments (what `msa route` does);
`route_ms` is the scoring alone (CUDA events summed over the router layers), `round_ms` the whole
round, both medians over the questions after a warm-up. Accuracy: the needle's document in the
combined top-k (reciprocal-rank fusion of the layers' choices), and in any layer's top-k. Without
--router the backbone's own attention keys route, which is at chance (DESIGN.md): the JSON says so.

Lexical and hybrid, for the same questions, at every size whose documents are all in the store
(built through `Store.commit`, so they have rows, raw text and the FTS5 index): `lexical` is what
`msa route --mode lexical` ranks (`ask.Router.lexical`: the store's `lexical_search`, BM25, its
document ids mapped to the bench's document indices through the paths the bench commits,
`haystack/doc-<index>.txt`); `hybrid` is the product's hybrid round (`MaskedSelector` in mode
`hybrid`: per router layer, reciprocal-rank fusion of the lexical ranking and that layer's routing
scores, then the layers' choices fused as for msa). `lexical_ms` is the search alone, `hybrid_ms`
the search and the prefill round, medians over the questions. Sizes past --store-max have no rows
nor lexical index: their lexical and hybrid columns are null, with the reason in the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _pkg  # noqa: E402,F401 - makes msa_agent.* importable from a plain checkout

from msa_agent.evals.haystack import NOISE, distinct, needle_sentence, number_value  # noqa: E402
from msa_agent.memory import doc_runs, gather_layer  # noqa: E402
from msa_agent.parallel import KeyShard  # noqa: E402
from msa_agent.store.segments import Segment, write_segment  # noqa: E402

SIZES = "1000000,10000000,100000000"
PART_TOKENS = 1 << 20  # tokens per part (one segment, one commit)


def parse_sizes(s: str) -> list[int]:
    return sorted(int(float(x)) for x in s.split(","))


# ---- documents -------------------------------------------------------------------------------------


class DocStream:
    """A deterministic stream of token-id documents with needles in chosen ones."""

    def __init__(self, tok, doc_tokens: int, n_questions: int, sizes: list[int], seed: int) -> None:  # noqa: ANN001
        from msa_agent.model.tokenizer import IM_END, IM_START

        self.tok, self.doc_tokens, self.seed = tok, doc_tokens, seed
        try:
            from msa_agent.evals.haystack import prose_paragraphs, split_sentences

            pieces = [s for p in prose_paragraphs() for s in split_sentences(p, doc_tokens * 3)][:20000]
            self.prose = "essay"
        except Exception:  # noqa: BLE001 - no prose packages on this machine: RULER's noise
            pieces, self.prose = [NOISE], "noise"
        self.units = [np.asarray(ids + tok.encode("\n"), dtype=np.int32) for ids in tok.encode_batch(pieces)]
        self.head = tok.encode(f"{IM_START}document\n")
        self.tail = tok.encode(f"{IM_END}\n")
        rng = random.Random(f"needles/{seed}")
        keys = distinct("words", rng, n_questions)
        self.needles = [(k, number_value(rng)) for k in keys]
        # Needle documents: spread evenly over the smallest size's documents, then the rest of the
        # question set over each larger size's new documents (so larger memories have more needles).
        n_docs = {s: max(1, s // doc_tokens) for s in sizes}
        per = max(1, n_questions // len(sizes))
        where: list[int] = []
        lo = 0
        for j, s in enumerate(sizes):
            m = n_questions - len(where) if j == len(sizes) - 1 else per
            hi = n_docs[s]
            where += [lo + (i * (hi - lo)) // m + (hi - lo) // (2 * m) for i in range(m)]
            lo = hi
        self.needle_doc = {d: q for q, d in enumerate(where)}

    def doc(self, i: int) -> list[int]:
        """Token ids of document i (template included)."""
        rng = np.random.default_rng([self.seed, i])
        budget = self.doc_tokens - len(self.head) - len(self.tail)
        parts: list[np.ndarray] = []
        n = 0
        q = self.needle_doc.get(i)
        needle_at = int(rng.integers(0, 8)) if q is not None else -1
        while True:
            if len(parts) == needle_at:
                k, v = self.needles[q]
                u = np.asarray(self.tok.encode(needle_sentence(k, v, "numbers") + "\n"), dtype=np.int32)
            else:
                u = self.units[int(rng.integers(0, len(self.units)))]
            if parts and n + len(u) > budget and len(parts) > needle_at:
                break
            parts.append(u[: max(1, budget)])
            n += len(parts[-1])
        return self.head + np.concatenate(parts).tolist() + self.tail


# ---- the model -------------------------------------------------------------------------------------


def load_engine(model: str | None, device: str, router: str | None):  # noqa: ANN201
    """The engine, with a trained router's safetensors when given (Engine.load takes it when it
    knows how; else the model is loaded with the router projectors and a decoupled router)."""
    import inspect

    from msa_agent.engine import Engine

    dtype = "bfloat16" if device.startswith("cuda") else "float32"
    if router and "router" in inspect.signature(Engine.load).parameters:
        return Engine.load(model, device=device, dtype=dtype, router=router)
    eng = Engine.load(model, device=device, dtype=dtype)
    if router:
        from msa_agent.model.config import MSAConfig
        from msa_agent.model.weights import load_model

        msa = MSAConfig(**{**eng.cfg.msa.__dict__, "decouple_router": True})
        eng.model = load_model(eng.model_dir, dtype=eng.model.embed_tokens.weight.dtype, device=device, msa=msa,
                               router_file=Path(router))
        eng.cfg = eng.model.cfg
    return eng


def make_encode_fn(engine, batch_tokens: int):  # noqa: ANN001, ANN201
    """encode_fn(docs: list[list[int]]) -> list of (indices, Encoded): the one place to swap in
    another encoder (e.g. the packed one) for the build."""

    def encode_fn(docs: list[list[int]]):  # noqa: ANN202
        return list(engine.encode_batches(docs, batch_tokens))

    return encode_fn


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


# ---- build -----------------------------------------------------------------------------------------


def build(args, engine, stream: DocStream, work: Path, target_tokens: int, use_store: bool, deadline: float) -> dict:  # noqa: ANN001
    """Encode documents until the memory holds target_tokens, in parts; returns the progress record."""
    from msa_agent.engine import stack_layers

    prog_f = work / "progress.json"
    prog = json.loads(prog_f.read_text()) if prog_f.is_file() else {"docs": 0, "tokens": 0, "parts": [], "index": []}
    encode_fn = make_encode_fn(engine, args.batch_tokens)
    layers = engine.cfg.router_layers
    store = None
    while prog["tokens"] < target_tokens:
        if time.perf_counter() > deadline:
            prog["stopped"] = "budget"
            break
        t0 = time.perf_counter()
        lo = prog["docs"]
        docs, n = [], 0
        while prog["tokens"] + n < target_tokens and n < PART_TOKENS:
            docs.append(stream.doc(lo + len(docs)))
            n += len(docs[-1])
        t_gen = time.perf_counter() - t0
        t1 = time.perf_counter()
        ks, vs, rks, nch = [None] * len(docs), [None] * len(docs), [None] * len(docs), [0] * len(docs)
        for idx, enc in encode_fn(docs):
            k, v = stack_layers(enc.k, layers), stack_layers(enc.v, layers)
            rk = stack_layers(enc.rk, layers) if enc.rk else None
            off = 0
            for j, i in enumerate(idx):
                c = enc.n_chunks[j]
                nch[i], ks[i], vs[i] = c, k[:, off : off + c], v[:, off : off + c]
                rks[i] = rk[:, off : off + c] if rk is not None else None
                off += c
        sync(args.device)
        t_enc = time.perf_counter() - t1
        t2 = time.perf_counter()
        seg_id = f"part{len(prog['parts']):05d}"
        chunks = np.repeat(np.arange(len(docs), dtype=np.int32), nch)
        files = write_segment(work / "segments", seg_id, np.concatenate(ks, 1), np.concatenate(vs, 1),
                              np.concatenate(rks, 1) if rks[0] is not None else None, chunks)
        t_write = time.perf_counter() - t2
        t3 = time.perf_counter()
        path = "segments"
        if use_store:
            path = "store"
            store = store or open_store(work, engine)
            texts = [engine.tok.decode(d) for d in docs]  # raw text rows: only on the store path
            commit_part(store, work, files, seg_id, docs, texts, nch, lo)
        t_commit = time.perf_counter() - t3
        starts = np.concatenate([[0], np.cumsum(nch)[:-1]])
        prog["index"] += [[seg_id, int(s), int(c), len(d)] for s, c, d in zip(starts, nch, docs)]
        prog["docs"] += len(docs)
        prog["tokens"] += n
        prog["parts"].append({"segment": seg_id, "docs": len(docs), "tokens": n, "path": path, "gen_s": round(t_gen, 3),
                              "encode_s": round(t_enc, 3), "write_s": round(t_write, 3), "commit_s": round(t_commit, 3),
                              "bytes": files.n_bytes})
        prog_f.write_text(json.dumps(prog))
        print(f"  part {seg_id}: {len(docs)} docs, {n:,} tokens, encode {t_enc:.1f} s ({n / t_enc:,.0f} tok/s), "
              f"write {t_write:.1f} s, {path} commit {t_commit:.2f} s", flush=True)
    if store is not None:
        store.close()
    return prog


def open_store(work: Path, engine):  # noqa: ANN001, ANN201
    from msa_agent.store import Store

    store = Store.open(work / "store", create=True)
    store.bind_model(engine.manifest_info())
    return store


def commit_part(store, work: Path, files, seg_id: str, docs, texts, nch, lo: int) -> None:  # noqa: ANN001
    """The part's rows through Store.commit (its segment files hard-linked into the store's)."""
    import hashlib
    import shutil

    from msa_agent.store import NewDocument, SourceUpdate

    dst = store.segments_dir / seg_id
    if not dst.exists():
        shutil.copytree(work / "segments" / seg_id, dst, copy_function=os.link)
    upd = SourceUpdate(path=f"/haystack/{seg_id}.txt", root="/haystack", rel_path=f"{seg_id}.txt", kind="text",
                       content_hash=seg_id, size=0, mtime_ns=0)
    start = 0
    for j, (ids, text, c) in enumerate(zip(docs, texts, nch)):
        upd.documents.append(NewDocument(path=f"haystack/doc-{lo + j:07d}.txt", kind="text", anchor="lines 1-1",
                                         anchor_data={}, title="", text=text,
                                         content_hash=hashlib.sha256(text.encode()).hexdigest(), n_tokens=len(ids),
                                         chunk_start=start, n_chunks=c))
        start += c
    store.commit("default", files, [upd])


# ---- routing ---------------------------------------------------------------------------------------


class BenchMemory:
    """The memory of the first n documents as RecordingSelector sees it: routing keys resident on
    the device (a one-rank KeyShard), K̄/V̄ fetched from the segments for the selected documents."""

    def __init__(self, work: Path, index: list, n: int, cfg, device: str) -> None:  # noqa: ANN001
        self.cfg, self.device, self.n = cfg, torch.device(device), n
        self.segs: dict[str, Segment] = {}
        self.rows = index[:n]
        counts = [r[2] for r in self.rows]

        class _D:  # what doc_runs reads
            __slots__ = ("segment_id", "chunk_start", "n_chunks")

        self.docs = []
        for seg, s, c, _ in self.rows:
            d = _D()
            d.segment_id, d.chunk_start, d.n_chunks = seg, s, c
            self.docs.append(d)
        self.layer_pos = {layer: i for i, layer in enumerate(cfg.router_layers)}
        starts = np.concatenate([[0], np.cumsum(counts)])
        store = self  # gather_layer calls store.segment(id)
        self.segments_dir = work / "segments"

        def load(pos: int, lo: int, hi: int) -> torch.Tensor:
            from msa_agent.memory import to_device_keys
            from msa_agent.parallel import chunk_runs

            runs = chunk_runs(self, starts, lo, hi)
            arr = gather_layer(store, runs, pos, "routing", cfg.n_kv_head, cfg.head_dim)
            return to_device_keys(arr, self.device, cfg.msa.cosine)

        t0 = time.perf_counter()
        self.shard = KeyShard.build(counts, 0, 1, len(cfg.router_layers), load, self.device)
        sync(device)
        self.load_s = time.perf_counter() - t0
        self.score_ms: list[float] = []

    def segment(self, seg_id: str) -> Segment:
        if seg_id not in self.segs:
            self.segs[seg_id] = Segment(self.segments_dir / seg_id)
        return self.segs[seg_id]

    def __len__(self) -> int:
        return self.n

    def doc_scores(self, layer: int, q_r: torch.Tensor) -> torch.Tensor:
        """Routing score of every document (n,) at one router layer (what hybrid routing fuses)."""
        cuda = self.device.type == "cuda"
        if cuda:
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
        t0 = time.perf_counter()
        s = self.shard.scores(self.layer_pos[layer], q_r, self.cfg.msa)
        if cuda:
            b.record()
            b.synchronize()
            self.score_ms.append(a.elapsed_time(b))
        else:
            self.score_ms.append((time.perf_counter() - t0) * 1000)
        return s

    def top_docs(self, layer: int, q_r: torch.Tensor, k: int) -> tuple[list[int], list[float]]:
        from msa_agent.memory import topk_docs

        idx, val = topk_docs(self.doc_scores(layer, q_r), k)
        return idx.tolist(), val.tolist()

    def fetch(self, layer: int, doc_indices: list[int], device=None):  # noqa: ANN001, ANN201
        Hk, D = self.cfg.n_kv_head, self.cfg.head_dim
        runs = doc_runs([self.docs[i] for i in doc_indices])
        pos = self.layer_pos[layer]
        k = torch.from_numpy(gather_layer(self, runs, pos, "k", Hk, D)).to(self.device, non_blocking=True).float()
        v = torch.from_numpy(gather_layer(self, runs, pos, "v", Hk, D)).to(self.device, non_blocking=True).float()
        return k.transpose(0, 1), v.transpose(0, 1)


DOC_PATH = re.compile(r"haystack/doc-(\d+)\.txt")  # the path commit_part gives bench document i


def store_doc_index(store, n: int) -> dict[int, int]:  # noqa: ANN001
    """Store document id -> bench document index, for the live documents of the first n. Read
    from the paths commit_part writes (`haystack/doc-<index>.txt`), not assumed from the ids."""
    from sqlalchemy import select

    from msa_agent.store.schema import DocumentRow

    with store.session() as s:
        rows = s.execute(select(DocumentRow.id, DocumentRow.path).where(DocumentRow.tombstone.is_(False))).all()
    out = {}
    for doc_id, path in rows:
        m = DOC_PATH.fullmatch(path)
        if m and int(m.group(1)) < n:
            out[int(doc_id)] = int(m.group(1))
    return out


class StoreLexical:
    """The lexical ranking `msa route --mode lexical` gives (`ask.Router.lexical`: the store's
    lexical_search, ids mapped to memory indices, unknown ids dropped), over the bench's document
    indices: `self(text) -> (order, scores)`."""

    def __init__(self, store, doc_index: dict[int, int], top_k: int) -> None:  # noqa: ANN001
        from types import SimpleNamespace

        # The attributes Router.lexical reads; collection None: every collection, as `msa route`
        # without --collection.
        self.store, self.collection, self.top_k = store, None, top_k
        self.memory = SimpleNamespace(doc_index=doc_index)

    def __call__(self, text: str) -> tuple[list[int], dict[int, float]]:
        from msa_agent.ask import Router

        return Router.lexical(self, text)


def _median(xs: list[float], nd: int) -> float | None:
    return round(statistics.median(xs), nd) if xs else None


def _recall(xs: list[bool]) -> float | None:
    return round(sum(xs) / len(xs), 3) if xs else None


def evaluate(args, engine, stream: DocStream, mem: BenchMemory,  # noqa: ANN001
             lexical: StoreLexical | None = None, no_lexical: str | None = None) -> dict:
    """Question rounds over a memory: latency and needle accuracy.

    The prompt and the routing queries are laid out as `msa route` lays them out (ask._prompt):
    only the question's tokens route (MaskedSelector), not the chat template's closing tokens,
    which training never saw as queries and which, under max over question tokens, score every
    document's template alike.

    With `lexical` (the store's lexical ranking), each question is also ranked lexically (as
    `msa route --mode lexical`) and routed in hybrid mode (as `msa route --mode hybrid`: the
    lexical search, then the prefill round with per-layer fusion); without it, those columns are
    null and `no_lexical` says why."""
    from msa_agent.ask import SYSTEM, MaskedSelector, _prompt

    tok = engine.tok
    prefix = tok.chat_prefix(SYSTEM)
    qs = [(q, d) for d, q in stream.needle_doc.items() if d < mem.n]
    rows = []
    for rep, (q, d) in enumerate([qs[0]] * 2 + qs if qs else []):
        key, value = stream.needles[q]
        question = f"What is the special magic number for {key}?"
        prompt, qmask = _prompt(engine, [], 0, question)
        sel = MaskedSelector(mem, "msa", args.top_k)
        sel.query_mask = qmask
        mem.score_ms.clear()
        sync(args.device)
        t0 = time.perf_counter()
        engine.model.prefill(prefix, prompt, sel)
        sync(args.device)
        round_ms = (time.perf_counter() - t0) * 1000
        route_ms = sum(mem.score_ms)  # msa's scoring alone (the hybrid round below scores too)
        lex_row: dict = {}
        if lexical is not None:
            # `msa route --mode lexical`: the search alone, its top-k.
            t0 = time.perf_counter()
            order, _ = lexical(question)
            lex_ms = (time.perf_counter() - t0) * 1000
            lex_top = order[: args.top_k]
            # `msa route --mode hybrid`: the search, then the round with per-layer fusion.
            sync(args.device)
            t0 = time.perf_counter()
            order, _ = lexical(question)
            hsel = MaskedSelector(mem, "hybrid", args.top_k, lexical=order)
            hsel.query_mask = qmask
            engine.model.prefill(prefix, prompt, hsel)
            sync(args.device)
            hyb_ms = (time.perf_counter() - t0) * 1000
            hyb_top = [i for i, _ in hsel.combined()[: args.top_k]]
            lex_row = {"lexical_ms": lex_ms, "hybrid_ms": hyb_ms, "hit_lexical": d in lex_top,
                       "rank_lexical": lex_top.index(d) if d in lex_top else None,
                       "hit_hybrid": d in hyb_top, "hit_hybrid_any_layer": any(d in c.docs for c in hsel.choices),
                       "rank_hybrid": hyb_top.index(d) if d in hyb_top else None}
        if rep < 2:
            continue  # warm-up
        combined = [i for i, _ in sel.combined()[: args.top_k]]
        rows.append({"question": q, "needle_doc": d, "route_ms": route_ms, "round_ms": round_ms,
                     "hit_combined": d in combined, "hit_any_layer": any(d in c.docs for c in sel.choices),
                     "rank_combined": combined.index(d) if d in combined else None, **lex_row})
    n_docs = mem.n
    lex_rows = rows if lexical is not None else []
    return {"questions": len(rows),
            "route_ms_median": _median([r["route_ms"] for r in rows], 3),
            "round_ms_median": _median([r["round_ms"] for r in rows], 1),
            "recall_combined": _recall([r["hit_combined"] for r in rows]),
            "recall_any_layer": _recall([r["hit_any_layer"] for r in rows]),
            "chance_combined": round(min(1.0, args.top_k / n_docs), 5),
            # Lexical (`msa route --mode lexical`) and hybrid (`--mode hybrid`), same questions:
            # null where the size's documents are not all in the store (lexical_note says why).
            "recall_lexical": _recall([r["hit_lexical"] for r in lex_rows]),
            "recall_hybrid": _recall([r["hit_hybrid"] for r in lex_rows]),
            "recall_hybrid_any_layer": _recall([r["hit_hybrid_any_layer"] for r in lex_rows]),
            "lexical_ms_median": _median([r["lexical_ms"] for r in lex_rows], 3),
            "hybrid_ms_median": _median([r["hybrid_ms"] for r in lex_rows], 1),
            "lexical_note": (None if lexical is not None else no_lexical or "not measured"),
            "rows": rows}


# ---- random keys (no model) ------------------------------------------------------------------------


def keys_only(args) -> dict:  # noqa: ANN001
    """Routing latency at each size over random float16 keys of the default geometry resident on
    the device (8 chunks per document), 15 router layers, 18 query tokens."""
    from msa_agent.memory import topk_docs
    from msa_agent.model.config import MSAConfig

    dev = torch.device(args.device)
    H, Hk, D, L, S, P = 9, 3, 64, 15, 18, 64
    m = MSAConfig()
    out = []
    for size in parse_sizes(args.sizes):
        N = size // P
        counts = np.full((N + 7) // 8, 8)
        counts[-1] = N - 8 * (len(counts) - 1)
        g = torch.Generator(device=dev).manual_seed(0)
        dt = torch.float16 if dev.type == "cuda" else torch.float32
        shard = KeyShard.build(counts, 0, 1, L, lambda pos, lo, hi: torch.randn(hi - lo, Hk, D, device=dev, generator=g).to(dt), dev)
        times = []
        for r in range(args.questions + 3):
            q = torch.randn(H, S, D, device=dev, generator=g)
            sync(args.device)
            if dev.type == "cuda":
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
            t0 = time.perf_counter()
            for pos in range(L):
                topk_docs(shard.scores(pos, q, m), args.top_k)
            if dev.type == "cuda":
                b.record()
                b.synchronize()
                ms = a.elapsed_time(b)
            else:
                ms = (time.perf_counter() - t0) * 1000
            if r >= 3:
                times.append(ms)
        out.append({"tokens": size, "chunks": N, "documents": len(counts), "key_bytes": shard.key_bytes(),
                    "route_ms_median": round(statistics.median(times), 3), "route_ms_min": round(min(times), 3)})
        print(f"  {size:>12,} tokens: route {out[-1]['route_ms_median']:.2f} ms per round (15 layers, top-k incl.), "
              f"keys {shard.key_bytes() / 1e9:.2f} GB", flush=True)
        del shard
    return {"mode": "keys-only", "rows": out}


# ---- main ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default=SIZES)
    ap.add_argument("--work", type=Path, default=Path("/tmp/msa-100m"))
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "bench/out/gpu_100m")))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--model", default=None, help="default: MSA_MODEL, else the default backbone")
    ap.add_argument("--router", default=None, help="a trained router's safetensors")
    ap.add_argument("--doc-tokens", type=int, default=512)
    ap.add_argument("--questions", type=int, default=24)
    ap.add_argument("--top-k", type=int, default=16)
    ap.add_argument("--batch-tokens", type=int, default=None)
    ap.add_argument("--store-max", type=int, default=10_000_000, help="sizes up to this go through Store.commit")
    ap.add_argument("--budget-s", type=float, default=420.0, help="stop encoding after this; rerun to go on")
    ap.add_argument("--keys-only", action="store_true", help="random keys, no model: routing latency only")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    dev_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    if args.keys_only:
        res = {"device": dev_name, **keys_only(args)}
        (args.out / "gpu_100m_keys.json").write_text(json.dumps(res, indent=1))
        return res
    sizes = parse_sizes(args.sizes)
    args.work.mkdir(parents=True, exist_ok=True)
    conf = {k: v for k, v in vars(args).items() if k in ("sizes", "doc_tokens", "questions", "seed", "router", "model")}
    conf_f = args.work / "config.json"
    if conf_f.is_file() and json.loads(conf_f.read_text()) != conf:
        raise SystemExit(f"{args.work} was started with other arguments: {conf_f.read_text()}")
    conf_f.write_text(json.dumps(conf))
    engine = load_engine(args.model, args.device, args.router)
    stream = DocStream(engine.tok, args.doc_tokens, args.questions, sizes, args.seed)
    n_docs: dict[int, int] = {}
    deadline = t_start + args.budget_s
    results = []
    res_dir = args.work / "results"
    res_dir.mkdir(exist_ok=True)
    for s in sizes:
        rf = res_dir / f"{s}.json"
        if rf.is_file():
            results.append(json.loads(rf.read_text()))
            continue
        prog = build(args, engine, stream, args.work, s, s <= args.store_max, deadline)
        if prog["tokens"] < s:
            print(f"stopped after {prog['tokens']:,} tokens (budget); rerun the same command to go on", flush=True)
            break
        parts = list(prog["parts"])
        n_docs[s] = prog["docs"]
        done = prog["index"][: n_docs[s]]
        tokens = sum(r[3] for r in done)
        enc_s = sum(p["encode_s"] for p in parts)
        enc_tok = sum(p["tokens"] for p in parts)
        seg_bytes, cum = 0, 0
        for p in parts:  # parts end at each size's last document
            if cum >= n_docs[s]:
                break
            seg_bytes += p["bytes"]
            cum += p["docs"]
        mem = BenchMemory(args.work, prog["index"], n_docs[s], engine.cfg, args.device)
        # Lexical and hybrid need every document of the size in the store (rows, text, FTS5).
        in_store, cum = 0, 0
        for p in parts:  # parts in document order; a size's documents end at a part's end
            if cum >= n_docs[s]:
                break
            in_store += p["docs"] if p["path"] == "store" else 0
            cum += p["docs"]
        store, lexical, why = None, None, None
        if in_store < n_docs[s]:
            why = (f"not measured: only the first {in_store:,} of {n_docs[s]:,} documents went through "
                   f"Store.commit (--store-max {args.store_max:,} tokens); the rest were written as segments "
                   f"only, with no document rows, raw text or lexical (FTS5) index")
        else:
            from msa_agent.store import Store

            store = Store.open(args.work / "store")
            doc_index = store_doc_index(store, n_docs[s])
            if len(doc_index) == n_docs[s]:
                lexical = StoreLexical(store, doc_index, args.top_k)
            else:
                why = f"not measured: the store holds {len(doc_index):,} of the size's {n_docs[s]:,} documents"
        try:
            ev = evaluate(args, engine, stream, mem, lexical, why)
        finally:
            if store is not None:
                store.close()
        row = {"tokens": tokens, "documents": n_docs[s], "chunks": mem.shard.chunk_hi,
               "build_path": sorted({p["path"] for p in parts}), "encode_s_total": round(enc_s, 1),
               "encode_tok_per_s": round(enc_tok / enc_s) if enc_s else None,
               "commit_s_total": round(sum(p["commit_s"] for p in parts), 2),
               "write_s_total": round(sum(p["write_s"] for p in parts), 1),
               "segment_bytes": seg_bytes, "segment_bytes_per_token": round(seg_bytes / tokens, 1),
               "key_load_s": round(mem.load_s, 2), "resident_key_bytes": mem.shard.key_bytes(), **ev}
        if (args.work / "store").is_dir() and s <= args.store_max:
            db = sum(f.stat().st_size for f in (args.work / "store").glob("msa.db*"))
            row["store_db_bytes"] = db
        rf.write_text(json.dumps(row))
        results.append(row)
        del mem
    m = engine.cfg.msa
    summary = {"device": dev_name, "model": engine.name, "router": args.router or None, "prose": stream.prose,
               "fingerprint": engine.fingerprint, "adapter": getattr(engine, "adapter", None),
               # Engine.load picks up the shipped router without --router: the config says which.
               "routing": (f"trained router (cosine {m.cosine}, query reduce {m.query_reduce_method})"
                           if m.decouple_router else
                           "untrained: the backbone's attention keys route (at chance, DESIGN.md)"),
               "top_k": args.top_k, "doc_tokens": args.doc_tokens,
               "lexical_hybrid": ("lexical: ask.Router.lexical (the store's BM25 lexical_search, as msa route "
                                  "--mode lexical), top-k; hybrid: MaskedSelector in mode hybrid (per-layer "
                                  "reciprocal-rank fusion of lexical and the layer's routing, layers fused as "
                                  "RecordingSelector.combined), top-k; measured only where every document of "
                                  f"the size went through Store.commit (sizes <= --store-max {args.store_max:,})"),
               "sizes": results,
               "seconds_this_call": round(time.perf_counter() - t_start, 1)}
    (args.out / "gpu_100m.json").write_text(json.dumps(summary, indent=1))
    print(f"\n{dev_name}; routing: {summary['routing']}")
    print("| tokens | build path | encode tok/s | seg B/token | seg GB | route ms (scoring) | round ms | "
          f"needle in top-k (combined / any layer) | chance | needle top-{args.top_k}: msa / lexical / hybrid | "
          "ms per question: lexical / hybrid |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")

    def nm(x) -> str:  # noqa: ANN001
        return "n/m" if x is None else str(x)

    notes = []
    for r in results:
        if r.get("recall_lexical") is None:
            why = r.get("lexical_note") or ("not measured (a result from before these columns: delete the size's "
                                            "file under WORK/results to measure it)")
            notes.append(f"{r['tokens']:,} tokens: lexical/hybrid {why}")
        print(f"| {r['tokens']:,} | {'+'.join(r['build_path'])} | {r['encode_tok_per_s']:,} | "
              f"{r['segment_bytes_per_token']} | {r['segment_bytes'] / 1e9:.2f} | {r['route_ms_median']} | "
              f"{r['round_ms_median']} | {r['recall_combined']} / {r['recall_any_layer']} ({r['questions']} q) | "
              f"{r['chance_combined']} | {r['recall_combined']} / {nm(r.get('recall_lexical'))} / "
              f"{nm(r.get('recall_hybrid'))} | {nm(r.get('lexical_ms_median'))} / {nm(r.get('hybrid_ms_median'))} |")
    for line in notes:
        print(f"n/m: {line}")
    return summary


if __name__ == "__main__":
    main()
