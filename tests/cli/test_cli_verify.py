"""`msa verify`, `msa compact` and `msa status` over a store ingested by `msa ingest`, whole and
damaged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from msa_agent.cli.main import app
from msa_agent.store import Store, write_segment

CORPUS = Path(__file__).resolve().parents[1] / "app" / "corpus"


@pytest.fixture(scope="module")
def pristine(tiny_model_dir, tmp_path_factory):
    """The corpus ingested once by `msa ingest`: (corpus, store, JSON report)."""
    base = tmp_path_factory.mktemp("verify")
    corpus = Path(shutil.copytree(CORPUS, base / "corpus"))
    env = {"MSA_HOME": str(base / "home"), "MSA_MODEL": str(tiny_model_dir), "MSA_DTYPE": "float32"}
    res = CliRunner().invoke(app, ["ingest", str(corpus), "--store", str(base / "store"), "--json"], env=env)
    assert res.exit_code == 0, res.output
    return corpus, base / "store", json.loads(res.stdout)


@pytest.fixture
def ingested(pristine, store_dir):
    """A copy of the pristine store at store_dir, free to damage; returns the ingest report."""
    shutil.copytree(pristine[1], store_dir)
    return pristine[2]


def _segments(store_dir):
    return sorted(p for p in (store_dir / "segments").iterdir())


def test_verify_a_whole_store(msa, msa_json, ingested, store_dir):
    assert msa("verify", "--store", store_dir).stdout.strip() == "store is whole"
    assert msa_json("verify", "--store", store_dir) == {"ok": True, "problems": []}


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_verify_a_damaged_segment(msa, msa_json, ingested, store_dir, damage):
    [seg] = _segments(store_dir)
    f = seg / "v.npy"
    if damage == "flip":
        data = bytearray(f.read_bytes())
        data[len(data) // 2] ^= 0x01
        f.write_bytes(bytes(data))
    elif damage == "truncate":
        f.write_bytes(f.read_bytes()[:200])
    else:
        f.unlink()
    res = msa("verify", "--store", store_dir, code=2)
    lines = res.stdout.strip().splitlines()
    assert lines[-1] == "1 problem(s)"
    assert lines[0].startswith(f"segment {seg.name}: v.npy ")
    out = msa_json("verify", "--store", store_dir, code=2)
    assert out["ok"] is False and len(out["problems"]) == 1 and seg.name in out["problems"][0]


def test_orphan_segment_is_reported_then_compacted(msa, msa_json, store_dir, corpus):
    ingested = msa_json("ingest", corpus, "--store", store_dir)
    [seg] = _segments(store_dir)
    # What an ingest killed between fsyncing its segment and committing its rows leaves behind.
    st = Store.open(store_dir)
    s = st.segment(seg.name)
    write_segment(st.segments_dir, "deadbeefdeadbeef", s.k, s.v, s.rk, s.chunks)
    st.close()
    out = msa_json("verify", "--store", store_dir, code=2)
    assert out["problems"] == ["segment directory deadbeefdeadbeef has no row (left by an interrupted ingest)"]

    assert msa("compact", "--store", store_dir).stdout.startswith(
        "removed 0 documents, 0 segments (0 written in their place), 1 orphan directories")
    assert _segments(store_dir) == [seg]
    msa("verify", "--store", store_dir)

    # Tombstones from a changed file go too, with the segment no live document uses any more.
    (corpus / "code" / "pump.py").write_text("def only_this():\n    pass\n")
    (corpus / "contracts" / "supply.txt").unlink()
    (corpus / "contracts" / "maintenance.md").unlink()
    (corpus / "logs" / "sensors.csv").unlink()
    msa("ingest", corpus, "--store", store_dir)
    res = msa("compact", "--store", store_dir)
    assert res.stdout.startswith(f"removed {ingested['documents']} documents, 1 segments (0 written in their place), "
                                 "0 orphan directories")
    assert seg not in _segments(store_dir) and len(_segments(store_dir)) == 1
    status = msa_json("status", "--store", store_dir)
    assert (status["documents"], status["tombstoned"], status["segments"]) == (1, 0, 1)
    msa("verify", "--store", store_dir)


def test_status(msa, msa_json, ingested, store_dir, pristine, tiny_model_dir):
    corpus = pristine[0]
    st = msa_json("status", "--store", store_dir)
    assert (st["documents"], st["tokens"]) == (ingested["documents"], ingested["tokens"])
    store = Store.open(store_dir)
    live = store.live_documents(None)
    assert st["chunks"] == sum(d.n_chunks for d in live) == sum(store.segment(p.name).chunks.shape[0]
                                                                 for p in _segments(store_dir))
    store.close()
    # SQLite's WAL is checkpointed when connections close, so msa.db* sizes move between the
    # status call and this look; everything else must be counted exactly.
    files = [f for f in store_dir.rglob("*") if f.is_file()]
    fixed = sum(f.stat().st_size for f in files if not f.name.startswith("msa.db"))
    assert fixed < st["bytes_on_disk"] <= fixed + sum(f.stat().st_size for f in files if f.name.startswith("msa.db")) + (1 << 20)
    assert (st["segments"], st["tombstoned"], st["collections"]) == (1, 0, ["default"])
    assert st["model"] == tiny_model_dir.name and len(st["fingerprint"]) == 24
    [src] = st["sources"]
    assert (src["root"], src["collection"], src["files"]) == (str(corpus), "default", 4) and src["last_ingest"]
    text = msa("status", "--store", store_dir).stdout
    assert f"documents: {ingested['documents']}" in text and f"fingerprint: {st['fingerprint']}" in text


@pytest.mark.parametrize("command", [["status"], ["verify"], ["ask", "What is in the corpus?"], ["route", "corpus"],
                                     ["ingest", "."]])
def test_a_damaged_database_is_one_line_not_a_traceback(msa, ingested, store_dir, command):
    """`msa.db` with a garbled header (issue #21, item 9): every command says which file and why in
    one line, exit 1, and leaves the file as it was (before: a 465-line traceback)."""
    import sqlite3

    db = store_dir / "msa.db"
    with sqlite3.connect(db) as c:  # everything into the main file, so that its header is read
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(db.read_bytes())
    assert len(data) > 4096
    data[:100] = b"not a database!!" * 6 + b"!!!!"
    db.write_bytes(bytes(data))
    if command[0] == "ingest":
        command = ["ingest", str(CORPUS)]
    res = msa(*command, "--store", store_dir, code=1)
    assert f"{db}: the database cannot be read" in res.stderr
    assert db.read_bytes() == bytes(data)


@pytest.mark.parametrize("damage", ["fts_missing", "fts_stale"])
def test_verify_checks_the_lexical_index(msa, ingested, store_dir, damage):
    """Before: `msa verify` said "whole" with lexical index rows missing (issue #21, item 9)."""
    import sqlite3

    assert json.loads(msa("verify", "--store", store_dir, "--json").stdout)["problems"] == []
    with sqlite3.connect(store_dir / "msa.db") as c:
        if damage == "fts_missing":
            c.execute("DELETE FROM doc_fts WHERE rowid = (SELECT min(id) FROM documents WHERE tombstone = 0)")
        else:
            c.execute("INSERT INTO doc_fts(rowid, path, title, body) VALUES (999999, 'x', 'x', 'ghost')")
    res = msa("verify", "--store", store_dir, "--json", code=2)
    problems = " ".join(json.loads(res.stdout)["problems"])
    want = {"fts_missing": "missing from the lexical index", "fts_stale": "have no live document"}[damage]
    assert want in problems
