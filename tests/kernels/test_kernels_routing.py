"""Routing scores against loops written from the definition:

score(doc) = chunk_reduce_{c in doc} query_reduce_{s} head_reduce_{h < H} sim(q[h, s], k[c, h // G])
sim = q·k / sqrt(D), or cosine.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from msa_agent.kernels.routing import chunk_scores, doc_scores, prepare_keys, route

H, HK, D = 6, 2, 8  # G = 3 query heads per kv head
REDUCE = {"mean": lambda xs: sum(xs) / len(xs), "max": max}


def sim(q: torch.Tensor, k: torch.Tensor, cosine: bool) -> float:
    q, k = q.double(), k.double()
    if cosine:
        return float(q @ k / (q.norm() * k.norm()))
    return float(q @ k) / math.sqrt(q.shape[0])


def chunk_scores_loop(q, keys, head_reduce, query_reduce, cosine) -> list[float]:
    Hq, S, _ = q.shape
    G = Hq // keys.shape[1]
    out = []
    for c in range(keys.shape[0]):
        per_query = [REDUCE[head_reduce]([sim(q[h, s], keys[c, h // G], cosine) for h in range(Hq)])
                     for s in range(S)]
        out.append(per_query[-1] if query_reduce == "last" else REDUCE[query_reduce](per_query))
    return out


def doc_scores_loop(cs: list[float], chunk_doc: list[int], n_docs: int, chunk_reduce: str) -> list[float]:
    out = []
    for d in range(n_docs):
        mine = [s for s, owner in zip(cs, chunk_doc) if owner == d]
        out.append(REDUCE[chunk_reduce](mine) if mine else float("-inf"))
    return out


def _inputs(seed: int, S: int = 5, N: int = 23, n_docs: int = 7):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(H, S, D, generator=g)
    keys = torch.randn(N, HK, D, generator=g) * 2  # norms vary: cosine and dot product differ
    chunk_doc = torch.randint(0, n_docs - 1, (N,), generator=g)  # doc n_docs-1 has no chunks
    return q, keys, chunk_doc


COMBOS = list(itertools.product(["mean", "max"], ["max", "mean", "last"], [False, True]))


@pytest.mark.parametrize("head_reduce,query_reduce,cosine", COMBOS)
def test_chunk_scores_match_loop(head_reduce, query_reduce, cosine):
    q, keys, _ = _inputs(seed=1)
    got = chunk_scores(q, keys, head_reduce=head_reduce, query_reduce=query_reduce, cosine=cosine)
    want = torch.tensor(chunk_scores_loop(q, keys, head_reduce, query_reduce, cosine), dtype=torch.float32)
    assert got.shape == (keys.shape[0],) and got.dtype == torch.float32
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cosine", [False, True])
def test_prepared_keys_give_the_same_scores(cosine):
    q, keys, _ = _inputs(seed=2)
    prepared = prepare_keys(keys, cosine)
    a = chunk_scores(q, keys, cosine=cosine)
    b = chunk_scores(q, prepared, cosine=cosine, keys_prepared=True)
    torch.testing.assert_close(a, b)
    if cosine:
        torch.testing.assert_close(prepared.norm(dim=-1), torch.ones(keys.shape[:2]))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_chunk_scores_half_inputs_score_in_fp32(dtype):
    q, keys, _ = _inputs(seed=3)
    q, keys = q.to(dtype), keys.to(dtype)
    got = chunk_scores(q, keys)
    assert got.dtype == torch.float32
    want = torch.tensor(chunk_scores_loop(q.float(), keys.float(), "mean", "max", False))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("chunk_reduce", ["max", "mean"])
def test_doc_scores_match_loop(chunk_reduce):
    g = torch.Generator().manual_seed(4)
    n_docs, N = 6, 17
    cs = torch.randn(N, generator=g)
    chunk_doc = torch.tensor([0, 0, 2, 1, 2, 2, 4, 0, 1, 4, 4, 2, 0, 1, 4, 4, 2])  # docs 3 and 5: none
    got = doc_scores(cs, chunk_doc, n_docs, chunk_reduce)
    want = torch.tensor(doc_scores_loop(cs.tolist(), chunk_doc.tolist(), n_docs, chunk_reduce))
    assert torch.isinf(got[3]) and got[3] < 0 and torch.isinf(got[5]) and got[5] < 0
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("head_reduce,query_reduce,chunk_reduce,cosine",
                         list(itertools.product(["mean", "max"], ["max", "mean", "last"], ["max", "mean"],
                                                [False, True])))
def test_route_matches_loop(head_reduce, query_reduce, chunk_reduce, cosine):
    n_docs = 7
    q, keys, chunk_doc = _inputs(seed=5, S=3, N=21, n_docs=n_docs)
    ds, top_scores, top_idx = route(q, keys, chunk_doc, n_docs, 4, head_reduce=head_reduce,
                                    query_reduce=query_reduce, chunk_reduce=chunk_reduce, cosine=cosine)
    cs = chunk_scores_loop(q, keys, head_reduce, query_reduce, cosine)
    want = doc_scores_loop(cs, chunk_doc.tolist(), n_docs, chunk_reduce)
    torch.testing.assert_close(ds, torch.tensor(want), atol=1e-5, rtol=1e-5)
    assert ds[n_docs - 1] == float("-inf")
    want_top = sorted(range(n_docs), key=lambda d: want[d], reverse=True)[:4]
    assert top_idx.tolist() == want_top
    torch.testing.assert_close(top_scores, torch.tensor([want[d] for d in want_top]), atol=1e-5, rtol=1e-5)


def test_route_top_k_larger_than_doc_count():
    q, keys, _ = _inputs(seed=6, N=5)
    chunk_doc = torch.tensor([0, 1, 1, 2, 0])
    ds, top_scores, top_idx = route(q, keys, chunk_doc, 3, 16)
    assert top_idx.shape == (3,)
    assert sorted(top_idx.tolist()) == [0, 1, 2]


def test_gqa_maps_query_head_to_its_kv_head():
    # Only kv head 1 carries signal, and only query heads 3..5 (h // G == 1) point along it:
    # with max over heads the score is exactly theirs.
    q = torch.zeros(H, 1, D)
    keys = torch.zeros(2, HK, D)
    keys[0, 1, 0] = 1.0
    keys[1, 0, 0] = 1.0
    q[4, 0, 0] = 2.0
    s = chunk_scores(q, keys, head_reduce="max")
    torch.testing.assert_close(s, torch.tensor([2.0 / math.sqrt(D), 0.0]))
    s = chunk_scores(q, keys, head_reduce="mean")
    torch.testing.assert_close(s, torch.tensor([2.0 / math.sqrt(D) / H, 0.0]))
