"""NIAH: deterministic generation, needle placement and depths, scoring through the real ingest
path, resume, outputs; on the tiny random model (its answers score about 0, so a perfect reader
stands in for `ask` where the test is about the haystack and the scores)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import msa_agent.ask
from msa_agent.ask import AskResult
from msa_agent.errors import BadInput
from msa_agent.evals import niah
from msa_agent.evals.haystack import Haystack, doc_text
from msa_agent.evals.niah import TASKS, NiahConfig, make_sample, run_niah, sample_docs

from conftest import TEST_PROSE  # noqa: E402  (tests/evals/conftest.py)


def count(texts: list[str]) -> list[int]:
    return [max(1, len(t) // 4) for t in texts]


def hay(kind: str, seed: int = 0, doc_tokens: int = 128) -> Haystack:
    return Haystack(kind, seed, doc_tokens, count, TEST_PROSE)


def cfg(**kw) -> NiahConfig:
    base = dict(lengths=[512, 1024], tasks=["single_1", "multikey_2", "multivalue"], samples=1, doc_tokens=128,
                prose=TEST_PROSE, max_new_tokens=8)
    return NiahConfig(**{**base, **kw})


@pytest.mark.parametrize("kind", ["noise", "essay", "needle-words-numbers", "needle-uuids-uuids"])
def test_haystack_is_deterministic_and_grows_by_appending(kind: str) -> None:
    small, large = hay(kind).docs_for(1000), hay(kind).docs_for(4000)
    assert [doc_text(d) for d in large[: len(small)]] == [doc_text(d) for d in small]
    assert [doc_text(d) for d in hay(kind).docs_for(4000)] == [doc_text(d) for d in large]
    total = sum(u.tokens for d in large for u in d)
    assert 4000 - 64 <= total <= 4000 + 128
    assert all(sum(u.tokens for u in d) <= 128 for d in large)
    if kind != "noise":
        assert [doc_text(d) for d in hay(kind, seed=1).docs_for(4000)] != [doc_text(d) for d in large]


def test_needle_haystack_keys_are_distinct() -> None:
    units = [u for d in hay("needle-uuids-uuids").docs_for(8000) for u in d]
    assert len({u.key for u in units}) == len(units) > 100
    assert all(u.text == f"One of the special magic uuids for {u.key} is: {u.value}." for u in units)


@pytest.mark.parametrize("depth,where", [(0.0, "first"), (0.5, "middle"), (1.0, "last")])
def test_single_needle_goes_to_its_depth(depth: float, where: str) -> None:
    c = cfg(depths=[depth], samples=1)
    docs = hay("noise").docs_for(2048)
    s = make_sample(TASKS["single_1"], 2048, 0, c, docs)
    (n,) = s.needles
    assert s.depth == depth and n.queried and s.answers == [n.value]
    assert re.fullmatch(r"\d{7}", n.value) and re.fullmatch(r"[a-z]+-[a-z]+", n.key)
    assert s.question == f"What are all the special magic numbers for {n.key} mentioned in the provided text?"
    if where == "first":
        assert (n.doc, n.line) == (0, 0)
    elif where == "last":
        assert (n.doc, n.line) == (len(docs) - 1, len(docs[-1]))
    else:
        assert abs(n.doc - len(docs) / 2) <= 1
    text = sample_docs(s, docs, "numbers")[n.doc]
    assert text.splitlines()[n.line] == f"One of the special magic numbers for {n.key} is: {n.value}."


def test_samples_are_deterministic_by_seed() -> None:
    docs = hay("essay").docs_for(2048)
    a = make_sample(TASKS["multiquery"], 2048, 1, cfg(), docs)
    assert a == make_sample(TASKS["multiquery"], 2048, 1, cfg(), docs)
    assert a != make_sample(TASKS["multiquery"], 2048, 1, cfg(seed=7), docs)
    assert a != make_sample(TASKS["multiquery"], 2048, 2, cfg(), docs)


def test_multi_needle_tasks() -> None:
    docs = hay("essay").docs_for(4096)
    c = cfg(depths=[0.25])
    mv = make_sample(TASKS["multivalue"], 4096, 0, c, docs)
    assert len({n.key for n in mv.needles}) == 1 and len(mv.answers) == 4 and all(n.queried for n in mv.needles)
    assert sorted(round(n.depth, 2) for n in mv.needles) == [0.0, 0.25, 0.5, 0.75]
    mq = make_sample(TASKS["multiquery"], 4096, 0, c, docs)
    keys = [n.key for n in mq.needles]
    assert len(set(keys)) == 4 and all(k in mq.question for k in keys) and ", and " in mq.question
    mk = make_sample(TASKS["multikey_1"], 4096, 0, c, docs)
    assert len({n.key for n in mk.needles}) == 4 and [n.queried for n in mk.needles] == [True, False, False, False]
    assert len(mk.answers) == 1 and mk.needles[1].key not in mk.question
    s3 = make_sample(TASKS["single_3"], 4096, 0, c, docs)
    assert re.fullmatch(r"[0-9a-f-]{36}", s3.answers[0]) and "uuids" in s3.question
    # multikey 2/3: the queried needle is the haystack's own line at the depth, nothing is inserted.
    nd = hay("needle-uuids-uuids").docs_for(4096)
    mk3 = make_sample(TASKS["multikey_3"], 4096, 0, cfg(depths=[0.5]), nd)
    (n,) = mk3.needles
    assert not mk3.inserted and sample_docs(mk3, nd, "uuids") == {}
    assert nd[n.doc][n.line].key == n.key and mk3.answers == [nd[n.doc][n.line].value]


def test_bad_settings_are_refused() -> None:
    for bad in (cfg(tasks=["single_9"]), cfg(depths=[1.5]), cfg(samples=0), cfg(lengths=[64]), cfg(mode="psychic")):
        with pytest.raises(BadInput):
            bad.check()


def perfect_reader(store, engine, question, *, collection=None, mode="auto", max_new_tokens=96, **kw):  # noqa: ANN001, ANN003
    """Reads the store's documents for the needles the question asks about (tests the haystack)."""
    query = re.search(r"magic \w+ for (.*) mentioned in", question).group(1)
    keys = [k.strip() for k in re.split(r",\s*(?:and\s+)?", query)]
    values, docs = [], []
    for d in store.live_documents(collection):
        for key, value in re.findall(r"One of the special magic \w+ for (\S+) is: (\S+)\.", d.text):
            if key in keys:
                values.append(value)
                docs.append(d.id)
    return AskResult(" ".join(values), [], [{"round": 1, "injected": docs}], {"total_ms": 1.0}, "lexical")


def test_run_scores_needles_found_in_the_store(engines, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(msa_agent.ask, "ask", perfect_reader)
    c = cfg(tasks=list(TASKS), depths=[0.0, 0.5, 1.0], samples=2)
    s = run_niah(c, tmp_path / "out", engines)
    assert s["items"] == 2 * 8 * 2
    assert all(v == 100.0 for t in s["by_task_length"].values() for v in t.values())
    assert s["by_length"] == {"512": 100.0, "1024": 100.0}
    assert set(s["by_depth_length"]) == {"0.0", "0.5", "1.0"}
    assert s["memory_tokens"]["1024"] > s["memory_tokens"]["512"]
    recs = [json.loads(x) for x in (tmp_path / "out" / "niah.jsonl").read_text().splitlines()[1:]]
    assert all(r["needle_docs_injected"] == 1.0 for r in recs)
    # Only the documents the needles change are re-encoded after the first sample of a haystack.
    later = [r for r in recs if r["task"] in ("single_2", "single_3") and (r["task"], r["sample"]) != ("single_2", 0)]
    assert later and all(r["encoded_tokens"] < r["haystack_tokens"] for r in later)


def test_run_with_the_model_writes_outputs_and_resumes(engines, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    s = run_niah(cfg(), out, engines)
    for key in ("json", "markdown", "png", "results"):
        assert Path(s["outputs"][key]).is_file()
    assert Path(s["outputs"]["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = Path(s["outputs"]["markdown"]).read_text()
    assert "| task | 512 | 1K |" in md and "| single_1 |" in md and "Accuracy (%) by needle depth" in md
    saved = json.loads(Path(s["outputs"]["json"]).read_text())
    assert saved["items"] == 6 and saved["config"]["tasks"] == ["single_1", "multikey_2", "multivalue"]
    recs = [json.loads(x) for x in (out / "niah.jsonl").read_text().splitlines()[1:]]
    assert len(recs) == 6 and all(0.0 <= r["score"] <= 1.0 for r in recs)
    assert all(r["mode"] == "lexical" and r["timing"]["total_ms"] > 0 for r in recs)

    # A rerun asks nothing: every item is in the results file.
    def boom(*a, **k):  # noqa: ANN002, ANN003
        raise AssertionError("asked again")

    monkeypatch.setattr(msa_agent.ask, "ask", boom)
    again = run_niah(cfg(), out, engines)
    assert again["resumed_items"] == 6 and again["by_task_length"] == s["by_task_length"]
    # An interrupted run: drop the last item (and cut a line short); the rerun redoes just that one.
    lines = (out / "niah.jsonl").read_text().splitlines()
    (out / "niah.jsonl").write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:20])
    calls = []
    monkeypatch.setattr(msa_agent.ask, "ask", lambda *a, **k: calls.append(a[2]) or perfect_reader(*a, **k))
    third = run_niah(cfg(), out, engines)
    assert third["resumed_items"] == 5 and len(calls) == 1 and third["items"] == 6
    with pytest.raises(BadInput, match="other settings"):
        run_niah(cfg(seed=3), out, engines)
    # More lengths or samples extend the run: only the new items are asked.
    calls.clear()
    more = run_niah(cfg(samples=2), out, engines)
    assert more["items"] == 12 and len(calls) == 6
