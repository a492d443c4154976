"""`msa route` and `msa ask`: the JSON contracts, every routing mode, --top-k, --rounds, and
collections kept apart."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from msa_agent.cli.main import app
from msa_agent.memory import MemoryIndex
from msa_agent.store import Store

CORPUS = Path(__file__).resolve().parents[1] / "app" / "corpus"
ROUTE_KEYS = {"doc_id", "path", "anchor", "score"}
CITATION_KEYS = {"doc_id", "path", "kind", "anchor", "score"}


@pytest.fixture(scope="module")
def store_dir(tiny_model_dir, tmp_path_factory):
    """One store for the module (only read from): the corpus in collection "plant", a few legal
    notes in collection "legal"."""
    base = tmp_path_factory.mktemp("route")
    corpus = Path(shutil.copytree(CORPUS, base / "corpus"))
    legal = base / "legal"
    legal.mkdir()
    (legal / "nda.md").write_text("# Mutual NDA\n\nThe Recipient keeps pump-3 drawings confidential for five years.\n")
    (legal / "lease.txt").write_text("The tenant pays rent for the pump house on the first day of each month.\n")
    env = {"MSA_HOME": str(base / "home"), "MSA_MODEL": str(tiny_model_dir), "MSA_DTYPE": "float32"}
    for root, coll in ((corpus, "plant"), (legal, "legal")):
        res = CliRunner().invoke(app, ["ingest", str(root), "--store", str(base / "store"), "--collection", coll], env=env)
        assert res.exit_code == 0, res.output
    return base / "store"


@pytest.fixture(scope="module")
def built(store_dir):
    st = Store.open(store_dir)
    docs = {d.id: d for d in st.live_documents(None)}
    st.close()
    return docs


@pytest.mark.parametrize("mode", ["auto", "msa", "lexical", "hybrid"])
def test_route_json(msa_json, built, store_dir, mode):
    res = msa_json("route", "What is the default timeout_s of emergency_stop?", "--store", store_dir, "--mode", mode,
                   "--top-k", "3")
    docs = res["docs"]
    assert 0 < len(docs) <= 3
    assert all(ROUTE_KEYS <= set(d) for d in docs)
    assert [d["score"] for d in docs] == sorted((d["score"] for d in docs), reverse=True)
    for d in docs:
        row = built[d["doc_id"]]
        assert (d["path"], d["anchor"]) == (row.path, row.anchor) and not row.tombstone
    if mode in ("auto", "lexical"):
        assert docs[0]["path"] == "code/pump.py" and "emergency_stop" in built[docs[0]["doc_id"]].text


def test_route_respects_top_k(msa_json, built, store_dir):
    for mode, k in (("msa", 1), ("hybrid", 5), ("lexical", 2)):
        assert len(msa_json("route", "pump valve sensor", "--store", store_dir, "--mode", mode, "--top-k", k)["docs"]) == k


def test_route_stays_inside_its_collection(msa_json, built, store_dir):
    for mode, coll in (("msa", "legal"), ("lexical", "legal"), ("hybrid", "plant"), ("lexical", "plant")):
        docs = msa_json("route", "pump-3 confidential drawings", "--store", store_dir, "--collection", coll,
                        "--mode", mode, "--top-k", "16")["docs"]
        assert docs and {built[d["doc_id"]].collection for d in docs} == {coll}
    everywhere = msa_json("route", "pump-3 confidential drawings", "--store", store_dir, "--mode", "lexical", "--top-k", "16")
    assert {built[d["doc_id"]].collection for d in everywhere["docs"]} == {"legal", "plant"}


def test_ask_json(msa_json, built, store_dir, tiny_model_dir, monkeypatch):
    # The tiny random model's words are no answer the focused reader would keep: it "answers" the
    # contract's figure, so the citation path runs (the reading policy is tested in tests/app).
    from msa_agent.model.model import MSAModel
    from msa_agent.model.tokenizer import Tokenizer

    ids = Tokenizer(tiny_model_dir).encode("42,000 EUR")
    monkeypatch.setattr(MSAModel, "decode", lambda self, *a, **k: iter(ids))
    res = msa_json("ask", "What does Blue Harbor Robotics pay per quarter?", "--store", store_dir, "--max-tokens", "8",
                   "--rounds", "2")
    assert {"answer", "citations", "rounds", "timing"} <= set(res)
    assert isinstance(res["answer"], str)
    assert res["citations"] and all(CITATION_KEYS <= set(c) for c in res["citations"])
    for c in res["citations"]:
        row = built[c["doc_id"]]
        assert (c["path"], c["kind"], c["anchor"]) == (row.path, row.kind, row.anchor)
    assert 1 <= len(res["rounds"]) <= 2 and all(r["routed"] for r in res["rounds"])
    assert res["rounds"][0]["routed"][0]["path"] == "contracts/supply.txt"
    read = {i for r in res["rounds"] for i in r["injected"] + r.get("read", [])}
    assert {c["doc_id"] for c in res["citations"]} <= read and res["reading"]["how"] == "generated"
    assert {"route_ms", "generate_ms", "tokens"} <= set(res["timing"]) and res["timing"]["tokens"] <= 8


@pytest.mark.parametrize("rounds", [1, 3])
def test_ask_msa_mode_routes_in_every_router_layer(msa_json, built, store_dir, monkeypatch, rounds):
    layers: list[int] = []
    real = MemoryIndex.doc_scores

    def spy(self, layer, q_r):
        layers.append(layer)
        return real(self, layer, q_r)

    monkeypatch.setattr(MemoryIndex, "doc_scores", spy)
    res = msa_json("ask", "Which sensor reported ALARM?", "--store", store_dir, "--mode", "msa", "--collection", "plant",
                   "--rounds", rounds, "--max-tokens", "8", "--top-k", "2")
    assert 1 <= len(res["rounds"]) <= rounds
    assert res["rounds"][0]["routed"]
    assert all(len(r["routed"]) <= 2 for r in res["rounds"])
    # every round routes in both router layers, and so does the reader's prefill unless the answer
    # came off the CSV rows without the model (`tableqa`)
    reads = 0 if res["reading"]["how"].startswith("table:") else 1
    assert set(layers) == {2, 3} and len(layers) >= 2 * (len(res["rounds"]) + reads)
    routed = {d["doc_id"] for r in res["rounds"] for d in r["routed"]}
    assert {built[i].collection for i in routed} == {"plant"}
    read = {i for r in res["rounds"] for i in r["injected"] + r.get("read", [])}
    assert {c["doc_id"] for c in res["citations"]} <= read


def test_text_output(msa, built, store_dir):
    res = msa("route", "emergency_stop", "--store", store_dir)
    assert "code/pump.py" in res.stdout
    res = msa("ask", "What is the default timeout_s of emergency_stop?", "--store", store_dir, "--max-tokens", "4")
    assert "Sources" in res.stdout and "code/pump.py" in res.stdout
    assert "lexical routing" in res.stderr  # chatter on stderr, results on stdout
