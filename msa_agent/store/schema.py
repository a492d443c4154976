"""Tables of msa.db and its numbered, append-only migrations."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import (
    Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from . import segments

FORMAT_VERSION = 1


def utcnow() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Base(DeclarativeBase):
    pass


class ManifestRow(Base):
    __tablename__ = "manifest"
    key: Mapped[str] = mapped_column(String, primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class SourceRow(Base):
    __tablename__ = "sources"
    __table_args__ = (UniqueConstraint("collection", "path"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection: Mapped[str] = mapped_column(String, index=True)
    path: Mapped[str] = mapped_column(Text)  # absolute path of the file
    root: Mapped[str] = mapped_column(Text)  # the directory it was ingested from
    rel_path: Mapped[str] = mapped_column(Text)  # path shown in citations
    kind: Mapped[str] = mapped_column(String)
    content_hash: Mapped[str] = mapped_column(String)
    size: Mapped[int] = mapped_column(Integer)
    mtime_ns: Mapped[int] = mapped_column(Integer)
    n_docs: Mapped[int] = mapped_column(Integer, default=0)
    last_ingest_at: Mapped[str] = mapped_column(String)  # last time its documents were (re)stored
    # Migration 3. What parsed it (parser version and options, see pipeline.parse_signature): a
    # change re-parses the file. "" for sources stored before documents had keys.
    parser_version: Mapped[str] = mapped_column(String, default="")
    # The last failure to re-read or re-parse it; it keeps its last good documents meanwhile.
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_failure_at: Mapped[str | None] = mapped_column(String, nullable=True)


class DocumentRow(Base):
    __tablename__ = "documents"
    # AUTOINCREMENT: a document id is never reused, even after compaction or --reencode.
    __table_args__ = (
        Index("ix_documents_live", "collection", "tombstone"),
        Index("ix_documents_source_key", "source_id", "doc_key"),
        {"sqlite_autoincrement": True},
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"), index=True, nullable=True)
    collection: Mapped[str] = mapped_column(String)
    path: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String)
    anchor: Mapped[str] = mapped_column(Text)
    anchor_json: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String)
    n_tokens: Mapped[int] = mapped_column(Integer)
    segment_id: Mapped[str] = mapped_column(ForeignKey("segments.id"), index=True)
    chunk_start: Mapped[int] = mapped_column(Integer)
    n_chunks: Mapped[int] = mapped_column(Integer)
    tombstone: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[str] = mapped_column(String)
    # Migration 3: sha256 of normalised content, parser version and model fingerprint
    # (pipeline.doc_key); a re-parsed file's document with the same key reuses these tensors.
    doc_key: Mapped[str | None] = mapped_column(String, nullable=True)


class SegmentRow(Base):
    __tablename__ = "segments"
    id: Mapped[str] = mapped_column(String, primary_key=True)
    n_chunks: Mapped[int] = mapped_column(Integer)
    n_docs: Mapped[int] = mapped_column(Integer)
    bytes: Mapped[int] = mapped_column(Integer)
    checksums: Mapped[str] = mapped_column(Text)  # JSON: file name -> sha256
    state: Mapped[str] = mapped_column(String, default="sealed")
    created_at: Mapped[str] = mapped_column(String)


class IngestRunRow(Base):
    __tablename__ = "ingest_runs"
    __table_args__ = (Index("ix_ingest_runs_root", "collection", "root"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection: Mapped[str] = mapped_column(String)
    root: Mapped[str] = mapped_column(Text)
    started_at: Mapped[str] = mapped_column(String)
    finished_at: Mapped[str] = mapped_column(String, nullable=True)
    added: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    removed: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    status: Mapped[str] = mapped_column(String, default="running")  # running | ok | partial | error
    # Migration 3.
    reused: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)  # why a run ended in "error"
    failures_json: Mapped[str] = mapped_column(Text, default="[]")  # [{"path", "reason"}], the first 200
    skipped_json: Mapped[str] = mapped_column(Text, default="{}")  # {reason: count}


class JobRow(Base):
    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection: Mapped[str] = mapped_column(String)
    root: Mapped[str] = mapped_column(Text)
    every_seconds: Mapped[int] = mapped_column(Integer)
    last_run_at: Mapped[str] = mapped_column(String, nullable=True)
    last_status: Mapped[str] = mapped_column(String, nullable=True)  # ok | partial | failed
    # Migration 4; written by the scheduler only.
    window: Mapped[str | None] = mapped_column(String, nullable=True)  # "01:00-05:00", local time
    created_at: Mapped[str | None] = mapped_column(String, nullable=True)
    last_success_at: Mapped[str | None] = mapped_column(String, nullable=True)
    last_failure_at: Mapped[str | None] = mapped_column(String, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    next_due_at: Mapped[str | None] = mapped_column(String, nullable=True)


class TokenRow(Base):
    """A bearer token of `msa serve` (migration 5): only its salted digest is kept; `id` is the
    token's public part, so a check hashes one row, not all of them."""

    __tablename__ = "tokens"
    __table_args__ = ({"sqlite_autoincrement": True},)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    salt: Mapped[str] = mapped_column(String)
    digest: Mapped[str] = mapped_column(String)  # hex HMAC-SHA256(salt, secret)
    collections: Mapped[str] = mapped_column(Text)  # JSON list of the collections it grants
    label: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[str] = mapped_column(String)
    revoked_at: Mapped[str | None] = mapped_column(String, nullable=True)


# Migrations are frozen SQL: each one's effect never changes, whatever the ORM classes above
# become, so a store made empty today and one saved by an old msa end up with the same tables.

_V1 = [
    """CREATE TABLE manifest (
        "key" VARCHAR NOT NULL, value TEXT NOT NULL, PRIMARY KEY ("key"))""",
    """CREATE TABLE sources (
        id INTEGER NOT NULL, collection VARCHAR NOT NULL, path TEXT NOT NULL, root TEXT NOT NULL,
        rel_path TEXT NOT NULL, kind VARCHAR NOT NULL, content_hash VARCHAR NOT NULL, size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL, n_docs INTEGER NOT NULL, last_ingest_at VARCHAR NOT NULL,
        PRIMARY KEY (id), UNIQUE (collection, path))""",
    "CREATE INDEX ix_sources_collection ON sources (collection)",
    """CREATE TABLE segments (
        id VARCHAR NOT NULL, n_chunks INTEGER NOT NULL, n_docs INTEGER NOT NULL, bytes INTEGER NOT NULL,
        checksums TEXT NOT NULL, state VARCHAR NOT NULL, created_at VARCHAR NOT NULL, PRIMARY KEY (id))""",
    """CREATE TABLE ingest_runs (
        id INTEGER NOT NULL, collection VARCHAR NOT NULL, root TEXT NOT NULL, started_at VARCHAR NOT NULL,
        finished_at VARCHAR, added INTEGER NOT NULL, updated INTEGER NOT NULL, removed INTEGER NOT NULL,
        unchanged INTEGER NOT NULL, failed INTEGER NOT NULL, tokens INTEGER NOT NULL, seconds FLOAT NOT NULL,
        status VARCHAR NOT NULL, PRIMARY KEY (id))""",
    """CREATE TABLE jobs (
        id INTEGER NOT NULL, collection VARCHAR NOT NULL, root TEXT NOT NULL, every_seconds INTEGER NOT NULL,
        last_run_at VARCHAR, last_status VARCHAR, PRIMARY KEY (id))""",
    """CREATE TABLE documents (
        id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, source_id INTEGER, collection VARCHAR NOT NULL,
        path TEXT NOT NULL, kind VARCHAR NOT NULL, anchor TEXT NOT NULL, anchor_json TEXT NOT NULL,
        title TEXT NOT NULL, text TEXT NOT NULL, content_hash VARCHAR NOT NULL, n_tokens INTEGER NOT NULL,
        segment_id VARCHAR NOT NULL, chunk_start INTEGER NOT NULL, n_chunks INTEGER NOT NULL,
        tombstone BOOLEAN NOT NULL, created_at VARCHAR NOT NULL,
        FOREIGN KEY(source_id) REFERENCES sources (id), FOREIGN KEY(segment_id) REFERENCES segments (id))""",
    "CREATE INDEX ix_documents_live ON documents (collection, tombstone)",
    "CREATE INDEX ix_documents_source_id ON documents (source_id)",
    "CREATE INDEX ix_documents_segment_id ON documents (segment_id)",
]


def _run(conn: Connection, statements: list[str]) -> None:
    for sql in statements:
        conn.execute(text(sql))


def _m1_initial(conn: Connection) -> None:
    _run(conn, _V1)


def _m2_lexical(conn: Connection) -> None:
    # Lexical index over the same documents (hybrid retrieval); rowid = documents.id.
    conn.execute(text(
        "CREATE VIRTUAL TABLE doc_fts USING fts5(path, title, body, tokenize='unicode61 remove_diacritics 2')"
    ))


def _m3_document_keys(conn: Connection) -> None:
    # Deterministic document keys (reuse of unchanged documents' tensors), what parsed each source
    # and its last failure, and each run's failures and skip counts (`msa status`).
    _run(conn, [
        "ALTER TABLE documents ADD COLUMN doc_key VARCHAR",
        "CREATE INDEX ix_documents_source_key ON documents (source_id, doc_key)",
        "ALTER TABLE sources ADD COLUMN parser_version VARCHAR NOT NULL DEFAULT ''",
        "ALTER TABLE sources ADD COLUMN last_error TEXT",
        "ALTER TABLE sources ADD COLUMN last_failure_at VARCHAR",
        "ALTER TABLE ingest_runs ADD COLUMN reused INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE ingest_runs ADD COLUMN error TEXT",
        "ALTER TABLE ingest_runs ADD COLUMN failures_json TEXT NOT NULL DEFAULT '[]'",
        "ALTER TABLE ingest_runs ADD COLUMN skipped_json TEXT NOT NULL DEFAULT '{}'",
        "CREATE INDEX ix_ingest_runs_root ON ingest_runs (collection, root)",
    ])


def _m4_scheduled_jobs(conn: Connection) -> None:
    # Scheduled re-ingestion: a time window, and the outcome the scheduler records after each run.
    _run(conn, [
        "ALTER TABLE jobs ADD COLUMN window VARCHAR",
        "ALTER TABLE jobs ADD COLUMN created_at VARCHAR",
        "ALTER TABLE jobs ADD COLUMN last_success_at VARCHAR",
        "ALTER TABLE jobs ADD COLUMN last_failure_at VARCHAR",
        "ALTER TABLE jobs ADD COLUMN last_error TEXT",
        "ALTER TABLE jobs ADD COLUMN consecutive_failures INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE jobs ADD COLUMN next_due_at VARCHAR",
    ])


def _m5_tokens(conn: Connection) -> None:
    # Bearer tokens of `msa serve`, each scoped to collections; stored hashed.
    _run(conn, [
        """CREATE TABLE tokens (
            id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, salt VARCHAR NOT NULL, digest VARCHAR NOT NULL,
            collections TEXT NOT NULL, label TEXT NOT NULL, created_at VARCHAR NOT NULL, revoked_at VARCHAR)""",
    ])


MIGRATIONS: list[Callable[[Connection], None]] = [_m1_initial, _m2_lexical, _m3_document_keys, _m4_scheduled_jobs,
                                                  _m5_tokens]


def migrate(conn: Connection) -> int:
    """Apply the migrations not yet applied; returns the schema version reached. Call it inside one
    transaction (`migrate_atomically`): SQLite's DDL is transactional, so a store is either not
    made or made whole."""
    conn.execute(text(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)"
    ))
    done = {r[0] for r in conn.execute(text("SELECT version FROM schema_migrations"))}
    if done and max(done) > len(MIGRATIONS):
        from msa_agent.errors import StoreCorrupt

        raise StoreCorrupt(f"store schema version {max(done)} is newer than this msa ({len(MIGRATIONS)})")
    if 1 not in done:
        _clear_half_made(conn)
    for version, step in enumerate(MIGRATIONS, start=1):
        if version in done:
            continue
        step(conn)
        conn.execute(text("INSERT INTO schema_migrations VALUES (:v, :t)"), {"v": version, "t": utcnow()})
        segments.fault_point("migration")
    return len(MIGRATIONS)


def _clear_half_made(conn: Connection) -> None:
    """Tables left by a first migration that an older msa committed statement by statement and
    that was killed part-way: empty by construction (nothing is written before the schema is
    whole), so they are dropped and the migration runs again. Any row in them means the store is
    not half-made but damaged, and it is not touched."""
    names = [r[0] for r in conn.execute(text(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'schema_migrations' "
        "AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'doc_fts_%'"))]
    for name in names:
        if conn.execute(text(f'SELECT 1 FROM "{name}" LIMIT 1')).first() is not None:
            from msa_agent.errors import StoreCorrupt

            raise StoreCorrupt(f"store has table {name!r} with rows but no recorded schema version")
    for name in names:
        conn.execute(text(f'DROP TABLE "{name}"'))


def migrate_atomically(engine) -> int:  # noqa: ANN001 - sqlalchemy Engine
    """`migrate` in one explicit transaction that takes SQLite's write lock first (BEGIN
    IMMEDIATE): pysqlite would otherwise commit each CREATE on its own, and two first opens of a new
    store would race. A second opener waits on the lock (busy_timeout), then finds the work done."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            version = migrate(conn)
        except BaseException:
            conn.exec_driver_sql("ROLLBACK")
            raise
        conn.exec_driver_sql("COMMIT")
    return version
