"""MSA encode throughput on one GPU against the plain transformers forward of the same model, in
the same run, on random weights of the default backbone's geometry (SmolLM2-135M: throughput does
not depend on the weights' values).

    source .device/meta/setup.sh; source bench/device_env.sh; python3 bench/gpu_encode.py

Two document-length mixes: `uniform` (200-1,000 tokens) and `mixed` (log-normal, 16-4,096 tokens:
code definitions and log windows are short, contracts long). bf16 throughout. Compared:
- transformers `LlamaForCausalLM(input_ids, attention_mask)` with SDPA on length-sorted padded
  batches, logits included (the plain forward a user would run), and its `.model` alone (no LM
  head: the stricter baseline);
- `MSAModel.encode` on the same padded batches (router-layer pooling, no LM head);
- `PackedEncoder` (model/packed.py): packed documents, variable-length Flash attention, eager
  and `torch.compile`d, state copied to pinned host memory.
Checks first that the packed pooled keys equal the padded encoder's on a sample. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

from msa_agent.model.config import Config, MSAConfig
from msa_agent.model.model import MSAModel
from msa_agent.model.packed import PackedEncoder

FLOP_PER_TOKEN = 2 * 30 * (576 * 960 + 576 * 576 + 576 * 3072 + 1536 * 576)  # 30 layers' linears, no LM head


def sorted_batches(lengths: list[int], batch_tokens: int) -> list[list[int]]:
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    out, cur = [], []
    for i in order:
        if cur and lengths[i] * (len(cur) + 1) > batch_tokens:
            out.append(cur)
            cur = []
        cur.append(i)
    return out + ([cur] if cur else [])


def make_lengths(kind: str, n: int, g: torch.Generator) -> list[int]:
    if kind == "uniform":
        return torch.randint(200, 1001, (n,), generator=g).tolist()
    z = torch.randn(n, generator=g)
    return [int(min(4096, max(16, math.exp(5.8 + 1.0 * float(v))))) for v in z]


def timed(fn, reps: int = 3) -> float:
    fn()
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best


def matmul_tflops(dev: str) -> float:
    a = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(20):
        a @ b
    torch.cuda.synchronize()
    return 20 * 2 * 8192**3 / (time.perf_counter() - t) / 1e12


def default_geometry_model(dev: str) -> MSAModel:
    """Random weights (seed 0) in the default backbone's geometry (SmolLM2-135M, decoupled
    router), bf16 on `dev`, fused for inference: throughput does not depend on the values."""
    torch.manual_seed(0)
    cfg = Config(arch="llama", vocab_size=49152, n_layer=30, n_embd=576, n_head=9, n_kv_head=3, intermediate_size=1536,
                 rope_theta=100000.0, msa=MSAConfig(decouple_router=True))
    model = MSAModel(cfg)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.02)
    model = model.to(dev, torch.bfloat16).eval().fuse()
    model.inv_freq = model.inv_freq.float()
    return model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=4096)
    ap.add_argument("--batch-tokens", type=int, default=65536)
    ap.add_argument("--pack-tokens", type=int, default=65536)
    ap.add_argument("--mixes", default="uniform,mixed")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    dev = "cuda"
    ours = default_geometry_model(dev)
    cfg = ours.cfg

    from transformers import LlamaConfig, LlamaForCausalLM

    hf_cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, rope_theta=100000.0, tie_word_embeddings=True,
                         max_position_embeddings=8192)
    hf = LlamaForCausalLM(hf_cfg).to(dev, torch.bfloat16).eval()
    hf.config._attn_implementation = "sdpa"

    eager = PackedEncoder(ours, backend="varlen", pack_tokens=args.pack_tokens)
    compiled = PackedEncoder(ours, backend="varlen", pack_tokens=args.pack_tokens, compile=True)
    tflops = matmul_tflops(dev)
    result: dict = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "docs": args.docs,
                    "batch_tokens": args.batch_tokens, "pack_tokens": args.pack_tokens,
                    "bf16_matmul_tflops": round(tflops, 1), "mixes": {}}

    # correctness first: packed (varlen, compiled) against the padded encoder, per document
    g = torch.Generator().manual_seed(7)
    sample = [torch.randint(0, 49152, (n,), generator=g).tolist() for n in make_lengths("mixed", 64, g)]
    worst = 0.0
    for index, enc in compiled.encode_batches(sample):
        at = 0
        for j, i in enumerate(index):
            ref = ours.encode([sample[i]])
            c = enc.n_chunks[j]
            for layer in cfg.router_layers:
                for a, b in ((enc.k, ref.k), (enc.v, ref.v), (enc.rk, ref.rk)):
                    worst = max(worst, float((a[layer][at:at + c] - b[layer]).abs().max()))
            at += c
    result["packed_vs_padded_max_abs_diff"] = worst

    for mix in args.mixes.split(","):
        g = torch.Generator().manual_seed(1)
        lengths = make_lengths(mix, args.docs, g)
        docs = [torch.randint(0, 49152, (n,), generator=g).tolist() for n in lengths]
        n_tokens = sum(lengths)
        groups = sorted_batches(lengths, args.batch_tokens)
        padded = sum(len(grp) * max(lengths[i] for i in grp) for grp in groups)
        inputs = []
        for grp in groups:
            T = max(lengths[i] for i in grp)
            ids = torch.zeros(len(grp), T, dtype=torch.long)
            mask = torch.zeros(len(grp), T, dtype=torch.long)
            for b, i in enumerate(grp):
                ids[b, : lengths[i]] = torch.tensor(docs[i])
                mask[b, : lengths[i]] = 1
            inputs.append((ids, mask))

        @torch.inference_mode()
        def run_hf(head: bool = True) -> None:
            for ids, mask in inputs:
                ids, mask = ids.to(dev, non_blocking=True), mask.to(dev, non_blocking=True)
                (hf if head else hf.model)(input_ids=ids, attention_mask=mask)

        def run_padded() -> None:
            for grp in groups:
                ours.encode([docs[i] for i in grp])

        def run_packed(enc: PackedEncoder) -> None:
            for _ in enc.encode_to_host(docs):
                pass

        rates = {}
        for name, fn in (("transformers forward", run_hf), ("transformers .model (no LM head)", lambda: run_hf(False)),
                         ("msa encode, padded", run_padded), ("msa packed varlen, eager", lambda: run_packed(eager)),
                         ("msa packed varlen, compiled", lambda: run_packed(compiled))):
            t0 = time.perf_counter()
            best = timed(fn)
            rates[name] = n_tokens / best
            print(f"{mix:8s} {name:36s} {rates[name]:>12,.0f} tok/s   ({time.perf_counter() - t0:.0f} s)", flush=True)
        base = rates["transformers forward"]
        best_name = max(rates, key=rates.get)
        result["mixes"][mix] = {
            "tokens": n_tokens, "padding_fraction": round(1 - n_tokens / padded, 3),
            "tokens_per_s": {k: round(v) for k, v in rates.items()},
            "speedup_vs_transformers_forward": {k: round(v / base, 2) for k, v in rates.items()},
            "speedup_vs_transformers_model": {k: round(v / rates["transformers .model (no LM head)"], 2) for k, v in rates.items()},
            "best": best_name,
            "best_linear_tflops": round(rates[best_name] * FLOP_PER_TOKEN / 1e12, 1),
            "best_fraction_of_matmul_rate": round(rates[best_name] * FLOP_PER_TOKEN / 1e12 / tflops, 3),
        }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
