"""chunk_mean_pool against a loop over documents and chunks straight from the definition."""

from __future__ import annotations

import pytest
import torch

from msa_agent.kernels.pooling import chunk_mean_pool

# fp32 inputs are summed in a different order than the loop; half inputs are upcast the same way
# on both sides, so only the summation order differs there too.
TOL = {torch.float32: 1e-6, torch.bfloat16: 1e-5, torch.float16: 1e-5}


def pool_loop(x: torch.Tensor, lengths: list[int], P: int) -> torch.Tensor:
    """(N, Hk, D) fp32: for each row, for each chunk of its real tokens, the mean."""
    out = []
    for b, n in enumerate(lengths):
        for s in range(0, n, P):
            e = min(s + P, n)
            acc = torch.zeros(x.shape[1], x.shape[3], dtype=torch.float64)
            for t in range(s, e):
                acc += x[b, :, t].double()
            out.append((acc / (e - s)).float())
    return torch.stack(out)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("P", [1, 3, 4, 7, 64])
def test_chunk_mean_pool_matches_loop(dtype, P):
    g = torch.Generator().manual_seed(P)
    lengths = [13, 1, 29, 7, 30]  # odd, a single token, a full last chunk for P=3
    B, Hk, T, D = len(lengths), 3, 31, 5  # T > max length: trailing padding in every row
    x = torch.randn(B, Hk, T, D, generator=g).to(dtype)
    # Garbage in the padding must not leak into any chunk.
    for b, n in enumerate(lengths):
        x[b, :, n:] = 1e4
    got = chunk_mean_pool(x, torch.tensor(lengths), P)
    want = pool_loop(x, lengths, P)
    assert got.dtype == torch.float32
    assert got.shape == (sum((n + P - 1) // P for n in lengths), Hk, D)
    torch.testing.assert_close(got, want, atol=TOL[dtype], rtol=TOL[dtype])


def test_chunk_mean_pool_without_padding_and_exact_multiples():
    x = torch.arange(2 * 1 * 8 * 2, dtype=torch.float32).view(2, 1, 8, 2)
    got = chunk_mean_pool(x, torch.tensor([8, 8]), 4)
    torch.testing.assert_close(got, pool_loop(x, [8, 8], 4))
    assert got.shape == (4, 1, 2)
    torch.testing.assert_close(got[0, 0], x[0, 0, :4].mean(0))


def test_chunk_mean_pool_bf16_accumulates_in_fp32():
    # 64 bf16 values whose bf16 running sum would lose the small ones.
    x = torch.full((1, 1, 64, 1), 0.01, dtype=torch.bfloat16)
    x[0, 0, 0, 0] = 256.0
    got = chunk_mean_pool(x, torch.tensor([64]), 64)
    want = (256.0 + 63 * float(torch.tensor(0.01, dtype=torch.bfloat16))) / 64
    assert abs(float(got) - want) < 1e-5
