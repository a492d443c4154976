"""Config: parsing HF and reference MSA config.json dicts, the cosine rule, and bad values."""

from __future__ import annotations

import json

import pytest

from msa_agent.model.config import Config, ConfigError, MSAConfig, parse_router_layers


def msa_reference_dict(**msa_overrides) -> dict:
    """A config.json in the reference's format: Qwen3 geometry plus an msa_config block."""
    msa = {
        "router_layer_idx": "2,3",
        "pooling_kernel_size": 5,
        "top_k_docs": 4,
        "head_reduce_method": "mean",
        "query_reduce_method": "max",
        "chunk_reduce_method": "max",
        "decouple_router": True,
        "aux_loss_method": "INFONCE_DECOUPLE",
        "infonce_loss_temp": 0.1,
        "rewrite_position": True,
        "aux_loss": False,
        "decouple_pooling_mode": "mean",
    }
    msa.update(msa_overrides)
    return {
        "architectures": ["MSAForCausalLM"],
        "model_type": "msa",
        "vocab_size": 128,
        "num_hidden_layers": 4,
        "hidden_size": 64,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 24,
        "intermediate_size": 96,
        "rope_theta": 5000000.0,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": True,
        "max_position_embeddings": 40960,
        "bos_token_id": 151643,
        "eos_token_id": 151645,
        "torch_dtype": "bfloat16",
        "msa_config": msa,
    }


def test_from_hf_reference_msa_config():
    cfg = Config.from_hf(msa_reference_dict())
    assert cfg.arch == "qwen3" and cfg.qk_norm
    assert (cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.n_kv_head, cfg.head_dim) == (4, 64, 4, 2, 24)
    assert cfg.group_size == 2
    assert cfg.rope_theta == 5e6
    assert cfg.tie_word_embeddings is True
    assert cfg.eos_token_id == 151645
    assert cfg.router_layers == [2, 3] and cfg.last_router_layer == 3
    m = cfg.msa
    assert (m.pooling_kernel_size, m.top_k_docs) == (5, 4)
    assert (m.head_reduce_method, m.query_reduce_method, m.chunk_reduce_method) == ("mean", "max", "max")
    assert m.decouple_router is True
    assert m.aux_loss_method == "INFONCE_DECOUPLE"
    assert m.cosine is False  # the reference normalises only for "INFONCE" exactly


def test_to_hf_round_trips(tmp_path):
    cfg = Config.from_hf(msa_reference_dict())
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg.to_hf()))
    again = Config.from_file(path)
    assert again == cfg


def test_from_hf_plain_llama_defaults_router_to_upper_half():
    d = msa_reference_dict()
    del d["msa_config"], d["head_dim"]
    d["model_type"] = "llama"
    cfg = Config.from_hf(d)
    assert cfg.arch == "llama" and not cfg.qk_norm
    assert cfg.head_dim == 16  # hidden / heads
    assert cfg.router_layers == [2, 3]
    assert cfg.msa == MSAConfig()


def test_rope_theta_from_rope_parameters():
    d = msa_reference_dict()
    del d["rope_theta"]
    d["rope_parameters"] = {"rope_type": "default", "rope_theta": 123.0}
    assert Config.from_hf(d).rope_theta == 123.0


def test_doc_top_k_alias():
    d = msa_reference_dict()
    del d["msa_config"]["top_k_docs"]
    d["msa_config"]["doc_top_k"] = 7
    assert Config.from_hf(d).msa.top_k_docs == 7


@pytest.mark.parametrize(
    "method,normalize,cosine",
    [
        ("INFONCE", None, True),
        ("INFONCE_DECOUPLE", None, False),
        ("infonce", None, False),
        ("BCE", None, False),
        ("INFONCE_DECOUPLE", True, True),
        ("INFONCE", False, False),
    ],
)
def test_cosine_rule(method, normalize, cosine):
    d = msa_reference_dict(aux_loss_method=method, normalize_router=normalize)
    assert Config.from_hf(d).msa.cosine is cosine


@pytest.mark.parametrize(
    "spec,want",
    [(None, [2, 3]), ("", [2, 3]), ("all", [0, 1, 2, 3]), ("3, 1", [1, 3]), ([0, 0, 2], [0, 2])],
)
def test_parse_router_layers(spec, want):
    assert parse_router_layers(spec, 4) == want


@pytest.mark.parametrize(
    "change",
    [
        {"msa_config": {"pooling_kernel_size": 0}},
        {"msa_config": {"top_k_docs": 0}},
        {"msa_config": {"head_reduce_method": "sum"}},
        {"msa_config": {"query_reduce_method": "min"}},
        {"msa_config": {"chunk_reduce_method": "last"}},
        {"msa_config": {"router_layer_idx": "2,4"}},
        {"msa_config": {"router_layer_idx": "-1,2"}},
        {"msa_config": {"router_layer_idx": ","}},
        {"model_type": "gpt2"},
        {"rope_scaling": {"rope_type": "yarn", "factor": 4.0}},
        {"rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5}},
        {"num_key_value_heads": 3},
    ],
    ids=lambda c: next(iter(c)) + ":" + json.dumps(next(iter(c.values())))[:30],
)
def test_bad_values_raise_config_error(change):
    d = msa_reference_dict()
    for key, value in change.items():
        if key == "msa_config":
            d["msa_config"].update(value)
        else:
            d[key] = value
    with pytest.raises(ConfigError):
        Config.from_hf(d)


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)
    with pytest.raises(ConfigError, match="architecture"):
        Config(arch="gpt2")
