"""`msa ingest`: the report (text and JSON), incremental re-runs, unreadable inputs, user errors,
a store built with another model, and a store another writer holds. Each test looks at the store
afterwards."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest

from msa_agent.store import Store
from msa_agent.store.schema import MIGRATIONS

REPORT_KEYS = {"store", "collection", "root", "added", "updated", "removed", "unchanged", "failed", "documents",
               "tokens", "seconds", "tokens_per_s", "failures", "warnings", "skipped", "reused_documents"}


def _store_rows(store_dir):
    st = Store.open(store_dir)
    try:
        return st.live_documents(None), st.status(), st.verify()
    finally:
        st.close()


def _segment_dirs(store_dir):
    return sorted(p.name for p in (store_dir / "segments").iterdir())


def test_ingest_json_report_and_the_store_behind_it(msa_json, corpus, store_dir):
    rep = msa_json("ingest", corpus, "--store", store_dir)
    assert set(rep) == REPORT_KEYS
    assert (rep["added"], rep["updated"], rep["removed"], rep["unchanged"], rep["failed"]) == (4, 0, 0, 0, 0)
    assert rep["root"] == str(corpus) and rep["store"] == str(store_dir) and rep["collection"] == "default"
    live, status, problems = _store_rows(store_dir)
    assert problems == []
    assert {d.path for d in live} == {"code/pump.py", "contracts/maintenance.md", "contracts/supply.txt",
                                      "logs/sensors.csv"}
    assert (status["documents"], status["tokens"], status["segments"]) == (rep["documents"], rep["tokens"], 1)
    assert len(_segment_dirs(store_dir)) == 1


def test_incremental_ingest_through_the_cli(msa, msa_json, corpus, store_dir):
    msa("ingest", corpus, "--store", store_dir)
    segs = _segment_dirs(store_dir)

    res = msa("ingest", corpus, "--store", store_dir)
    assert res.stdout.startswith("added 0, updated 0, removed 0, unchanged 4, failed 0; 0 documents, 0 tokens")
    assert _segment_dirs(store_dir) == segs  # nothing encoded, no new segment

    (corpus / "contracts" / "maintenance.md").write_text("# Maintenance policy\n\nPumps are never oiled.\n")
    rep = msa_json("ingest", corpus, "--store", store_dir)
    assert (rep["added"], rep["updated"], rep["removed"], rep["unchanged"]) == (0, 1, 0, 3)
    live, status, _ = _store_rows(store_dir)
    assert [d.text for d in live if d.path == "contracts/maintenance.md"] == ["# Maintenance policy\n\nPumps are never oiled."]
    assert status["tombstoned"] > 0 and len(_segment_dirs(store_dir)) == 2
    assert msa_json("route", "lithium grease bearings conveyor", "--store", store_dir, "--mode", "lexical")["docs"] == []

    (corpus / "logs" / "sensors.csv").unlink()
    rep = msa_json("ingest", corpus, "--store", store_dir)
    assert (rep["added"], rep["updated"], rep["removed"], rep["unchanged"]) == (0, 0, 1, 3)
    live, _, _ = _store_rows(store_dir)
    assert "logs/sensors.csv" not in {d.path for d in live}
    for mode in ("msa", "lexical", "hybrid"):
        docs = msa_json("route", "Which sensor reported ALARM?", "--store", store_dir, "--mode", mode, "--top-k", "16")["docs"]
        assert "logs/sensors.csv" not in {d["path"] for d in docs}

    (corpus / "code" / "valves.py").write_text("def close_valve(v):\n    v.close()\n")
    rep = msa_json("ingest", corpus, "--store", store_dir)
    assert (rep["added"], rep["updated"], rep["removed"], rep["unchanged"]) == (1, 0, 0, 3)
    assert "code/valves.py" in {d.path for d in _store_rows(store_dir)[0]}


def test_an_unreadable_file_is_reported_and_the_run_goes_on(msa, corpus, store_dir):
    bad = corpus / "contracts" / "scanned contract.pdf"
    bad.write_bytes(b"%PDF-1.7\n\x00\x9c\xff garbage that no PDF parser can read \x00")
    res = msa("ingest", corpus, "--store", store_dir, "--json", code=2)
    rep = json.loads(res.stdout)
    assert (rep["added"], rep["failed"]) == (4, 1)
    [f] = rep["failures"]
    assert f["path"] == str(bad) and f["reason"]
    # Said on stderr as it happens, one line with path and reason.
    assert f"failed: {bad}: {f['reason']}" in res.stderr.splitlines()
    live, status, problems = _store_rows(store_dir)
    assert len({d.path for d in live}) == 4 and "contracts/scanned contract.pdf" not in {d.path for d in live}
    assert problems == []
    # The text summary names it too, and the exit code stays 2 while the file is bad.
    res = msa("ingest", corpus, "--store", store_dir, code=2)
    assert "unchanged 4, failed 1" in res.stdout
    assert f"  failed: {bad}: {f['reason']}" in res.stdout.splitlines()


def test_user_errors_exit_1_in_one_line(msa, fails, corpus, tmp_path, store_dir):
    res = msa("ingest", tmp_path / "no such dir", "--store", store_dir, code=1)
    assert "no such directory" in res.stderr
    assert not store_dir.exists()  # nothing created for a bad argument
    fails(msa("ingest", corpus / "code" / "pump.py", "--store", store_dir, code=1), "not a directory")
    fails(msa("ingest", corpus, "--store", store_dir, "--model", tmp_path / "no-model", code=1),
                         "no such model file or directory")
    missing = tmp_path / "missing-store"
    for args in (("ask", "What is pump-3?"), ("route", "pump-3"), ("status",), ("verify",), ("compact",)):
        fails(msa(*args, "--store", missing, code=1), f"no store at {missing}")
    assert not missing.exists()
    msa("ingest", corpus, "--store", store_dir)
    fails(msa("route", "pump", "--store", store_dir, "--mode", "bogus", code=1), "unknown routing mode")
    fails(msa("ask", "pump", "--store", store_dir, "--collection", "nope", code=1), "no documents")


def test_a_store_from_a_newer_msa_is_refused(msa, fails, corpus, store_dir):
    msa("ingest", corpus, "--store", store_dir)
    with sqlite3.connect(store_dir / "msa.db") as c:
        c.execute("INSERT INTO schema_migrations VALUES (?, 'later')", (len(MIGRATIONS) + 1,))
    for args in (("status",), ("route", "pump"), ("ingest", corpus)):
        fails(msa(*args, "--store", store_dir, code=1), "is newer than this msa")


def test_another_models_store_is_refused_until_reencoded(msa, msa_json, fails, corpus, store_dir, tiny_model_dir,
                                                         other_tiny_model_dir, monkeypatch):
    msa("ingest", corpus, "--store", store_dir)
    segs = _segment_dirs(store_dir)
    fp = _store_rows(store_dir)[1]["fingerprint"]
    other = ("--model", other_tiny_model_dir)
    for args in (("ingest", corpus, *other), ("route", "pump-3", *other), ("ask", "pump-3", "--max-tokens", "2", *other)):
        line = fails(msa(*args, "--store", store_dir, code=1), "--reencode", fp)
        assert line.startswith(f"error: {store_dir} was built with model {tiny_model_dir.name}")
    monkeypatch.setenv("MSA_MODEL", str(other_tiny_model_dir))  # the same through the environment
    fails(msa("route", "pump-3", "--store", store_dir, "--mode", "lexical", code=1), "--reencode")
    assert _segment_dirs(store_dir) == segs and _store_rows(store_dir)[1]["fingerprint"] == fp

    rep = msa_json("ingest", corpus, "--store", store_dir, "--reencode")
    assert (rep["added"] + rep["updated"], rep["failed"]) == (4, 0)
    live, status, problems = _store_rows(store_dir)
    assert status["fingerprint"] != fp and status["model"] == other_tiny_model_dir.name
    assert (status["documents"], status["tombstoned"]) == (len(live), 0) and problems == []
    assert not set(_segment_dirs(store_dir)) & set(segs)  # every segment re-encoded
    assert msa_json("route", "pump-3", "--store", store_dir)["docs"]
    monkeypatch.setenv("MSA_MODEL", str(tiny_model_dir))
    fails(msa("ask", "pump-3", "--store", store_dir, code=1), "--reencode")


def test_a_second_writer_is_refused_while_the_lock_is_held(msa, fails, corpus, store_dir):
    msa("ingest", corpus, "--store", store_dir)
    (corpus / "code" / "valves.py").write_text("def close_valve(v):\n    v.close()\n")
    segs = _segment_dirs(store_dir)
    st = Store.open(store_dir)
    with st.write_lock():
        fails(msa("ingest", corpus, "--store", store_dir, code=1), "another msa process is writing")
        fails(msa("compact", "--store", store_dir, code=1), "another msa process is writing")
        msa("route", "valve", "--store", store_dir)  # readers are not blocked
    st.close()
    assert _segment_dirs(store_dir) == segs and "code/valves.py" not in {d.path for d in _store_rows(store_dir)[0]}
    assert "added 1" in msa("ingest", corpus, "--store", store_dir).stdout


@pytest.mark.parametrize("args", [["ask", "q", "--top-k", "0"], ["route"], ["ingest", ".", "--bogus-option"]])
def test_usage_errors_exit_1_in_one_line(args, tmp_path):
    res = subprocess.run([sys.executable, "-m", "msa_agent.cli.main", *args], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1 and res.stdout == ""
