"""Re-ingestion: deterministic document keys, reuse of unchanged documents' tensors (moved code,
appended logs), the size+mtime fast path, parser changes, legacy stores, files that fail after
they ingested fine, run records, and readers and writers while an ingest runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select, text

from msa_agent import pipeline
from msa_agent.ask import ask, route
from msa_agent.engine import Engine
from msa_agent.errors import StoreLocked
from msa_agent.ingest import parse_file
from msa_agent.pipeline import PARSER_VERSION, Progress, doc_key, ingest_dir, parse_signature
from msa_agent.store import Store
from msa_agent.store.schema import IngestRunRow

HOUR_AGO_NS = time.time_ns() - 3600 * 10**9


def _age(root: Path) -> None:
    """Files as a real tree has them: last modified well before the ingest."""
    for p in root.rglob("*"):
        if p.is_file():
            os.utime(p, ns=(HOUR_AGO_NS, HOUR_AGO_NS))


@pytest.fixture
def encoded(engine, monkeypatch):
    """Documents the model encodes, counted per ingest: a list of token-list counts per call."""
    calls: list[int] = []
    real = Engine.encode_batches

    def spy(self, token_lists, *a, **k):
        calls.append(len(token_lists))
        return real(self, token_lists, *a, **k)

    monkeypatch.setattr(Engine, "encode_batches", spy)
    return calls


@pytest.fixture
def hashed(monkeypatch):
    """Paths whose content the pipeline hashed."""
    seen: list[str] = []
    real = pipeline.file_hash

    def spy(path):
        seen.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(pipeline, "file_hash", spy)
    return seen


def _live(store, path=None):
    return {d.id: d for d in store.live_documents(None) if path is None or d.path == path}


# ---- document keys ------------------------------------------------------------------------------


KEYS_CHILD = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from msa_agent.ingest import parse_file
    from msa_agent.pipeline import doc_key, parse_signature
    root = Path(sys.argv[1])
    docs = [d for p in sorted(root.rglob("*.*")) for d in parse_file(p, root)]
    print(json.dumps([doc_key(d, parse_signature(), "fp") for d in docs]))
""")


def test_document_keys_are_deterministic_across_processes(corpus):
    docs = [d for p in sorted(corpus.rglob("*.*")) for d in parse_file(p, corpus)]
    here = [doc_key(d, parse_signature(), "fp") for d in docs]
    for seed in ("12345",):  # str hashes differ between this process and that one; the keys must not
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", KEYS_CHILD, str(corpus)], env=env, capture_output=True,
                             text=True, timeout=120, check=True)
        assert json.loads(out.stdout) == here
    assert len(set(here)) == len(here) and all(len(k) == 64 for k in here)
    d = docs[0]
    from dataclasses import replace

    assert doc_key(replace(d, anchor="elsewhere", anchor_data={"x": 1}), parse_signature(), "fp") == here[0]
    assert doc_key(replace(d, text=d.text + "  \n"), parse_signature(), "fp") == here[0]  # normalised
    assert doc_key(replace(d, text=d.text + " more"), parse_signature(), "fp") != here[0]
    assert doc_key(d, parse_signature(), "other-model") != here[0]
    assert doc_key(d, parse_signature(max_chars=999), "fp") != here[0]
    assert doc_key(d, parse_signature(kind="text"), "fp") != here[0]
    assert parse_signature().startswith(PARSER_VERSION + ";")


def test_stored_documents_carry_their_keys(corpus, store, engine):
    ingest_dir(corpus, store, engine)
    sig = parse_signature()
    want = sorted(doc_key(d, sig, engine.fingerprint) for p in sorted(corpus.rglob("*.*")) for d in parse_file(p, corpus))
    assert sorted(d.doc_key for d in store.live_documents(None)) == want
    assert {s.parser_version for s in store.sources("default").values()} == {sig}


# ---- reuse ---------------------------------------------------------------------------------------


def test_moved_code_reuses_every_document_without_the_model(corpus, store, engine, encoded):
    ingest_dir(corpus, store, engine)
    before = _live(store, "code/pump.py")
    segs = sorted(p.name for p in store.segments_dir.iterdir())
    encoded.clear()
    pump = corpus / "code" / "pump.py"
    pump.write_text("\n\n\n" + pump.read_text())  # every document moves three lines down
    rep = ingest_dir(corpus, store, engine)
    assert (rep.updated, rep.unchanged, rep.tokens, rep.reused_documents, rep.documents) == (1, 3, 0, 3, 3)
    assert encoded == []  # the model was not touched
    after = _live(store, "code/pump.py")
    assert after.keys() == before.keys()  # same rows: same ids, same tensors
    for i, d in after.items():
        b = before[i]
        assert (d.segment_id, d.chunk_start, d.n_chunks, d.doc_key) == (b.segment_id, b.chunk_start, b.n_chunks, b.doc_key)
    assert {d.anchor for d in after.values()} == {d.anchor for d in parse_file(pump, corpus)}
    [cls] = [d for d in after.values() if d.title == "PumpController"]
    assert cls.anchor == "lines 7-17" and json.loads(cls.anchor_json)["line_start"] == 7
    assert sorted(p.name for p in store.segments_dir.iterdir()) == segs  # no new segment
    assert store.status()["tombstoned"] == 0 and store.verify() == []
    hits = route(store, engine, "PumpController emergency_stop", mode="lexical")["docs"]
    assert hits[0]["doc_id"] == cls.id and hits[0]["anchor"] == "lines 7-17"


def _log(rows: list[tuple[str, str, float, str]]) -> str:
    return "timestamp,sensor,value,status\n" + "".join(f"{t},{s},{v},{st}\n" for t, s, v, st in rows)


def _rows(hours: range, minutes: range) -> list:
    return [(f"2024-03-01T{h:02d}:{m:02d}:00Z", s, 20.0 + h + m / 100, "OK")
            for h in hours for m in minutes for s in ("PUMP-1", "PUMP-2")]


def test_an_appended_log_re_encodes_only_its_open_windows(tmp_path, store, engine, encoded):
    root = tmp_path / "logs"
    root.mkdir()
    log = root / "plant.csv"
    rows = _rows(range(8, 11), range(0, 60, 10))  # 08:00-10:50, two sensors: 6 hourly windows
    log.write_text(_log(rows))
    rep = ingest_dir(root, store, engine)
    first = _live(store)
    assert rep.documents == 6 and len(first) == 6
    encoded.clear()
    # Appended: one more row in the 10h window of PUMP-1, and a new hour for both.
    more = [("2024-03-01T10:55:00Z", "PUMP-1", 31.0, "OK")] + _rows(range(11, 12), range(0, 20, 10))
    with log.open("a") as f:
        f.write("".join(f"{t},{s},{v},{st}\n" for t, s, v, st in more))
    rep = ingest_dir(root, store, engine)
    assert (rep.updated, rep.documents, rep.reused_documents) == (1, 8, 5)
    assert sum(encoded) == 3  # PUMP-1 10h (changed), PUMP-1 11h, PUMP-2 11h
    after = _live(store)
    kept = {i for i, d in first.items() if not (d.title.startswith("PUMP-1") and "T10:" in d.anchor)}
    assert len(kept) == 5 and kept <= after.keys()
    assert len(after) == 8 and store.status()["tombstoned"] == 1
    assert store.verify() == []


def test_unchanged_files_are_not_read_when_size_and_mtime_match(corpus, store, engine, hashed):
    _age(corpus)
    ingest_dir(corpus, store, engine)
    assert len(hashed) == 4
    hashed.clear()
    rep = ingest_dir(corpus, store, engine)
    assert (rep.unchanged, hashed) == (4, [])
    # Touched but the same bytes: hashed once, found unchanged, its new mtime recorded.
    os.utime(corpus / "code" / "pump.py", ns=(HOUR_AGO_NS + 10**9, HOUR_AGO_NS + 10**9))
    rep = ingest_dir(corpus, store, engine)
    assert (rep.unchanged, rep.updated, hashed) == (4, 0, ["pump.py"])
    hashed.clear()
    assert ingest_dir(corpus, store, engine).unchanged == 4 and hashed == []
    # Same size, other bytes, new mtime: found.
    supply = corpus / "contracts" / "supply.txt"
    data = supply.read_bytes()
    supply.write_bytes(data.replace(b"Blue", b"Gray"))
    os.utime(supply, ns=(HOUR_AGO_NS + 2 * 10**9, HOUR_AGO_NS + 2 * 10**9))
    rep = ingest_dir(corpus, store, engine)
    assert (rep.updated, rep.unchanged, hashed) == (1, 3, ["supply.txt"])
    assert any("Gray Harbor" in d.text for d in store.live_documents(None))


def test_a_file_modified_just_now_is_hashed_again_next_time(corpus, store, engine, hashed, monkeypatch):
    monkeypatch.setattr(pipeline, "_RACY_NS", 60 * 10**9)  # "just now" even on a slow, busy machine
    _age(corpus)
    ingest_dir(corpus, store, engine)
    nda = corpus / "contracts" / "nda.md"
    nda.write_text("# NDA\n\nSecrets stay secret.\n")  # mtime: now, within the racy window
    ingest_dir(corpus, store, engine)
    assert store.sources("default")[str(nda)].mtime_ns == -1  # not trusted for the fast path
    hashed.clear()
    assert ingest_dir(corpus, store, engine).unchanged == 5 and hashed == ["nda.md"]
    _age(corpus)
    hashed.clear()
    ingest_dir(corpus, store, engine)  # old enough now: recorded
    hashed.clear()
    assert ingest_dir(corpus, store, engine).unchanged == 5 and hashed == []


def test_a_parser_change_re_parses_unchanged_files(corpus, store, engine, encoded):
    ingest_dir(corpus, store, engine)
    before = _live(store)
    encoded.clear()
    rep = ingest_dir(corpus, store, engine, max_chars=1200)  # another parser signature
    assert (rep.updated, rep.unchanged, rep.reused_documents) == (4, 0, 0)
    assert sum(encoded) == rep.documents > 0
    assert not before.keys() & _live(store).keys()
    assert {s.parser_version for s in store.sources("default").values()} == {parse_signature(max_chars=1200)}
    assert ingest_dir(corpus, store, engine, max_chars=1200).unchanged == 4


def test_sources_stored_before_keys_are_not_re_encoded_until_they_change(corpus, store, engine, encoded):
    ingest_dir(corpus, store, engine)
    with store.engine.begin() as conn:  # what migration 3 makes of an older store's rows
        conn.execute(text("UPDATE sources SET parser_version = ''"))
        conn.execute(text("UPDATE documents SET doc_key = NULL"))
    encoded.clear()
    assert ingest_dir(corpus, store, engine).unchanged == 4 and encoded == []
    pump = corpus / "code" / "pump.py"
    pump.write_text(pump.read_text() + "\n")
    rep = ingest_dir(corpus, store, engine)
    assert (rep.updated, rep.reused_documents) == (1, 0)  # no keys to match: re-encoded
    assert all(d.doc_key for d in store.live_documents(None) if d.path == "code/pump.py")
    assert store.sources("default")[str(pump)].parser_version == parse_signature()


# ---- failures ------------------------------------------------------------------------------------


def test_a_file_that_fails_after_ingesting_fine_keeps_its_documents(corpus, store, engine):
    ingest_dir(corpus, store, engine)
    pump = corpus / "code" / "pump.py"
    good = _live(store, "code/pump.py")
    pump.write_bytes(b"\x00\x01\x02 not python any more \x00" * 10)
    rep = ingest_dir(corpus, store, engine)
    assert (rep.failed, rep.removed, rep.unchanged, rep.updated) == (1, 0, 3, 0)
    [f] = rep.failures
    assert f == {"path": str(pump), "reason": "not text: binary content in a .py file", "kept_documents": len(good)}
    assert _live(store, "code/pump.py").keys() == good.keys()  # nothing lost
    src = store.sources("default")[str(pump)]
    assert src.last_error == f["reason"] and src.last_failure_at
    assert route(store, engine, "PumpController emergency_stop", mode="lexical")["docs"][0]["path"] == "code/pump.py"
    [source] = store.status()["sources"]
    assert source["failures"] == [f] and source["last_run"]["status"] == "partial"
    # Still failing: still kept and reported. Then mended: re-ingested, the failure cleared.
    assert ingest_dir(corpus, store, engine).failures == [f]
    pump.write_text("def pump():\n    return 'mended'\n")
    rep = ingest_dir(corpus, store, engine)
    assert (rep.failed, rep.updated) == (0, 1)
    assert [d.text for d in _live(store, "code/pump.py").values()] == ["def pump():\n    return 'mended'"]
    assert store.sources("default")[str(pump)].last_error is None
    assert store.status()["sources"][0]["failures"] == []


def test_a_parser_crash_is_a_failure_of_that_file_only(corpus, store, engine, monkeypatch):
    real = pipeline.parse_file

    def flaky(path, *a, **k):
        if path.name == "supply.txt":
            raise RecursionError("maximum recursion depth exceeded")
        return real(path, *a, **k)

    monkeypatch.setattr(pipeline, "parse_file", flaky)
    rep = ingest_dir(corpus, store, engine)
    assert (rep.added, rep.failed) == (3, 1)
    assert rep.failures[0]["reason"] == "parser error: RecursionError: maximum recursion depth exceeded"


def test_a_run_that_crashes_is_recorded(corpus, store, engine, monkeypatch):
    def broken(self, token_lists, *a, **k):
        raise MemoryError("out of memory")
        yield  # pragma: no cover

    monkeypatch.setattr(Engine, "encode_batches", broken)
    with pytest.raises(MemoryError):
        ingest_dir(corpus, store, engine)
    with store.session() as s:
        [run] = s.scalars(select(IngestRunRow))
    assert (run.status, run.error) == ("error", "MemoryError: out of memory") and run.finished_at
    [source] = store.status()["sources"]
    assert source["last_run"]["status"] == "error" and source["last_success_at"] is None
    assert store.live_documents(None) == [] and store.verify() == []


def test_an_empty_directory(tmp_path, store, engine):
    (tmp_path / "empty").mkdir()
    rep = ingest_dir(tmp_path / "empty", store, engine)
    assert (rep.added, rep.updated, rep.removed, rep.unchanged, rep.failed, rep.documents, rep.tokens) == (0,) * 7
    assert rep.skipped == {} and rep.failures == [] and store.live_documents(None) == []


# ---- readers and writers during an ingest ---------------------------------------------------------


def test_readers_see_the_last_commit_while_an_ingest_runs(corpus, tmp_path, engine):
    path = tmp_path / "store"
    writer = Store.open(path, create=True)
    ingest_dir(corpus, writer, engine)
    before = {d.id for d in writer.live_documents(None)}
    (corpus / "contracts" / "nda.md").write_text("# Confidentiality\n\nThe Recipient keeps the secrets of Zephyrine.\n")
    planned, go = threading.Event(), threading.Event()
    result: dict = {}

    def run():
        def on_plan(files, tokens):
            planned.set()
            go.wait(30)

        try:
            result["report"] = ingest_dir(corpus, writer, engine, progress=Progress(on_plan=on_plan))
        except BaseException as e:  # noqa: BLE001
            result["error"] = e

    t = threading.Thread(target=run)
    t.start()
    reader = Store.open(path)
    try:
        assert planned.wait(30)
        # Mid-ingest: readers answer from the last committed state.
        assert {d.id for d in reader.live_documents(None)} == before
        assert all(d["doc_id"] in before for d in route(reader, engine, "Zephyrine secrets", mode="hybrid")["docs"])
        assert route(reader, engine, "Zephyrine secrets", mode="lexical")["docs"] == []
        res = ask(reader, engine, "What does Blue Harbor Robotics pay?", mode="lexical", rounds=1, max_new_tokens=2)
        assert {c["doc_id"] for c in res.citations} <= before
        # A second writer is refused at once, or waits.
        with pytest.raises(StoreLocked, match="another msa process is writing"):
            ingest_dir(corpus, reader, engine)
        threading.Timer(0.5, go.set).start()
        rep = ingest_dir(corpus, reader, engine, wait=60)  # runs once the first is done
        assert (rep.added, rep.unchanged) == (0, 5)
    finally:
        go.set()
        t.join(60)
        reader.close()
        writer.close()
    assert "error" not in result and result["report"].added == 1
