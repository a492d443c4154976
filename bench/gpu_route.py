"""Fused Triton routing kernel against the plain-PyTorch routing on one GPU: correctness on
random inputs, then time and bandwidth over the routing keys of a 100M-token memory.

    python bench/gpu_route.py            (on the device machine; needs torch + triton + CUDA)

Prints a table: per layer time, achieved GB/s over the key bytes, and the fraction of the card's
measured device-to-device copy bandwidth (bytes read + written).
"""

from __future__ import annotations

import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".device", "pkg"))
from msa_agent.kernels.routing import chunk_scores, doc_scores  # noqa: E402
from msa_agent.kernels.routing_triton import route_scores_triton  # noqa: E402


def reference(q, keys, chunk_doc, n_docs, query_reduce, cosine):  # noqa: ANN001, ANN201
    cs = chunk_scores(q, keys.float(), head_reduce="mean", query_reduce=query_reduce, cosine=cosine, keys_prepared=True)
    return doc_scores(cs, chunk_doc.long(), n_docs, "max")


def check(dev: str) -> list[dict]:
    g = torch.Generator(device="cpu").manual_seed(0)
    rows = []
    for (H, Hk, D) in [(9, 3, 64), (32, 8, 128), (4, 2, 16), (6, 6, 32)]:
        for S in (1, 7, 16, 33, 100):
            for dtype in (torch.bfloat16, torch.float16):
                for qr in ("max", "mean"):
                    for cosine in (False, True):
                        N = int(torch.randint(50, 3000, (1,), generator=g))
                        n_docs = max(1, N // 5)
                        q = torch.randn(H, S, D, generator=g).to(dev)
                        keys = torch.randn(N, Hk, D, generator=g)
                        if cosine:
                            keys = torch.nn.functional.normalize(keys, dim=-1)
                        keys = keys.to(dev, dtype)
                        chunk_doc = torch.sort(torch.randint(0, n_docs + 3, (N,), generator=g)).values.clamp(max=n_docs - 1).to(dev)
                        ref = reference(q, keys, chunk_doc, n_docs, qr, cosine)
                        out = torch.full_like(ref, float("nan"))
                        out = route_scores_triton(q, keys, chunk_doc, n_docs, query_reduce=qr, cosine=cosine)
                        finite = torch.isfinite(ref)
                        assert torch.equal(finite, torch.isfinite(out)), "empty documents differ"
                        err = ((out[finite] - ref[finite]).norm() / ref[finite].norm()).item()
                        k = min(16, int(finite.sum()))
                        top_ref = set(torch.topk(ref, k).indices.tolist())
                        top_out = set(torch.topk(out, k).indices.tolist())
                        rows.append({"H": H, "Hk": Hk, "D": D, "S": S, "N": N, "dtype": str(dtype)[6:], "query": qr,
                                     "cosine": cosine, "rel_err": err, "topk_overlap": len(top_ref & top_out) / k})
                        assert err < 2e-2, rows[-1]
    return rows


def copy_bandwidth(dev: str) -> float:
    x = torch.empty(2 * 1024**3 // 2, dtype=torch.bfloat16, device=dev).normal_()
    y = torch.empty_like(x)
    for _ in range(3):
        y.copy_(x)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(20):
        y.copy_(x)
    end.record()
    torch.cuda.synchronize()
    s = start.elapsed_time(end) / 1000 / 20
    return 2 * x.numel() * 2 / s / 1e9


def bench(dev: str, tokens: int, H: int, Hk: int, D: int, S: int, layers: int, bw: float) -> dict:
    from triton.testing import do_bench

    P = 64
    N = tokens // P
    n_docs = (N + 7) // 8
    # Several layers' keys, rotated, so the L2 cache never holds the next call's keys.
    keys = [torch.randn(N, Hk, D, device=dev, dtype=torch.bfloat16) for _ in range(min(layers, 3))]
    chunk_doc = (torch.arange(N, device=dev) // 8).to(torch.int32)
    q = torch.randn(H, S, D, device=dev)
    it = {"i": 0}

    def nxt():  # noqa: ANN202
        it["i"] = (it["i"] + 1) % len(keys)
        return keys[it["i"]]

    t_ref = do_bench(lambda: reference(q, nxt(), chunk_doc, n_docs, "max", False), warmup=50, rep=300, return_mode="median")
    t_tri = do_bench(lambda: route_scores_triton(q, nxt(), chunk_doc, n_docs), warmup=50, rep=300, return_mode="median")
    nbytes = N * Hk * D * 2
    return {"tokens": tokens, "H": H, "Hk": Hk, "D": D, "S": S, "chunks": N, "key_MB_per_layer": round(nbytes / 1e6, 1),
            "torch_ms": round(t_ref, 3), "triton_ms": round(t_tri, 3),
            "triton_GBps": round(nbytes / (t_tri / 1000) / 1e9, 1), "frac_of_copy_bw": round(nbytes / (t_tri / 1000) / 1e9 / bw, 3),
            "round_ms_all_layers": round(t_tri * layers, 2), "layers": layers}


def main() -> None:
    dev = "cuda"
    print(torch.cuda.get_device_name(), torch.__version__, flush=True)
    rows = check(dev)
    worst = max(r["rel_err"] for r in rows)
    print(f"correctness: {len(rows)} random cases, worst relative error {worst:.2e}, "
          f"min top-16 overlap {min(r['topk_overlap'] for r in rows):.2f}", flush=True)
    bw = copy_bandwidth(dev)
    print(f"device-to-device copy: {bw:.0f} GB/s (read + write)", flush=True)
    results = [
        bench(dev, 100_000_000, 9, 3, 64, 18, 15, bw),  # default model, 100M tokens
        bench(dev, 100_000_000, 9, 3, 64, 128, 15, bw),  # with a round of evidence in the query
        bench(dev, 10_000_000, 32, 8, 128, 32, 18, bw),  # reference MSA-4B geometry, 10M tokens
    ]
    out = os.environ.get("OUT", ".")
    with open(os.path.join(out, "gpu_route.json"), "w") as f:
        json.dump({"device": torch.cuda.get_device_name(), "copy_GBps": bw, "check": rows, "bench": results}, f, indent=1)
    print("| tokens | H/Hk/D | S | torch ms | triton ms | triton GB/s | of copy bw | round (all layers) ms |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['tokens']:,} | {r['H']}/{r['Hk']}/{r['D']} | {r['S']} | {r['torch_ms']} | {r['triton_ms']} | "
              f"{r['triton_GBps']} | {r['frac_of_copy_bw']:.0%} | {r['round_ms_all_layers']} ({r['layers']}) |")


if __name__ == "__main__":
    main()
