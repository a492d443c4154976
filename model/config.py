"""Model configuration: plain dataclasses, no torch.

`Config.from_hf` reads an HF `config.json` (Llama, Qwen3, and the reference MSA format with
`model_type: "msa"` and an `msa_config` block); `to_hf` writes one back.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REDUCE_METHODS = {"mean", "max"}
QUERY_REDUCE_METHODS = {"mean", "max", "last"}


class ConfigError(ValueError):
    """A model configuration that msa cannot run."""


def parse_router_layers(spec: Any, n_layer: int) -> list[int]:
    """Router layer indices from the reference's forms: "18,19,...", "all", a list, or None.

    None means the upper half of the model, as the paper does.
    """
    if spec is None or spec == "":
        return list(range(n_layer // 2, n_layer))
    if spec == "all":
        return list(range(n_layer))
    if isinstance(spec, str):
        spec = [int(s) for s in spec.replace(" ", "").split(",") if s]
    layers = sorted({int(i) for i in spec})
    if not layers or layers[0] < 0 or layers[-1] >= n_layer:
        raise ConfigError(f"router layers {layers} outside 0..{n_layer - 1}")
    return layers


@dataclass
class MSAConfig:
    """The reference's `msa_config` fields, with our defaults for an untrained backbone."""

    router_layer_idx: list[int] | str | None = None
    pooling_kernel_size: int = 64
    top_k_docs: int = 16
    head_reduce_method: str = "mean"
    query_reduce_method: str = "max"
    chunk_reduce_method: str = "max"
    decouple_router: bool = False
    aux_loss_method: str = "INFONCE_DECOUPLE"
    # The reference normalises router q/k at inference only when aux_loss_method == "INFONCE"
    # exactly; None keeps that rule, True/False overrides it.
    normalize_router: bool | None = None

    def __post_init__(self) -> None:
        if self.pooling_kernel_size < 1:
            raise ConfigError("pooling_kernel_size must be >= 1")
        if self.top_k_docs < 1:
            raise ConfigError("top_k_docs must be >= 1")
        if self.head_reduce_method not in REDUCE_METHODS:
            raise ConfigError(f"head_reduce_method {self.head_reduce_method!r} not in {REDUCE_METHODS}")
        if self.query_reduce_method not in QUERY_REDUCE_METHODS:
            raise ConfigError(f"query_reduce_method {self.query_reduce_method!r} not in {QUERY_REDUCE_METHODS}")
        if self.chunk_reduce_method not in REDUCE_METHODS:
            raise ConfigError(f"chunk_reduce_method {self.chunk_reduce_method!r} not in {REDUCE_METHODS}")

    @property
    def cosine(self) -> bool:
        if self.normalize_router is not None:
            return self.normalize_router
        return self.aux_loss_method == "INFONCE"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MSAConfig:
        known = {f for f in cls.__dataclass_fields__}
        kw = {k: v for k, v in d.items() if k in known}
        if "top_k_docs" not in kw and "doc_top_k" in d:
            kw["top_k_docs"] = d["doc_top_k"]
        return cls(**kw)


@dataclass
class Config:
    """Decoder geometry. Derived fields are filled in `__post_init__`."""

    arch: str = "llama"  # "llama" | "qwen3"
    vocab_size: int = 49152
    n_layer: int = 30
    n_embd: int = 576
    n_head: int = 9
    n_kv_head: int = 3
    head_dim: int = 0  # 0: n_embd // n_head
    intermediate_size: int = 1536
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5
    tie_word_embeddings: bool = True
    max_position_embeddings: int = 8192
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    attention_bias: bool = False
    model_type: str = ""  # as read from config.json; "msa" marks the reference checkpoint format
    msa: MSAConfig = field(default_factory=MSAConfig)
    # derived
    qk_norm: bool = field(init=False, default=False)
    router_layers: list[int] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        if self.arch not in ("llama", "qwen3"):
            raise ConfigError(f"unsupported architecture {self.arch!r} (llama or qwen3)")
        if not self.head_dim:
            self.head_dim = self.n_embd // self.n_head
        if self.n_head % self.n_kv_head:
            raise ConfigError(f"n_head {self.n_head} is not a multiple of n_kv_head {self.n_kv_head}")
        self.qk_norm = self.arch == "qwen3"
        self.router_layers = parse_router_layers(self.msa.router_layer_idx, self.n_layer)

    @property
    def group_size(self) -> int:
        return self.n_head // self.n_kv_head

    @property
    def last_router_layer(self) -> int:
        return self.router_layers[-1]

    @classmethod
    def from_hf(cls, d: dict[str, Any]) -> Config:
        mt = d.get("model_type", "llama")
        arch = {"llama": "llama", "qwen3": "qwen3", "msa": "qwen3", "mistral": "llama"}.get(mt)
        if arch is None:
            raise ConfigError(f"unsupported model_type {mt!r}")
        rs = d.get("rope_scaling") or d.get("rope_parameters")
        if isinstance(rs, dict) and rs.get("rope_type", rs.get("type", "default")) not in ("default", None):
            raise ConfigError(f"unsupported rope scaling {rs.get('rope_type', rs.get('type'))!r}")
        theta = d.get("rope_theta")
        if theta is None and isinstance(rs, dict):
            theta = rs.get("rope_theta")
        msa = MSAConfig.from_dict(d.get("msa_config") or {})
        return cls(
            arch=arch,
            vocab_size=d["vocab_size"],
            n_layer=d["num_hidden_layers"],
            n_embd=d["hidden_size"],
            n_head=d["num_attention_heads"],
            n_kv_head=d.get("num_key_value_heads", d["num_attention_heads"]),
            head_dim=d.get("head_dim") or 0,
            intermediate_size=d["intermediate_size"],
            rope_theta=float(theta or 10000.0),
            rms_norm_eps=d.get("rms_norm_eps", 1e-6),
            tie_word_embeddings=d.get("tie_word_embeddings", True),
            max_position_embeddings=d.get("max_position_embeddings", 8192),
            bos_token_id=d.get("bos_token_id"),
            eos_token_id=d.get("eos_token_id"),
            attention_bias=d.get("attention_bias", False),
            model_type=mt,
            msa=msa,
        )

    @classmethod
    def from_file(cls, path: str | Path) -> Config:
        return cls.from_hf(json.loads(Path(path).read_text()))

    def to_hf(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "model_type": "msa" if self.model_type == "msa" else "qwen3" if self.arch == "qwen3" else "llama",
            "architectures": ["Qwen3ForCausalLM" if self.arch == "qwen3" else "LlamaForCausalLM"],
            "vocab_size": self.vocab_size,
            "num_hidden_layers": self.n_layer,
            "hidden_size": self.n_embd,
            "num_attention_heads": self.n_head,
            "num_key_value_heads": self.n_kv_head,
            "head_dim": self.head_dim,
            "intermediate_size": self.intermediate_size,
            "rope_theta": self.rope_theta,
            "rms_norm_eps": self.rms_norm_eps,
            "tie_word_embeddings": self.tie_word_embeddings,
            "max_position_embeddings": self.max_position_embeddings,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_id,
            "attention_bias": self.attention_bias,
            "hidden_act": "silu",
        }
        msa = asdict(self.msa)
        msa["router_layer_idx"] = ",".join(str(i) for i in self.router_layers)
        d["msa_config"] = msa
        return d
