"""Our decoder against transformers' LlamaForCausalLM / Qwen3ForCausalLM as the oracle:
random tiny configs, saved with save_pretrained, loaded with our load_model, logits compared."""

from __future__ import annotations

import pytest
import torch

from msa_agent.model.model import KVCache
from msa_agent.model.weights import load_model

transformers = pytest.importorskip("transformers")

COMMON = dict(
    vocab_size=128,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
    rms_norm_eps=1e-5,
    rope_theta=50000.0,
)


def _hf_model(kind: str, tie: bool, seed: int):
    if kind == "llama":
        cfg = transformers.LlamaConfig(**COMMON, tie_word_embeddings=tie)
        cls = transformers.LlamaForCausalLM
    else:
        # Qwen3: q/k norm, and an explicit head_dim that is not hidden / heads (64 / 4 = 16).
        cfg = transformers.Qwen3Config(**COMMON, head_dim=24, tie_word_embeddings=tie)
        cls = transformers.Qwen3ForCausalLM
    torch.manual_seed(seed)
    model = cls(cfg)
    with torch.no_grad():
        # HF's N(0, 0.02) init leaves logits near zero, where any error hides under atol.
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
            elif "embed" in name or "lm_head" in name:
                p.normal_(0.0, 1.0)
            else:
                p.normal_(0.0, p.shape[-1] ** -0.5)
    return model.eval()


CASES = [("llama", True), ("llama", False), ("qwen3", True), ("qwen3", False)]


@pytest.mark.parametrize("kind,tie", CASES, ids=[f"{k}-{'tied' if t else 'untied'}" for k, t in CASES])
def test_logits_match_transformers(tmp_path, kind, tie):
    hf = _hf_model(kind, tie, seed=1)
    hf.save_pretrained(tmp_path, safe_serialization=True)
    ours = load_model(tmp_path)

    assert ours.cfg.arch == kind
    assert ours.cfg.tie_word_embeddings is tie
    assert ours.cfg.rope_theta == 50000.0
    if kind == "qwen3":
        assert ours.cfg.head_dim == 24 and ours.cfg.qk_norm

    g = torch.Generator().manual_seed(2)
    ids = torch.randint(0, 128, (2, 19), generator=g)
    with torch.no_grad():
        expected = hf(input_ids=ids).logits  # (B, T, V)
        got = ours(ids)  # (B, T, V)
    assert expected.abs().max() > 1.0  # the comparison is not between near-zero tensors
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)

    # The same logits when the sequence is fed in two pieces through our KV cache.
    cache = KVCache(ours.cfg.n_layer)
    with torch.no_grad():
        first = ours(ids[:, :11], cache=cache)
        second = ours(ids[:, 11:], cache=cache)
    torch.testing.assert_close(torch.cat([first, second], 1), expected, atol=1e-4, rtol=1e-4)


def test_router_projectors_load_from_a_router_file(tmp_path):
    from safetensors.torch import save_file

    from msa_agent.model.config import MSAConfig
    from msa_agent.model.weights import ModelNotFound

    hf = _hf_model("qwen3", True, seed=3)
    hf.save_pretrained(tmp_path / "base", safe_serialization=True)
    msa = MSAConfig(router_layer_idx="1,2", decouple_router=True, pooling_kernel_size=4)
    with pytest.raises(ModelNotFound, match="router_q_proj"):
        load_model(tmp_path / "base", msa=msa)

    g = torch.Generator().manual_seed(0)
    router = {}
    for i in (1, 2):
        router[f"model.layers.{i}.self_attn.router_q_proj.0.weight"] = torch.randn(4 * 24, 64, generator=g)
        router[f"model.layers.{i}.self_attn.router_k_proj.0.weight"] = torch.randn(2 * 24, 64, generator=g)
    save_file(router, str(tmp_path / "router.safetensors"))
    ours = load_model(tmp_path / "base", msa=msa, router_file=tmp_path / "router.safetensors")
    assert ours.cfg.router_layers == [1, 2] and ours.cfg.msa.decouple_router
    for i in (1, 2):
        attn = ours.layers[i].self_attn
        assert torch.equal(attn.router_q_proj[0].weight, router[f"model.layers.{i}.self_attn.router_q_proj.0.weight"])
        assert torch.equal(attn.router_k_proj[0].weight, router[f"model.layers.{i}.self_attn.router_k_proj.0.weight"])
    assert ours.layers[0].self_attn.router_q_proj is None

    # The router does not touch the language model.
    ids = torch.randint(0, 128, (1, 9), generator=g)
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf(input_ids=ids).logits, atol=1e-4, rtol=1e-4)
