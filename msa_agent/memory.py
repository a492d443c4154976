"""The memory as routing sees it: live documents, their pooled routing keys per router layer,
and the selectors that sparse generation calls at each router layer.

Routing modes:
- `msa`: each router layer picks its own top-k from the model's routing scores;
- `lexical`: BM25 over the same documents picks one top-k for every layer;
- `hybrid`: per layer, reciprocal-rank fusion of BM25 and that layer's routing scores.
`auto` is `hybrid` when the model has a trained (decoupled) router and `lexical` otherwise: the
backbone's own attention keys route at chance (shared/reference/router-feasibility.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from msa_agent.kernels.routing import chunk_scores, doc_scores, prepare_keys
from msa_agent.model.config import Config
from msa_agent.store import Store
from msa_agent.store.schema import DocumentRow

MODES = ("auto", "msa", "lexical", "hybrid")
RRF_K = 60.0


def resolve_mode(mode: str, cfg: Config) -> str:
    if mode not in MODES:
        from msa_agent.errors import BadInput

        raise BadInput(f"unknown routing mode {mode!r} (one of {', '.join(MODES)})")
    if mode == "auto":
        return "hybrid" if cfg.msa.decouple_router else "lexical"
    return mode


class MemoryIndex:
    """Live documents of a collection with their routing keys, loaded from the store's segments."""

    def __init__(self, store: Store, collection: str | None, cfg: Config) -> None:
        self.store = store
        self.collection = collection
        self.cfg = cfg
        stored_layers = [int(x) for x in store.manifest.get("router_layers", "").split(",") if x]
        if stored_layers and stored_layers != cfg.router_layers:
            from msa_agent.errors import FingerprintMismatch

            raise FingerprintMismatch(f"{store.path}: built with router layers {stored_layers}, model has {cfg.router_layers}")
        self.layer_pos = {layer: i for i, layer in enumerate(cfg.router_layers)}
        self.docs: list[DocumentRow] = store.live_documents(collection)
        self.doc_index = {d.id: i for i, d in enumerate(self.docs)}
        counts = [d.n_chunks for d in self.docs]
        self.chunk_doc = torch.repeat_interleave(torch.arange(len(self.docs)), torch.tensor(counts, dtype=torch.long)) \
            if self.docs else torch.zeros(0, dtype=torch.long)  # (N,)
        self._keys: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.docs)

    @property
    def n_chunks(self) -> int:
        return int(self.chunk_doc.numel())

    def routing_keys(self, layer: int) -> torch.Tensor:
        """(N, Hk, D) fp32 routing keys of every live chunk for one router layer, prepared for
        scoring (normalised for cosine routing); loaded once from the memory-mapped segments."""
        keys = self._keys.get(layer)
        if keys is None:
            pos = self.layer_pos[layer]
            parts = []
            for d in self.docs:
                seg = self.store.segment(d.segment_id).routing_keys()
                parts.append(seg[pos, d.chunk_start : d.chunk_start + d.n_chunks])
            arr = np.concatenate(parts) if parts else np.zeros((0, self.cfg.n_kv_head, self.cfg.head_dim), np.float16)
            keys = self._keys[layer] = prepare_keys(torch.from_numpy(arr.astype(np.float32)), self.cfg.msa.cosine)
        return keys

    def load_all_keys(self) -> None:
        for layer in self.cfg.router_layers:
            self.routing_keys(layer)

    def doc_scores(self, layer: int, q_r: torch.Tensor) -> torch.Tensor:
        """Routing score of every live document (n_docs,) at one router layer for queries q_r (H, S, D)."""
        m = self.cfg.msa
        cs = chunk_scores(q_r, self.routing_keys(layer), head_reduce=m.head_reduce_method,
                          query_reduce=m.query_reduce_method, cosine=m.cosine, keys_prepared=True)
        return doc_scores(cs, self.chunk_doc, len(self.docs), m.chunk_reduce_method)

    def fetch(self, layer: int, doc_indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled content K̄, V̄ (Hk, M, D) of the given documents at one router layer."""
        pos = self.layer_pos[layer]
        ks, vs = [], []
        for i in doc_indices:
            d = self.docs[i]
            seg = self.store.segment(d.segment_id)
            ks.append(seg.k[pos, d.chunk_start : d.chunk_start + d.n_chunks])
            vs.append(seg.v[pos, d.chunk_start : d.chunk_start + d.n_chunks])
        Hk, D = self.cfg.n_kv_head, self.cfg.head_dim
        k = torch.from_numpy(np.concatenate(ks).astype(np.float32)) if ks else torch.zeros(0, Hk, D)
        v = torch.from_numpy(np.concatenate(vs).astype(np.float32)) if vs else torch.zeros(0, Hk, D)
        return k.transpose(0, 1), v.transpose(0, 1)  # (Hk, M, D) each


def rrf(rankings: list[tuple[list[int], float]], n: int) -> torch.Tensor:
    """Weighted reciprocal-rank fusion of several rankings of document indices into scores (n,)."""
    out = torch.zeros(n)
    for order, weight in rankings:
        for rank, i in enumerate(order):
            out[i] += weight / (RRF_K + rank + 1)
    return out


@dataclass
class LayerChoice:
    layer: int
    docs: list[int]
    scores: list[float]


@dataclass
class RecordingSelector:
    """A MemorySelector that routes in the given mode and records each layer's choice.

    `lexical` is the BM25 ranking of document indices (best first) for the current query text;
    `restrict` limits routing to a subset of documents (e.g. those the caller allows).
    """

    memory: MemoryIndex
    mode: str
    top_k: int
    lexical: list[int] = field(default_factory=list)
    fuse_weight_lexical: float = 1.0
    attend_memory: bool = True
    choices: list[LayerChoice] = field(default_factory=list)

    def select(self, layer: int, q_r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mem = self.memory
        n = len(mem)
        k = min(self.top_k, n)
        if k == 0:
            Hk, D = mem.cfg.n_kv_head, mem.cfg.head_dim
            self.choices.append(LayerChoice(layer, [], []))
            return torch.zeros(Hk, 0, D), torch.zeros(Hk, 0, D)
        if self.mode == "lexical":
            docs = self.lexical[:k]
            scores = [1.0 / (RRF_K + r + 1) for r in range(len(docs))]
        else:
            s = mem.doc_scores(layer, q_r)  # (n,)
            if self.mode == "hybrid":
                order = torch.argsort(s, descending=True).tolist()
                s = rrf([(self.lexical, self.fuse_weight_lexical), (order, 1.0)], n)
            top = torch.topk(s, k)
            docs, scores = top.indices.tolist(), top.values.tolist()
        self.choices.append(LayerChoice(layer, docs, scores))
        if not self.attend_memory:
            Hk, D = mem.cfg.n_kv_head, mem.cfg.head_dim
            return torch.zeros(Hk, 0, D), torch.zeros(Hk, 0, D)
        return mem.fetch(layer, docs)

    def combined(self) -> list[tuple[int, float]]:
        """One ranking over all router layers (reciprocal-rank fusion of the layers' choices)."""
        if self.mode == "lexical":
            return [(i, 1.0 / (RRF_K + r + 1)) for r, i in enumerate(self.lexical)]
        agg: dict[int, float] = {}
        for ch in self.choices:
            for rank, i in enumerate(ch.docs):
                agg[i] = agg.get(i, 0.0) + 1.0 / (RRF_K + rank + 1)
        n_layers = max(1, len(self.choices))
        return sorted(((i, s / n_layers) for i, s in agg.items()), key=lambda t: -t[1])
