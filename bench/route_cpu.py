"""Routing latency over a 1M-token store on this CPU, through the real store and routing code.

    .venv/bin/python bench/route_cpu.py [--tokens 1000000] [--doc-tokens 512]

Encoding 1M tokens on 2 cores takes about an hour, so the store's segments are filled with random
fp16 keys of the default model's exact geometry (router layers, KV heads, head dim, P = 64), written
and committed through `Store` like an ingest. The routing queries are real: the default model's
per-layer routing queries for a question. Measured: (a) scoring all router layers (q·k, mean over
heads, max over question tokens, max over chunks, top-k) for one question, the per-round routing
cost; (b) the whole `msa route --mode msa` call: question prefill with memory routing in every
router layer plus fetching the selected K̄/V̄; (c) loading the routing keys once.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from msa_agent.ask import route
from msa_agent.engine import Engine
from msa_agent.memory import MemoryIndex
from msa_agent.store import NewDocument, SourceUpdate, Store, write_segment


def build_store(path: Path, engine: Engine, n_tokens: int, doc_tokens: int) -> None:
    cfg = engine.cfg
    P, L, Hk, D = cfg.msa.pooling_kernel_size, len(cfg.router_layers), cfg.n_kv_head, cfg.head_dim
    store = Store.open(path, create=True)
    store.bind_model(engine.manifest_info())
    rng = np.random.default_rng(0)
    n_docs = n_tokens // doc_tokens
    per_seg = 512
    for s0 in range(0, n_docs, per_seg):
        docs = range(s0, min(n_docs, s0 + per_seg))
        n_chunks = [(doc_tokens + P - 1) // P] * len(docs)
        N = sum(n_chunks)
        k = rng.standard_normal((L, N, Hk, D), dtype=np.float32).astype(np.float16)
        v = rng.standard_normal((L, N, Hk, D), dtype=np.float32).astype(np.float16)
        chunks = np.repeat(np.arange(len(docs), dtype=np.int32), n_chunks)
        seg = write_segment(store.segments_dir, store.new_segment_id(), k, v, None, chunks)
        upd = SourceUpdate(path=f"/synthetic/{s0}", root="/synthetic", rel_path=f"{s0}.txt", kind="text",
                           content_hash=str(s0), size=0, mtime_ns=0)
        start = 0
        for j, (d, n) in enumerate(zip(docs, n_chunks)):
            upd.documents.append(NewDocument(path=f"doc{d}.txt", kind="text", anchor="lines 1-10", anchor_data={},
                                             title="", text=f"synthetic document {d}", content_hash=str(d),
                                             n_tokens=doc_tokens, chunk_start=start, n_chunks=n))
            start += n
        store.commit("default", seg, [upd])
    store.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=1_000_000)
    ap.add_argument("--doc-tokens", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    engine = Engine.load()
    cfg = engine.cfg
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store"
        t = time.perf_counter()
        build_store(path, engine, args.tokens, args.doc_tokens)
        build_s = time.perf_counter() - t
        store = Store.open(path)
        mem = MemoryIndex(store, "default", cfg)
        t = time.perf_counter()
        mem.load_all_keys()
        load_s = time.perf_counter() - t

        # Real routing queries: capture each router layer's q_r for a question.
        question = "What is the notice period for terminating the supply agreement?"
        captured: dict[int, torch.Tensor] = {}

        class Capture:
            def select(self, layer: int, q_r: torch.Tensor):  # noqa: ANN202
                captured[layer] = q_r
                return torch.zeros(cfg.n_kv_head, 0, cfg.head_dim), torch.zeros(cfg.n_kv_head, 0, cfg.head_dim)

        engine.model.prefill(engine.tok.chat_prefix("x"), engine.tok.chat_prompt(question), Capture())
        k = cfg.msa.top_k_docs

        def score_all() -> None:
            for layer in cfg.router_layers:
                torch.topk(mem.doc_scores(layer, captured[layer]), k)

        score_all()
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            score_all()
            times.append(time.perf_counter() - t)
        route(store, engine, question, mode="msa")  # warm
        full = []
        for _ in range(3):
            t = time.perf_counter()
            route(store, engine, question, mode="msa")
            full.append(time.perf_counter() - t)
        key_bytes = sum(mem.routing_keys(l).numel() for l in cfg.router_layers) * 2  # as stored, fp16
        print(json.dumps({
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "memory_tokens": args.tokens, "documents": len(mem), "chunks": mem.n_chunks,
            "router_layers": len(cfg.router_layers), "question_tokens": int(captured[cfg.router_layers[0]].shape[1]),
            "routing_key_bytes_fp16": key_bytes,
            "score_all_layers_ms": {"median": round(1000 * float(np.median(times)), 2), "min": round(1000 * min(times), 2)},
            "msa_route_call_ms": {"median": round(1000 * float(np.median(full)), 1)},
            "load_keys_s": round(load_s, 2), "build_store_s": round(build_s, 1),
            "store_bytes_on_disk": sum(f.stat().st_size for f in path.rglob("*") if f.is_file()),
        }, indent=2))


if __name__ == "__main__":
    main()
