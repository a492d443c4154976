"""Routing latency at 1M tokens on this CPU in each routing mode, through the real store and
routing code (the store of `bench/route_cpu.py`: random fp16 keys of the default geometry).

    .venv/bin/python bench/route_modes_cpu.py [--tokens 1000000] [--repeats 5] [--out FILE]

Measured per mode (msa, rrf: the hybrid before issue #15, hybrid: the score fusion, lexical): the
whole `msa route` call (question prefill with routing in every router layer, fetches, the lexical
search), median and min of `--repeats` after one warm-up, with an index opened by each call (as
`bench/route_cpu.py`) and with the index resident (as `msa serve`); and the fusion alone (the 15 router
layers' fusion of given scores, without the model) for rrf and hybrid. The question names words
every synthetic document holds, so the lexical half has a full candidate list to fuse.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from route_cpu import build_store  # noqa: E402

from msa_agent.ask import route  # noqa: E402
from msa_agent.engine import Engine  # noqa: E402
from msa_agent.memory import MemoryIndex, RecordingSelector  # noqa: E402
from msa_agent.store import Store  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=1_000_000)
    ap.add_argument("--doc-tokens", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    engine = Engine.load(purpose="generate")
    cfg = engine.cfg
    question = "Which synthetic document 1207 holds the notice period?"
    res: dict = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                 "loadavg_start": [round(x, 2) for x in os.getloadavg()], "torch": torch.__version__,
                 "threads": torch.get_num_threads(), "memory_tokens": args.tokens, "question": question, "modes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store"
        build_store(path, engine, args.tokens, args.doc_tokens)
        store = Store.open(path)
        mem = MemoryIndex(store, "default", cfg)
        mem.load_all_keys()
        res["documents"], res["chunks"] = len(mem), mem.n_chunks
        for mode in ("msa", "rrf", "hybrid", "lexical"):
            row = res["modes"][mode] = {}
            # As bench/route_cpu.py measures it (an index opened by each call, keys read from the
            # segments), and with the index resident (msa serve).
            for name, kw in (("route_call_ms", {}), ("route_resident_ms", {"memory": mem, "collection": "default"})):
                route(store, engine, question, mode=mode, **kw)  # warm
                ts = []
                for _ in range(args.repeats):
                    t = time.perf_counter()
                    out = route(store, engine, question, mode=mode, **kw)
                    ts.append(1000 * (time.perf_counter() - t))
                row[name] = {"median": round(statistics.median(ts), 1), "min": round(min(ts), 1)}
            row["top3"] = [d["path"] for d in out["docs"][:3]]
        # The fusion alone: 15 layers of given scores over every document.
        from msa_agent.ask import Router

        order, scores = Router(store, engine, "default", "hybrid", None, mem).lexical(question)
        g = torch.Generator().manual_seed(0)
        layer_scores = {layer: torch.randn(len(mem), generator=g) for layer in cfg.router_layers}

        class Given:
            cfg = mem.cfg

            def __len__(self) -> int:
                return len(mem)

            def doc_scores(self, layer, q_r):  # noqa: ANN001, ANN202
                return layer_scores[layer]

        for mode in ("rrf", "hybrid"):
            ts = []
            for _ in range(max(5, args.repeats)):
                sel = RecordingSelector(Given(), mode, cfg.msa.top_k_docs, lexical=order,
                                        lexical_scores=[scores[i] for i in order], attend_memory=False)
                t = time.perf_counter()
                for layer in cfg.router_layers:
                    sel.select(layer, torch.zeros(1, 1, 1))
                sel.combined()
                ts.append(1000 * (time.perf_counter() - t))
            res["modes"][mode]["fusion_only_ms"] = {"median": round(statistics.median(ts), 2), "min": round(min(ts), 2)}
        store.close()
    res["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    text = json.dumps(res, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
