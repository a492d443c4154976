"""The MSA decoder in one file: Llama / Qwen3 blocks, RoPE, KV cache, document-wise encoding with
chunk pooling at the router layers, routing queries, and sparse generation over selected memory.

Notation used in shape comments:
  B batch, T new tokens, L keys attended (past + memory + new), C hidden size, V vocab,
  H query heads, Hk key/value heads, G = H // Hk, D head dim, P pooling chunk size,
  N pooled chunks, M memory slots (pooled chunks of the selected documents).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from msa_agent.kernels.pooling import chunk_mean_pool

from .config import Config


class MemorySelector(Protocol):
    """What sparse generation asks of the memory at each router layer."""

    def select(self, layer: int, q_r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Route with routing queries q_r (H, S, D) and return the selected (K̄, V̄), each (Hk, M, D)."""
        ...


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(dtype)


def rope_cos_sin(positions: torch.Tensor, inv_freq: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    freqs = positions.float()[..., None] * inv_freq  # (B, T, D/2)
    emb = torch.cat((freqs, freqs), dim=-1)  # (B, T, D)
    return emb.cos().to(dtype)[:, None], emb.sin().to(dtype)[:, None]  # (B, 1, T, D) each


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # Halves form of x·cos + rotate_half(x)·sin: no full-width negation or rotated copy.
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    c, s = cos[..., :half], sin[..., :half]
    return torch.cat((x1 * c - x2 * s, x2 * c + x1 * s), dim=-1)  # (B, h, T, D)


class KVCache:
    """Per-layer keys and values. Layers may hold different lengths: router layers also hold
    the memory slots of the selected documents."""

    def __init__(self, n_layer: int) -> None:
        self.k: list[torch.Tensor | None] = [None] * n_layer
        self.v: list[torch.Tensor | None] = [None] * n_layer

    def past(self, layer: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        return self.k[layer], self.v[layer]

    def store(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        self.k[layer], self.v[layer] = k, v

    def length(self, layer: int) -> int:
        k = self.k[layer]
        return 0 if k is None else k.shape[2]


class Attention(nn.Module):
    def __init__(self, cfg: Config, router: bool) -> None:
        super().__init__()
        C, H, Hk, D = cfg.n_embd, cfg.n_head, cfg.n_kv_head, cfg.head_dim
        self.H, self.Hk, self.D = H, Hk, D
        self.q_proj = nn.Linear(C, H * D, bias=cfg.attention_bias)
        self.k_proj = nn.Linear(C, Hk * D, bias=cfg.attention_bias)
        self.v_proj = nn.Linear(C, Hk * D, bias=cfg.attention_bias)
        self.o_proj = nn.Linear(H * D, C, bias=False)
        self.q_norm = RMSNorm(D, cfg.rms_norm_eps) if cfg.qk_norm else None
        self.k_norm = RMSNorm(D, cfg.rms_norm_eps) if cfg.qk_norm else None
        self.router = router
        self.decouple = router and cfg.msa.decouple_router
        # The reference wraps each projector in a one-element nn.Sequential: keep its weight names.
        self.router_q_proj = nn.Sequential(nn.Linear(C, H * D, bias=False)) if self.decouple else None
        self.router_k_proj = nn.Sequential(nn.Linear(C, Hk * D, bias=False)) if self.decouple else None
        self.w_qkv: torch.Tensor | None = None  # fused q|k|v weight for inference, see `fuse`

    def fuse(self) -> None:
        """Concatenate q, k, v weights: one wide matmul runs faster than three narrow ones on CPU."""
        if self.q_proj.bias is None:
            self.w_qkv = torch.cat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight]).detach()

    def qkv(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, ...]:
        B, T, _ = x.shape
        if self.w_qkv is not None:
            q, k, v = F.linear(x, self.w_qkv).split([self.H * self.D, self.Hk * self.D, self.Hk * self.D], dim=-1)
        else:
            q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        q = q.view(B, T, self.H, self.D).transpose(1, 2)  # (B, H, T, D)
        k = k.view(B, T, self.Hk, self.D).transpose(1, 2)  # (B, Hk, T, D)
        v = v.view(B, T, self.Hk, self.D).transpose(1, 2)  # (B, Hk, T, D)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v

    def routing_queries(self, x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """Routing queries (B, H, T, D): the router projector, else the attention query itself."""
        if self.router_q_proj is None:
            return q
        B, T, _ = x.shape
        return self.router_q_proj(x).view(B, T, self.H, self.D).transpose(1, 2)  # (B, H, T, D)

    def routing_keys(self, x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Unpooled routing keys (B, Hk, T, D): no RoPE, no norm on the router projector's output."""
        if self.router_k_proj is None:
            return k
        B, T, _ = x.shape
        return self.router_k_proj(x).view(B, T, self.Hk, self.D).transpose(1, 2)  # (B, Hk, T, D)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, n_visible: int) -> torch.Tensor:
        """q (B, H, T, D) over k, v (B, Hk, L, D): the first n_visible keys (past and memory) are
        seen by every query, the last T causally."""
        B, _, T, _ = q.shape
        L = k.shape[2]
        if n_visible == 0 or T == 1:
            # One new token sees every key; with nothing visible before it, plain causal.
            y = F.scaled_dot_product_attention(q, k, v, is_causal=n_visible == 0 and T > 1, enable_gqa=True)
        else:
            rows = torch.arange(T, device=q.device)[:, None]
            cols = torch.arange(L, device=q.device)[None, :]
            mask = cols < n_visible + rows + 1  # (T, L)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, self.H * self.D))  # (B, T, C)


class MLP(nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(cfg.n_embd, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.n_embd, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.n_embd, bias=False)
        self.w_gate_up: torch.Tensor | None = None  # fused gate|up weight for inference

    def fuse(self) -> None:
        self.w_gate_up = torch.cat([self.gate_proj.weight, self.up_proj.weight]).detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.w_gate_up is not None:
            gate, up = F.linear(x, self.w_gate_up).chunk(2, dim=-1)
        else:
            gate, up = self.gate_proj(x), self.up_proj(x)
        return self.down_proj(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, cfg: Config, router: bool) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.n_embd, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg, router)
        self.post_attention_layernorm = RMSNorm(cfg.n_embd, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)


@dataclass
class Encoded:
    """Pooled memory state of a batch of documents, chunks concatenated in input order."""

    n_chunks: list[int]
    n_tokens: list[int]
    k: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> (N, Hk, D)
    v: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> (N, Hk, D)
    rk: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> (N, Hk, D), decoupled router only


class MSAModel(nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        routers = set(cfg.router_layers)
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.layers = nn.ModuleList(Block(cfg, i in routers) for i in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.n_embd, cfg.rms_norm_eps)
        self.lm_head = None if cfg.tie_word_embeddings else nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, cfg.head_dim, 2, dtype=torch.float32) / cfg.head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self._prefix_kv: dict[tuple[int, ...], KVCache] = {}

    def fuse(self) -> MSAModel:
        """Fuse projection weights for inference (call after loading; not for training)."""
        self._prefix_kv.clear()
        for block in self.layers:
            block.self_attn.fuse()
            block.mlp.fuse()
        return self

    # ---- plain causal LM -------------------------------------------------------------------

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        h = self.norm(h)
        w = self.embed_tokens.weight if self.lm_head is None else self.lm_head.weight
        return h @ w.T  # (B, T, V)

    def forward(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor | None = None,
        cache: KVCache | None = None,
        memory: MemorySelector | None = None,
    ) -> torch.Tensor:
        """Logits (B, T, V). With `memory`, each router layer routes its queries and prepends the
        selected documents' pooled K̄, V̄ to its keys (sparse generation)."""
        return self.logits(self.hidden(input_ids, positions, cache, memory))

    def hidden(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor | None = None,
        cache: KVCache | None = None,
        memory: MemorySelector | None = None,
        stop_after: int | None = None,
    ) -> torch.Tensor:
        B, T = input_ids.shape
        if positions is None:
            start = cache.length(0) if cache is not None else 0
            positions = torch.arange(start, start + T, device=input_ids.device).expand(B, T)
        x = self.embed_tokens(input_ids)  # (B, T, C)
        cos, sin = rope_cos_sin(positions, self.inv_freq, x.dtype)
        for i, block in enumerate(self.layers):
            attn = block.self_attn
            h = block.input_layernorm(x)
            q, k, v = attn.qkv(h, cos, sin)
            pk, pv = cache.past(i) if cache is not None else (None, None)
            parts_k = [] if pk is None else [pk]
            parts_v = [] if pv is None else [pv]
            if memory is not None and attn.router:
                q_r = attn.routing_queries(h, q)  # (B, H, T, D)
                if B != 1:
                    raise ValueError("sparse generation runs one question at a time")
                mk, mv = memory.select(i, q_r[0].float())  # (Hk, M, D) each
                parts_k.append(mk.to(k.dtype)[None])
                parts_v.append(mv.to(v.dtype)[None])
            n_visible = sum(p.shape[2] for p in parts_k)
            k_all = torch.cat(parts_k + [k], dim=2) if parts_k else k  # (B, Hk, L, D)
            v_all = torch.cat(parts_v + [v], dim=2) if parts_v else v  # (B, Hk, L, D)
            if cache is not None:
                cache.store(i, k_all, v_all)
            x = x + attn.attend(q, k_all, v_all, n_visible)
            x = x + block.mlp(block.post_attention_layernorm(x))
            if stop_after is not None and i == stop_after:
                break
        return x  # (B, T, C)

    # ---- MSA encoding ----------------------------------------------------------------------

    @torch.inference_mode()
    def encode(self, docs: list[list[int]]) -> Encoded:
        """Encode documents independently (attention within each, positions from 0), batched.

        Returns the chunk-mean-pooled K, V (and routing keys) of the router layers only; layers
        above the last router layer and the LM head are skipped.
        """
        cfg = self.cfg
        P = cfg.msa.pooling_kernel_size
        if any(len(d) == 0 for d in docs):
            raise ValueError("cannot encode an empty document")
        lengths = torch.tensor([len(d) for d in docs])
        B, T = len(docs), int(lengths.max())
        dev = self.embed_tokens.weight.device
        ids = torch.zeros(B, T, dtype=torch.long)
        for b, d in enumerate(docs):
            ids[b, : len(d)] = torch.tensor(d)
        ids = ids.to(dev)
        positions = torch.arange(T, device=dev).expand(B, T)
        x = self.embed_tokens(ids)  # (B, T, C)
        cos, sin = rope_cos_sin(positions, self.inv_freq, x.dtype)
        n_chunks = [(int(n) + P - 1) // P for n in lengths]
        out = Encoded(n_chunks=n_chunks, n_tokens=[int(n) for n in lengths])
        # Right padding: causal attention keeps every real token blind to the padding after it.
        for i in range(cfg.last_router_layer + 1):
            block = self.layers[i]
            attn = block.self_attn
            h = block.input_layernorm(x)
            q, k, v = attn.qkv(h, cos, sin)
            if attn.router:
                out.k[i] = chunk_mean_pool(k, lengths, P)  # (N, Hk, D)
                out.v[i] = chunk_mean_pool(v, lengths, P)  # (N, Hk, D)
                if attn.decouple:
                    out.rk[i] = chunk_mean_pool(attn.routing_keys(h, k), lengths, P)  # (N, Hk, D)
            if i == cfg.last_router_layer:
                break
            x = x + attn.attend(q, k, v, 0)
            x = x + block.mlp(block.post_attention_layernorm(x))
        return out

    # ---- sparse generation -----------------------------------------------------------------

    @torch.inference_mode()
    def prefill(
        self,
        prefix_ids: list[int],
        prompt_ids: list[int],
        memory: MemorySelector | None,
    ) -> tuple[torch.Tensor, KVCache, int]:
        """Run the template prefix (positions from 0), then the prompt with memory routing.

        The prompt's global positions start after the prefix and the `top_k_docs` memory slots.
        Returns the last logits (V,), the cache and the next position.
        """
        dev = self.embed_tokens.weight.device
        p = len(prefix_ids)
        cache = KVCache(self.cfg.n_layer)
        if p:
            # The template prefix's KV is the same every round and every question: computed once
            # per prefix and shared (layers replace, never modify, their cached tensors).
            key = tuple(prefix_ids)
            shared = self._prefix_kv.get(key)
            if shared is None:
                shared = KVCache(self.cfg.n_layer)
                self.hidden(torch.tensor([prefix_ids], device=dev), cache=shared)
                if len(self._prefix_kv) >= 8:
                    self._prefix_kv.clear()
                self._prefix_kv[key] = shared
            cache.k, cache.v = list(shared.k), list(shared.v)
        start = p + (self.cfg.msa.top_k_docs if memory is not None else 0)
        T = len(prompt_ids)
        pos = torch.arange(start, start + T, device=dev)[None]  # (1, T)
        h = self.hidden(torch.tensor([prompt_ids], device=dev), pos, cache, memory)
        return self.logits(h[:, -1:])[0, -1], cache, start + T

    @torch.inference_mode()
    def feed(self, token_ids: list[int], cache: KVCache, pos: int) -> torch.Tensor:
        """Append tokens to a cache (causal among themselves, seeing everything cached) and
        return the last logits (V,). Positions continue from `pos`."""
        dev = self.embed_tokens.weight.device
        T = len(token_ids)
        positions = torch.arange(pos, pos + T, device=dev)[None]  # (1, T)
        h = self.hidden(torch.tensor([token_ids], device=dev), positions, cache)
        return self.logits(h[:, -1:])[0, -1]

    @torch.inference_mode()
    def decode(
        self,
        logits: torch.Tensor,
        cache: KVCache,
        pos: int,
        *,
        max_new_tokens: int = 128,
        stop_ids: set[int] | None = None,
        temperature: float = 0.0,
        top_p: float = 1.0,
        generator: torch.Generator | None = None,
        should_stop: Callable[[list[int]], bool] | None = None,
    ) -> Iterator[int]:
        """Yield tokens sampled from `logits` onwards, extending `cache` from position `pos`.
        A stop id ends decoding without being yielded; `should_stop` ends it after a token."""
        out: list[int] = []
        for _ in range(max_new_tokens):
            tok = sample(logits, temperature, top_p, generator)
            if stop_ids and tok in stop_ids:
                return
            out.append(tok)
            yield tok
            if should_stop is not None and should_stop(out):
                return
            logits = self.feed([tok], cache, pos)
            pos += 1

    @torch.inference_mode()
    def generate(
        self,
        prefix_ids: list[int],
        prompt_ids: list[int],
        memory: MemorySelector | None = None,
        **decode_kw,  # noqa: ANN003 - the keyword arguments of `decode`
    ) -> Iterator[int]:
        """Yield generated token ids one at a time (greedy when temperature is 0)."""
        logits, cache, pos = self.prefill(prefix_ids, prompt_ids, memory)
        yield from self.decode(logits, cache, pos, **decode_kw)


def sample(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None) -> int:
    """Greedy at temperature 0, else nucleus (top-p) sampling."""
    if temperature <= 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / temperature, dim=-1)  # (V,)
    if top_p < 1.0:
        sp, si = torch.sort(probs, descending=True)
        keep = torch.cumsum(sp, 0) - sp < top_p
        sp = sp * keep
        choice = torch.multinomial(sp / sp.sum(), 1, generator=generator)
        return int(si[choice])
    return int(torch.multinomial(probs, 1, generator=generator))
