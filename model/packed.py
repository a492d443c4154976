"""Packed document encoding for the GPU: many documents in one token stream, no padding.

`MSAModel.encode` pads a batch of documents to its longest one; this module instead concatenates
documents into packs of a fixed number of tokens (the tail filled by a throw-away pad sequence),
runs each layer once over the whole pack, and keeps attention inside each document with a
variable-length kernel. Fixed pack sizes give static shapes, so the layer stack can be compiled
once (`torch.compile`) and fused. The pooled state is the same as `MSAModel.encode`'s:
chunk means of K, V (and routing keys) at the router layers, layers above the last router layer
and the LM head skipped.

Attention backends:
- `varlen`: `torch.nn.attention.varlen.varlen_attn` (Flash Attention, CUDA only);
- `dense`: SDPA with a block-diagonal causal mask, O(T²) memory; the reference and the CPU path.

Notation: T tokens in a pack, S sequences in a pack (documents + one pad sequence), N chunks.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .model import Encoded, MSAModel, rope_cos_sin

BACKENDS = ("varlen", "dense")


@dataclass
class Pack:
    """Documents laid end to end in one stream of `n_tokens` tokens (pad included)."""

    doc_index: list[int]  # positions of the packed documents in the caller's list
    lengths: list[int]  # their token counts
    ids: torch.Tensor  # (T,) long
    positions: torch.Tensor  # (T,) long, restarting at 0 in every document
    cu_seqlens: torch.Tensor  # (S + 1,) int32, the pad sequence last when there is one
    chunk_id: torch.Tensor  # (T,) long: the token's chunk; pad tokens point at the dump slot N
    chunk_count: torch.Tensor  # (N + 1,) tokens per chunk, the dump slot last (known on the host: no sync)
    n_chunks: list[int]  # chunks per packed document
    max_len: int

    @property
    def n_tokens(self) -> int:
        return int(self.ids.shape[0])

    @property
    def total_chunks(self) -> int:
        return sum(self.n_chunks)


def plan_packs(lengths: list[int], pack_tokens: int) -> list[list[int]]:
    """Group documents into packs of at most `pack_tokens` tokens (first-fit over lengths sorted
    longest first); a document longer than a pack gets a pack of its own."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    packs: list[list[int]] = []
    room: list[int] = []
    for i in order:
        n = lengths[i]
        for p, free in enumerate(room):
            if n <= free:
                packs[p].append(i)
                room[p] -= n
                break
        else:
            packs.append([i])
            room.append(max(pack_tokens - n, 0))
    return packs


def make_pack(docs: list[list[int]], index: list[int], P: int, pack_tokens: int) -> Pack:
    """Lay out docs[index] in one stream padded to max(pack_tokens, their total length)."""
    lengths = [len(docs[i]) for i in index]
    used = sum(lengths)
    T = max(pack_tokens, used)
    ids = torch.zeros(T, dtype=torch.long)
    positions = torch.zeros(T, dtype=torch.long)
    chunk_id = torch.empty(T, dtype=torch.long)
    n_chunks = [(n + P - 1) // P for n in lengths]
    N = sum(n_chunks)
    chunk_id[used:] = N  # the dump slot
    cu = [0]
    at, first_chunk = 0, 0
    for i, n, c in zip(index, lengths, n_chunks):
        ids[at:at + n] = torch.as_tensor(docs[i], dtype=torch.long)
        pos = torch.arange(n)
        positions[at:at + n] = pos
        chunk_id[at:at + n] = first_chunk + pos // P
        at += n
        first_chunk += c
        cu.append(at)
    if used < T:
        positions[used:] = torch.arange(T - used)
        cu.append(T)
    max_len = max(lengths + [T - used])
    chunk_count = torch.bincount(chunk_id, minlength=N + 1)
    return Pack(doc_index=list(index), lengths=lengths, ids=ids, positions=positions,
                cu_seqlens=torch.tensor(cu, dtype=torch.int32), chunk_id=chunk_id, chunk_count=chunk_count,
                n_chunks=n_chunks, max_len=max_len)


def chunk_means(x: torch.Tensor, chunk_id: torch.Tensor, n_chunks: int, counts: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of x (T, Hk, D) per chunk through chunk_id (T,) in [0, n_chunks]; slot n_chunks is a
    dump for pad tokens and is dropped. fp32 accumulation; returns (n_chunks, Hk, D) fp32.
    `counts` (n_chunks + 1,), tokens per slot, saves a bincount (a device sync on a GPU)."""
    T, Hk, D = x.shape
    sums = torch.zeros(n_chunks + 1, Hk, D, dtype=torch.float32, device=x.device)
    sums.index_add_(0, chunk_id, x.float())
    if counts is None:
        counts = torch.bincount(chunk_id, minlength=n_chunks + 1)
    return (sums / counts.clamp(min=1)[:, None, None].to(sums.dtype))[:n_chunks]


def _varlen_attention() -> Callable[..., torch.Tensor]:
    from torch.nn.attention.varlen import varlen_attn

    params = inspect.signature(varlen_attn).parameters
    if "window_size" in params:
        return lambda q, k, v, cu, m: varlen_attn(q, k, v, cu, cu, m, m, window_size=(-1, 0))
    return lambda q, k, v, cu, m: varlen_attn(q, k, v, cu, cu, m, m, is_causal=True)


def dense_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu: torch.Tensor, _max_len: int) -> torch.Tensor:
    """q (T, H, D), k, v (T, Hk, D): causal attention within each [cu[s], cu[s+1]) span."""
    T = q.shape[0]
    seq = torch.bucketize(torch.arange(T, device=q.device), cu[1:].to(q.device).long(), right=True)  # (T,)
    idx = torch.arange(T, device=q.device)
    mask = (seq[:, None] == seq[None, :]) & (idx[None, :] <= idx[:, None])  # (T, T)
    y = F.scaled_dot_product_attention(q.transpose(0, 1)[None], k.transpose(0, 1)[None], v.transpose(0, 1)[None],
                                       attn_mask=mask, enable_gqa=True)  # (1, H, T, D)
    return y[0].transpose(0, 1)  # (T, H, D)


def _repeat_kv(x: torch.Tensor, groups: int) -> torch.Tensor:
    return x if groups == 1 else x.repeat_interleave(groups, dim=1)


def _pre_attention(block: torch.nn.Module, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Norm, q/k/v with RoPE, routing keys: x (1, T, C) -> q (T, H, D), k, v, rk (T, Hk, D)."""
    attn = block.self_attn
    h = block.input_layernorm(x)
    q, k, v = attn.qkv(h, cos, sin)  # (1, H|Hk, T, D)
    rk = attn.routing_keys(h, k)[0].transpose(0, 1) if attn.decouple else None
    return q[0].transpose(0, 1).contiguous(), k[0].transpose(0, 1), v[0].transpose(0, 1), rk


def _post_attention(block: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Output projection, residual, MLP: attention output y (T, H, D) -> next x (1, T, C)."""
    attn = block.self_attn
    x = x + attn.o_proj(y.reshape(1, -1, attn.H * attn.D))
    return x + block.mlp(block.post_attention_layernorm(x))


class PackedEncoder:
    """Encode documents pack by pack with one model. `compile=True` compiles the per-layer
    computation (static pack shapes); the result equals `MSAModel.encode` up to dtype rounding."""

    def __init__(self, model: MSAModel, *, backend: str | None = None, pack_tokens: int = 32768,
                 compile: bool = False) -> None:
        dev = model.embed_tokens.weight.device
        if backend is None:
            backend = "varlen" if dev.type == "cuda" else "dense"
        if backend not in BACKENDS:
            raise ValueError(f"unknown attention backend {backend!r} (one of {', '.join(BACKENDS)})")
        if backend == "varlen" and dev.type != "cuda":
            raise ValueError("the varlen backend needs a CUDA device")
        self.model = model
        self.backend = backend
        self.pack_tokens = pack_tokens
        self.device = dev
        self._attend = _varlen_attention() if backend == "varlen" else dense_attention
        self._pre, self._post = _pre_attention, _post_attention
        if compile:
            import torch._dynamo.config as dynamo_config

            # Attention runs eagerly between two compiled halves, so no graph depends on the
            # pack's longest document; every block has the same shapes, so graphs are shared.
            limit = 4 * model.cfg.n_layer
            for name in ("recompile_limit", "cache_size_limit"):
                if hasattr(dynamo_config, name):
                    setattr(dynamo_config, name, max(getattr(dynamo_config, name), limit))
            self._pre = torch.compile(_pre_attention, dynamic=False)
            self._post = torch.compile(_post_attention, dynamic=False)

    def _layer(self, i: int, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cu: torch.Tensor,
               max_len: int, last: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """One block over a pack x (1, T, C). Returns (next x, k (T, Hk, D), v (T, Hk, D), routing
        keys (T, Hk, D) or None); with `last` the block stops after its keys."""
        block = self.model.layers[i]
        attn = block.self_attn
        qt, kt, vt, rk = self._pre(block, x, cos, sin)
        if last:
            return x, kt, vt, rk
        G = attn.H // attn.Hk
        if self.backend == "varlen":
            y = self._attend(qt, _repeat_kv(kt, G).contiguous(), _repeat_kv(vt, G).contiguous(), cu, max_len)
        else:
            y = self._attend(qt, kt, vt, cu, max_len)
        return self._post(block, x, y), kt, vt, rk

    @torch.inference_mode()
    def encode_pack(self, pack: Pack) -> Encoded:
        """Pooled state of one pack's documents, chunks in the pack's document order."""
        m, cfg, dev = self.model, self.model.cfg, self.device
        pin = dev.type == "cuda"  # pinned host memory makes the copies truly asynchronous
        ids, positions, cu, chunk_id, counts = (
            (t.pin_memory() if pin else t).to(dev, non_blocking=True)
            for t in (pack.ids, pack.positions, pack.cu_seqlens, pack.chunk_id, pack.chunk_count))
        ids, positions = ids[None], positions[None]
        N = pack.total_chunks
        x = m.embed_tokens(ids)  # (1, T, C)
        cos, sin = rope_cos_sin(positions, m.inv_freq, x.dtype)
        out = Encoded(n_chunks=list(pack.n_chunks), n_tokens=list(pack.lengths))
        last = cfg.last_router_layer
        for i in range(last + 1):
            x, k, v, rk = self._layer(i, x, cos, sin, cu, pack.max_len, i == last)
            if m.layers[i].self_attn.router:
                out.k[i] = chunk_means(k, chunk_id, N, counts)
                out.v[i] = chunk_means(v, chunk_id, N, counts)
                if rk is not None:
                    out.rk[i] = chunk_means(rk, chunk_id, N, counts)
        return out

    def packs(self, docs: list[list[int]]) -> Iterator[Pack]:
        if any(len(d) == 0 for d in docs):
            raise ValueError("cannot encode an empty document")
        P = self.model.cfg.msa.pooling_kernel_size
        for index in plan_packs([len(d) for d in docs], self.pack_tokens):
            yield make_pack(docs, index, P, self.pack_tokens)

    def encode_batches(self, docs: list[list[int]]) -> Iterator[tuple[list[int], Encoded]]:
        """(indices into docs, Encoded) per pack, like `Engine.encode_batches`."""
        for pack in self.packs(docs):
            yield pack.doc_index, self.encode_pack(pack)

    def encode_to_host(self, docs: list[list[int]]) -> Iterator[tuple[list[int], list[int], dict[str, torch.Tensor]]]:
        """Per pack: (indices into docs, chunks per document, {"k", "v"[, "rk"]: (layers, N, Hk, D)
        float16 in pinned host memory}). Each pack's state goes to the host in one asynchronous
        copy per tensor kind, overlapped with the next pack's compute; a pack is yielded only
        once its copy has finished."""
        layers = self.model.cfg.router_layers
        pending: tuple[Pack, dict[str, torch.Tensor], torch.cuda.Event | None] | None = None
        for pack in self.packs(docs):
            enc = self.encode_pack(pack)
            host: dict[str, torch.Tensor] = {}
            for kind, per_layer in (("k", enc.k), ("v", enc.v), ("rk", enc.rk)):
                if not per_layer:
                    continue
                stacked = torch.stack([per_layer[i] for i in layers]).to(torch.float16)  # (layers, N, Hk, D)
                if self.device.type == "cuda":
                    buf = torch.empty(stacked.shape, dtype=torch.float16, pin_memory=True)
                    buf.copy_(stacked, non_blocking=True)
                    host[kind] = buf
                else:
                    host[kind] = stacked
            event = None
            if self.device.type == "cuda":
                event = torch.cuda.Event()
                event.record()
            if pending is not None:
                yield self._finish(pending)
            pending = (pack, host, event)
        if pending is not None:
            yield self._finish(pending)

    @staticmethod
    def _finish(pending: tuple[Pack, dict[str, torch.Tensor], torch.cuda.Event | None]) -> tuple[list[int], list[int], dict[str, torch.Tensor]]:
        pack, host, event = pending
        if event is not None:
            event.synchronize()
        return pack.doc_index, list(pack.n_chunks), host
