"""GGUF conversion: a tiny Llama GGUF written with gguf's GGUFWriter (F32 tensors, q/k rows
permuted as llama.cpp's convert script does, a byte-level BPE vocabulary with ChatML tokens),
converted back into an HF directory and loaded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from msa_agent.model import weights
from msa_agent.model.tokenizer import Tokenizer
from msa_agent.model.weights import ModelNotFound, convert_gguf, load_model, resolve_model_dir

gguf = pytest.importorskip("gguf")

N_LAYER, C, H, HK, FF = 2, 64, 4, 2, 96
D = C // H
MERGES = ["h e", "l l", "he ll", "Ġ w"]
SPECIAL = ["<|im_start|>", "<|im_end|>", "<|endoftext|>"]


def _tokens() -> list[str]:
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    b2u = bytes_to_unicode()
    return [b2u[b] for b in range(256)] + ["he", "ll", "hell", "Ġw"] + SPECIAL


def llama_cpp_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """What llama.cpp's convert_hf_to_gguf does to q/k rows (HF halves -> interleaved pairs)."""
    rows, cols = w.shape
    return w.reshape(n_head, 2, rows // n_head // 2, cols).swapaxes(1, 2).reshape(rows, cols)


def hf_weights(vocab: int, tied: bool, seed: int = 0) -> dict[str, np.ndarray]:
    """Random weights in HF names and layout, rounded to fp16 so the fp16 output is exact."""
    rng = np.random.default_rng(seed)

    def rand(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(np.float16).astype(np.float32)

    w = {
        "model.embed_tokens.weight": rand(vocab, C),
        "model.norm.weight": rng.uniform(0.5, 1.5, C).astype(np.float16).astype(np.float32),
    }
    if not tied:
        w["lm_head.weight"] = rand(vocab, C, scale=C**-0.5)
    for i in range(N_LAYER):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = rng.uniform(0.5, 1.5, C).astype(np.float16).astype(np.float32)
        w[p + "post_attention_layernorm.weight"] = rng.uniform(0.5, 1.5, C).astype(np.float16).astype(np.float32)
        w[p + "self_attn.q_proj.weight"] = rand(H * D, C, scale=C**-0.5)
        w[p + "self_attn.k_proj.weight"] = rand(HK * D, C, scale=C**-0.5)
        w[p + "self_attn.v_proj.weight"] = rand(HK * D, C, scale=C**-0.5)
        w[p + "self_attn.o_proj.weight"] = rand(C, H * D, scale=C**-0.5)
        w[p + "mlp.gate_proj.weight"] = rand(FF, C, scale=C**-0.5)
        w[p + "mlp.up_proj.weight"] = rand(FF, C, scale=C**-0.5)
        w[p + "mlp.down_proj.weight"] = rand(C, FF, scale=FF**-0.5)
    return w


GGUF_NAMES = {
    "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def write_tiny_gguf(path: Path, tied: bool) -> dict[str, np.ndarray]:
    tokens = _tokens()
    hf = hf_weights(len(tokens), tied)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(N_LAYER)
    w.add_context_length(256)
    w.add_embedding_length(C)
    w.add_feed_forward_length(FF)
    w.add_head_count(H)
    w.add_head_count_kv(HK)
    w.add_rope_freq_base(20000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(tokens)
    w.add_token_types([1] * (len(tokens) - len(SPECIAL)) + [3] * len(SPECIAL))
    w.add_token_merges(MERGES)
    w.add_bos_token_id(tokens.index("<|endoftext|>"))
    w.add_eos_token_id(tokens.index("<|im_end|>"))
    w.add_tensor("token_embd.weight", hf["model.embed_tokens.weight"])
    w.add_tensor("output_norm.weight", hf["model.norm.weight"])
    if not tied:
        w.add_tensor("output.weight", hf["lm_head.weight"])
    for i in range(N_LAYER):
        for ours, theirs in GGUF_NAMES.items():
            t = hf[f"model.layers.{i}.{ours}.weight"]
            if theirs == "attn_q":
                t = llama_cpp_permute(t, H)
            elif theirs == "attn_k":
                t = llama_cpp_permute(t, HK)
            w.add_tensor(f"blk.{i}.{theirs}.weight", np.ascontiguousarray(t))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return hf


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_convert_gguf_weights_config_and_tokenizer(tmp_path, tied):
    src = tmp_path / "tiny.gguf"
    hf = write_tiny_gguf(src, tied)
    out = tmp_path / "out"
    out.mkdir()
    convert_gguf(src, out)

    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["num_hidden_layers"], cfg["hidden_size"], cfg["num_attention_heads"],
            cfg["num_key_value_heads"], cfg["head_dim"], cfg["intermediate_size"]) == (N_LAYER, C, H, HK, D, FF)
    assert cfg["vocab_size"] == len(_tokens())
    assert cfg["rope_theta"] == 20000.0
    assert cfg["tie_word_embeddings"] is tied
    assert cfg["eos_token_id"] == _tokens().index("<|im_end|>")

    # Every tensor comes back under its HF name, un-permuted, bit for bit.
    got = load_file(str(out / "model.safetensors"))
    assert set(got) == set(hf)
    for name, want in hf.items():
        assert got[name].dtype == torch.float16
        assert torch.equal(got[name].float(), torch.from_numpy(want)), name

    # The permutation is not a no-op, so the check above means something.
    q = hf["model.layers.0.self_attn.q_proj.weight"]
    assert not np.array_equal(llama_cpp_permute(q, H), q)

    # The tokenizer came across: BPE merges apply, ChatML tokens are single ids.
    tok = Tokenizer(out)
    assert tok.vocab_size == len(_tokens())
    ids = tok.encode("hello world")
    assert ids[0] == _tokens().index("hell") and _tokens().index("Ġw") in ids
    assert tok.decode(ids) == "hello world"
    assert tok.im_end in tok.stop_ids
    assert tok.encode("<|im_start|>user\n")[0] == tok.im_start


def test_converted_gguf_runs_like_transformers(tmp_path):
    transformers = pytest.importorskip("transformers")
    src = tmp_path / "tiny.gguf"
    hf = write_tiny_gguf(src, tied=False)
    out = tmp_path / "out"
    out.mkdir()
    convert_gguf(src, out)
    ours = load_model(out)

    ref = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=len(_tokens()), hidden_size=C, intermediate_size=FF, num_hidden_layers=N_LAYER,
        num_attention_heads=H, num_key_value_heads=HK, rope_theta=20000.0, rms_norm_eps=1e-5,
        tie_word_embeddings=False,
    ))
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in hf.items()}, strict=True)
    ids = torch.randint(0, len(_tokens()), (1, 15), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), ref.eval()(input_ids=ids).logits, atol=1e-4, rtol=1e-4)


def test_convert_gguf_weights_without_tokenizer(tmp_path, monkeypatch):
    """The weight path alone, should the tokenizer converter ever change under us."""
    monkeypatch.setattr(weights, "_convert_tokenizer", lambda gguf_path, out_dir: None)
    src = tmp_path / "tiny.gguf"
    hf = write_tiny_gguf(src, tied=True)
    out = tmp_path / "out"
    out.mkdir()
    convert_gguf(src, out)
    got = load_file(str(out / "model.safetensors"))
    for name in ("model.layers.1.self_attn.q_proj.weight", "model.layers.1.self_attn.k_proj.weight"):
        assert torch.equal(got[name].float(), torch.from_numpy(hf[name]))


def test_resolve_model_dir_converts_once(tmp_path, monkeypatch):
    src = tmp_path / "tiny.gguf"
    write_tiny_gguf(src, tied=True)
    cache = tmp_path / "cache"
    first = resolve_model_dir(src, cache)
    assert (first / "model.safetensors").is_file() and (first / "config.json").is_file()
    assert json.loads((first / "source.json").read_text())["gguf"] == str(src)

    def fail(*a, **k):
        raise AssertionError("converted twice")

    monkeypatch.setattr(weights, "convert_gguf", fail)
    assert resolve_model_dir(src, cache) == first
    assert resolve_model_dir(first, cache) == first  # an HF directory is used as it is
    assert not list(cache.glob(".convert-*"))


def test_resolve_model_dir_rejects_non_models(tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(ModelNotFound):
        resolve_model_dir(tmp_path / "missing.gguf", cache)
    with pytest.raises(ModelNotFound, match="config.json"):
        resolve_model_dir(tmp_path, cache)
    other = tmp_path / "model.bin"
    other.write_bytes(b"\0")
    with pytest.raises(ModelNotFound, match="gguf"):
        resolve_model_dir(other, cache)

    # A config with no weights beside it.
    src = tmp_path / "tiny.gguf"
    write_tiny_gguf(src, tied=True)
    hf_dir = resolve_model_dir(src, cache)
    (tmp_path / "config.json").write_text((hf_dir / "config.json").read_text())
    with pytest.raises(ModelNotFound, match="safetensors"):
        load_model(tmp_path)
