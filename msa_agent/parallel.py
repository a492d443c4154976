"""Memory-parallel routing: routing keys sharded over processes (GPUs, or CPUs for CI).

Rank r of W owns a contiguous range of documents, balanced by chunk count and cut at document
boundaries, so any store serves from any number of ranks (built on one GPU, served from two and
back: sharding is a view, never a property of the store). Per router layer the routing queries
are broadcast from one rank, every rank scores its shard with the same path as one process (the
fused kernel on CUDA, the reference on CPU) and keeps its local top-k (scores and global
document indices), one `all_gather` brings the W top-k lists to every rank, and a global merge
keeps the k best with ties broken by the lower document index, as `memory.topk_docs` does. The
merged ranking is the one-process ranking exactly: the kernel scores each chunk independently of
its neighbours, and the CPU reference scores in blocks cut at global multiples of
`memory.ROUTE_BLOCK` (each shard's keys start at such a multiple, with a few neighbouring chunks
that score for no document), so every chunk gets the same bits. Only the selected documents'
K̄/V̄ then move, to the rank that generates (`MemoryIndex.fetch`).

Launch with torchrun (NCCL on GPUs, gloo on CPU; several nodes work when each reads the store):

    torchrun --standalone --nproc_per_node 2 -m msa_agent.parallel route "QUESTION" --store PATH [--top-k 16] [--compare]

Rank 0 runs the model and prints `msa route --mode msa`'s JSON; the other ranks serve routing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from msa_agent.model.config import MSAConfig

from .memory import ROUTE_BLOCK, MemoryIndex, gather_layer, score_documents, to_device_keys

_ROUTE, _STOP = 0, 1


def shard_bounds(chunk_counts: list[int] | np.ndarray, world: int) -> list[tuple[int, int]]:
    """Document ranges [a, b) for each of `world` ranks: contiguous, cut at the document boundary
    nearest to each 1/world of the chunks (a rank may get none when documents are few)."""
    counts = np.asarray(chunk_counts, dtype=np.int64)
    n = len(counts)
    prefix = np.concatenate([[0], np.cumsum(counts)])  # (n+1,) chunks before document i
    total = int(prefix[-1])
    cuts = [0]
    for r in range(1, world):
        target = total * r / world
        i = int(np.searchsorted(prefix, target, side="left"))  # first boundary at or past the target
        if i > 0 and target - prefix[i - 1] < prefix[min(i, n)] - target:
            i -= 1
        cuts.append(min(max(i, cuts[-1]), n))
    cuts.append(n)
    return [(cuts[r], cuts[r + 1]) for r in range(world)]


@dataclass
class KeyShard:
    """One rank's routing keys: per router layer (Nc, Hk, D), prepared for scoring, for the global
    chunks [chunk_lo, chunk_hi) (aligned to ROUTE_BLOCK) that cover its documents
    [doc_lo, doc_lo + n_docs); chunks of other ranks' documents map to the slot n_docs, dropped."""

    keys: list[torch.Tensor]
    chunk_doc: torch.Tensor  # (Nc,) local document index, n_docs for neighbours' chunks
    doc_lo: int
    n_docs: int
    chunk_lo: int
    chunk_hi: int
    block: int = ROUTE_BLOCK

    @property
    def device(self) -> torch.device:
        return self.chunk_doc.device

    def key_bytes(self) -> int:
        return sum(k.numel() * k.element_size() for k in self.keys)

    def scores(self, pos: int, q_r: torch.Tensor, m: MSAConfig) -> torch.Tensor:
        """Scores (n_docs,) of this shard's documents at router-layer position `pos`."""
        return score_documents(q_r, self.keys[pos], self.chunk_doc, self.n_docs + 1, m, self.block)[: self.n_docs]

    def local_topk(self, pos: int, q_r: torch.Tensor, m: MSAConfig, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(k,) fp32 scores and (k,) int64 global document indices, best first; padded with
        -inf and -1 when the shard has fewer than k documents."""
        from .memory import topk_docs

        idx, val = topk_docs(self.scores(pos, q_r, m), k)
        vals = torch.full((k,), float("-inf"), device=self.device)
        ids = torch.full((k,), -1, dtype=torch.long, device=self.device)
        vals[: idx.numel()] = val.float()
        ids[: idx.numel()] = idx + self.doc_lo
        return vals, ids

    @classmethod
    def build(cls, chunk_counts: list[int] | np.ndarray, rank: int, world: int, n_layers: int,
              load: Callable[[int, int, int], torch.Tensor], device: torch.device,
              block: int = ROUTE_BLOCK) -> KeyShard:
        """The shard of `rank`; `load(pos, lo, hi)` gives prepared keys (hi - lo, Hk, D) of the
        global chunks [lo, hi) of router-layer position `pos`, on `device`."""
        counts = np.asarray(chunk_counts, dtype=np.int64)
        prefix = np.concatenate([[0], np.cumsum(counts)])
        a, b = shard_bounds(counts, world)[rank]
        ca, cb = int(prefix[a]), int(prefix[b])
        lo = (ca // block) * block
        hi = min(-(-cb // block) * block, int(prefix[-1])) if cb > ca else lo
        n_docs = b - a
        local = np.full(hi - lo, n_docs, dtype=np.int64)
        local[ca - lo : cb - lo] = np.repeat(np.arange(n_docs), counts[a:b])
        kind = torch.int32 if device.type == "cuda" else torch.long
        chunk_doc = torch.from_numpy(local).to(device, kind)  # (Nc,)
        keys = [load(pos, lo, hi) for pos in range(n_layers)]
        return cls(keys, chunk_doc, a, n_docs, lo, hi, block)

    @classmethod
    def from_memory(cls, mem: MemoryIndex, rank: int, world: int, device: torch.device,
                    block: int = ROUTE_BLOCK) -> KeyShard:
        """This rank's shard of a MemoryIndex's routing keys, read from the store's segments."""
        counts = [d.n_chunks for d in mem.docs]
        starts = np.concatenate([[0], np.cumsum(counts)])
        cfg = mem.cfg

        def load(pos: int, lo: int, hi: int) -> torch.Tensor:
            runs = chunk_runs(mem, starts, lo, hi)
            arr = gather_layer(mem.store, runs, pos, "routing", cfg.n_kv_head, cfg.head_dim)
            return to_device_keys(arr, device, cfg.msa.cosine)

        return cls.build(counts, rank, world, len(cfg.router_layers), load, device, block)


def chunk_runs(mem: MemoryIndex, starts: np.ndarray, lo: int, hi: int) -> list[tuple[str, int, int]]:
    """The (segment, start, end) runs that hold the global chunks [lo, hi) of a MemoryIndex
    (its documents' chunks concatenated in order; `starts` (n+1,) their prefix sums)."""
    runs: list[tuple[str, int, int]] = []
    if hi <= lo:
        return runs
    first = int(np.searchsorted(starts, lo, side="right")) - 1
    i = first
    while i < len(mem.docs) and starts[i] < hi:
        d = mem.docs[i]
        a = max(lo, int(starts[i])) - int(starts[i])
        b = min(hi, int(starts[i + 1])) - int(starts[i])
        if b > a:
            s, e = d.chunk_start + a, d.chunk_start + b
            if runs and runs[-1][0] == d.segment_id and runs[-1][2] == s:
                runs[-1] = (d.segment_id, runs[-1][1], e)
            else:
                runs.append((d.segment_id, s, e))
        i += 1
    return runs


def merge_topk(vals: torch.Tensor, ids: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Global top-k of the ranks' lists (W, k) each: best score first, ties by the lower document
    index; padding (id -1) dropped. Returns (ids (≤k,), scores (≤k,))."""
    vals, ids = vals.flatten(), ids.flatten()
    keep = ids >= 0
    vals, ids = vals[keep], ids[keep]
    by_id = torch.argsort(ids)
    vals, ids = vals[by_id], ids[by_id]
    order = torch.sort(vals, descending=True, stable=True).indices[:k]
    return ids[order], vals[order]


class ShardedRouter:
    """Collective routing over KeyShards: every rank calls `route` for the same (layer, k) in the
    same order (or rank `src` calls `route` and the others sit in `serve`)."""

    def __init__(self, shard: KeyShard, msa: MSAConfig, *, group: dist.ProcessGroup | None = None,
                 src: int = 0, comm_device: torch.device | None = None) -> None:
        self.shard, self.msa, self.group, self.src = shard, msa, group, src
        self.rank = dist.get_rank(group)
        self.world = dist.get_world_size(group)
        self.comm_device = comm_device or shard.device

    def _header(self, cmd: int, pos: int = 0, shape: tuple[int, ...] = (0, 0, 0), k: int = 0) -> torch.Tensor:
        return torch.tensor([cmd, pos, *shape, k], dtype=torch.long, device=self.comm_device)

    def route(self, pos: int, q_r: torch.Tensor | None, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Global top-k (ids, scores) at router-layer position `pos` for queries q_r (H, S, D),
        which only rank `src` needs to pass. Every rank gets the merged result."""
        head = self._header(_ROUTE, pos, tuple(q_r.shape) if q_r is not None else (0, 0, 0), k)
        dist.broadcast(head, self.src, group=self.group)
        return self._route(head, q_r)

    def _route(self, head: torch.Tensor, q_r: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        _, pos, H, S, D, k = (int(x) for x in head.tolist())
        q = q_r.float().to(self.comm_device).contiguous() if self.rank == self.src else \
            torch.empty(H, S, D, device=self.comm_device)
        dist.broadcast(q, self.src, group=self.group)
        vals, ids = self.shard.local_topk(pos, q.to(self.shard.device), self.msa, k)
        all_vals = [torch.empty_like(vals, device=self.comm_device) for _ in range(self.world)]
        all_ids = [torch.empty_like(ids, device=self.comm_device) for _ in range(self.world)]
        dist.all_gather(all_vals, vals.to(self.comm_device), group=self.group)
        dist.all_gather(all_ids, ids.to(self.comm_device), group=self.group)
        return merge_topk(torch.stack(all_vals), torch.stack(all_ids), k)

    def serve(self) -> int:
        """On ranks other than `src`: answer routing calls until `stop`. Returns calls served."""
        n = 0
        while True:
            head = self._header(_STOP)
            dist.broadcast(head, self.src, group=self.group)
            if int(head[0]) == _STOP:
                return n
            self._route(head, None)
            n += 1

    def stop(self) -> None:
        """On rank `src`: release the ranks sitting in `serve`."""
        dist.broadcast(self._header(_STOP), self.src, group=self.group)


class ShardedMemory:
    """What `RecordingSelector` needs of a memory (msa mode), with routing done by a
    ShardedRouter and K̄/V̄ fetched from the store for the selected documents only."""

    def __init__(self, mem: MemoryIndex, router: ShardedRouter) -> None:
        self.mem, self.router, self.cfg = mem, router, mem.cfg
        self.docs = mem.docs

    def __len__(self) -> int:
        return len(self.mem)

    @property
    def by_path(self) -> dict[str, list[int]]:
        return self.mem.by_path

    def top_docs(self, layer: int, q_r: torch.Tensor, k: int) -> tuple[list[int], list[float]]:
        ids, vals = self.router.route(self.mem.layer_pos[layer], q_r, k)
        return ids.tolist(), vals.tolist()

    def doc_scores(self, layer: int, q_r: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("sharded memory routes top-k only (msa mode)")

    def fetch(self, layer: int, doc_indices: list[int], device: torch.device | None = None):  # noqa: ANN201
        return self.mem.fetch(layer, doc_indices, device)


# ---- the torchrun driver ---------------------------------------------------------------------------


def init_distributed() -> tuple[int, int, torch.device]:
    """Join the torchrun group: NCCL with one GPU per local rank when CUDA is there, else gloo."""
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        device = torch.device("cpu")
        dist.init_process_group("gloo")
    return dist.get_rank(), dist.get_world_size(), device


def route_question(store_path: str, question: str, *, model: str | None = None, collection: str | None = None,
                   top_k: int | None = None, compare: bool = False) -> dict | None:
    """`msa route --mode msa` over a store sharded across the torchrun group. Rank 0 returns the
    result (with per-rank shard sizes and, with `compare`, whether one process ranks the same);
    the other ranks serve routing and return None."""
    from .ask import SYSTEM, MaskedSelector, _prompt
    from .engine import Engine
    from .store import Store

    rank, world, device = init_distributed()
    t0 = time.perf_counter()
    store = Store.open(store_path)
    engine = Engine.load(model, device=str(device), purpose="generate")
    store.check_model(engine.fingerprint, engine.name)
    mem = MemoryIndex(store, collection, engine.cfg, device=device)
    shard = KeyShard.from_memory(mem, rank, world, device)
    router = ShardedRouter(shard, engine.cfg.msa)
    sizes = [None] * world
    dist.all_gather_object(sizes, {"rank": rank, "documents": shard.n_docs, "chunks_scored": shard.chunk_hi - shard.chunk_lo,
                                   "key_bytes": shard.key_bytes()})
    t_load = time.perf_counter() - t0
    if rank != 0:
        router.serve()
        dist.barrier()
        dist.destroy_process_group()
        return None
    k = top_k or engine.cfg.msa.top_k_docs
    ids, mask = _prompt(engine, [], 0, question)
    sel = MaskedSelector(ShardedMemory(mem, router), "msa", k, attend_memory=True)
    sel.query_mask = mask
    t1 = time.perf_counter()
    engine.model.prefill(engine.tok.chat_prefix(SYSTEM), ids, sel)
    route_ms = (time.perf_counter() - t1) * 1000
    router.stop()
    ranking = sel.combined()
    out = {"mode": "msa", "world": world, "shards": sizes,
           "docs": [{"doc_id": mem.docs[i].id, "path": mem.docs[i].path, "anchor": mem.docs[i].anchor,
                     "score": round(float(s), 6)} for i, s in ranking[:k]],
           "layers": [{"layer": c.layer, "docs": [mem.docs[i].id for i in c.docs]} for c in sel.choices],
           "timing": {"load_s": round(t_load, 2), "route_ms": round(route_ms, 1)}}
    if compare:
        one = MaskedSelector(mem, "msa", k, attend_memory=True)
        one.query_mask = mask
        engine.model.prefill(engine.tok.chat_prefix(SYSTEM), ids, one)
        out["same_as_one_process"] = [(c.layer, c.docs) for c in one.choices] == [(c.layer, c.docs) for c in sel.choices]
    dist.barrier()
    dist.destroy_process_group()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m msa_agent.parallel", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("route", help="route one question over a store sharded across the torchrun group")
    r.add_argument("question")
    r.add_argument("--store", required=True)
    r.add_argument("--model", default=None)
    r.add_argument("--collection", default=None)
    r.add_argument("--top-k", type=int, default=None)
    r.add_argument("--compare", action="store_true", help="also route in one process and report whether it agrees")
    a = ap.parse_args(argv)
    res = route_question(a.store, a.question, model=a.model, collection=a.collection, top_k=a.top_k, compare=a.compare)
    if res is not None:
        print(json.dumps(res, indent=2))
        if a.compare and not res.get("same_as_one_process"):
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["KeyShard", "ShardedMemory", "ShardedRouter", "merge_topk", "shard_bounds"]
