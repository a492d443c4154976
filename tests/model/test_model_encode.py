"""Document encoding: a document's pooled state does not depend on its batch, and the pooled K
is the model's real post-RoPE key (what a plain forward of that document caches)."""

from __future__ import annotations

import pytest
import torch

from msa_agent.model.model import Encoded, KVCache, MSAModel


def _docs(lengths: list[int], seed: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 128, (n,), generator=g).tolist() for n in lengths]


def _slice(enc: Encoded, which: int) -> tuple[dict, dict, dict]:
    """The k, v, rk of document `which` out of a batch's concatenated chunks."""
    a = sum(enc.n_chunks[:which])
    b = a + enc.n_chunks[which]
    return ({i: t[a:b] for i, t in enc.k.items()}, {i: t[a:b] for i, t in enc.v.items()},
            {i: t[a:b] for i, t in enc.rk.items()})


def _pool(x: torch.Tensor, P: int) -> torch.Tensor:
    """Chunk means of x (Hk, T, D) by a loop: (ceil(T / P), Hk, D)."""
    T = x.shape[1]
    return torch.stack([x[:, s:s + P].float().mean(1) for s in range(0, T, P)])


@pytest.mark.parametrize("P", [4, 5])
@pytest.mark.parametrize("decouple", [False, True], ids=["coupled", "decoupled"])
def test_encode_is_batch_invariant(make_model, P, decouple):
    model = make_model(arch="qwen3", seed=7, n_layer=4, router="1,3", P=P, decouple=decouple)
    doc = _docs([13], seed=1)[0]
    longer, shorter = _docs([23, 3], seed=2)

    alone = model.encode([doc])
    assert alone.n_chunks == [(13 + P - 1) // P] and alone.n_tokens == [13]
    assert sorted(alone.k) == sorted(alone.v) == [1, 3]
    assert sorted(alone.rk) == ([1, 3] if decouple else [])

    for batch, where in (([longer, doc, shorter], 1), ([shorter, doc], 1), ([doc, longer], 0)):
        enc = model.encode(batch)
        assert enc.n_tokens == [len(d) for d in batch]
        assert enc.n_chunks == [(len(d) + P - 1) // P for d in batch]
        for i in (1, 3):
            assert enc.k[i].shape[0] == sum(enc.n_chunks)
        k, v, rk = _slice(enc, where)
        for i in (1, 3):
            torch.testing.assert_close(k[i], alone.k[i], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(v[i], alone.v[i], atol=1e-5, rtol=1e-5)
            if decouple:
                torch.testing.assert_close(rk[i], alone.rk[i], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", ["llama", "qwen3"])
def test_encoded_k_v_are_pooled_keys_of_a_plain_forward(make_model, arch):
    P = 5
    model = make_model(arch=arch, seed=8, n_layer=4, router="1,2", P=P)
    docs = _docs([11, 4, 17], seed=3)
    enc = model.encode(docs)
    assert sorted(enc.k) == [1, 2]

    for b, doc in enumerate(docs):
        cache = KVCache(model.cfg.n_layer)
        with torch.no_grad():
            model.hidden(torch.tensor([doc]), cache=cache)
        k, v, _ = _slice(enc, b)
        for i in (1, 2):
            assert k[i].dtype == torch.float32
            torch.testing.assert_close(k[i], _pool(cache.k[i][0], P), atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(v[i], _pool(cache.v[i][0], P), atol=1e-5, rtol=1e-5)


def test_encoded_routing_keys_are_pooled_router_projections(make_model):
    P = 4
    model: MSAModel = make_model(arch="qwen3", seed=9, n_layer=4, router="2,3", P=P, decouple=True)
    with torch.no_grad():
        for layer in model.layers[2:]:
            for proj in (layer.self_attn.router_q_proj, layer.self_attn.router_k_proj):
                proj[0].weight.normal_(0.0, 0.2)
    doc = _docs([9], seed=4)[0]
    enc = model.encode([doc])
    ids = torch.tensor([doc])
    for i in (2, 3):
        with torch.no_grad():
            x = model.hidden(ids, stop_after=i - 1)  # (1, T, C): the input of layer i
            h = model.layers[i].input_layernorm(x)
            cfg = model.cfg
            rk = model.layers[i].self_attn.router_k_proj(h)  # (1, T, Hk·D)
            rk = rk.view(1, len(doc), cfg.n_kv_head, cfg.head_dim).transpose(1, 2)  # (1, Hk, T, D)
        torch.testing.assert_close(enc.rk[i], _pool(rk[0], P), atol=1e-5, rtol=1e-5)
        assert not torch.allclose(enc.rk[i], enc.k[i])


def test_encode_rejects_empty_document(make_model):
    model = make_model()
    with pytest.raises(ValueError, match="empty"):
        model.encode([[1, 2, 3], []])
