"""Opening a store: numbered append-only migrations, the model it is bound to, the writers' lock,
and what status counts."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap

import pytest
from sqlalchemy import create_engine, text

from msa_agent.errors import FingerprintMismatch, StoreCorrupt, StoreLocked, StoreNotFound
from msa_agent.store import FORMAT_VERSION, Store
from msa_agent.store.schema import MIGRATIONS, migrate

N = len(MIGRATIONS)
TABLES = {"manifest", "sources", "documents", "segments", "ingest_runs", "jobs", "doc_fts", "schema_migrations"}


def _versions(db) -> list[tuple[int, str]]:
    with sqlite3.connect(db) as c:
        return c.execute("SELECT version, applied_at FROM schema_migrations ORDER BY version").fetchall()


def _tables(db) -> set[str]:
    with sqlite3.connect(db) as c:
        return {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_opening_an_empty_directory_creates_the_latest_schema(tmp_path):
    st = Store.open(tmp_path / "s", create=True)
    st.close()
    db = tmp_path / "s" / "msa.db"
    assert [v for v, _ in _versions(db)] == list(range(1, N + 1))
    assert TABLES <= _tables(db)
    assert (tmp_path / "s" / "segments").is_dir()


def test_opening_again_is_a_no_op(tmp_path):
    Store.open(tmp_path, create=True).close()
    before = _versions(tmp_path / "msa.db")
    for create in (False, True):
        Store.open(tmp_path, create=create).close()
    assert _versions(tmp_path / "msa.db") == before
    engine = create_engine(f"sqlite:///{tmp_path / 'msa.db'}")
    with engine.begin() as conn:
        assert migrate(conn) == N
    engine.dispose()
    assert _versions(tmp_path / "msa.db") == before


def _columns(db) -> dict[str, list[str]]:
    with sqlite3.connect(db) as c:
        tables = [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name IN "
                                          "('manifest', 'sources', 'documents', 'segments', 'ingest_runs', 'jobs')")]
        return {t: sorted(r[1] for r in c.execute(f"PRAGMA table_info({t})")) for t in tables}


def _indexes(db) -> set[str]:
    with sqlite3.connect(db) as c:
        return {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")}


def _save_old_store(db, upto: int) -> None:
    """A store as msa with migrations 1..upto left it, with a row in every table."""
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)"))
        for v in range(1, upto + 1):
            MIGRATIONS[v - 1](conn)
            conn.execute(text("INSERT INTO schema_migrations VALUES (:v, '2025-01-01T00:00:00Z')"), {"v": v})
        conn.execute(text("INSERT INTO manifest VALUES ('fingerprint', 'abc')"))
        conn.execute(text("INSERT INTO sources VALUES (1, 'default', '/src/a.txt', '/src', 'a.txt', 'text', 'h', 5, 7, 1, "
                          "'2025-01-01T00:00:00Z')"))
        conn.execute(text("INSERT INTO segments VALUES ('seg', 2, 1, 10, '{}', 'sealed', '2025-01-01T00:00:00Z')"))
        conn.execute(text("INSERT INTO documents VALUES (1, 1, 'default', 'a.txt', 'text', 'line 1', '{}', '', 'alpha', "
                          "'c', 3, 'seg', 0, 2, 0, '2025-01-01T00:00:00Z')"))
        conn.execute(text("INSERT INTO ingest_runs VALUES (1, 'default', '/src', '2025-01-01T00:00:00Z', "
                          "'2025-01-01T00:00:01Z', 1, 0, 0, 0, 0, 3, 0.5, 'ok')"))
        conn.execute(text("INSERT INTO jobs VALUES (1, 'default', '/src', 3600, NULL, NULL)"))
    engine.dispose()


@pytest.mark.parametrize("upto", [1, 2])
def test_an_old_store_is_migrated_forward(tmp_path, upto):
    """A store saved by an older msa (migrations 1..upto) gains the later ones on open, keeps its
    rows, and ends with the very tables a new store has."""
    _save_old_store(tmp_path / "msa.db", upto)
    assert ("doc_fts" in _tables(tmp_path / "msa.db")) == (upto >= 2)
    st = Store.open(tmp_path)
    assert st.manifest == {"fingerprint": "abc"}  # data kept
    assert st.lexical_search(None, "anything", 5) == []  # the lexical index exists now
    [doc] = st.live_documents(None)
    assert (doc.text, doc.doc_key) == ("alpha", None)  # stored before keys: never matched, re-encoded when changed
    src = st.sources("default")["/src/a.txt"]
    assert (src.parser_version, src.last_error, src.size, src.mtime_ns) == ("", None, 5, 7)
    status = st.status()
    [job] = status["jobs"]
    assert (job["every_seconds"], job["consecutive_failures"], job["failing"], job["next_due_at"]) == (3600, 0, False, None)
    [source] = status["sources"]
    assert source["last_run"]["status"] == "ok" and source["failures"] == [] and source["last_run"]["skipped"] == {}
    assert source["last_success_at"] == "2025-01-01T00:00:01Z"
    # New writes use the new columns.
    st.record_source_failure("default", "/src/a.txt", "boom")
    assert st.sources("default")["/src/a.txt"].last_error == "boom"
    st.close()
    versions = _versions(tmp_path / "msa.db")
    assert [v for v, _ in versions] == list(range(1, N + 1))
    assert versions[0][1] == "2025-01-01T00:00:00Z"

    Store.open(tmp_path / "fresh", create=True).close()
    assert _columns(tmp_path / "msa.db") == _columns(tmp_path / "fresh" / "msa.db")
    assert _indexes(tmp_path / "msa.db") == _indexes(tmp_path / "fresh" / "msa.db")


def test_the_migrations_build_what_the_orm_describes(tmp_path):
    """Migrations are frozen SQL; the ORM classes must describe the tables they build."""
    from msa_agent.store.schema import Base

    Store.open(tmp_path / "migrated", create=True).close()
    engine = create_engine(f"sqlite:///{tmp_path / 'orm.db'}")
    with engine.begin() as conn:
        Base.metadata.create_all(conn)
    engine.dispose()
    assert _columns(tmp_path / "migrated" / "msa.db") == _columns(tmp_path / "orm.db")
    assert _indexes(tmp_path / "orm.db") <= _indexes(tmp_path / "migrated" / "msa.db")


def test_a_store_from_a_newer_msa_is_refused(tmp_path):
    Store.open(tmp_path, create=True).close()
    with sqlite3.connect(tmp_path / "msa.db") as c:
        c.execute("INSERT INTO schema_migrations VALUES (?, '2099-01-01T00:00:00Z')", (N + 1,))
    with pytest.raises(StoreCorrupt, match=f"schema version {N + 1} is newer"):
        Store.open(tmp_path)
    assert [v for v, _ in _versions(tmp_path / "msa.db")] == list(range(1, N + 2))  # left as it was


def test_a_missing_store_is_not_created_unless_asked(tmp_path):
    with pytest.raises(StoreNotFound, match="msa ingest"):
        Store.open(tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists()
    with pytest.raises(StoreNotFound):
        Store.open(tmp_path)  # a directory without msa.db is no store either


def test_bind_model_records_then_guards_the_fingerprint(store):
    store.check_model("anything")  # an empty store takes any model
    info = {"fingerprint": "f1", "model": "tiny", "router_layers": "2,3", "pooling": "4"}
    store.bind_model(info)
    assert store.manifest == {**info, "format_version": str(FORMAT_VERSION)}
    store.bind_model(dict(info))  # same model: fine
    store.check_model("f1")
    with pytest.raises(FingerprintMismatch) as e:
        store.bind_model({**info, "fingerprint": "f2", "model": "other"})
    msg = str(e.value)
    assert "\n" not in msg and "--reencode" in msg and "f1" in msg and "f2" in msg and "other" in msg
    with pytest.raises(FingerprintMismatch, match="--reencode"):
        store.check_model("f2", "other")
    assert store.manifest["fingerprint"] == "f1"


def test_reset_drops_memory_but_keeps_sources_for_re_encoding(store, fill):
    store.bind_model({"fingerprint": "f1"})
    fill(store, {"a.txt": [("A", "alpha")], "b.txt": [("B", "beta")]})
    store.reset()
    assert store.live_documents(None) == [] and store.manifest == {}
    assert list(store.segments_dir.iterdir()) == []
    assert store.lexical_search(None, "alpha", 5) == []
    srcs = store.sources("default")
    assert sorted(srcs) == ["/src/a.txt", "/src/b.txt"]
    assert {s.content_hash for s in srcs.values()} == {""}
    store.bind_model({"fingerprint": "f2"})  # another model is welcome now
    assert store.verify() == []


def test_commit_replaces_a_sources_documents_and_remove_source_forgets_it(store, fill):
    first = fill(store, {"a.txt": [("A1", "one"), ("A2", "two")], "b.txt": [("B", "three")]})
    second = fill(store, {"a.txt": [("A1", "uno")]}, seed=1)
    live = store.live_documents(None)
    assert sorted(d.id for d in live) == sorted([first[2], *second])
    assert store.sources("default")["/src/a.txt"].n_docs == 1
    assert store.remove_source("default", "/src/a.txt") == 1
    assert store.remove_source("default", "/src/a.txt") == 0
    assert [d.id for d in store.live_documents(None)] == [first[2]]
    assert sorted(store.sources("default")) == ["/src/b.txt"]
    assert store.status()["tombstoned"] == 3


def test_live_documents_are_in_ingest_order(store, fill):
    fill(store, {"a.txt": [("A1", "one"), ("A2", "two")]}, collection="x")
    fill(store, {"b.txt": [("B1", "three"), ("B2", "four")]}, collection="y", seed=1)
    live = store.live_documents(None)
    assert [d.text for d in live] == ["one", "two", "three", "four"]
    ids = [d.id for d in live]
    assert ids == sorted(ids)
    by_segment = {}
    for d in live:  # inside one segment, chunk ranges follow id order
        by_segment.setdefault(d.segment_id, []).append(d.chunk_start)
    assert all(starts == sorted(starts) for starts in by_segment.values())
    assert [d.text for d in store.live_documents("x")] == ["one", "two"]
    assert [d.text for d in store.live_documents("y")] == ["three", "four"]


def test_status_counts(store, fill):
    fill(store, {"a.txt": [("A1", "one"), ("A2", "two")], "b.txt": [("B", "three")]}, collection="x")
    fill(store, {"c.txt": [("C", "four")]}, collection="y", root="/other", seed=1)
    fill(store, {"b.txt": [("B", "tres")]}, collection="x", seed=2)
    st = store.status()
    assert (st["documents"], st["tombstoned"], st["segments"]) == (4, 1, 3)
    assert (st["tokens"], st["chunks"]) == (4 * 7, 4 * 2)
    assert st["collections"] == ["x", "y"]
    assert st["bytes_on_disk"] == sum(f.stat().st_size for f in store.path.rglob("*") if f.is_file())
    assert st["bytes_per_token"] == round(st["bytes_on_disk"] / st["tokens"], 1)
    assert sorted((s["root"], s["collection"], s["files"]) for s in st["sources"]) == [("/other", "y", 1), ("/src", "x", 2)]
    assert st["jobs"] == [] and st["fingerprint"] is None


# ---- the writers' lock ----------------------------------------------------------------------


def test_write_lock_is_exclusive_and_released(store):
    with store.write_lock():
        other = Store.open(store.path)
        with pytest.raises(StoreLocked, match="another msa process is writing"):
            with other.write_lock():
                pass
        other.close()
    with store.write_lock():  # released on exit
        pass
    with pytest.raises(RuntimeError):
        with store.write_lock():
            raise RuntimeError("boom")
    with store.write_lock():  # and on an error
        pass


def test_a_killed_writer_leaves_no_stale_lock(store):
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from msa_agent.store import Store
            st = Store.open({str(store.path)!r})
            with st.write_lock():
                print("locked", flush=True)
                sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreLocked):
            with store.write_lock():
                pass
    finally:
        holder.kill()
        holder.wait(timeout=30)
    with store.write_lock():
        pass


# ---- store creation is atomic (issue #21, item 3) ----------------------------------------------


def test_a_migration_that_fails_part_way_leaves_no_half_made_store(tmp_path, monkeypatch):
    """The first migration creates several tables; a failure after some of them must leave none
    (before: each CREATE committed on its own, and the store could never be opened again)."""
    import msa_agent.store.schema as schema

    def broken(conn):
        schema._run(conn, schema._V1[:3])
        raise KeyboardInterrupt("killed after three tables")

    monkeypatch.setattr(schema, "MIGRATIONS", [broken, *schema.MIGRATIONS[1:]])
    with pytest.raises(KeyboardInterrupt):
        Store.open(tmp_path / "s", create=True)
    assert _tables(tmp_path / "s" / "msa.db") <= {"schema_migrations"}
    monkeypatch.undo()
    Store.open(tmp_path / "s").close()
    assert TABLES <= _tables(tmp_path / "s" / "msa.db")
    assert [v for v, _ in _versions(tmp_path / "s" / "msa.db")] == list(range(1, N + 1))


def test_sigkill_during_creation_never_leaves_an_unopenable_store(tmp_path):
    """A process killed while it creates the schema: the next open finishes the store."""
    code = textwrap.dedent(f"""
        import os, signal
        import msa_agent.store.schema as schema
        first = schema.MIGRATIONS[0]
        def dying(conn):
            schema._run(conn, schema._V1[:2])
            os.kill(os.getpid(), signal.SIGKILL)
        schema.MIGRATIONS[0] = dying
        from msa_agent.store import Store
        Store.open({str(tmp_path / 's')!r}, create=True)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr
    Store.open(tmp_path / "s").close()
    assert TABLES <= _tables(tmp_path / "s" / "msa.db")


def test_a_half_made_store_of_an_older_msa_is_finished(tmp_path):
    """Tables an older msa committed one by one before it was killed, no version recorded."""
    from msa_agent.store.schema import _V1

    (tmp_path / "s").mkdir()
    with sqlite3.connect(tmp_path / "s" / "msa.db") as c:
        c.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)")
        for sql in _V1[:2]:
            c.execute(sql)
    Store.open(tmp_path / "s").close()
    assert TABLES <= _tables(tmp_path / "s" / "msa.db")
    assert [v for v, _ in _versions(tmp_path / "s" / "msa.db")] == list(range(1, N + 1))


def test_a_store_with_rows_but_no_version_is_left_alone(tmp_path):
    from msa_agent.store.schema import _V1

    (tmp_path / "s").mkdir()
    with sqlite3.connect(tmp_path / "s" / "msa.db") as c:
        c.execute(_V1[0])
        c.execute("INSERT INTO manifest VALUES ('fingerprint', 'abc')")
    with pytest.raises(StoreCorrupt, match="rows but no recorded schema version"):
        Store.open(tmp_path / "s")
    with sqlite3.connect(tmp_path / "s" / "msa.db") as c:
        assert c.execute("SELECT value FROM manifest").fetchall() == [("abc",)]


def test_first_opens_of_one_new_store_at_once_all_succeed(tmp_path):
    """Five processes create the same store together (before: 2 of 5 failed with 'table already
    exists'); the write lock is taken before the migration, so one makes it and the rest find it made."""
    code = f"from msa_agent.store import Store; Store.open({str(tmp_path / 's')!r}, create=True).close()"
    procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for _ in range(5)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 5, errors
    assert [v for v, _ in _versions(tmp_path / "s" / "msa.db")] == list(range(1, N + 1))
