"""MSA encode throughput on one GPU against the plain transformers forward of the same model, in
the same run, on random weights of the default backbone's geometry (SmolLM2-135M: throughput
does not depend on the weights' values).

    python bench/gpu_encode.py     (device machine; kernels/ and model/ importable as msa_agent.*)

Documents of 200-1,000 tokens (uniform), length-sorted batches of about --batch-tokens padded
tokens, bf16. Ours: `MSAModel.encode` (pooled router-layer K/V, no LM head). Baseline:
`LlamaForCausalLM(input_ids, attention_mask)` with SDPA, logits included, as a user would run it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".device", "pkg"))
from msa_agent.model.config import Config, MSAConfig  # noqa: E402
from msa_agent.model.model import MSAModel  # noqa: E402


def batches(lengths: list[int], batch_tokens: int) -> list[list[int]]:
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    out, cur = [], []
    for i in order:
        if cur and lengths[i] * (len(cur) + 1) > batch_tokens:
            out.append(cur)
            cur = []
        cur.append(i)
    return out + ([cur] if cur else [])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=4096)
    ap.add_argument("--batch-tokens", type=int, default=65536)
    args = ap.parse_args()
    dev = "cuda"
    torch.manual_seed(0)
    cfg = Config(arch="llama", vocab_size=49152, n_layer=30, n_embd=576, n_head=9, n_kv_head=3, intermediate_size=1536,
                 rope_theta=100000.0, msa=MSAConfig())
    ours = MSAModel(cfg)
    for p in ours.parameters():
        torch.nn.init.normal_(p, std=0.02)
    ours = ours.to(dev, torch.bfloat16).eval().fuse()
    ours.inv_freq = ours.inv_freq.float()

    from transformers import LlamaConfig, LlamaForCausalLM

    hf_cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, rope_theta=100000.0, tie_word_embeddings=True,
                         max_position_embeddings=8192)
    hf = LlamaForCausalLM(hf_cfg).to(dev, torch.bfloat16).eval()
    hf.config._attn_implementation = "sdpa"

    g = torch.Generator().manual_seed(1)
    lengths = torch.randint(200, 1001, (args.docs,), generator=g).tolist()
    docs = [torch.randint(0, 49152, (n,), generator=g).tolist() for n in lengths]
    groups = batches(lengths, args.batch_tokens)
    n_tokens = sum(lengths)

    def run_ours() -> None:
        for grp in groups:
            ours.encode([docs[i] for i in grp])

    @torch.inference_mode()
    def run_hf() -> None:
        for grp in groups:
            T = max(lengths[i] for i in grp)
            ids = torch.zeros(len(grp), T, dtype=torch.long)
            mask = torch.zeros(len(grp), T, dtype=torch.long)
            for b, i in enumerate(grp):
                ids[b, : lengths[i]] = torch.tensor(docs[i])
                mask[b, : lengths[i]] = 1
            hf(input_ids=ids.to(dev), attention_mask=mask.to(dev))

    res = {}
    for name, fn in (("msa encode", run_ours), ("transformers forward", run_hf)):
        fn()
        torch.cuda.synchronize()
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t)
        res[name] = n_tokens / best
    # bf16 matmul rate of this card, measured
    a = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(20):
        a @ b
    torch.cuda.synchronize()
    tflops = 20 * 2 * 8192**3 / (time.perf_counter() - t) / 1e12
    flop_per_token = 2 * 30 * (576 * 960 + 576 * 576 + 576 * 3072 + 1536 * 576)  # layers 0..29, no LM head
    out = {"device": torch.cuda.get_device_name(), "docs": args.docs, "tokens": n_tokens,
           "batch_tokens": args.batch_tokens, "tokens_per_s": {k: round(v) for k, v in res.items()},
           "speedup": round(res["msa encode"] / res["transformers forward"], 2),
           "bf16_matmul_tflops": round(tflops, 1),
           "msa_encode_linear_tflops": round(res["msa encode"] * flop_per_token / 1e12, 1),
           "fraction_of_matmul_rate": round(res["msa encode"] * flop_per_token / 1e12 / tflops, 3)}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
