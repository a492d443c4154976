"""The packed encoder against its reference, `MSAModel.encode` (padded batches): the same pooled
K, V and routing keys for every document, whatever the pack layout."""

from __future__ import annotations

import pytest
import torch

from msa_agent.model.packed import PackedEncoder, chunk_means, make_pack, plan_packs
from msa_agent.kernels.pooling import chunk_mean_pool


def _docs(lengths: list[int], seed: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 128, (n,), generator=g).tolist() for n in lengths]


def _per_doc(enc, n_chunks):
    out, at = [], 0
    for c in n_chunks:
        out.append(({i: t[at:at + c] for i, t in enc.k.items()}, {i: t[at:at + c] for i, t in enc.v.items()},
                    {i: t[at:at + c] for i, t in enc.rk.items()}))
        at += c
    return out


def test_plan_packs_fits_and_covers_every_document():
    lengths = [5, 17, 3, 30, 9, 9, 1, 12]
    packs = plan_packs(lengths, 20)
    assert sorted(i for p in packs for i in p) == list(range(len(lengths)))
    for p in packs:
        total = sum(lengths[i] for i in p)
        assert total <= 20 or len(p) == 1  # only an oversized document may overflow, alone


def test_make_pack_layout():
    docs = _docs([5, 3], seed=0)
    pack = make_pack(docs, [1, 0], P=2, pack_tokens=12)
    assert pack.n_tokens == 12 and pack.lengths == [3, 5] and pack.n_chunks == [2, 3]
    assert pack.cu_seqlens.tolist() == [0, 3, 8, 12]
    assert pack.positions.tolist() == [0, 1, 2, 0, 1, 2, 3, 4, 0, 1, 2, 3]
    assert pack.chunk_id.tolist() == [0, 0, 1, 2, 2, 3, 3, 4, 5, 5, 5, 5]
    assert pack.chunk_count.tolist() == [2, 1, 2, 2, 1, 4]
    assert pack.ids[:3].tolist() == docs[1] and pack.ids[3:8].tolist() == docs[0]


def test_chunk_means_match_padded_pooling():
    g = torch.Generator().manual_seed(3)
    lengths = [7, 2, 11]
    P, Hk, D = 3, 2, 5
    x = torch.randn(len(lengths), Hk, max(lengths), D, generator=g)
    ref = chunk_mean_pool(x, torch.tensor(lengths), P)
    stream = torch.cat([x[b, :, :n].transpose(0, 1) for b, n in enumerate(lengths)])  # (T, Hk, D)
    chunk_id = torch.cat([torch.arange(n) // P + sum((m + P - 1) // P for m in lengths[:b])
                          for b, n in enumerate(lengths)])
    stream = torch.cat([stream, torch.randn(4, Hk, D, generator=g)])  # pad tokens go to the dump slot
    N = ref.shape[0]
    chunk_id = torch.cat([chunk_id, torch.full((4,), N)])
    torch.testing.assert_close(chunk_means(stream, chunk_id, N), ref, atol=1e-6, rtol=1e-6)
    counts = torch.bincount(chunk_id, minlength=N + 1)
    torch.testing.assert_close(chunk_means(stream, chunk_id, N, counts), ref, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("arch", ["llama", "qwen3"])
@pytest.mark.parametrize("decouple", [False, True], ids=["coupled", "decoupled"])
def test_packed_encode_equals_padded_encode(make_model, arch, decouple):
    P = 4
    model = make_model(arch=arch, seed=11, n_layer=4, router="1,3", P=P, decouple=decouple)
    lengths = [13, 1, 40, 7, 22, 4, 31]
    docs = _docs(lengths, seed=5)
    ref = [_per_doc(model.encode([d]), [(len(d) + P - 1) // P])[0] for d in docs]
    enc = PackedEncoder(model, backend="dense", pack_tokens=48)
    seen = set()
    for index, out in enc.encode_batches(docs):
        assert out.n_tokens == [lengths[i] for i in index]
        for i, (k, v, rk) in zip(index, _per_doc(out, out.n_chunks)):
            seen.add(i)
            rk_ref = ref[i][2]
            for layer in (1, 3):
                torch.testing.assert_close(k[layer], ref[i][0][layer], atol=1e-5, rtol=1e-5)
                torch.testing.assert_close(v[layer], ref[i][1][layer], atol=1e-5, rtol=1e-5)
                if decouple:
                    torch.testing.assert_close(rk[layer], rk_ref[layer], atol=1e-5, rtol=1e-5)
            assert sorted(rk) == ([1, 3] if decouple else [])
    assert seen == set(range(len(docs)))


def test_packed_rejects_empty_documents_and_unknown_backends(make_model):
    model = make_model()
    with pytest.raises(ValueError, match="empty"):
        list(PackedEncoder(model, backend="dense").encode_batches([[1, 2], []]))
    with pytest.raises(ValueError, match="backend"):
        PackedEncoder(model, backend="flash9")
    with pytest.raises(ValueError, match="CUDA"):
        PackedEncoder(model, backend="varlen")


@pytest.mark.requires_cuda
@pytest.mark.parametrize("compile", [False, True], ids=["eager", "compiled"])
def test_varlen_backend_matches_dense_on_gpu(make_model, compile):
    P = 4
    model = make_model(arch="llama", seed=12, n_layer=4, router="1,3", P=P, decouple=True).cuda().to(torch.bfloat16)
    model.inv_freq = model.inv_freq.float()
    lengths = [13, 1, 40, 7, 22, 4, 31, 64, 9]
    docs = _docs(lengths, seed=6)
    dense = {tuple(i): o for i, o in PackedEncoder(model, backend="dense", pack_tokens=64).encode_batches(docs)}
    fast = {tuple(i): o for i, o in PackedEncoder(model, backend="varlen", pack_tokens=64,
                                                  compile=compile).encode_batches(docs)}
    assert dense.keys() == fast.keys()
    for key in dense:
        for layer in (1, 3):
            torch.testing.assert_close(fast[key].k[layer], dense[key].k[layer], atol=2e-2, rtol=2e-2)
            torch.testing.assert_close(fast[key].v[layer], dense[key].v[layer], atol=2e-2, rtol=2e-2)
            torch.testing.assert_close(fast[key].rk[layer], dense[key].rk[layer], atol=2e-2, rtol=2e-2)


def test_encode_to_host_stacks_router_layers_in_order(make_model):
    P = 4
    model = make_model(arch="llama", seed=13, n_layer=4, router="1,3", P=P, decouple=True)
    docs = _docs([9, 30, 2, 17], seed=8)
    enc = PackedEncoder(model, backend="dense", pack_tokens=40)
    by_pack = {tuple(i): o for i, o in enc.encode_batches(docs)}
    for index, n_chunks, host in enc.encode_to_host(docs):
        ref = by_pack[tuple(index)]
        assert n_chunks == ref.n_chunks and sorted(host) == ["k", "rk", "v"]
        for kind, per_layer in (("k", ref.k), ("v", ref.v), ("rk", ref.rk)):
            assert host[kind].dtype == torch.float16 and host[kind].shape[0] == 2
            torch.testing.assert_close(host[kind], torch.stack([per_layer[1], per_layer[3]]).half())
