"""`msa forget`, `msa compact` (reclaiming the space, routing unchanged), `msa status` per source,
collections kept apart, and a second writer waiting with --wait. Each test looks at the store."""

from __future__ import annotations

import threading

import pytest

from msa_agent.ask import route
from msa_agent.engine import Engine
from msa_agent.store import Store

MODES = ("msa", "lexical", "hybrid")
QUESTIONS = ["What is the default timeout_s of PumpController.emergency_stop?",
             "What does Blue Harbor Robotics pay per quarter for pump-3?",
             "Which sensor reported ALARM?"]


def _live(store_dir):
    st = Store.open(store_dir)
    try:
        return {d.id: d for d in st.live_documents(None)}
    finally:
        st.close()


@pytest.fixture(scope="module")
def engine(tiny_model_dir, tmp_path_factory):
    """The model `msa` loads for each command, loaded once here for the many routings compared."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MSA_HOME", str(tmp_path_factory.mktemp("engine-home")))
        return Engine.load(str(tiny_model_dir), dtype="float32")


def _routes(engine, store_dir, collection=None, questions=QUESTIONS):
    """What `msa route --top-k 16` answers, in every mode, for every question."""
    st = Store.open(store_dir)
    try:
        return {(m, q): route(st, engine, q, mode=m, top_k=16, collection=collection)["docs"]
                for m in MODES for q in questions}
    finally:
        st.close()


def _disk(store_dir):
    return sum(f.stat().st_size for f in (store_dir / "segments").rglob("*") if f.is_file())


def test_forget_then_compact(msa, msa_json, fails, corpus, store_dir, engine):
    msa("ingest", corpus, "--store", store_dir)
    # A changed file leaves tombstones inside the first segment.
    pump = corpus / "code" / "pump.py"
    pump.write_text(pump.read_text().replace("2.5", "3.5"))
    msa("ingest", corpus, "--store", store_dir)
    live = _live(store_dir)
    supply = {i for i, d in live.items() if d.path == "contracts/supply.txt"}

    res = msa("forget", corpus / "contracts" / "supply.txt", "--store", store_dir)
    assert res.stdout.startswith(f"forgot 1 files, {len(supply)} documents")
    assert not supply & _live(store_dir).keys()
    before = _routes(engine, store_dir)
    for docs in before.values():
        assert not supply & {d["doc_id"] for d in docs}
    cli = msa_json("route", QUESTIONS[1], "--store", store_dir, "--mode", "hybrid", "--top-k", "16")
    assert cli["docs"] == before[("hybrid", QUESTIONS[1])]
    res = msa_json("ask", QUESTIONS[1], "--store", store_dir, "--mode", "hybrid", "--max-tokens", "1", "--rounds", "2")
    assert not supply & ({c["doc_id"] for c in res["citations"]} | {d["doc_id"] for r in res["rounds"] for d in r["routed"]})
    status = msa_json("status", "--store", store_dir)
    assert status["sources"][0]["files"] == 3
    fails(msa("forget", corpus / "contracts" / "supply.txt", "--store", store_dir, code=1), "nothing stored from")
    fails(msa("forget", corpus / "nowhere", "--store", store_dir, code=1), "nothing stored from")

    # Compact: space back, verify clean, routing over the live documents unchanged.
    before_ask = msa_json("ask", QUESTIONS[0], "--store", store_dir, "--mode", "msa", "--max-tokens", "2", "--rounds", "1")
    disk = _disk(store_dir)
    assert status["tombstoned"] > 0
    res = msa_json("compact", "--store", store_dir)
    assert res["documents"] == status["tombstoned"] and res["rewritten"] >= 1 and res["damaged"] == []
    assert res["bytes_after"] < res["bytes_before"] == disk and _disk(store_dir) == res["bytes_after"]
    assert msa_json("verify", "--store", store_dir) == {"ok": True, "problems": []}
    status = msa_json("status", "--store", store_dir)
    assert status["tombstoned"] == 0 and status["segments"] == len(list((store_dir / "segments").iterdir()))
    assert _routes(engine, store_dir) == before
    after_ask = msa_json("ask", QUESTIONS[0], "--store", store_dir, "--mode", "msa", "--max-tokens", "2", "--rounds", "1")
    assert (after_ask["answer"], after_ask["citations"]) == (before_ask["answer"], before_ask["citations"])

    # A directory prefix; the rest re-ingests as unchanged; a forgotten file comes back with ingest.
    res = msa("forget", corpus / "code", "--store", store_dir)
    assert res.stdout.startswith("forgot 1 files")
    assert "code/pump.py" not in {d.path for d in _live(store_dir).values()}
    rep = msa_json("ingest", corpus, "--store", store_dir)
    assert (rep["added"], rep["unchanged"]) == (2, 2)
    assert msa("compact", "--store", store_dir).stdout.startswith("removed 3 documents")  # pump.py's
    msa("verify", "--store", store_dir)


def test_forget_in_one_collection(msa, msa_json, corpus, tmp_path, store_dir, engine):
    """Routing and citations stay inside a collection (test_cli_route); forgetting does too."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "memo.md").write_text("# Memo\n\nThe pump-3 contract is renegotiated by Gray Harbor in May.\n")
    msa("ingest", corpus, "--store", store_dir, "--collection", "plant")
    msa("ingest", other, "--store", store_dir, "--collection", "memos")
    msa("ingest", other, "--store", store_dir, "--collection", "plant")
    live = _live(store_dir)
    for coll in ("plant", "memos"):
        ids = {i for i, d in live.items() if d.collection == coll}
        for docs in _routes(engine, store_dir, collection=coll, questions=QUESTIONS[1:2]).values():
            assert {d["doc_id"] for d in docs} <= ids
    msa("forget", corpus, "--store", store_dir, "--collection", "memos", code=1)  # nothing of it there
    assert msa("forget", other, "--store", store_dir, "--collection", "memos").stdout.startswith("forgot 1 files")
    assert {(d.collection, d.path) for d in _live(store_dir).values() if d.path == "memo.md"} == {("plant", "memo.md")}
    msa("compact", "--store", store_dir)
    assert msa_json("status", "--store", store_dir)["collections"] == ["plant"]


def test_a_second_ingest_waits_with_wait(msa, fails, corpus, store_dir):
    msa("ingest", corpus, "--store", store_dir)
    (corpus / "code" / "valves.py").write_text("def close_valve(v):\n    v.close()\n")
    holder = Store.open(store_dir)
    held, release = threading.Event(), threading.Event()

    def hold():
        with holder.write_lock():
            held.set()
            release.wait(30)

    t = threading.Thread(target=hold)
    t.start()
    try:
        held.wait(10)
        line = fails(msa("ingest", corpus, "--store", store_dir, code=1), "another msa process is writing")
        assert "--wait" in line
        fails(msa("ingest", corpus, "--store", store_dir, "--wait", "0.2", code=1), "after waiting 0.2 s")
        fails(msa("forget", corpus / "code", "--store", store_dir, code=1), "another msa process is writing")
        msa("route", "valve", "--store", store_dir)  # readers are not blocked
        threading.Timer(0.5, release.set).start()
        assert "added 1" in msa("ingest", corpus, "--store", store_dir, "--wait", "30").stdout
    finally:
        release.set()
        t.join(30)
        holder.close()
