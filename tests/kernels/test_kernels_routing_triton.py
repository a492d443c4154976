"""The fused Triton routing kernel against the plain-PyTorch reference (GPU only)."""

from __future__ import annotations

import pytest
import torch

from msa_agent.kernels import routing_triton
from msa_agent.kernels.routing import chunk_scores, doc_scores

pytestmark = pytest.mark.requires_cuda


def test_supports_only_what_the_kernel_implements() -> None:
    assert routing_triton.supports("mean", "max", "max") and routing_triton.supports("mean", "mean", "max")
    assert not routing_triton.supports("max", "max", "max") and not routing_triton.supports("mean", "last", "max")


@pytest.mark.parametrize("H,Hk,D", [(9, 3, 64), (32, 8, 128), (4, 2, 16)])
@pytest.mark.parametrize("S", [1, 7, 33])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("query_reduce", ["max", "mean"])
@pytest.mark.parametrize("cosine", [False, True])
def test_kernel_matches_reference_on_random_inputs(H, Hk, D, S, dtype, query_reduce, cosine) -> None:
    if not routing_triton.available():
        pytest.skip("needs triton and a CUDA device")
    g = torch.Generator().manual_seed(H * 1000 + S)
    N = 1237  # odd, not a multiple of the block
    n_docs = 300
    q = torch.randn(H, S, D, generator=g).cuda()
    keys = torch.randn(N, Hk, D, generator=g)
    if cosine:
        keys = torch.nn.functional.normalize(keys, dim=-1)
    keys = keys.to("cuda", dtype)
    chunk_doc = torch.sort(torch.randint(0, n_docs + 20, (N,), generator=g)).values.clamp(max=n_docs - 1).cuda()
    chunk_doc[chunk_doc == 7] = 8  # a document with no chunks
    cs = chunk_scores(q, keys.float(), head_reduce="mean", query_reduce=query_reduce, cosine=cosine, keys_prepared=True)
    ref = doc_scores(cs, chunk_doc.long(), n_docs, "max")
    out = routing_triton.route_scores_triton(q, keys, chunk_doc.int(), n_docs, query_reduce=query_reduce, cosine=cosine)
    assert torch.equal(torch.isfinite(out), torch.isfinite(ref)) and out[7] == float("-inf")
    fin = torch.isfinite(ref)
    rel = (out[fin] - ref[fin]).norm() / ref[fin].norm()
    assert rel < 1e-2  # bf16/fp16 query operands, fp32 accumulation
