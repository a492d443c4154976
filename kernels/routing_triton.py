"""Fused MSA routing on the GPU (Triton), beside its plain-PyTorch reference in `routing.py`.

One pass over the pooled routing keys: for a block of chunks, q·k̄ for every question token with
the mean over heads folded into grouped queries (tensor cores, fp32 accumulation), the max (or
mean) over question tokens, and the chunk -> document max by an atomic max into the document
scores. Only top-k is left to a final step.

Layers, as in the house style: `_route_kernel` -> `route_scores_triton` (checks shapes, picks
blocks) -> `doc_scores_fused` (what memory routing calls; falls back to nothing: callers choose
the reference for reduce methods the kernel does not implement, see `supports`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only installs: the reference path is the CPU path
    triton = None
    tl = None


def available() -> bool:
    return triton is not None and torch.cuda.is_available()


def supports(head_reduce: str, query_reduce: str, chunk_reduce: str) -> bool:
    """The reduce methods the fused kernel implements (the reference handles the rest)."""
    return head_reduce == "mean" and query_reduce in ("max", "mean") and chunk_reduce == "max"


def supports_shapes(n_head: int, n_kv_head: int, head_dim: int) -> bool:
    """The geometries the kernel's tiles take: whole GQA groups, a power-of-two head dim >= 16."""
    return n_head % n_kv_head == 0 and head_dim >= 16 and head_dim & (head_dim - 1) == 0


if triton is not None:

    @triton.jit
    def _route_kernel(
        q_ptr,  # (Hk, S_pad, D) grouped, scaled queries, same dtype as keys
        k_ptr,  # (N, Hk, D) pooled routing keys
        doc_ptr,  # (N,) int32 document index of each chunk
        out_ptr,  # (n_docs,) fp32 document scores, pre-filled with -inf
        N,
        S,
        HK: tl.constexpr,
        D: tl.constexpr,
        S_PAD: tl.constexpr,
        BLOCK_S: tl.constexpr,
        BLOCK_N: tl.constexpr,
        QUERY_MAX: tl.constexpr,
    ):
        pid = tl.program_id(0)
        offs_n = pid * BLOCK_N + tl.arange(0, BLOCK_N)
        n_mask = offs_n < N
        offs_d = tl.arange(0, D)
        best = tl.full((BLOCK_N,), float("-inf"), tl.float32)
        total = tl.zeros((BLOCK_N,), tl.float32)
        for s0 in range(0, S_PAD, BLOCK_S):
            offs_s = s0 + tl.arange(0, BLOCK_S)
            acc = tl.zeros((BLOCK_S, BLOCK_N), tl.float32)
            for h in range(HK):
                q = tl.load(q_ptr + h * S_PAD * D + offs_s[:, None] * D + offs_d[None, :])  # (BS, D)
                k = tl.load(k_ptr + offs_n[:, None] * (HK * D) + h * D + offs_d[None, :],
                            mask=n_mask[:, None], other=0.0)  # (BN, D)
                acc += tl.dot(q, tl.trans(k))  # (BS, BN)
            valid = (offs_s < S)[:, None]
            best = tl.maximum(best, tl.max(tl.where(valid, acc, float("-inf")), axis=0))
            total += tl.sum(tl.where(valid, acc, 0.0), axis=0)
        score = best if QUERY_MAX else total / S
        doc = tl.load(doc_ptr + offs_n, mask=n_mask, other=0)
        tl.atomic_max(out_ptr + doc, score, mask=n_mask)


def grouped_queries(q: torch.Tensor, n_kv_head: int, cosine: bool) -> torch.Tensor:
    """(H, S, D) routing queries -> (Hk, S, D): per-head normalise or scale, then sum each GQA
    group and divide by H, so one product per kv head gives the mean over heads."""
    H, S, D = q.shape
    q = q.float()
    q = F.normalize(q, dim=-1) if cosine else q * D**-0.5
    return q.view(n_kv_head, H // n_kv_head, S, D).sum(1) / H  # (Hk, S, D)


def route_scores_triton(
    q: torch.Tensor, keys: torch.Tensor, chunk_doc: torch.Tensor, n_docs: int, *,
    query_reduce: str = "max", cosine: bool = False,
) -> torch.Tensor:
    """Document scores (n_docs,) fp32 for queries q (H, S, D) against prepared keys (N, Hk, D)
    (normalised already for cosine routing), chunk_doc (N,) int32. Documents without chunks: -inf."""
    if not available():
        raise RuntimeError("the Triton routing kernel needs triton and a CUDA device")
    H, S, D = q.shape
    N, Hk, Dk = keys.shape
    if Dk != D or not supports_shapes(H, Hk, D):
        raise ValueError(f"routing shapes not supported by the kernel: q {tuple(q.shape)}, keys {tuple(keys.shape)}")
    if not keys.is_contiguous():
        keys = keys.contiguous()
    qg = grouped_queries(q, Hk, cosine)  # (Hk, S, D)
    BLOCK_S = 16 if S <= 16 else 32
    S_PAD = triton.cdiv(S, BLOCK_S) * BLOCK_S
    qp = torch.zeros(Hk, S_PAD, D, device=keys.device, dtype=keys.dtype)
    qp[:, :S] = qg.to(keys.dtype)
    out = torch.full((n_docs,), float("-inf"), device=keys.device, dtype=torch.float32)
    if N == 0:
        return out
    BLOCK_N = 128
    grid = (triton.cdiv(N, BLOCK_N),)
    _route_kernel[grid](qp, keys, chunk_doc.to(torch.int32), out, N, S, HK=Hk, D=D, S_PAD=S_PAD,
                        BLOCK_S=BLOCK_S, BLOCK_N=BLOCK_N, QUERY_MAX=query_reduce == "max",
                        num_warps=4, num_stages=2)
    return out
