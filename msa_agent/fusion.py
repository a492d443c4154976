"""Hybrid routing: the lexical ranking and the router's fused by score, the router allowed to move
a document only as far as the lexical ranking is unsure.

For a query over n documents:

- L(d) = the document's lexical score over the best lexical score (1 for the lexical top hit, 0 for
  a document the lexical index did not return);
- Z(d) = the router's score standardised over the memory (a z-score per router layer, averaged over
  the router layers seen so far: each layer routes with what the layers below it saw);
- ρ(d) = (Z(d) − Z₍ₘ₎) / (Z₍₁₎ − Z₍ₘ₎) clipped to [0, 1]: 1 for the router's top document, 0 from its
  m-th (`depth`) document down;
- λ = λ_max · σ(c₀ + c_lex·g + c_cov·c + c_router·h), with g = 1 − L₍₂₎ (the lexical top hit's lead:
  1 when it is alone, 0 at a tie), c the share of the query's words that the lexical top hit holds
  (`coverage`: a question in other words than its evidence matches only stray words) and
  h = Z₍₁₎ − Z₍₂₎ (the router's top lead, in standard deviations);
- fused(d) = L(d) + λ·ρ(d), ties broken by Z, then by the lower index.

Rank fusion (`rrf`, the hybrid before this one) gave a near-tie of router scores the same say as a
confident lexical hit, and pushed exact-name hits down (issue #15). Here the router's say is
bounded by λ, which is fitted on the router's own training data. What the design promises, and
`tests/app/test_app_fusion.py` checks on constructed cases:

- no lexical hit at all, or a lexical top hit holding less than τ of the query's words (the index
  matches any one word: a stray word is no evidence) and none of its dates: the router's ranking;
- a router with no preference (all scores equal): the lexical ranking;
- two lexically found documents whose L differ by more than λ keep their lexical order, so a
  lexical top hit leading by more than λ stays first, and a document only the router found never
  passes one with L > λ.

The constants below come from `bench/fit_fusion.py` (its command, data and figures in
`bench/records/fusion-fit.json` and bench/NOTES.md): a grid search of recall@1/5/16 over question →
document pairs of the router's training generators (`msa_agent.train.router_data`, training split
only), never the benchmarks nor bench/devset.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class FusionParams:
    lam_max: float  # the most the router's top document can gain, in units of the best lexical score
    c0: float
    c_lex: float  # weight of the lexical top hit's lead g (negative: a peaked lexical ranking shrinks λ)
    c_cov: float  # weight of the lexical top hit's coverage of the query's words c
    c_router: float  # weight of the router's top lead h
    depth: int  # router ranks that gain anything (ρ > 0 above the depth-th)
    # a lexical top hit holding less than this share of the query's words (and none of its dates)
    # is no evidence: the router's ranking
    tau: float = 0.0

    def __post_init__(self) -> None:
        if self.depth < 2 or self.lam_max < 0:
            raise ValueError(f"fusion needs depth >= 2 and lam_max >= 0, got {self.depth}, {self.lam_max}")

    def lam(self, g: float, h: float, cov: float = 1.0) -> float:
        x = self.c0 + self.c_lex * g + self.c_cov * cov + self.c_router * h
        return self.lam_max / (1.0 + math.exp(-max(-60.0, min(60.0, x))))


# Fitted by `python bench/fit_fusion.py --work /tmp/msa-fusion --seed 0` (record:
# bench/records/fusion-fit.json): 330 training-split questions over 572 documents (185K tokens);
# 2,310 of 6,481 settings were no worse than lexical alone in any family at any k on both halves,
# 9 tied at the best mean recall, MRR picked this one. λ = 0.75·σ(−3 − 3c + 3h): the router gets
# its say when it is peaked (h) and the lexical top hit holds few of the query's words (c); the
# lexical lead g did not matter once those two were in. τ = 0.2: the largest coverage threshold
# that changes no training figure (3 of 330 training questions fall below it).
FITTED = FusionParams(lam_max=0.75, c0=-3.0, c_lex=0.0, c_cov=-3.0, c_router=3.0, depth=8, tau=0.2)


def lexical_vector(order: list[int], scores: list[float] | None, n: int) -> torch.Tensor:
    """L (n,) fp32: each lexically found document's score over the best one, 0 elsewhere. Without
    scores (a caller that has only the ranking), the document at rank r (0-based) gets 1 / (1 + r)."""
    out = torch.zeros(n)
    if not order:
        return out
    idx = torch.as_tensor(order, dtype=torch.long)
    if scores:
        s = torch.as_tensor(scores, dtype=torch.float32)
        top = float(s.max())
        vals = s / top if top > 0 else torch.ones_like(s)
        vals = vals.clamp(0.0, 1.0)
    else:
        vals = 1.0 / (1.0 + torch.arange(len(order), dtype=torch.float32))
    out[idx] = vals
    return out


def standardise(x: torch.Tensor) -> torch.Tensor:
    """z-scores of one layer's document scores (n,) fp32; all zero when the scores are flat."""
    x = x.float()
    if x.numel() < 2:
        return torch.zeros_like(x)
    sd = x.std()
    if not torch.isfinite(sd) or float(sd) <= 1e-12:
        return torch.zeros_like(x)
    return (x - x.mean()) / sd


def router_lift(z: torch.Tensor, depth: int) -> tuple[torch.Tensor, float]:
    """(ρ (n,), h): each document's share of the router's top lead over its depth-th document (over
    its last when there are no more than depth), and the router's top lead over its second (0 for
    a single document)."""
    n = z.numel()
    if n == 0:
        return z.clone(), 0.0
    top = torch.topk(z, min(n, depth)).values
    h = float(top[0] - top[1]) if top.numel() > 1 else 0.0
    ref = top[-1] if n > depth else z.min()
    span = float(top[0] - ref)
    if span <= 1e-12:
        return torch.zeros_like(z), h
    return ((z - ref) / span).clamp(0.0, 1.0), h


def lexical_lead(lex: torch.Tensor) -> float:
    """g = 1 − L₍₂₎: how far the lexical top hit leads the second (1 when it is alone)."""
    if lex.numel() < 2:
        return 1.0
    return float(1.0 - torch.topk(lex, 2).values[1])


def lexical_words(text: str) -> set[str]:
    """The words the lexical index matches a query by (its tokens, less its stop words)."""
    from msa_agent.store.store import _STOP, _WORD

    return {w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 1}


def coverage(query: str, text: str, phrases: Sequence[str] = ()) -> float:
    """c: the share of the query's words that a document's text (with its path and title) holds;
    1 for a query without words, and for a document holding one of `phrases` (the word sequences
    the lexical index finds the query's dates by, `ask.date_phrases`: "2013 07 04")."""
    from msa_agent.store.store import _WORD

    q = lexical_words(query)
    if not q:
        return 1.0
    if phrases:
        words = " " + " ".join(_WORD.findall(text.lower())) + " "
        if any(f" {' '.join(_WORD.findall(ph.lower()))} " in words for ph in phrases if _WORD.findall(ph)):
            return 1.0
    return len(q & lexical_words(text)) / len(q)


def fuse(lex: torch.Tensor, z: torch.Tensor, p: FusionParams = FITTED, cov: float = 1.0) -> tuple[torch.Tensor, float]:
    """(fused scores (n,), λ) for lexical scores L (n,), standardised router scores Z (n,) and the
    lexical top hit's coverage of the query (1 when unknown: the lexical ranking is trusted)."""
    rho, h = router_lift(z, p.depth)
    found = lex.numel() > 0 and float(lex.max()) > 0 and cov >= p.tau
    if not found:
        lex = torch.zeros_like(lex)
    lam = p.lam(lexical_lead(lex), h, cov) if found else p.lam_max  # nothing found: L ≡ 0, the router's order
    return lex + lam * rho, lam


def fused_order(lex: torch.Tensor, z: torch.Tensor, k: int, p: FusionParams = FITTED,
                cov: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The k best documents by fused score, best first, ties broken by Z then the lower index:
    (indices (k,), fused scores (k,))."""
    f, _ = fuse(lex, z, p, cov)
    n = f.numel()
    k = min(k, n)
    by_z = torch.sort(z, descending=True, stable=True).indices  # (n,) router order, ties by index
    order = by_z[torch.sort(f[by_z], descending=True, stable=True).indices]  # (n,)
    top = order[:k]
    return top, f[top]
