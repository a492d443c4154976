"""MSA routing scores: the plain-PyTorch path (CPU, and the oracle for GPU kernels).

score(doc) = chunk_reduce over the doc's chunks of
             query_reduce over question tokens of
             head_reduce over query heads of  q_h · k̄_{kv(h)}   (cosine when asked, else × D^-½)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def prepare_keys(keys: torch.Tensor, cosine: bool) -> torch.Tensor:
    """Routing keys (N, Hk, D) as scored: fp32, L2-normalised per head for cosine routing."""
    keys = keys.float()
    return F.normalize(keys, dim=-1) if cosine else keys


def chunk_scores(
    q: torch.Tensor,
    keys: torch.Tensor,
    *,
    head_reduce: str = "mean",
    query_reduce: str = "max",
    cosine: bool = False,
    keys_prepared: bool = False,
) -> torch.Tensor:
    """Per-chunk scores (N,) for routing queries q (H, S, D) against pooled keys (N, Hk, D)."""
    H, S, D = q.shape
    N, Hk, _ = keys.shape
    G = H // Hk
    q = q.float()
    k = keys if keys_prepared else prepare_keys(keys, cosine)
    if cosine:
        q = F.normalize(q, dim=-1)
    else:
        q = q * D**-0.5
    if head_reduce == "mean":
        # The mean over heads commutes with the dot product: sum each GQA group's queries first,
        # then one (S, Hk·D) x (Hk·D, N) product covers every head at a third of the work.
        qg = q.view(Hk, G, S, D).sum(1)  # (Hk, S, D)
        s = qg.permute(1, 0, 2).reshape(S, Hk * D) @ k.reshape(N, Hk * D).T / H  # (S, N)
    else:
        s = torch.einsum("kgsd,nkd->kgsn", q.view(Hk, G, S, D), k)  # (Hk, G, S, N)
        s = s.reshape(H, S, N).amax(0)  # (S, N)
    if query_reduce == "max":
        return s.amax(0)  # (N,)
    if query_reduce == "mean":
        return s.mean(0)  # (N,)
    return s[-1]  # (N,)  "last"


def doc_scores(
    chunk_score: torch.Tensor, chunk_doc: torch.Tensor, n_docs: int, chunk_reduce: str = "max"
) -> torch.Tensor:
    """Reduce chunk scores (N,) to documents (n_docs,) through chunk_doc (N,) in [0, n_docs).
    Documents without chunks score -inf."""
    out = torch.full((n_docs,), float("-inf"), dtype=chunk_score.dtype, device=chunk_score.device)
    if chunk_reduce == "max":
        return out.scatter_reduce(0, chunk_doc, chunk_score, reduce="amax", include_self=True)
    summed = torch.zeros(n_docs, dtype=chunk_score.dtype, device=chunk_score.device)
    summed.scatter_add_(0, chunk_doc, chunk_score)
    counts = torch.bincount(chunk_doc, minlength=n_docs)
    return torch.where(counts > 0, summed / counts.clamp(min=1), out)


def route(
    q: torch.Tensor,
    keys: torch.Tensor,
    chunk_doc: torch.Tensor,
    n_docs: int,
    top_k: int,
    *,
    head_reduce: str = "mean",
    query_reduce: str = "max",
    chunk_reduce: str = "max",
    cosine: bool = False,
    keys_prepared: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top-k documents for one question. Returns (doc scores (n_docs,), top scores, top indices)."""
    cs = chunk_scores(q, keys, head_reduce=head_reduce, query_reduce=query_reduce, cosine=cosine,
                      keys_prepared=keys_prepared)
    ds = doc_scores(cs, chunk_doc, n_docs, chunk_reduce)
    k = min(top_k, n_docs)
    top = torch.topk(ds, k)
    return ds, top.values, top.indices
