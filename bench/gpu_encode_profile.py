"""Where the packed encoder's time goes on one GPU: torch.profiler over a few compiled 64K-token
packs (random weights of the default geometry), kernels grouped by name, printed as a table.

    source .device/meta/setup.sh; source bench/device_env.sh; python3 bench/gpu_encode_profile.py
"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from gpu_encode import default_geometry_model  # bench/ is on sys.path when run as a script
from msa_agent.model.packed import PackedEncoder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pack-tokens", type=int, default=65536)
    ap.add_argument("--packs", type=int, default=4)
    ap.add_argument("--rows", type=int, default=25)
    args = ap.parse_args()
    model = default_geometry_model("cuda")
    g = torch.Generator().manual_seed(1)
    lengths = torch.randint(200, 1001, (args.packs * args.pack_tokens // 600,), generator=g).tolist()
    docs = [torch.randint(0, 49152, (n,), generator=g).tolist() for n in lengths]
    enc = PackedEncoder(model, backend="varlen", pack_tokens=args.pack_tokens, compile=True)
    packs = list(enc.packs(docs))
    for pack in packs:  # compile and warm
        enc.encode_pack(pack)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for pack in packs:
        enc.encode_pack(pack)
    end.record()
    torch.cuda.synchronize()
    ms = start.elapsed_time(end)
    n = sum(p.n_tokens for p in packs)
    print(f"{len(packs)} packs, {n} tokens: {ms:.1f} ms GPU wall, {n / ms * 1e3:,.0f} tok/s")
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for pack in packs:
            enc.encode_pack(pack)
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=args.rows, max_name_column_width=70))


if __name__ == "__main__":
    main()
