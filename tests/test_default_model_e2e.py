"""End to end with the real default backbone: ingest part of the sample corpus, ask, cite."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from msa_agent.cli.main import app
from msa_agent.store import Store

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "corpus"

pytestmark = [pytest.mark.slow, pytest.mark.real_model]


def test_default_model_answers_with_page_citation(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(SAMPLES / "contracts", corpus / "contracts")
    shutil.copytree(SAMPLES / "logs", corpus / "logs")
    store = tmp_path / "store"
    runner = CliRunner()
    res = runner.invoke(app, ["ingest", str(corpus), "--store", str(store), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["added"] == 2 and report["failed"] == 0

    st = Store.open(store)
    assert st.verify() == []
    info = st.status()
    assert info["documents"] == report["documents"] and info["model"].startswith("SmolLM2-135M")

    res = runner.invoke(app, ["ask", "What does Blue Harbor Robotics pay per quarter under the supply agreement?",
                              "--store", str(store), "--json", "--max-tokens", "40"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert "48,500" in out["answer"]
    top = out["citations"][0]
    assert top["path"] == "contracts/supply_agreement.pdf" and top["anchor"].startswith("p. 2")

    res = runner.invoke(app, ["route", "Which sensor reported status ALARM?", "--store", str(store), "--json"])
    assert res.exit_code == 0, res.output
    docs = json.loads(res.stdout)["docs"]
    assert docs[0]["path"] == "logs/plant_sensors.csv" and "02:17" not in docs[0]["anchor"]
    assert docs[0]["anchor"].startswith("2024-03-14T02:01:00Z")


def test_bench_engines_of_one_dtype_read_with_the_reader_adapter() -> None:
    # On a GPU both purposes get bf16 and the benches share one engine: it must be the one that
    # reads with the adapter, not an encode-only engine whose base model would answer.
    from msa_agent.evals.common import Engines

    eng = Engines.load(dtype="float32")
    assert eng.encode is eng.generate
    assert eng.generate.adapter is not None and eng.generate.reader is not None
    assert eng.generate.fingerprint == Engines.load().encode.fingerprint  # the memory is the same
