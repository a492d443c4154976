"""MemoryIndex: the live documents' routing keys as laid out in the segments, the slices fetched
for sparse generation, and scores that match the routing reference."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from msa_agent.ask import route
from msa_agent.engine import Engine
from msa_agent.kernels import routing
from msa_agent.memory import MemoryIndex, resolve_mode
from msa_agent.pipeline import ingest_dir
from msa_agent.store import Store

CORPUS = Path(__file__).resolve().parent / "corpus"


@pytest.fixture(scope="module")
def churned(engine, tmp_path_factory):
    """A store (only read from) with two segments and tombstones in the first: pump.py changed,
    a file deleted."""
    base = tmp_path_factory.mktemp("churned")
    corpus = Path(shutil.copytree(CORPUS, base / "corpus"))
    store = Store.open(base / "store", create=True)
    ingest_dir(corpus, store, engine)
    pump = corpus / "code" / "pump.py"
    pump.write_text(pump.read_text() + "\n\ndef drain(p):\n    return p.drain()\n")
    (corpus / "contracts" / "maintenance.md").unlink()
    rep = ingest_dir(corpus, store, engine)
    assert (rep.updated, rep.removed) == (1, 1)
    assert len(list(store.segments_dir.iterdir())) == 2 and store.status()["tombstoned"] > 0
    yield store
    store.close()


def _expected_keys(store, mem, layer, name="routing"):
    pos = mem.cfg.router_layers.index(layer)
    parts = []
    for d in store.live_documents(None):
        seg = store.segment(d.segment_id)
        arr = seg.routing_keys() if name == "routing" else getattr(seg, name)
        parts.append(np.asarray(arr[pos, d.chunk_start : d.chunk_start + d.n_chunks]))
    return torch.from_numpy(np.concatenate(parts).astype(np.float32))  # (N, Hk, D)


def test_routing_keys_are_the_live_documents_stored_keys_in_order(churned, engine):
    store = churned
    mem = MemoryIndex(store, None, engine.cfg)
    live = store.live_documents(None)
    assert [d.id for d in mem.docs] == [d.id for d in live] and len(mem) == len(live)
    assert mem.chunk_doc.tolist() == [i for i, d in enumerate(live) for _ in range(d.n_chunks)]
    assert mem.n_chunks == sum(d.n_chunks for d in live)
    for layer in engine.cfg.router_layers:
        want = routing.prepare_keys(_expected_keys(store, mem, layer), engine.cfg.msa.cosine)
        got = mem.routing_keys(layer)
        assert got.shape == (mem.n_chunks, engine.cfg.n_kv_head, engine.cfg.head_dim)
        assert torch.equal(got, want)
        assert mem.routing_keys(layer) is got  # loaded once


def test_fetch_returns_each_documents_slices(churned, engine):
    mem = MemoryIndex(churned, None, engine.cfg)
    pick = [len(mem) - 1, 0, 2]
    for layer in engine.cfg.router_layers:
        pos = engine.cfg.router_layers.index(layer)
        k, v = mem.fetch(layer, pick)
        want_k, want_v = [], []
        for i in pick:
            d = mem.docs[i]
            seg = churned.segment(d.segment_id)
            want_k.append(np.asarray(seg.k[pos, d.chunk_start : d.chunk_start + d.n_chunks]))
            want_v.append(np.asarray(seg.v[pos, d.chunk_start : d.chunk_start + d.n_chunks]))
        M = sum(mem.docs[i].n_chunks for i in pick)
        assert k.shape == v.shape == (engine.cfg.n_kv_head, M, engine.cfg.head_dim)
        assert torch.equal(k, torch.from_numpy(np.concatenate(want_k).astype(np.float32)).transpose(0, 1))
        assert torch.equal(v, torch.from_numpy(np.concatenate(want_v).astype(np.float32)).transpose(0, 1))
        k0, v0 = mem.fetch(layer, [])
        assert k0.shape == v0.shape == (engine.cfg.n_kv_head, 0, engine.cfg.head_dim)


def test_doc_scores_match_the_routing_reference(churned, engine):
    cfg = engine.cfg
    mem = MemoryIndex(churned, None, cfg)
    q = torch.randn(cfg.n_head, 5, cfg.head_dim, generator=torch.Generator().manual_seed(0))  # (H, S, D)
    m = cfg.msa
    for layer in cfg.router_layers:
        ds, top_vals, top_idx = routing.route(
            q, _expected_keys(churned, mem, layer), mem.chunk_doc, len(mem), 3, head_reduce=m.head_reduce_method,
            query_reduce=m.query_reduce_method, chunk_reduce=m.chunk_reduce_method, cosine=m.cosine)
        got = mem.doc_scores(layer, q)
        torch.testing.assert_close(got, ds)
        assert torch.topk(got, 3).indices.tolist() == top_idx.tolist()


def test_a_collection_holds_only_its_documents(corpus, store, engine, tmp_path):
    ingest_dir(corpus, store, engine, collection="a")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("Valve V-12 was replaced in May.\n")
    ingest_dir(other, store, engine, collection="b")
    a, b, both = (MemoryIndex(store, c, engine.cfg) for c in ("a", "b", None))
    assert {d.collection for d in a.docs} == {"a"} and [d.path for d in b.docs] == ["notes.txt"]
    assert len(both) == len(a) + len(b)
    layer = engine.cfg.router_layers[0]
    assert b.routing_keys(layer).shape[0] == b.docs[0].n_chunks


# ---- a model with a trained (decoupled) router ----------------------------------------------


@pytest.fixture(scope="module")
def router_engine(default_tokenizer_dir, tmp_path_factory) -> Engine:
    path = Path(__file__).resolve().parents[1] / "conftest.py"
    spec = importlib.util.spec_from_file_location("msa_tests_root_conftest", path)
    root_conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(root_conftest)
    model_dir = root_conftest.write_tiny_model(tmp_path_factory.mktemp("tiny-router"), default_tokenizer_dir,
                                               decouple=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MSA_HOME", str(tmp_path_factory.mktemp("router-home")))
        return Engine.load(str(model_dir), dtype="float32")


def test_a_trained_router_routes_on_its_own_keys(corpus, store, router_engine):
    cfg = router_engine.cfg
    ingest_dir(corpus, store, router_engine)
    assert store.manifest["routing_keys"] == "router"
    [seg_dir] = store.segments_dir.iterdir()
    assert (seg_dir / "rk.npy").is_file() and store.verify() == []
    mem = MemoryIndex(store, None, cfg)
    for layer in cfg.router_layers:
        rk = _expected_keys(store, mem, layer, "rk")
        assert torch.equal(mem.routing_keys(layer), routing.prepare_keys(rk, cfg.msa.cosine))
        assert not torch.equal(rk, _expected_keys(store, mem, layer, "k"))
    assert resolve_mode("auto", cfg) == "hybrid"  # a trained router: the fusion (memory.py's docstring)
    res = route(store, router_engine, "emergency_stop timeout_s", top_k=3, mode="hybrid")
    assert res["mode"] == "hybrid" and len(res["docs"]) == 3


def test_rrf_vectorised_equals_the_rank_by_rank_definition():
    """Hybrid fusion runs over every document at every router layer: the vectorised `rrf` must
    give exactly the scores of the plain loop it replaced, on random rankings and weights."""
    import random

    import torch

    from msa_agent.memory import RRF_K, rrf

    def plain(rankings, n):
        out = torch.zeros(n)
        for order, w in rankings:
            for r, i in enumerate(order):
                out[i] += w / (RRF_K + r + 1)
        return out

    rng = random.Random(7)
    for _ in range(25):
        n = rng.randint(1, 400)
        lexical = rng.sample(range(n), rng.randint(0, n))
        routed = rng.sample(range(n), n)
        w = rng.uniform(0.25, 4.0)
        fast = rrf([(lexical, w), (torch.tensor(routed), 1.0)], n)
        assert torch.equal(fast, plain([(lexical, w), (routed, 1.0)], n))
