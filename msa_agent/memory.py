"""The memory as routing sees it: live documents, their pooled routing keys per router layer,
and the selectors that sparse generation calls at each router layer.

Routing modes:
- `msa`: each router layer picks its own top-k from the model's routing scores;
- `lexical`: BM25 over the same documents picks one top-k for every layer;
- `hybrid`: per layer, the lexical scores and the router's (standardised, averaged over the layers
  so far) fused by score, the router's say bounded by how unsure the lexical ranking is
  (`msa_agent.fusion`, fitted on the router's training data);
- `rrf`: the hybrid before it, per-layer reciprocal-rank fusion of BM25 and that layer's routing
  ranking, kept for comparison (it ranked below lexical alone at rank 1: issue #15).
`auto`, the default, is `hybrid` when the model has a trained router, else `lexical`: without one
the backbone's own attention keys route at chance (shared/reference/router-feasibility.md).
Figures: bench/NOTES.md, "Fusion that never loses to its lexical half".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F

from msa_agent.fusion import FITTED, FusionParams, fused_order, lexical_vector, standardise
from msa_agent.kernels import routing_triton
from msa_agent.kernels.routing import chunk_scores, doc_scores, prepare_keys
from msa_agent.model.config import Config, MSAConfig
from msa_agent.store import Store
from msa_agent.store.schema import DocumentRow

MODES = ("auto", "msa", "lexical", "hybrid", "rrf")
RRF_K = 60.0
# rrf mode: the weight of the lexical ranking against one router layer's ranking in each layer's
# fusion (bench/NOTES.md, hybrid weighting)
HYBRID_LEXICAL_WEIGHT = 1.0
ROUTE_BLOCK = 4096  # chunks per product on the reference path; shards start at its multiples


def resolve_mode(mode: str, cfg: Config) -> str:
    if mode not in MODES:
        from msa_agent.errors import BadInput

        raise BadInput(f"unknown routing mode {mode!r} (one of {', '.join(MODES)})")
    if mode == "auto":
        return "hybrid" if cfg.msa.decouple_router else "lexical"
    return mode


def topk_docs(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k best documents of scores (n,), best first, ties broken by the lower index, so that a
    ranking is the same however the documents were split (memory-parallel routing merges shards'
    top-k with the same rule). Returns (indices, scores), both (k,) on the scores' device."""
    k = min(k, scores.numel())
    if k == 0:
        return torch.zeros(0, dtype=torch.long, device=scores.device), scores[:0]
    threshold = torch.topk(scores, k).values[-1]
    cand = torch.nonzero(scores >= threshold).flatten()  # (c,) ascending, every tie at the boundary
    order = torch.sort(scores[cand], descending=True, stable=True).indices[:k]  # (k,)
    return cand[order], scores[cand[order]]


def score_documents(q_r: torch.Tensor, keys: torch.Tensor, chunk_doc: torch.Tensor, n_docs: int,
                    m: MSAConfig, block: int = ROUTE_BLOCK) -> torch.Tensor:
    """Routing score of each document (n_docs,) fp32 for queries q_r (H, S, D) against prepared
    keys (N, Hk, D) with chunk_doc (N,): the fused Triton kernel when the keys live on a CUDA
    device and the kernel implements the config's reduce methods, else the PyTorch reference."""
    q_r = q_r.to(keys.device)
    H, _, D = q_r.shape
    if (keys.is_cuda and routing_triton.available()
            and routing_triton.supports(m.head_reduce_method, m.query_reduce_method, m.chunk_reduce_method)
            and routing_triton.supports_shapes(H, keys.shape[1], D)):
        return routing_triton.route_scores_triton(q_r, keys, chunk_doc, n_docs, query_reduce=m.query_reduce_method,
                                                  cosine=m.cosine)
    # Fixed blocks of ROUTE_BLOCK chunks: a BLAS product's rounding depends on its shape, so
    # scoring in blocks cut at multiples of ROUTE_BLOCK (callers start keys at such a multiple)
    # gives every chunk the same bits whether the memory is scored whole or in shards.
    cs = torch.cat([chunk_scores(q_r, keys[i : i + block].float(), head_reduce=m.head_reduce_method,
                                 query_reduce=m.query_reduce_method, cosine=m.cosine, keys_prepared=True)
                    for i in range(0, keys.shape[0], block)]) if keys.shape[0] else keys.new_zeros(0)  # (N,)
    return doc_scores(cs.float(), chunk_doc.long(), n_docs, m.chunk_reduce_method)


def doc_runs(docs: list[DocumentRow]) -> list[tuple[str, int, int]]:
    """Documents' chunk ranges merged into maximal runs (segment id, start, end) in order: a
    segment's documents are mostly consecutive, so gathering keys is a few slices, not one per
    document."""
    runs: list[tuple[str, int, int]] = []
    for d in docs:
        if d.n_chunks == 0:
            continue
        if runs and runs[-1][0] == d.segment_id and runs[-1][2] == d.chunk_start:
            runs[-1] = (d.segment_id, runs[-1][1], d.chunk_start + d.n_chunks)
        else:
            runs.append((d.segment_id, d.chunk_start, d.chunk_start + d.n_chunks))
    return runs


def gather_layer(store: Store, runs: list[tuple[str, int, int]], pos: int, which: str, Hk: int, D: int) -> np.ndarray:
    """(N, Hk, D) float16 rows of one router layer (`which`: routing, k or v) for the runs."""
    parts = []
    for seg_id, a, b in runs:
        seg = store.segment(seg_id)
        arr = seg.routing_keys() if which == "routing" else getattr(seg, which)
        parts.append(arr[pos, a:b])
    return np.concatenate(parts) if parts else np.zeros((0, Hk, D), np.float16)


def to_device_keys(arr: np.ndarray, device: torch.device, cosine: bool) -> torch.Tensor:
    """Stored routing keys (N, Hk, D) as scored on a device: fp32 on CPU (the reference path);
    float16 on CUDA (what the kernel reads: half the bytes), copied through pinned memory and
    normalised there for cosine routing."""
    if device.type != "cuda":
        return prepare_keys(torch.from_numpy(arr.astype(np.float32)), cosine)
    host = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float16)).pin_memory()
    keys = host.to(device, non_blocking=True)  # (N, Hk, D)
    if cosine:
        keys = F.normalize(keys.float(), dim=-1).to(torch.float16)
    return keys


class MemoryIndex:
    """Live documents of a collection with their routing keys, loaded from the store's segments.

    `device`: where routing keys live and routing runs (CPU: the PyTorch reference; CUDA: the
    fused Triton kernel, keys resident on the card, loaded once). None follows the routing
    queries: the first layer scored loads its keys where the model runs.
    """

    def __init__(self, store: Store, collection: str | None, cfg: Config,
                 device: str | torch.device | None = None) -> None:
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
        self.device = torch.device(device) if device is not None else None
        self._runs = doc_runs(self.docs)
        self._keys: dict[int, torch.Tensor] = {}
        self._chunk_doc_dev: torch.Tensor | None = None
        self._side: torch.cuda.Stream | None = None

    def __len__(self) -> int:
        return len(self.docs)

    @cached_property
    def by_path(self) -> dict[str, list[int]]:
        """Indices of each file's documents (its windows), in ingest order."""
        out: dict[str, list[int]] = {}
        for i, d in enumerate(self.docs):
            out.setdefault(d.path, []).append(i)
        return out

    @property
    def n_chunks(self) -> int:
        return int(self.chunk_doc.numel())

    def _on(self, device: torch.device | None) -> torch.device:
        if self.device is None:
            self.device = device or torch.device("cpu")
        return self.device

    def routing_keys(self, layer: int) -> torch.Tensor:
        """(N, Hk, D) routing keys of every live chunk for one router layer, prepared for scoring
        (normalised for cosine routing): fp32 on CPU, float16 on CUDA; loaded once from the
        memory-mapped segments."""
        keys = self._keys.get(layer)
        if keys is None:
            dev = self._on(None)
            arr = gather_layer(self.store, self._runs, self.layer_pos[layer], "routing", self.cfg.n_kv_head,
                               self.cfg.head_dim)
            keys = self._keys[layer] = to_device_keys(arr, dev, self.cfg.msa.cosine)
        return keys

    def load_all_keys(self) -> None:
        for layer in self.cfg.router_layers:
            self.routing_keys(layer)

    def key_bytes(self) -> int:
        """Bytes of routing keys resident now (on the device they live on)."""
        return sum(k.numel() * k.element_size() for k in self._keys.values())

    def doc_scores(self, layer: int, q_r: torch.Tensor) -> torch.Tensor:
        """Routing score of every live document (n_docs,) at one router layer for queries q_r (H, S, D),
        on the memory's device."""
        dev = self._on(q_r.device)
        if self._chunk_doc_dev is None:
            self._chunk_doc_dev = self.chunk_doc.to(dev, torch.int32 if dev.type == "cuda" else torch.long)
        return score_documents(q_r, self.routing_keys(layer), self._chunk_doc_dev, len(self.docs), self.cfg.msa)

    def top_docs(self, layer: int, q_r: torch.Tensor, k: int) -> tuple[list[int], list[float]]:
        """The k best documents at one router layer, best first (ties: lower index first)."""
        idx, val = topk_docs(self.doc_scores(layer, q_r), k)
        return idx.tolist(), val.tolist()

    def fetch(self, layer: int, doc_indices: list[int], device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled content K̄, V̄ (Hk, M, D) fp32 of the given documents at one router layer, on
        `device` (default: the memory's). Only these documents' rows move: gathered from the
        memory-mapped segments, and on CUDA copied from pinned memory on a side stream that the
        current stream then waits for."""
        dev = device if device is not None else self._on(None)
        pos = self.layer_pos[layer]
        Hk, D = self.cfg.n_kv_head, self.cfg.head_dim
        runs = doc_runs([self.docs[i] for i in doc_indices])
        k = gather_layer(self.store, runs, pos, "k", Hk, D)  # (M, Hk, D) float16
        v = gather_layer(self.store, runs, pos, "v", Hk, D)
        if dev.type == "cuda" and k.shape[0]:
            kh = torch.from_numpy(np.ascontiguousarray(k)).pin_memory()
            vh = torch.from_numpy(np.ascontiguousarray(v)).pin_memory()
            if self._side is None:
                self._side = torch.cuda.Stream(dev)
            with torch.cuda.stream(self._side):
                kd = kh.to(dev, non_blocking=True)
                vd = vh.to(dev, non_blocking=True)
            cur = torch.cuda.current_stream(dev)
            cur.wait_stream(self._side)
            kd.record_stream(cur)
            vd.record_stream(cur)
            kt, vt = kd.float(), vd.float()
        else:
            kt = torch.from_numpy(k.astype(np.float32)).to(dev)
            vt = torch.from_numpy(v.astype(np.float32)).to(dev)
        return kt.transpose(0, 1), vt.transpose(0, 1)  # (Hk, M, D) each


def rrf(rankings: list[tuple[list[int] | torch.Tensor, float]], n: int) -> torch.Tensor:
    """Weighted reciprocal-rank fusion of several rankings of document indices into scores (n,):
    a document at rank r (0-based) of a ranking of weight w gains w / (RRF_K + r + 1)."""
    out = torch.zeros(n)
    for order, weight in rankings:
        idx = torch.as_tensor(order, dtype=torch.long).cpu()
        if idx.numel():
            ranks = torch.arange(1, idx.numel() + 1, dtype=torch.float64)
            out.index_add_(0, idx, (weight / (RRF_K + ranks)).float())
    return out


@dataclass
class LayerChoice:
    layer: int
    docs: list[int]
    scores: list[float]


@dataclass
class RecordingSelector:
    """A MemorySelector that routes in the given mode and records each layer's choice.

    `lexical` is the BM25 ranking of document indices (best first) for the current query text and
    `lexical_scores` their scores (hybrid fuses by score; without them, by rank: `fusion.lexical_vector`),
    `lexical_coverage` the share of the query's words the lexical top hit holds (`fusion.coverage`).
    """

    memory: MemoryIndex
    mode: str
    top_k: int
    lexical: list[int] = field(default_factory=list)
    lexical_scores: list[float] = field(default_factory=list)
    lexical_coverage: float = 1.0
    fuse_weight_lexical: float = field(default_factory=lambda: HYBRID_LEXICAL_WEIGHT)
    fusion: FusionParams = field(default_factory=lambda: FITTED)
    attend_memory: bool = True
    choices: list[LayerChoice] = field(default_factory=list)
    _lex: torch.Tensor | None = field(default=None, repr=False)
    _z_sum: torch.Tensor | None = field(default=None, repr=False)
    _z_layers: int = field(default=0, repr=False)

    def _hybrid(self, layer_scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Lexical scores L (n,) and the router's standardised scores averaged over the router
        layers so far Z (n,), this layer's included; CPU fp32."""
        n = layer_scores.numel()
        if self._lex is None:
            self._lex = lexical_vector(self.lexical, self.lexical_scores, n)
        z = standardise(layer_scores.detach().float().cpu())
        self._z_sum = z if self._z_sum is None else self._z_sum + z
        self._z_layers += 1
        return self._lex, self._z_sum / self._z_layers

    def select(self, layer: int, q_r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mem = self.memory
        n = len(mem)
        k = min(self.top_k, n)
        Hk, D = mem.cfg.n_kv_head, mem.cfg.head_dim
        empty = torch.zeros(Hk, 0, D, device=q_r.device)
        if k == 0:
            self.choices.append(LayerChoice(layer, [], []))
            return empty, empty
        if self.mode == "lexical":
            docs = self.lexical[:k]
            scores = [1.0 / (RRF_K + r + 1) for r in range(len(docs))]
        elif self.mode == "hybrid":
            lex, z = self._hybrid(mem.doc_scores(layer, q_r))  # (n,) each
            idx, val = fused_order(lex, z, k, self.fusion, self.lexical_coverage)
            docs, scores = idx.tolist(), val.tolist()
        elif self.mode == "rrf":
            s = mem.doc_scores(layer, q_r)  # (n,)
            order = torch.argsort(s, descending=True, stable=True)
            idx, val = topk_docs(rrf([(self.lexical, self.fuse_weight_lexical), (order, 1.0)], n), k)
            docs, scores = idx.tolist(), val.tolist()
        else:
            docs, scores = mem.top_docs(layer, q_r, k)
        self.choices.append(LayerChoice(layer, docs, scores))
        if not self.attend_memory:
            return empty, empty
        return mem.fetch(layer, docs, q_r.device)

    def combined(self) -> list[tuple[int, float]]:
        """One ranking over all router layers: hybrid's fusion with the router scores of every layer;
        for msa and rrf, reciprocal-rank fusion of the layers' choices."""
        if self.mode == "lexical":
            return [(i, 1.0 / (RRF_K + r + 1)) for r, i in enumerate(self.lexical)]
        if self.mode == "hybrid" and self._z_sum is not None:  # the last layer's fusion: every layer's say
            idx, val = fused_order(self._lex, self._z_sum / self._z_layers, max(4 * self.top_k, 64), self.fusion,
                                   self.lexical_coverage)
            return list(zip(idx.tolist(), val.tolist()))
        agg: dict[int, float] = {}
        for ch in self.choices:
            for rank, i in enumerate(ch.docs):
                agg[i] = agg.get(i, 0.0) + 1.0 / (RRF_K + rank + 1)
        n_layers = max(1, len(self.choices))
        return sorted(((i, s / n_layers) for i, s in agg.items()), key=lambda t: -t[1])
