"""Chunk-mean pooling of per-token keys and values (the CPU path and the reference)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def chunk_mean_pool(x: torch.Tensor, lengths: torch.Tensor, P: int) -> torch.Tensor:
    """Mean-pool x (B, Hk, T, D) over chunks of P tokens of each row's first `lengths[b]` tokens.

    Chunks never cross rows (documents); a row's last chunk is averaged over its real tokens.
    Accumulates in fp32. Returns (N, Hk, D) fp32, chunks in row-major order (row, then chunk).
    """
    B, Hk, T, D = x.shape
    n_full = (T + P - 1) // P
    Tp = n_full * P
    x32 = F.pad(x.float(), (0, 0, 0, Tp - T))  # (B, Hk, Tp, D)
    lengths = lengths.to(x.device)
    mask = torch.arange(Tp, device=x.device)[None, :] < lengths[:, None]  # (B, Tp)
    x32 = x32 * mask[:, None, :, None]
    sums = x32.view(B, Hk, n_full, P, D).sum(3)  # (B, Hk, Nc, D)
    counts = mask.view(B, n_full, P).sum(-1)  # (B, Nc)
    means = sums / counts.clamp(min=1)[:, None, :, None].to(sums.dtype)  # (B, Hk, Nc, D)
    valid = counts > 0  # (B, Nc)
    return means.permute(0, 2, 1, 3)[valid]  # (N, Hk, D)
