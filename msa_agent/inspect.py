"""`msa model inspect`: what a model directory or GGUF is, as msa will run it."""

from __future__ import annotations

import json
from pathlib import Path

from msa_agent.model.config import Config, ConfigError
from msa_agent.model.tokenizer import Tokenizer
from msa_agent.model.weights import ModelNotFound, resolve_model_dir

from . import settings
from .errors import BadInput


def inspect_model(spec: str | Path | None) -> dict:
    """Geometry, router layers, pooling, top-k, stored bytes per memory token and protocol."""
    try:
        model_dir = resolve_model_dir(spec, settings.model_cache_dir())
        raw = json.loads((model_dir / "config.json").read_text())
        cfg = Config.from_hf(raw)
    except (ModelNotFound, ConfigError, json.JSONDecodeError, KeyError) as e:
        raise BadInput(f"{spec or 'default model'}: {e}") from None
    m = cfg.msa
    tok = Tokenizer(model_dir)
    router_weights = 0
    for f in sorted(model_dir.glob("*.safetensors")):
        from safetensors import safe_open

        with safe_open(str(f), framework="pt") as sf:
            router_weights += sum(1 for k in sf.keys() if ".router_q_proj." in k or ".router_k_proj." in k)
    per_chunk = len(cfg.router_layers) * (3 if m.decouple_router else 2) * cfg.n_kv_head * cfg.head_dim * 2  # fp16
    protocol = "reference" if cfg.model_type == "msa" and tok.has_retrieval_tokens else "router-loop"
    return {
        "path": str(model_dir),
        "model_type": cfg.model_type or cfg.arch,
        "architecture": cfg.arch,
        "layers": cfg.n_layer, "hidden": cfg.n_embd, "heads": cfg.n_head, "kv_heads": cfg.n_kv_head,
        "head_dim": cfg.head_dim, "vocab": cfg.vocab_size, "context": cfg.max_position_embeddings,
        "tied_embeddings": cfg.tie_word_embeddings, "qk_norm": cfg.qk_norm, "rope_theta": cfg.rope_theta,
        "router_layers": cfg.router_layers,
        "pooling_kernel_size": m.pooling_kernel_size, "top_k_docs": m.top_k_docs,
        "reduce": {"head": m.head_reduce_method, "query": m.query_reduce_method, "chunk": m.chunk_reduce_method},
        "decouple_router": m.decouple_router, "router_weight_tensors": router_weights,
        "aux_loss_method": m.aux_loss_method, "router_similarity": "cosine" if m.cosine else "dot product x D^-1/2",
        "memory_bytes_per_token": round(per_chunk / m.pooling_kernel_size, 1),
        "protocol": protocol,
        "protocol_note": (
            "trained to emit document ids: routes, generates [id]...<|object_ref_end|>, injects evidence, "
            "answers after <End-of-Retrieve>" if protocol == "reference"
            else "not trained for id generation: routing scores drive the interleave loop"
        ),
    }
