"""Tables of msa.db and its numbered, append-only migrations."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import (
    Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

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
    last_ingest_at: Mapped[str] = mapped_column(String)


class DocumentRow(Base):
    __tablename__ = "documents"
    # AUTOINCREMENT: a document id is never reused, even after compaction or --reencode.
    __table_args__ = (Index("ix_documents_live", "collection", "tombstone"), {"sqlite_autoincrement": True})
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
    status: Mapped[str] = mapped_column(String, default="running")


class JobRow(Base):
    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection: Mapped[str] = mapped_column(String)
    root: Mapped[str] = mapped_column(Text)
    every_seconds: Mapped[int] = mapped_column(Integer)
    last_run_at: Mapped[str] = mapped_column(String, nullable=True)
    last_status: Mapped[str] = mapped_column(String, nullable=True)


def _m1_initial(conn: Connection) -> None:
    Base.metadata.create_all(conn)


def _m2_lexical(conn: Connection) -> None:
    # Lexical index over the same documents (hybrid retrieval); rowid = documents.id.
    conn.execute(text(
        "CREATE VIRTUAL TABLE doc_fts USING fts5(path, title, body, tokenize='unicode61 remove_diacritics 2')"
    ))


MIGRATIONS: list[Callable[[Connection], None]] = [_m1_initial, _m2_lexical]


def migrate(conn: Connection) -> int:
    """Apply the migrations not yet applied; returns the schema version reached."""
    conn.execute(text(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)"
    ))
    done = {r[0] for r in conn.execute(text("SELECT version FROM schema_migrations"))}
    if done and max(done) > len(MIGRATIONS):
        from msa_agent.errors import StoreCorrupt

        raise StoreCorrupt(f"store schema version {max(done)} is newer than this msa ({len(MIGRATIONS)})")
    for version, step in enumerate(MIGRATIONS, start=1):
        if version in done:
            continue
        step(conn)
        conn.execute(text("INSERT INTO schema_migrations VALUES (:v, :t)"), {"v": version, "t": utcnow()})
    return len(MIGRATIONS)
