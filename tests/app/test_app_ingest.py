"""ingest_dir: what lands in the store, and incremental re-runs (unchanged, changed, deleted,
added, unreadable files)."""

from __future__ import annotations

import json
import math

import pytest

from msa_agent.ask import ask, route
from msa_agent.errors import BadInput, StoreLocked
from msa_agent.ingest import parse_file, walk
from msa_agent.pipeline import ingest_dir
from msa_agent.store.schema import DocumentRow, IngestRunRow, SegmentRow
from sqlalchemy import select

MODES = ("msa", "lexical", "hybrid")


def _rows(store, model):
    with store.session() as s:
        return list(s.scalars(select(model)))


def _live(store):
    return {d.id: d for d in store.live_documents(None)}


def _routed_ids(store, engine, question):
    return {d["doc_id"] for m in MODES for d in route(store, engine, question, mode=m, top_k=16)["docs"]}


def test_ingest_stores_every_parsed_document_with_its_anchor(corpus, store, engine):
    rep = ingest_dir(corpus, store, engine)
    assert (rep.added, rep.updated, rep.removed, rep.unchanged, rep.failed) == (4, 0, 0, 0, 0)
    want = sorted(
        (d.path, d.kind, d.anchor, d.title, d.text)
        for p in walk(corpus) for d in parse_file(p, corpus)
    )
    live = store.live_documents(None)
    assert sorted((d.path, d.kind, d.anchor, d.title, d.text) for d in live) == want
    assert {d.kind for d in live} >= {"code", "log"}
    assert rep.documents == len(live) and rep.tokens == sum(d.n_tokens for d in live) > 0
    P = engine.cfg.msa.pooling_kernel_size
    for d in live:
        assert d.n_chunks == math.ceil(d.n_tokens / P)  # chunks never cross documents
        assert json.loads(d.anchor_json)
    [seg] = _rows(store, SegmentRow)
    assert (seg.n_docs, seg.n_chunks) == (len(live), sum(d.n_chunks for d in live))
    # Documents tile their segment in order, without gaps or overlaps.
    spans = sorted((d.chunk_start, d.n_chunks) for d in live)
    assert [a for a, _ in spans] == [0, *[a + n for a, n in spans[:-1]]]
    assert store.verify() == []
    [run] = _rows(store, IngestRunRow)
    assert (run.status, run.added, run.tokens) == ("ok", 4, rep.tokens) and run.finished_at


def test_incremental_ingest(corpus, store, engine):
    ingest_dir(corpus, store, engine)
    before = _live(store)
    segs_before = sorted(p.name for p in store.segments_dir.iterdir())

    # Nothing changed: nothing encoded, no segment, same documents.
    rep = ingest_dir(corpus, store, engine)
    assert (rep.added, rep.updated, rep.removed, rep.unchanged, rep.failed, rep.tokens) == (0, 0, 0, 4, 0, 0)
    assert sorted(p.name for p in store.segments_dir.iterdir()) == segs_before
    assert _live(store).keys() == before.keys()

    # A changed file: its changed document re-encoded and the old one tombstoned everywhere; its
    # unchanged documents keep their rows and tensors.
    pump = corpus / "code" / "pump.py"
    pump.write_text(pump.read_text().replace("emergency_stop", "halt_now").replace("2.5", "9.75"))
    rep = ingest_dir(corpus, store, engine)
    assert (rep.added, rep.updated, rep.removed, rep.unchanged) == (0, 1, 0, 3)
    old_pump = {i for i, d in before.items() if d.path == "code/pump.py" and "emergency_stop" in d.text}
    kept_pump = {i for i, d in before.items() if d.path == "code/pump.py"} - old_pump
    assert len(old_pump) == 1 and kept_pump and rep.reused_documents == len(kept_pump)
    live = _live(store)
    assert not old_pump & live.keys()
    assert {i for i, d in live.items() if d.path != "code/pump.py"} | kept_pump == before.keys() - old_pump
    assert all((live[i].segment_id, live[i].chunk_start) == (before[i].segment_id, before[i].chunk_start)
               for i in kept_pump)
    assert any("halt_now" in d.text for d in live.values())
    with store.session() as s:
        assert all(s.get(DocumentRow, i).tombstone for i in old_pump)
    assert len(list(store.segments_dir.iterdir())) == 2
    assert store.lexical_search(None, "emergency_stop", 50) == []
    assert not _routed_ids(store, engine, "What is the default timeout_s of emergency_stop?") & old_pump

    # A deleted file: its documents leave routing and citations.
    (corpus / "contracts" / "supply.txt").unlink()
    supply = {i for i, d in live.items() if d.path == "contracts/supply.txt"}
    rep = ingest_dir(corpus, store, engine)
    assert (rep.added, rep.updated, rep.removed, rep.unchanged) == (0, 0, 1, 3)
    assert not supply & _live(store).keys()
    assert str(corpus / "contracts" / "supply.txt") not in store.sources("default")
    question = "What does Blue Harbor Robotics pay per quarter for pump-3?"
    assert not _routed_ids(store, engine, question) & supply
    res = ask(store, engine, question, mode="hybrid", rounds=2, max_new_tokens=4)
    cited = {c["doc_id"] for c in res.citations} | {d["doc_id"] for r in res.rounds for d in r["routed"]}
    assert cited and cited <= _live(store).keys()

    # A new file.
    (corpus / "contracts" / "nda.md").write_text("# Confidentiality\n\nThe Recipient keeps the Discloser's secrets for five years.\n")
    rep = ingest_dir(corpus, store, engine)
    assert (rep.added, rep.updated, rep.removed, rep.unchanged) == (1, 0, 0, 3)
    [nda] = [d for d in store.live_documents(None) if d.path == "contracts/nda.md"]
    assert store.lexical_search(None, "Discloser secrets", 5)[0][0] == nda.id
    assert store.verify() == []
    assert [r.status for r in _rows(store, IngestRunRow)] == ["ok"] * 5


def test_an_emptied_file_loses_its_documents(corpus, store, engine):
    ingest_dir(corpus, store, engine)
    (corpus / "contracts" / "maintenance.md").write_text("")
    rep = ingest_dir(corpus, store, engine)
    assert (rep.updated, rep.documents) == (1, 0)
    assert not [d for d in store.live_documents(None) if d.path == "contracts/maintenance.md"]
    assert len(list(store.segments_dir.iterdir())) == 1  # nothing to encode: no segment
    assert store.verify() == []


def test_an_unreadable_file_is_reported_and_the_run_goes_on(corpus, store, engine):
    (corpus / "contracts" / "scan.pdf").write_bytes(b"%PDF-1.4\n\x00\x01garbage, not a PDF\n")
    rep = ingest_dir(corpus, store, engine)
    assert (rep.added, rep.failed) == (4, 1)
    [f] = rep.failures
    assert f["path"] == str(corpus / "contracts" / "scan.pdf") and f["reason"]
    assert {d.path for d in store.live_documents(None)} == {
        "code/pump.py", "contracts/maintenance.md", "contracts/supply.txt", "logs/sensors.csv"}
    assert str(corpus / "contracts" / "scan.pdf") not in store.sources("default")
    [run] = _rows(store, IngestRunRow)
    assert (run.status, run.failed) == ("partial", 1)
    # Still failing next time, still reported; the rest is unchanged.
    rep = ingest_dir(corpus, store, engine)
    assert (rep.unchanged, rep.failed) == (4, 1)


def test_a_missing_directory_is_bad_input(tmp_path, store, engine):
    with pytest.raises(BadInput, match="no such directory"):
        ingest_dir(tmp_path / "nowhere", store, engine)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(BadInput, match="not a directory"):
        ingest_dir(tmp_path / "file.txt", store, engine)
    assert store.live_documents(None) == [] and store.manifest == {}


def test_ingest_is_refused_while_another_writer_holds_the_lock(corpus, store, engine):
    with store.write_lock():
        with pytest.raises(StoreLocked):
            ingest_dir(corpus, store, engine)
    assert store.live_documents(None) == [] and list(store.segments_dir.iterdir()) == []
    assert ingest_dir(corpus, store, engine).added == 4
