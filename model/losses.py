"""Training losses. The routing loss scores questions against documents exactly as routing does
(kernels/routing.py: head mean of q·k̄, query reduction over question tokens, max over a
document's chunks), batched and differentiable, then applies the paper's contrastive loss (Eq. 5).

Notation used in shape comments:
  L router layers, B questions, S question tokens (padded), M candidate documents,
  C chunks per document (padded), H query heads, Hk key heads, G = H // Hk, D head dim.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

NEG_INF = float("-inf")


def batched_doc_scores(
    q: torch.Tensor,
    q_mask: torch.Tensor,
    keys: torch.Tensor,
    k_mask: torch.Tensor,
    *,
    head_reduce: str = "mean",
    query_reduce: str = "max",
    cosine: bool = True,
) -> torch.Tensor:
    """Routing scores (..., B, M) of every question against every candidate document.

    q (..., B, S, H, D) routing queries, q_mask (B, S) real question tokens; keys (..., M, C, Hk, D)
    pooled routing keys, k_mask (M, C) real chunks. Leading dimensions (router layers) broadcast.
    Per document: chunk max of (query reduction over tokens of (head reduction of q·k̄)), the same
    numbers `kernels.routing.route` gives one question at a time.
    """
    *lead, B, S, H, D = q.shape
    M, C, Hk = keys.shape[-4], keys.shape[-3], keys.shape[-2]
    G = H // Hk
    q = q.float()
    k = keys.float()
    if cosine:
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    else:
        q = q * D**-0.5
    if head_reduce == "mean":
        # Mean over heads commutes with the dot product: sum each GQA group's queries first.
        qg = q.reshape(*lead, B, S, Hk, G, D).sum(-2).flatten(-2)  # (..., B, S, Hk·D)
        s = torch.einsum("...bsx,...mcx->...bsmc", qg, k.flatten(-2)) / H  # (..., B, S, M, C)
    else:
        qh = q.reshape(*lead, B, S, Hk, G, D)
        s = torch.einsum("...bskgd,...mckd->...bsmckg", qh, k).flatten(-2).amax(-1)  # (..., B, S, M, C)
    tok = q_mask[:, :, None, None]  # (B, S, 1, 1)
    if query_reduce == "max":
        s = s.masked_fill(~tok, NEG_INF).amax(-3)  # (..., B, M, C)
    elif query_reduce == "mean":
        s = s.masked_fill(~tok, 0.0).sum(-3) / q_mask.sum(1).clamp(min=1)[:, None, None]  # (..., B, M, C)
    else:  # "last": each question's last real token
        last = (q_mask.long().cumsum(1) == q_mask.sum(1, keepdim=True)) & q_mask  # (B, S)
        s = s.masked_fill(~last[:, :, None, None], 0.0).sum(-3)  # (..., B, M, C)
    return s.masked_fill(~k_mask, NEG_INF).amax(-1)  # (..., B, M)


def contrastive_routing_loss(scores: torch.Tensor, positive: torch.Tensor, temperature: float = 0.1,
                             valid: torch.Tensor | None = None) -> torch.Tensor:
    """The paper's Eq. 5 (supervised contrastive): each positive competes with the negatives only.

    scores (..., B, M), positive (B, M) bool (at least one per question), valid (B, M) bool:
    candidates that count at all (None: every one). Returns the mean over router layers,
    questions and their positives of −log(exp(s⁺/τ) / (exp(s⁺/τ) + Σ_neg exp(s⁻/τ))).
    """
    z = scores.float() / temperature  # (..., B, M)
    neg = ~positive if valid is None else (~positive & valid)  # (B, M)
    neg_lse = z.masked_fill(~neg, NEG_INF).logsumexp(-1, keepdim=True)  # (..., B, 1)
    # log(exp(z⁺) + exp(neg_lse)) with -inf negatives handled by logaddexp.
    per = torch.logaddexp(z, neg_lse) - z  # (..., B, M)
    pos = positive if valid is None else (positive & valid)
    per = per.masked_fill(~pos, 0.0)
    n_pos = pos.sum(-1).clamp(min=1)  # (B,)
    return (per.sum(-1) / n_pos).mean()
