"""The bundled sample corpus, end to end through the tiny model: every file stored, the store
whole, and the demo's questions routed to the documents that answer them."""

from __future__ import annotations

from pathlib import Path

import pytest

from msa_agent.ask import ask, route
from msa_agent.ingest import walk
from msa_agent.pipeline import ingest_dir
from msa_agent.reader import ReadPolicy
from msa_agent.store import Store

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "corpus"


@pytest.fixture(scope="module")
def samples_store(engine, tmp_path_factory):
    st = Store.open(tmp_path_factory.mktemp("samples"), create=True)
    report = ingest_dir(SAMPLES, st, engine)
    yield st, report
    st.close()


def test_every_sample_file_is_stored(samples_store):
    st, rep = samples_store
    files = list(walk(SAMPLES))
    assert (rep.added, rep.failed, rep.updated, rep.removed) == (len(files), 0, 0, 0)
    live = st.live_documents(None)
    assert {d.path for d in live} == {p.relative_to(SAMPLES).as_posix() for p in files}
    assert {d.kind for d in live} == {"contract", "code", "log"}
    status = st.status()
    assert (status["documents"], status["tokens"]) == (rep.documents, rep.tokens) == (len(live), sum(d.n_tokens for d in live))
    assert status["chunks"] == sum(d.n_chunks for d in live) and status["tombstoned"] == 0
    assert st.verify() == []


@pytest.mark.parametrize("question, path, needle", [
    ("What does Blue Harbor Robotics pay per quarter under the supply agreement?",
     "contracts/supply_agreement.pdf", "per quarter"),
    ("What is the default timeout_s of PumpController.emergency_stop?",
     "code/pumpctl/controller.py", "def emergency_stop"),
    ("Which sensor reported status ALARM, and at what time?", "logs/plant_sensors.csv", "ALARM"),
])
def test_demo_questions_route_to_their_documents(samples_store, engine, question, path, needle):
    st, _ = samples_store
    docs = route(st, engine, question, top_k=3)["docs"]  # auto: lexical with an untrained router
    texts = {d.id: d.text for d in st.live_documents(None)}
    # Within the three documents ask injects in its first round.
    assert any(d["path"] == path and needle in texts[d["doc_id"]] for d in docs), docs


def test_ask_over_the_samples_cites_live_documents(samples_store, engine):
    st, _ = samples_store
    live = {d.id for d in st.live_documents(None)}
    res = ask(st, engine, "What is the default timeout_s of PumpController.emergency_stop?", rounds=2,
              max_new_tokens=4, policy=ReadPolicy.plain())  # the tiny model's words, cited as they are
    assert res.citations and {c["doc_id"] for c in res.citations} <= live
    assert res.rounds[0]["routed"][0]["path"] == "code/pumpctl/controller.py"
    res = ask(st, engine, "Which sensor reported status ALARM?", mode="msa", rounds=1, max_new_tokens=4,
              policy=ReadPolicy.plain())
    assert res.rounds[0]["routed"] and {c["doc_id"] for c in res.citations} <= live
