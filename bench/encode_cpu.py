"""Encode throughput of the default model on this machine, against the plain transformers
forward of the same weights on the same inputs, in the same run.

    .venv/bin/python bench/encode_cpu.py [--docs 48] [--dtype bfloat16]

Inputs: the bundled sample corpus's documents (as `msa ingest` makes them), repeated to --docs.
Both sides get the same token lists, batched the same way (length-sorted, ~8K padded tokens per
batch). Ours returns the pooled router-layer state (LM head and upper layers skipped); the
baseline is `LlamaForCausalLM(...)(input_ids, attention_mask)` computing logits.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from msa_agent.engine import DTYPES, Engine
from msa_agent.ingest import parse_file, walk
from msa_agent.pipeline import doc_text

ROOT = Path(__file__).resolve().parent.parent


def batches(toks: list[list[int]], batch_tokens: int) -> list[list[int]]:
    order = sorted(range(len(toks)), key=lambda i: len(toks[i]))
    out, cur = [], []
    for i in order:
        if cur and len(toks[i]) * (len(cur) + 1) > batch_tokens:
            out.append(cur)
            cur = []
        cur.append(i)
    return out + ([cur] if cur else [])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=48)
    ap.add_argument("--dtype", default="bfloat16", choices=list(DTYPES))
    ap.add_argument("--batch-tokens", type=int, default=8192)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    engine = Engine.load(dtype=args.dtype)
    corpus = ROOT / "samples" / "corpus"
    texts = [doc_text(d) for p in walk(corpus) for d in parse_file(p, corpus)]
    texts = (texts * (args.docs // len(texts) + 1))[: args.docs]
    toks = engine.doc_tokens(texts)
    n_tokens = sum(map(len, toks))
    groups = batches(toks, args.batch_tokens)

    from transformers import LlamaForCausalLM

    hf = LlamaForCausalLM.from_pretrained(str(engine.model_dir), dtype=DTYPES[args.dtype]).eval()

    def run_ours() -> None:
        list(engine.encode_batches(toks, args.batch_tokens))

    @torch.inference_mode()
    def run_hf() -> None:
        for g in groups:
            T = max(len(toks[i]) for i in g)
            ids = torch.zeros(len(g), T, dtype=torch.long)
            mask = torch.zeros(len(g), T, dtype=torch.long)
            for b, i in enumerate(g):
                ids[b, : len(toks[i])] = torch.tensor(toks[i])
                mask[b, : len(toks[i])] = 1
            hf(input_ids=ids, attention_mask=mask)

    results = {}
    for name, fn in (("msa encode", run_ours), ("transformers forward", run_hf)):
        fn()  # warm-up
        best = float("inf")
        for _ in range(args.repeats):
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
        results[name] = n_tokens / best
    info = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "torch": torch.__version__, "threads": torch.get_num_threads(), "dtype": args.dtype,
        "docs": len(toks), "tokens": n_tokens, "router_layers": engine.cfg.router_layers,
        "tokens_per_s": {k: round(v, 1) for k, v in results.items()},
        "speedup": round(results["msa encode"] / results["transformers forward"], 2),
    }
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
