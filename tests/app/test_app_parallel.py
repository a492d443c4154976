"""Memory-parallel routing on CPU (gloo): 2 processes rank exactly as 1, over random keys with
uneven shards and over a store built with the tiny model, re-sharded 1 -> 2 -> 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from msa_agent.memory import MemoryIndex, score_documents, topk_docs
from msa_agent.model.config import MSAConfig
from msa_agent.parallel import KeyShard, ShardedRouter, merge_topk, shard_bounds

# A hung collective fails the test in minutes instead of gloo's default half hour.
COLLECTIVE_TIMEOUT = timedelta(seconds=180)

H, HK, D, LAYERS, BLOCK = 6, 3, 16, 3, 64


def test_shard_bounds_are_contiguous_balanced_and_cover_every_document() -> None:
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 40, 500)
    for world in (1, 2, 3, 7):
        b = shard_bounds(counts, world)
        assert b[0][0] == 0 and b[-1][1] == len(counts)
        assert all(b[r][1] == b[r + 1][0] for r in range(world - 1))
        per = [int(counts[a:e].sum()) for a, e in b]
        assert max(per) - min(per) <= 2 * counts.max()
    few = shard_bounds([5, 5], 4)  # more ranks than documents: some ranks get none
    assert few[0][0] == 0 and few[-1][1] == 2 and sum(e - a for a, e in few) == 2
    assert shard_bounds([], 2) == [(0, 0), (0, 0)]


def test_merge_breaks_ties_by_lower_document_index() -> None:
    vals = torch.tensor([[3.0, 1.0, float("-inf")], [3.0, 2.0, 1.0]])
    ids = torch.tensor([[7, 8, -1], [2, 3, 4]])
    got, s = merge_topk(vals, ids, 3)
    assert got.tolist() == [2, 7, 3] and s.tolist() == [3.0, 3.0, 2.0]
    idx, _ = topk_docs(torch.tensor([1.0, 5.0, 5.0, 0.0, 5.0]), 2)
    assert idx.tolist() == [1, 2]


def _memory(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    counts = torch.randint(0, 23, (211,), generator=g).numpy()  # some documents without chunks
    counts[5] = 300  # one long document: shards stay uneven
    n = int(counts.sum())
    keys = [torch.randn(n, HK, D, generator=g) for _ in range(LAYERS)]
    queries = [[torch.randn(H, int(s), D, generator=g) for _ in range(LAYERS)] for s in (1, 5, 17, 2, 9)]
    return counts, keys, queries


def _one_process(counts, keys, queries, m, k):  # noqa: ANN001, ANN202
    chunk_doc = torch.repeat_interleave(torch.arange(len(counts)), torch.from_numpy(counts).long())
    return [[topk_docs(score_documents(q, keys[pos], chunk_doc, len(counts), m, BLOCK), k)[0].tolist()
             for pos, q in enumerate(qs)] for qs in queries]


def _worker(rank: int, world: int, init: str, out: str, k: int, cosine: bool) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world, timeout=COLLECTIVE_TIMEOUT)
    torch.set_num_threads(1)
    counts, keys, queries = _memory()
    m = MSAConfig(normalize_router=cosine)
    shard = KeyShard.build(counts, rank, world, LAYERS,
                           lambda pos, lo, hi: keys[pos][lo:hi].clone(), torch.device("cpu"), BLOCK)
    router = ShardedRouter(shard, m)
    got = []
    if rank == 0:
        for qs in queries:
            got.append([router.route(pos, q, k)[0].tolist() for pos, q in enumerate(qs)])
        router.stop()
        Path(out).write_text(json.dumps({"ranking": got, "shard": [shard.doc_lo, shard.n_docs]}))
    else:
        served = router.serve()
        Path(out + f".{rank}").write_text(json.dumps({"served": served, "shard": [shard.doc_lo, shard.n_docs],
                                                      "scored": [shard.chunk_lo, shard.chunk_hi]}))
    dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("cosine", [False, True])
def test_two_gloo_processes_rank_exactly_as_one(tmp_path: Path, cosine: bool) -> None:
    counts, keys, queries = _memory()
    m = MSAConfig(normalize_router=cosine)
    k = 16
    want = _one_process(counts, keys, queries, m, k)
    out = str(tmp_path / "out.json")
    mp.spawn(_worker, args=(2, f"file://{tmp_path / 'rdv'}", out, k, cosine), nprocs=2, join=True)
    res = json.loads(Path(out).read_text())
    other = json.loads(Path(out + ".1").read_text())
    assert res["ranking"] == want
    assert other["served"] == len(queries) * LAYERS
    # Uneven, contiguous shards; rank 1 scored only its own chunks plus less than a block.
    assert res["shard"][0] == 0 and other["shard"][0] == res["shard"][1]
    assert other["scored"][0] % BLOCK == 0 and other["scored"][1] - other["scored"][0] < int(counts.sum())


def _store_worker(rank: int, world: int, init: str, store_path: str, model_dir: str, out: str, home: str) -> None:
    os.environ["MSA_HOME"] = home
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world, timeout=COLLECTIVE_TIMEOUT)
    torch.set_num_threads(1)
    from msa_agent.engine import Engine
    from msa_agent.store import Store

    engine = Engine.load(model_dir, dtype="float32")
    store = Store.open(store_path)
    mem = MemoryIndex(store, None, engine.cfg)
    shard = KeyShard.from_memory(mem, rank, world, torch.device("cpu"), block=8)
    router = ShardedRouter(shard, engine.cfg.msa)
    g = torch.Generator().manual_seed(1)
    cfg = engine.cfg
    if rank == 0:
        got = []
        for s in (1, 4, 11):
            q = torch.randn(cfg.n_head, s, cfg.head_dim, generator=g)
            got.append([router.route(pos, q, 3)[0].tolist() for pos in range(len(cfg.router_layers))])
        router.stop()
        Path(out).write_text(json.dumps(got))
    else:
        router.serve()
    store.close()
    dist.destroy_process_group()


@pytest.mark.slow
def test_store_built_on_one_process_serves_from_two_and_back(built, engine, tiny_model_dir, tmp_path) -> None:
    cfg = engine.cfg
    mem = MemoryIndex(built, None, cfg)
    assert len(mem) >= 4

    def one() -> list:
        g = torch.Generator().manual_seed(1)
        out = []
        for s in (1, 4, 11):
            q = torch.randn(cfg.n_head, s, cfg.head_dim, generator=g)
            out.append([mem.top_docs(layer, q, 3)[0] for layer in cfg.router_layers])
        return out

    before = one()
    out = str(tmp_path / "two.json")
    mp.spawn(_store_worker, args=(2, f"file://{tmp_path / 'rdv'}", str(built.path), str(tiny_model_dir), out,
                                  str(tmp_path / "home")), nprocs=2, join=True)
    assert json.loads(Path(out).read_text()) == before
    assert one() == before  # and back to one process
    # Three shards, merged in-process: the same again.
    shards = [KeyShard.from_memory(mem, r, 3, torch.device("cpu"), block=8) for r in range(3)]
    g = torch.Generator().manual_seed(1)
    for s, want in zip((1, 4, 11), before):
        q = torch.randn(cfg.n_head, s, cfg.head_dim, generator=g)
        for pos, w in enumerate(want):
            parts = [sh.local_topk(pos, q, cfg.msa, 3) for sh in shards]
            ids, _ = merge_topk(torch.stack([p[0] for p in parts]), torch.stack([p[1] for p in parts]), 3)
            assert ids.tolist() == w


@pytest.mark.slow
def test_torchrun_driver_routes_like_one_process(built, tiny_model_dir, tmp_path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", MSA_HOME=str(tmp_path / "home"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "msa_agent.parallel", "route", "What is the emergency stop timeout?", "--store", str(built.path),
           "--model", str(tiny_model_dir), "--top-k", "3", "--compare"]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(p.stdout[p.stdout.index("{"):])
    assert res["world"] == 2 and res["same_as_one_process"] is True
    assert 0 < len(res["docs"]) <= 3 and sum(s["documents"] for s in res["shards"]) == len(built.live_documents(None))
