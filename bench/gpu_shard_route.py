"""Memory-parallel routing over GPUs: 100M tokens of random routing keys sharded across the
torchrun group, latency per question round, and the merged ranking against one GPU's.

    NCCL_NVLS_ENABLE=0 torchrun --standalone --nproc_per_node 2 bench/gpu_shard_route.py --out $OUT
    torchrun --standalone --nproc_per_node 2 bench/gpu_shard_route.py --tokens 200000 --out O   (CPU, gloo)

Keys: the default geometry (15 router layers, 3 KV heads x 64, float16 on GPU), 8 chunks per
document, drawn per ROUTE_BLOCK chunks from a seed of (layer, block), so any rank can draw any
range: each rank holds only its shard (`KeyShard.build`), and with --compare rank 0 also holds
the whole memory, one GPU's worth, to rank it alone. A round: for each router layer, the
queries (9 heads x 18 tokens) broadcast from rank 0, local top-k on every rank, all_gather,
merge (`ShardedRouter.route`). Timed on rank 0 with CUDA events, median over --rounds after warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _pkg  # noqa: E402,F401

from msa_agent.memory import ROUTE_BLOCK, topk_docs  # noqa: E402
from msa_agent.model.config import MSAConfig  # noqa: E402
from msa_agent.parallel import KeyShard, ShardedRouter, init_distributed  # noqa: E402

H, HK, D, LAYERS, S, P = 9, 3, 64, 15, 18, 64


def key_loader(device: torch.device, seed: int):  # noqa: ANN201
    dt = torch.float16 if device.type == "cuda" else torch.float32

    def load(pos: int, lo: int, hi: int) -> torch.Tensor:
        out = torch.empty(hi - lo, HK, D, device=device, dtype=dt)
        g = torch.Generator(device=device)
        for b in range(lo // ROUTE_BLOCK, -(-hi // ROUTE_BLOCK)):
            g.manual_seed(seed * 1_000_003 + pos * 100_003 + b)
            blk = torch.randn(ROUTE_BLOCK, HK, D, device=device, generator=g).to(dt)
            a, e = max(lo, b * ROUTE_BLOCK), min(hi, (b + 1) * ROUTE_BLOCK)
            out[a - lo : e - lo] = blk[a - b * ROUTE_BLOCK : e - b * ROUTE_BLOCK]
        return out

    return load


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=100_000_000)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--top-k", type=int, default=16)
    ap.add_argument("--compare", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "bench/out/gpu_shard_route")))
    args = ap.parse_args()
    rank, world, dev = init_distributed()
    cuda = dev.type == "cuda"
    N = args.tokens // P
    counts = np.full((N + 7) // 8, 8)
    counts[-1] = N - 8 * (len(counts) - 1)
    m = MSAConfig()
    load = key_loader(dev, args.seed)
    t0 = time.perf_counter()
    shard = KeyShard.build(counts, rank, world, LAYERS, load, dev)
    if cuda:
        torch.cuda.synchronize()
    load_s = time.perf_counter() - t0
    router = ShardedRouter(shard, m)
    info = [None] * world
    dist.all_gather_object(info, {"rank": rank, "documents": shard.n_docs, "chunks_scored": shard.chunk_hi - shard.chunk_lo,
                                  "key_GB": round(shard.key_bytes() / 1e9, 2), "load_s": round(load_s, 1),
                                  "device": torch.cuda.get_device_name(dev) if cuda else "cpu"})
    if rank != 0:
        router.serve()
        dist.barrier()
        dist.destroy_process_group()
        return
    whole = KeyShard.build(counts, 0, 1, LAYERS, load, dev) if args.compare else None
    g = torch.Generator(device=dev).manual_seed(args.seed + 7)
    times, times_one, same = [], [], True
    for r in range(args.rounds + 3):
        q = torch.randn(H, S, D, device=dev, generator=g)
        if cuda:
            torch.cuda.synchronize()
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
        t = time.perf_counter()
        merged = [router.route(pos, q, args.top_k)[0] for pos in range(LAYERS)]
        if cuda:
            b.record()
            b.synchronize()
            ms = a.elapsed_time(b)
        else:
            ms = (time.perf_counter() - t) * 1000
        if whole is not None:
            t = time.perf_counter()
            one = [topk_docs(whole.scores(pos, q, m), args.top_k)[0] for pos in range(LAYERS)]
            if cuda:
                torch.cuda.synchronize()
            same = same and all(torch.equal(x.cpu(), y.cpu()) for x, y in zip(merged, one))
            if r >= 3:
                times_one.append((time.perf_counter() - t) * 1000)
        if r >= 3:
            times.append(ms)
    router.stop()
    res = {"world": world, "tokens": args.tokens, "chunks": N, "documents": len(counts), "top_k": args.top_k,
           "shards": info, "round_ms_median": round(statistics.median(times), 3), "round_ms_min": round(min(times), 3),
           "one_device_round_ms_median": round(statistics.median(times_one), 3) if times_one else None,
           "same_ranking_as_one_device": same if whole is not None else None, "rounds": args.rounds}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"gpu_shard_route_w{world}.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))
    print(f"\n{world} ranks, {args.tokens:,} tokens: {res['round_ms_median']} ms per round (15 layers, merged top-"
          f"{args.top_k}); one device {res['one_device_round_ms_median']} ms; same ranking: {res['same_ranking_as_one_device']}")
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
