"""Cached against uncached decoding, token for token, with and without memory; and what sparse
prefill does at each layer: which keys it holds, which queries it routes, which positions."""

from __future__ import annotations

import pytest
import torch

from msa_agent.model.model import KVCache, MSAModel, rope_cos_sin, sample

PREFIX = [5, 17, 99, 3]
PROMPT = [42, 7, 77, 12, 64, 1, 88]


class FixedMemory:
    """A MemorySelector that ignores the queries and returns fixed random K̄, V̄ per router
    layer, recording every call."""

    def __init__(self, model: MSAModel, M: int, seed: int = 0) -> None:
        cfg = model.cfg
        g = torch.Generator().manual_seed(seed)
        self.kv = {
            i: (torch.randn(cfg.n_kv_head, M, cfg.head_dim, generator=g),
                torch.randn(cfg.n_kv_head, M, cfg.head_dim, generator=g))
            for i in cfg.router_layers
        }
        self.calls: list[tuple[int, torch.Tensor]] = []

    def select(self, layer: int, q_r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls.append((layer, q_r.clone()))
        return self.kv[layer]


def _greedy_uncached(model: MSAModel, prefix: list[int], prompt: list[int], memory, n: int) -> list[int]:
    """Recompute everything from scratch for every new token: a fresh cache holding the prefix,
    then prompt + generated tokens in one pass over [prefix | memory | tokens]."""
    start = len(prefix) + (model.cfg.msa.top_k_docs if memory is not None else 0)
    out: list[int] = []
    with torch.no_grad():
        for _ in range(n):
            cache = KVCache(model.cfg.n_layer)
            if prefix:
                model.hidden(torch.tensor([prefix]), cache=cache)
            toks = prompt + out
            pos = torch.arange(start, start + len(toks))[None]  # (1, T)
            h = model.hidden(torch.tensor([toks]), pos, cache, memory)
            out.append(int(model.logits(h)[0, -1].argmax()))
    return out


@pytest.mark.parametrize("arch", ["llama", "qwen3"])
def test_greedy_generate_equals_full_forward_without_memory(make_model, arch):
    model = make_model(arch=arch, seed=3, tie=False)
    got = list(model.generate(PREFIX, PROMPT, None, max_new_tokens=10))

    ids = PREFIX + PROMPT
    expected: list[int] = []
    with torch.no_grad():
        for _ in range(10):
            expected.append(int(model(torch.tensor([ids + expected]))[0, -1].argmax()))
    assert got == expected
    assert len(set(got)) > 1  # not a degenerate model repeating one token


@pytest.mark.parametrize("prefix", [PREFIX, []], ids=["prefix", "no-prefix"])
@pytest.mark.parametrize("decouple", [False, True], ids=["coupled", "decoupled"])
def test_cached_decoding_with_memory_equals_recompute(make_model, prefix, decouple):
    model = make_model(arch="qwen3", seed=4, decouple=decouple, tie=False)
    mem = FixedMemory(model, M=5, seed=1)
    got = list(model.generate(prefix, PROMPT, mem, max_new_tokens=8))
    expected = _greedy_uncached(model, prefix, PROMPT, FixedMemory(model, M=5, seed=1), 8)
    assert got == expected

    # The memory matters: without it the same model says something else.
    assert got != list(model.generate(prefix, PROMPT, None, max_new_tokens=8))


def test_generate_stops_on_stop_id_and_should_stop(make_model):
    model = make_model(seed=3, tie=False)
    full = list(model.generate(PREFIX, PROMPT, None, max_new_tokens=6))
    stop = full[3]
    cut = full.index(stop)
    assert list(model.generate(PREFIX, PROMPT, None, max_new_tokens=6, stop_ids={stop})) == full[:cut]
    assert list(model.generate(PREFIX, PROMPT, None, max_new_tokens=6,
                               should_stop=lambda out: len(out) == 2)) == full[:2]


@pytest.mark.parametrize("decouple", [False, True], ids=["coupled", "decoupled"])
def test_sparse_prefill_layers_queries_and_positions(make_model, decouple):
    model = make_model(arch="qwen3", seed=5, n_layer=4, router="2,3", top_k_docs=3, decouple=decouple)
    cfg = model.cfg
    M, p, S = 5, len(PREFIX), len(PROMPT)  # M != top_k_docs: positions follow top_k_docs
    mem = FixedMemory(model, M=M)
    logits, cache, next_pos = model.prefill(PREFIX, PROMPT, mem)

    start = p + cfg.msa.top_k_docs
    assert next_pos == start + S
    assert logits.shape == (cfg.vocab_size,)

    # Router layers hold [prefix | memory | prompt], the others [prefix | prompt].
    for i in range(cfg.n_layer):
        want = p + M + S if i in cfg.router_layers else p + S
        assert cache.length(i) == want, f"layer {i}"
        assert cache.v[i].shape[2] == want
    for i in cfg.router_layers:
        mk, mv = mem.kv[i]
        torch.testing.assert_close(cache.k[i][0, :, p:p + M], mk)
        torch.testing.assert_close(cache.v[i][0, :, p:p + M], mv)

    # One select per router layer, in order, with the prompt's routing queries (H, S, D).
    assert [layer for layer, _ in mem.calls] == cfg.router_layers
    for _, q_r in mem.calls:
        assert q_r.shape == (cfg.n_head, S, cfg.head_dim)
        assert q_r.dtype == torch.float32

    # Recompute by hand what the first router layer must have seen: the layers below it do not
    # depend on memory, the prompt sits at positions start.., and the routing query is the
    # attention query (post-RoPE) or the router projector's output (no RoPE).
    r = cfg.router_layers[0]
    pos = torch.arange(start, start + S)[None]  # (1, S)
    with torch.no_grad():
        c = KVCache(cfg.n_layer)
        model.hidden(torch.tensor([PREFIX]), cache=c)
        x = model.hidden(torch.tensor([PROMPT]), pos, c, None, stop_after=r - 1)  # (1, S, C)
        attn = model.layers[r].self_attn
        h = model.layers[r].input_layernorm(x)
        cos, sin = rope_cos_sin(pos, model.inv_freq, h.dtype)
        q, k, _ = attn.qkv(h, cos, sin)
        want_q = attn.routing_queries(h, q)[0]  # (H, S, D)
    torch.testing.assert_close(mem.calls[0][1], want_q)
    torch.testing.assert_close(cache.k[r][:, :, p + M:], k)

    # Layer 0 keys depend only on tokens and positions: the prompt really is at start.. .
    with torch.no_grad():
        h0 = model.layers[0].input_layernorm(model.embed_tokens(torch.tensor([PROMPT])))
        _, k0, _ = model.layers[0].self_attn.qkv(h0, cos, sin)
        cos_p, sin_p = rope_cos_sin(torch.arange(p, p + S)[None], model.inv_freq, h0.dtype)
        _, k0_wrong, _ = model.layers[0].self_attn.qkv(h0, cos_p, sin_p)
    torch.testing.assert_close(cache.k[0][:, :, p:], k0)
    assert not torch.allclose(cache.k[0][:, :, p:], k0_wrong)


def test_prefill_without_memory_is_plain_causal_lm(make_model):
    model = make_model(seed=6)
    logits, cache, next_pos = model.prefill(PREFIX, PROMPT, None)
    assert next_pos == len(PREFIX) + len(PROMPT)
    assert all(cache.length(i) == next_pos for i in range(model.cfg.n_layer))
    with torch.no_grad():
        full = model(torch.tensor([PREFIX + PROMPT]))[0, -1]
    torch.testing.assert_close(logits, full, atol=1e-5, rtol=1e-5)


def test_sparse_generation_needs_batch_of_one(make_model):
    model = make_model(seed=6)
    with pytest.raises(ValueError, match="one question"), torch.no_grad():
        model(torch.tensor([PROMPT, PROMPT]), memory=FixedMemory(model, M=2))


def test_sample_greedy_and_nucleus():
    logits = torch.tensor([0.0, 3.0, 1.0, -2.0])
    assert sample(logits, 0.0, 1.0, None) == 1
    g = torch.Generator().manual_seed(0)
    # top_p small enough to keep only the most likely token.
    assert {sample(logits, 1.0, 0.5, g) for _ in range(20)} == {1}
    draws = {sample(logits, 1.0, 1.0, g) for _ in range(200)}
    assert {0, 1, 2} <= draws
