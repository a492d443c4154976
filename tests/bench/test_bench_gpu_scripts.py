"""The GPU bench scripts' tiny sizes on CPU with the tiny model: they build, resume, route and
report what the device runs will report."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str):  # noqa: ANN202
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_gpu_100m_tiny_on_cpu_builds_resumes_and_reports(tiny_model_dir: Path, tmp_path: Path) -> None:
    mod = _load("gpu_100m")
    common = ["--device", "cpu", "--model", str(tiny_model_dir), "--sizes", "3000,9000", "--doc-tokens", "128",
              "--questions", "4", "--top-k", "4", "--store-max", "3000", "--work", str(tmp_path / "w"),
              "--out", str(tmp_path / "o")]
    mod.PART_TOKENS = 2048
    first = mod.main(common + ["--budget-s", "0"])  # stops before encoding anything: resumable
    assert first["sizes"] == []
    res = mod.main(common)
    rows = res["sizes"]
    assert rows[0]["documents"] < rows[1]["documents"]
    assert rows[0]["build_path"] == ["store"] and "segments" in rows[1]["build_path"]
    for r in rows:
        assert r["questions"] >= 2 and r["route_ms_median"] > 0 and r["round_ms_median"] > 0
        assert 0 <= r["recall_combined"] <= r["recall_any_layer"] <= 1
        assert r["tokens"] >= [3000, 9000][rows.index(r)]
        assert 64 <= r["segment_bytes_per_token"] < 80  # 2 layers x (K, V) x 2 heads x 16 x fp16 / 4 tokens
    assert "untrained" in res["routing"]
    # Lexical and hybrid at the size built through the store, for the same questions; the key word
    # of each needle is rare, so BM25 finds its document.
    store_row, seg_row = rows
    assert store_row["recall_lexical"] >= 0.75 and 0 <= store_row["recall_hybrid"] <= 1
    assert store_row["lexical_ms_median"] > 0 and store_row["hybrid_ms_median"] > 0
    assert store_row["lexical_note"] is None
    assert all("hit_lexical" in q and "hit_hybrid" in q for q in store_row["rows"])
    # Past --store-max there are no rows nor lexical index: null, with the reason.
    for k in ("recall_lexical", "recall_hybrid", "lexical_ms_median", "hybrid_ms_median"):
        assert k in seg_row and seg_row[k] is None
    assert "not measured" in seg_row["lexical_note"] and "lexical" in res["lexical_hybrid"]
    assert json.loads((tmp_path / "o" / "gpu_100m.json").read_text())["sizes"] == rows
    again = mod.main(common)  # finished sizes are read back, not rebuilt
    assert json.dumps(again["sizes"], sort_keys=True) == json.dumps(rows, sort_keys=True)
    from msa_agent.store import Store

    st = Store.open(tmp_path / "w" / "store")
    assert st.status()["documents"] == rows[0]["documents"] and not st.verify()
    st.close()


def test_gpu_100m_keys_only_on_cpu(tmp_path: Path) -> None:
    mod = _load("gpu_100m")
    res = mod.main(["--keys-only", "--device", "cpu", "--sizes", "64000,256000", "--questions", "3",
                    "--out", str(tmp_path)])
    assert [r["chunks"] for r in res["rows"]] == [1000, 4000]
    assert all(r["route_ms_median"] > 0 for r in res["rows"])


@pytest.mark.slow
def test_gpu_shard_route_two_gloo_ranks_rank_as_one(tmp_path: Path) -> None:
    import os
    import subprocess

    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(BENCH / "gpu_shard_route.py"), "--tokens", "600000", "--rounds", "2", "--out", str(tmp_path)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads((tmp_path / "gpu_shard_route_w2.json").read_text())
    assert res["same_ranking_as_one_device"] is True and res["world"] == 2
    assert sum(s["documents"] for s in res["shards"]) == res["documents"]


def test_gpu_100m_routes_with_the_question_tokens_only(tiny_model_dir: Path) -> None:
    """The bench's question round is `msa route`'s: the user turn as ask._prompt lays it out, and
    only the question's tokens as routing queries (the chat template's closing tokens were never
    trained as queries)."""
    import argparse

    import torch

    from msa_agent.ask import _prompt

    mod = _load("gpu_100m")
    engine = mod.load_engine(str(tiny_model_dir), "cpu", None)
    stream = mod.DocStream(engine.tok, 128, 2, [3000], 0)
    cfg = engine.cfg

    class FakeMemory:
        def __init__(self) -> None:
            self.cfg, self.n, self.score_ms, self.n_queries = cfg, 40, [], []

        def __len__(self) -> int:
            return self.n

        def top_docs(self, layer: int, q_r: torch.Tensor, k: int):  # noqa: ANN202
            self.n_queries.append(q_r.shape[1])
            self.score_ms.append(0.1)
            return list(range(k)), [1.0] * k

        def fetch(self, layer: int, docs: list[int], device=None):  # noqa: ANN001, ANN202
            z = torch.zeros(cfg.n_kv_head, 0, cfg.head_dim)
            return z, z

    mem = FakeMemory()
    args = argparse.Namespace(top_k=4, device="cpu")
    ev = mod.evaluate(args, engine, stream, mem)
    assert ev["questions"] == 2
    key = stream.needles[0][0]
    ids, mask = _prompt(engine, [], 0, f"What is the special magic number for {key}?")
    assert int(mask.sum()) < len(ids)  # the template's tail is in the prompt, not in the queries
    assert mem.n_queries[0] == int(mask.sum())
