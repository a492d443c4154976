"""Scale bench: the evidence is kept while distractors grow the memory; accuracy, latency and
degradation per size; resume; on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import msa_agent.ask
from msa_agent.ask import AskResult
from msa_agent.errors import BadInput
from msa_agent.evals.qa_corpus import make_corpus
from msa_agent.evals.scale import ScaleConfig, run_scale

from conftest import TEST_PROSE  # noqa: E402  (tests/evals/conftest.py)


def cfg(**kw) -> ScaleConfig:
    return ScaleConfig(**{**dict(sizes=[2048, 6144], size=1, doc_tokens=256, max_new_tokens=4, prose=TEST_PROSE), **kw})


def test_memory_grows_and_keeps_the_evidence(engines, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int, set[str]]] = []

    def recording_ask(store, engine, question, *, collection=None, **kw):  # noqa: ANN001, ANN003
        docs = store.live_documents(collection)
        seen.append((sum(d.n_tokens for d in docs), {d.path for d in docs}))
        # Half right: the answer for the first question only.
        q = make_corpus(0, 1).questions[0]
        return AskResult(q["answer"] if question == q["question"] else "no idea", [], [{"injected": [docs[0].id]}],
                         {"total_ms": 5.0, "route_ms": 1.0}, "lexical")

    monkeypatch.setattr(msa_agent.ask, "ask", recording_ask)
    out = tmp_path / "scale"
    s = run_scale(cfg(), out, engines)
    evidence = {e for q in make_corpus(0, 1).questions for e in q["evidence"]}
    assert len(seen) == 4 and all(evidence <= paths for _, paths in seen)
    small, large = seen[0], seen[-1]
    assert small[1] < large[1] and large[0] > 2.5 * small[0]
    assert any("distractors/prose/" in p for p in large[1]) and any("distractors/companies/" in p for p in large[1])
    by = s["by_size"]
    assert by["2048"]["contains"] == by["6144"]["contains"] == 50.0
    assert by["6144"]["degradation_pct"] == 0.0 and by["6144"]["memory_tokens"] > by["2048"]["memory_tokens"]
    for key in ("json", "markdown", "png"):
        assert Path(s["outputs"][key]).is_file()
    assert "| 6K |" in Path(s["outputs"]["markdown"]).read_text()
    # Resume, then extend with a size in between: only its items run, over exactly its memory.
    seen.clear()
    assert run_scale(cfg(), out, engines)["resumed_items"] == 4 and not seen
    mid = run_scale(cfg(sizes=[2048, 4096, 6144]), out, engines)
    assert len(seen) == 2 and small[0] < seen[0][0] < large[0]
    assert list(mid["by_size"]) == ["2048", "4096", "6144"]


def test_with_the_model(engines, tmp_path: Path) -> None:
    s = run_scale(cfg(sizes=[2048]), tmp_path / "s", engines)
    recs = [json.loads(x) for x in (tmp_path / "s" / "scale.jsonl").read_text().splitlines()[1:]]
    assert len(recs) == 2 and all(r["timing"]["total_ms"] > 0 and r["mode"] == "lexical" for r in recs)
    assert 0 <= s["by_size"]["2048"]["evidence_recall"] <= 100


def test_smallest_size_must_hold_the_evidence(engines, tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="evidence corpus"):
        run_scale(cfg(sizes=[256], size=3), tmp_path / "s", engines)
