"""The CUDA path: MemoryIndex keys resident on the GPU and scored by the Triton kernel, and
ingest -> route -> ask on a CUDA engine (skipped without a GPU)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from msa_agent.memory import MemoryIndex

pytestmark = pytest.mark.requires_cuda
CORPUS = Path(__file__).resolve().parent / "corpus"


def test_gpu_memory_index_ranks_like_the_cpu_reference(built, engine) -> None:
    cfg = engine.cfg
    cpu = MemoryIndex(built, None, cfg)
    gpu = MemoryIndex(built, None, cfg, device="cuda")
    g = torch.Generator().manual_seed(0)
    for s in (1, 5, 18):
        q = torch.randn(cfg.n_head, s, cfg.head_dim, generator=g)
        for layer in cfg.router_layers:
            a = cpu.doc_scores(layer, q)
            b = gpu.doc_scores(layer, q.cuda())
            assert b.is_cuda and gpu.routing_keys(layer).dtype == torch.float16
            fin = torch.isfinite(a)
            assert torch.allclose(a[fin], b.cpu()[fin], rtol=2e-2, atol=2e-2)
        k, v = gpu.fetch(cfg.router_layers[0], [0, 2], torch.device("cuda"))
        k0, v0 = cpu.fetch(cfg.router_layers[0], [0, 2])
        assert k.is_cuda and torch.equal(k.cpu(), k0) and torch.equal(v.cpu(), v0)


def test_ingest_route_ask_on_cuda(tiny_model_dir, tmp_path) -> None:
    from msa_agent.ask import ask, route
    from msa_agent.engine import Engine
    from msa_agent.pipeline import ingest_dir
    from msa_agent.store import Store

    eng = Engine.load(str(tiny_model_dir), device="cuda", dtype="bfloat16")
    root = Path(shutil.copytree(CORPUS, tmp_path / "corpus"))
    st = Store.open(tmp_path / "store", create=True)
    rep = ingest_dir(root, st, eng)
    assert rep.failed == 0 and rep.tokens > 0
    for mode in ("msa", "hybrid", "lexical"):
        assert route(st, eng, "emergency stop timeout", mode=mode, top_k=3)["docs"]
    res = ask(st, eng, "What is the emergency stop timeout?", mode="msa", max_new_tokens=4, rounds=2)
    assert res.citations
    st.close()
