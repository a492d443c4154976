"""The persistent memory store: msa.db (SQLite through SQLAlchemy) beside sealed tensor segments."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import time
import uuid
import warnings
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, delete, event, func, or_, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from msa_agent.errors import FingerprintMismatch, StoreCorrupt, StoreLocked, StoreNotFound

from .schema import (
    FORMAT_VERSION, DocumentRow, IngestRunRow, JobRow, ManifestRow, SegmentRow, SourceRow, migrate_atomically, utcnow,
)
from .segments import Segment, SegmentFiles, fault_point, verify_segment, write_segment

COMPACT_CHUNKS = 1 << 16  # chunks per segment that compaction writes
VERIFIED_STAMP = ".verified"  # in a segment folder: the files' stats at their last clean verification

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_COMPOUND = re.compile(r"\w+(?:[-_.]\w+)+", re.UNICODE)
PHRASE_DOCS = 400  # documents a phrase of `lexical_search` lifts, at most
_STOP = frozenset(
    "a an and are as at be by can could did do does for from had has have how i if in into is it its "
    "me my of on or our should so than that the their them then there these they this to was we were "
    "what when where which who whom why will with would you your about after before any all".split()
)


@dataclass
class NewDocument:
    """A document ready to be stored: its text, citation anchor and place in the new segment."""

    path: str
    kind: str
    anchor: str
    anchor_data: dict
    title: str
    text: str
    content_hash: str
    n_tokens: int
    chunk_start: int
    n_chunks: int
    doc_key: str | None = None
    id: int | None = None  # reserved with reserve_document_ids (the reference protocol encodes it)


@dataclass
class ReusedDocument:
    """A stored document that a re-parsed file still has (same key): its row keeps its id and its
    tensors (segment and chunk range) and takes the new path, citation anchor, title and text."""

    id: int
    path: str
    kind: str
    anchor: str
    anchor_data: dict
    title: str
    text: str
    content_hash: str


@dataclass
class SourceUpdate:
    """One source file's new state: its metadata, the stored documents it keeps (`reused`) and
    the new ones; its other live documents are tombstoned."""

    path: str
    root: str
    rel_path: str
    kind: str
    content_hash: str
    size: int
    mtime_ns: int
    documents: list[NewDocument] = field(default_factory=list)
    reused: list[ReusedDocument] = field(default_factory=list)
    parser_version: str = ""


def job_dict(j: JobRow) -> dict:
    """A scheduled job as `msa status` and `msa schedule list` show it."""
    return {
        "id": j.id, "dir": j.root, "collection": j.collection, "every_seconds": j.every_seconds, "window": j.window,
        "created_at": j.created_at, "next_due_at": j.next_due_at, "last_run": j.last_run_at,
        "last_status": j.last_status, "last_success_at": j.last_success_at, "last_failure_at": j.last_failure_at,
        "last_error": j.last_error, "consecutive_failures": j.consecutive_failures or 0,
        "failing": bool(j.consecutive_failures),
    }


class Store:
    """A store directory: `msa.db`, `segments/`, and a `lock` file for writers."""

    def __init__(self, path: Path, engine: Engine) -> None:
        self.path = path
        self.engine = engine
        self.segments_dir = path / "segments"
        self._segments: dict[str, Segment] = {}
        self._seg_problems: dict[str, list[str]] = {}  # checksums verified once per segment per Store

    # ---- opening ---------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path, *, create: bool = False) -> Store:
        path = Path(path).expanduser().resolve()
        db = path / "msa.db"
        if not db.is_file():
            if not create:
                raise StoreNotFound(f"no store at {path} (run `msa ingest DIR` first, or pass --store)")
            path.mkdir(parents=True, exist_ok=True)
            # Stores hold contracts' verbatim text: the owner's alone (0700, database 0600; SQLite
            # gives its -wal and -shm files the database's mode).
            path.chmod(0o700)
            os.close(os.open(db, os.O_CREAT | os.O_WRONLY, 0o600))
            fault_point("create_db")
        engine = create_engine(f"sqlite:///{db}")

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.close()

        try:
            migrate_atomically(engine)
        except DBAPIError as e:
            engine.dispose()
            if "locked" in str(e.orig) or "busy" in str(e.orig):
                raise
            raise StoreCorrupt(f"{db}: the database cannot be read ({e.orig}): "
                               f"restore it from a backup, or move the store aside and ingest again") from None
        store = cls(path, engine)
        store.segments_dir.mkdir(mode=0o700, exist_ok=True)
        return store

    def close(self) -> None:
        self._segments.clear()
        self._seg_problems.clear()
        self.engine.dispose()

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    @contextmanager
    def write_lock(self, wait: float = 0.0) -> Iterator[None]:
        """Serialise writers, waiting up to `wait` seconds for another one to finish. The OS drops
        the lock when its process dies, so a killed ingest leaves no stale lock behind. Readers
        never take it: they read the last committed state (SQLite WAL, sealed segments)."""
        fd = os.open(self.path / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + max(0.0, wait)
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise StoreLocked(self._locked_message(fd, wait)) from None
                    time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            yield
        finally:
            os.close(fd)

    def _locked_message(self, fd: int, wait: float) -> str:
        try:
            holder = os.pread(fd, 32, 0).decode().strip()
        except OSError:
            holder = ""
        who = f" (pid {holder})" if holder.isdigit() else ""
        waited = f" after waiting {wait:g} s" if wait > 0 else ""
        return (f"{self.path}: another msa process is writing to this store{who}; still locked{waited} "
                f"(pass --wait SECONDS to wait for it)")

    # ---- manifest and model fingerprint ----------------------------------------------------

    @property
    def manifest(self) -> dict[str, str]:
        with self.session() as s:
            return {r.key: r.value for r in s.scalars(select(ManifestRow))}

    def check_model(self, fingerprint: str, model: str = "?") -> None:
        """Refuse a model other than the one the store was built with (any model fits an empty store)."""
        current = self.manifest
        if "fingerprint" in current and current["fingerprint"] != fingerprint:
            why = ""
            if current.get("adapter", "none") != "none":
                why = (f" Its memory was encoded with the reader adapter {current['adapter']} merged, as msa did "
                       "before the memory was made independent of the reader: re-ingest it once.")
            raise FingerprintMismatch(
                f"{self.path} was built with model {current.get('model', '?')} "
                f"(fingerprint {current['fingerprint']}); the current model is {model} "
                f"(fingerprint {fingerprint}).{why} Re-ingest with --reencode, or use the model it was built with."
            )

    def bind_model(self, info: dict[str, str]) -> None:
        """Record the model a store is built with, or refuse a different one."""
        current = self.manifest
        if "fingerprint" in current:
            self.check_model(info["fingerprint"], info.get("model", "?"))
            return
        with self.session() as s, s.begin():
            s.merge(ManifestRow(key="format_version", value=str(FORMAT_VERSION)))
            for k, v in info.items():
                s.merge(ManifestRow(key=k, value=str(v)))

    def reset(self) -> None:
        """Drop every document, segment and the manifest (for --reencode); sources are kept
        with their hashes cleared so the next ingest re-encodes everything."""
        with self.session() as s, s.begin():
            s.execute(text("DELETE FROM doc_fts"))
            s.execute(delete(DocumentRow))
            s.execute(delete(SegmentRow))
            s.execute(delete(ManifestRow))
            s.execute(update(SourceRow).values(content_hash="", n_docs=0))
        self._segments.clear()
        self._seg_problems.clear()
        shutil.rmtree(self.segments_dir, ignore_errors=True)
        self.segments_dir.mkdir(mode=0o700)

    # ---- writing ---------------------------------------------------------------------------

    @staticmethod
    def new_segment_id() -> str:
        return uuid.uuid4().hex[:16]

    def commit(self, collection: str, seg: SegmentFiles | None, updates: list[SourceUpdate]) -> list[int]:
        """In one transaction: register the (already fsynced) segment, and for each source keep
        the documents it reuses (updating their anchors), tombstone its other live ones, add its
        new ones and index them lexically. Returns the new document ids."""
        now = utcnow()
        new_ids: list[int] = []
        with self.session() as s, s.begin():
            if seg is not None:
                s.add(SegmentRow(id=seg.id, n_chunks=seg.n_chunks, n_docs=sum(len(u.documents) for u in updates),
                                 bytes=seg.n_bytes, checksums=json.dumps(seg.checksums), created_at=now))
            for u in updates:
                src = s.scalar(select(SourceRow).where(SourceRow.collection == collection, SourceRow.path == u.path))
                if src is None:
                    src = SourceRow(collection=collection, path=u.path)
                    s.add(src)
                src.root, src.rel_path, src.kind = u.root, u.rel_path, u.kind
                src.content_hash, src.size, src.mtime_ns = u.content_hash, u.size, u.mtime_ns
                src.n_docs, src.last_ingest_at = len(u.documents) + len(u.reused), now
                src.parser_version, src.last_error, src.last_failure_at = u.parser_version, None, None
                s.flush()
                keep = [r.id for r in u.reused]
                self._tombstone(s, select(DocumentRow.id).where(
                    DocumentRow.source_id == src.id, DocumentRow.tombstone.is_(False), DocumentRow.id.not_in(keep)))
                for r in u.reused:
                    row = s.get(DocumentRow, r.id)
                    if row is None or row.tombstone or row.source_id != src.id:
                        raise ValueError(f"document {r.id} is not a live document of {u.path}")
                    reindex = (row.path, row.title, row.text) != (r.path, r.title, r.text)
                    row.path, row.kind, row.anchor, row.title, row.text = r.path, r.kind, r.anchor, r.title, r.text
                    row.anchor_json, row.content_hash = json.dumps(r.anchor_data, sort_keys=True), r.content_hash
                    if reindex:
                        s.execute(text("DELETE FROM doc_fts WHERE rowid = :i"), {"i": row.id})
                        self._index(s, row.id, r.path, r.title, r.text)
                for d in u.documents:
                    if seg is None:
                        raise ValueError("documents need a segment")
                    row = DocumentRow(
                        source_id=src.id, collection=collection, path=d.path, kind=d.kind, anchor=d.anchor,
                        anchor_json=json.dumps(d.anchor_data, sort_keys=True), title=d.title, text=d.text,
                        content_hash=d.content_hash, n_tokens=d.n_tokens, segment_id=seg.id,
                        chunk_start=d.chunk_start, n_chunks=d.n_chunks, tombstone=False, created_at=now,
                        doc_key=d.doc_key, id=d.id,
                    )
                    s.add(row)
                    s.flush()
                    self._index(s, row.id, d.path, d.title, d.text)
                    new_ids.append(row.id)
        return new_ids

    def reserve_document_ids(self, n: int) -> range:
        """n document ids no row has had or will get otherwise (AUTOINCREMENT's sequence moves past
        them), for documents whose encoding contains their id. Ids reserved and never used are
        gaps, nothing more. The caller holds the write lock."""
        with self.session() as s, s.begin():
            seq = s.execute(text("SELECT seq FROM sqlite_sequence WHERE name = 'documents'")).scalar()
            top = max(seq or 0, s.scalar(select(func.max(DocumentRow.id))) or 0)
            if seq is None:
                s.execute(text("INSERT INTO sqlite_sequence(name, seq) VALUES ('documents', :n)"), {"n": top + n})
            else:
                s.execute(text("UPDATE sqlite_sequence SET seq = :n WHERE name = 'documents'"), {"n": top + n})
        return range(top + 1, top + n + 1)

    @staticmethod
    def _index(s: Session, doc_id: int, path: str, title: str, body: str) -> None:
        s.execute(text("INSERT INTO doc_fts(rowid, path, title, body) VALUES (:i, :p, :t, :b)"),
                  {"i": doc_id, "p": path.replace("/", " ").replace("_", " ").replace(".", " "), "t": title, "b": body})

    @staticmethod
    def _tombstone(s: Session, ids_query) -> int:  # noqa: ANN001
        ids = list(s.scalars(ids_query))
        if not ids:
            return 0
        s.execute(update(DocumentRow).where(DocumentRow.id.in_(ids)).values(tombstone=True))
        for i in ids:
            s.execute(text("DELETE FROM doc_fts WHERE rowid = :i"), {"i": i})
        return len(ids)

    def remove_source(self, collection: str, path: str) -> int:
        """Tombstone a deleted source's documents and forget the source. Returns documents removed."""
        with self.session() as s, s.begin():
            src = s.scalar(select(SourceRow).where(SourceRow.collection == collection, SourceRow.path == path))
            if src is None:
                return 0
            return self._forget_source(s, src)

    def _forget_source(self, s: Session, src: SourceRow) -> int:
        n = self._tombstone(s, select(DocumentRow.id).where(
            DocumentRow.source_id == src.id, DocumentRow.tombstone.is_(False)))
        s.execute(update(DocumentRow).where(DocumentRow.source_id == src.id).values(source_id=None))
        s.delete(src)
        return n

    def forget(self, target: str | Path, collection: str | None = None) -> dict[str, int]:
        """Tombstone the documents of a file, or of every file under a directory, and forget
        those sources (in one collection, or in all). Returns {"sources", "documents"}.

        The path need not exist any more; it is matched as given (made absolute) and as resolved,
        so a path through a symlink finds what was ingested through its target.
        """
        raw = Path(os.path.abspath(Path(target).expanduser()))
        try:
            resolved = raw.resolve()
        except (OSError, RuntimeError):
            resolved = raw
        conds = []
        for p in dict.fromkeys([str(raw), str(resolved)]):
            prefix = p.rstrip("/") + "/"
            conds += [SourceRow.path == p, SourceRow.path.startswith(prefix, autoescape=True)]
        q = select(SourceRow).where(or_(*conds))
        if collection is not None:
            q = q.where(SourceRow.collection == collection)
        n_src = n_docs = 0
        with self.session() as s, s.begin():
            for src in list(s.scalars(q)):
                n_docs += self._forget_source(s, src)
                n_src += 1
                fault_point("forget")
        return {"sources": n_src, "documents": n_docs}

    def record_source_failure(self, collection: str, path: str, reason: str) -> int | None:
        """Note that a stored source could not be re-read or re-parsed. Its documents stay (the
        last good version); returns how many, or None when the source was never stored."""
        with self.session() as s, s.begin():
            src = s.scalar(select(SourceRow).where(SourceRow.collection == collection, SourceRow.path == path))
            if src is None:
                return None
            src.last_error, src.last_failure_at = reason, utcnow()
            return s.scalar(select(func.count()).select_from(DocumentRow).where(
                DocumentRow.source_id == src.id, DocumentRow.tombstone.is_(False))) or 0

    def touch_sources(self, collection: str, stats: list[tuple[str, int, int]]) -> None:
        """Record the size and mtime of sources found unchanged by content (so the next run can
        skip hashing them), and clear a failure they had."""
        if not stats:
            return
        with self.session() as s, s.begin():
            for path, size, mtime_ns in stats:
                s.execute(update(SourceRow).where(SourceRow.collection == collection, SourceRow.path == path)
                          .values(size=size, mtime_ns=mtime_ns, last_error=None, last_failure_at=None))

    def source_documents(self, collection: str, path: str) -> list[DocumentRow]:
        """The live documents of one source, in id order."""
        with self.session() as s:
            return list(s.scalars(
                select(DocumentRow).join(SourceRow, DocumentRow.source_id == SourceRow.id)
                .where(SourceRow.collection == collection, SourceRow.path == path, DocumentRow.tombstone.is_(False))
                .order_by(DocumentRow.id)))

    def start_run(self, collection: str, root: str) -> int:
        with self.session() as s, s.begin():
            run = IngestRunRow(collection=collection, root=root, started_at=utcnow())
            s.add(run)
            s.flush()
            return run.id

    def finish_run(self, run_id: int, *, failures: list[dict] | None = None, skipped: dict[str, int] | None = None,
                   **counts: int | float | str | None) -> None:
        with self.session() as s, s.begin():
            run = s.get(IngestRunRow, run_id)
            for k, v in counts.items():
                setattr(run, k, v)
            if failures is not None:
                run.failures_json = json.dumps(failures[:200])
            if skipped is not None:
                run.skipped_json = json.dumps(dict(sorted(skipped.items())))
            run.finished_at = utcnow()

    # ---- reading ---------------------------------------------------------------------------

    def sources(self, collection: str) -> dict[str, SourceRow]:
        with self.session() as s:
            return {r.path: r for r in s.scalars(select(SourceRow).where(SourceRow.collection == collection))}

    def live_documents(self, collection: str | None) -> list[DocumentRow]:
        """Live documents in ingest order (ids grow with segments and with chunks inside one)."""
        q = select(DocumentRow).where(DocumentRow.tombstone.is_(False))
        if collection is not None:
            q = q.where(DocumentRow.collection == collection)
        with self.session() as s:
            docs = list(s.scalars(q.order_by(DocumentRow.id)))
        bad = sorted(sid for sid in {d.segment_id for d in docs} if self.segment_problems(sid))
        if bad:
            n = sum(d.segment_id in bad for d in docs)
            warnings.warn(f"{self.path}: left out {n} documents of {len(bad)} damaged segments "
                          f"({', '.join(bad)}): {'; '.join(self.segment_problems(bad[0]))}; see msa verify",
                          RuntimeWarning, stacklevel=2)
            docs = [d for d in docs if d.segment_id not in bad]
        return docs

    def segment_problems(self, seg_id: str) -> list[str]:
        """What is wrong with a segment's files (empty when whole): its checksums are verified the
        first time this Store meets it, and the answer kept (sealed segments never change)."""
        problems = self._seg_problems.get(seg_id)
        if problems is None:
            with self.session() as s:
                row = s.get(SegmentRow, seg_id)
            problems = ([f"segment {seg_id}: no row"] if row is None
                        else self._verify_stamped(self.segments_dir / seg_id, json.loads(row.checksums)))
            self._seg_problems[seg_id] = problems
        return problems

    @staticmethod
    def _verify_stamped(path: Path, checksums: dict[str, str]) -> list[str]:
        """`verify_segment`, skipped when the files are exactly as they were at the last clean
        verification (size, mtime, ctime, inode: any write changes ctime, which no tool sets back).
        A 100M-token memory holds ~20 GB of segments; hashing them on every open would cost
        seconds per question. `msa verify` always hashes everything."""
        stamp_file = path / VERIFIED_STAMP
        try:
            stats = {name: (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
                     for name in checksums for st in [(path / name).stat()]}
            stamp = json.dumps({"checksums": checksums, "stats": stats}, sort_keys=True)
        except OSError:  # a file missing: verify_segment says which
            stamp = None
        try:
            if stamp is not None and stamp_file.read_text() == stamp:
                return []
        except OSError:  # no stamp yet
            pass
        problems = verify_segment(path, checksums)
        if not problems and stamp is not None:
            try:
                tmp = stamp_file.with_suffix(".tmp")
                tmp.write_text(stamp)
                os.replace(tmp, stamp_file)
            except OSError:  # a read-only store: verify again next time
                pass
        return problems

    def segment(self, seg_id: str) -> Segment:
        """A segment, opened once; StoreCorrupt when its files fail their checksums."""
        seg = self._segments.get(seg_id)
        if seg is None:
            problems = self.segment_problems(seg_id)
            if problems:
                raise StoreCorrupt("; ".join(problems) + " (see msa verify)")
            seg = self._segments[seg_id] = Segment(self.segments_dir / seg_id)
        return seg

    def lexical_search(self, collection: str | None, query: str, limit: int,
                       phrases: Sequence[tuple[str, float]] = ()) -> list[tuple[int, float]]:
        """BM25 over path, title and body: (document id, score; higher is better), best first.

        Compound names in the query (`pump-3`, `emergency_stop`, `NW-340`) are rare and decisive
        in enterprise questions; documents containing one as a phrase get a boost of the best
        BM25 score per name, so they rank by names matched first, then by BM25.

        `phrases` are (space-separated words, weight): documents holding one as a phrase gain
        `weight` times that boost, whether or not BM25 ranked them (at most `PHRASE_DOCS` each). A
        date the question writes "July 4th 2013" is the phrase "2013 07 04": it finds the rows
        written 2013/07/04 and the log lines stamped 2013-07-04 that BM25 alone cannot.
        """
        words = [w for w in _WORD.findall(query.lower()) if w not in _STOP and len(w) > 1]
        if not words:
            words = _WORD.findall(query.lower())
        if not words:
            return []
        match = " OR ".join(f'"{w}"' for w in dict.fromkeys(words))
        where = " AND d.tombstone = 0" + (" AND d.collection = :c" if collection is not None else "")
        sql = (
            "SELECT doc_fts.rowid, bm25(doc_fts, 2.0, 4.0, 1.0) AS r FROM doc_fts "
            "JOIN documents d ON d.id = doc_fts.rowid WHERE doc_fts MATCH :m" + where + " ORDER BY r LIMIT :n"
        )
        with self.engine.connect() as conn:
            rows = conn.execute(text(sql), {"m": match, "c": collection, "n": max(limit, 200)}).all()
            scores = {int(i): -float(r) for i, r in rows}
            if not scores and not phrases:
                return []
            # The best BM25 score per name: a document naming it outranks every one that does not.
            bonus = max(scores.values(), default=1.0)
            for name in dict.fromkeys(_COMPOUND.findall(query.lower())):
                phrase = '"' + " ".join(_WORD.findall(name)) + '"'
                hits = conn.execute(text(
                    "SELECT doc_fts.rowid FROM doc_fts JOIN documents d ON d.id = doc_fts.rowid "
                    "WHERE doc_fts MATCH :m" + where), {"m": phrase, "c": collection}).all()
                for (i,) in hits:
                    if int(i) in scores:
                        scores[int(i)] += bonus
            for words, weight in phrases:
                ws = _WORD.findall(words.lower())
                if not ws:
                    continue
                hits = conn.execute(text(
                    "SELECT doc_fts.rowid FROM doc_fts JOIN documents d ON d.id = doc_fts.rowid "
                    "WHERE doc_fts MATCH :m" + where + " LIMIT :n"),
                    {"m": '"' + " ".join(ws) + '"', "c": collection, "n": PHRASE_DOCS}).all()
                for (i,) in hits:
                    scores[int(i)] = scores.get(int(i), 0.0) + weight * bonus
        ranked = sorted(scores.items(), key=lambda t: -t[1])
        return ranked[:limit]

    def status(self, collections: Sequence[str] | None = None) -> dict:
        """`msa status`: the whole store, or with `collections` (a token's scope in `msa serve`)
        only what those collections hold: their documents, tokens, chunks, tombstones, the
        segments holding their documents and those segments' bytes (the database itself is not
        counted), their sources and jobs."""
        m = self.manifest
        scoped = collections is not None
        with self.session() as s:
            live = DocumentRow.tombstone.is_(False)
            dead = DocumentRow.tombstone.is_(True)
            if scoped:
                live = live & DocumentRow.collection.in_(list(collections))
                dead = dead & DocumentRow.collection.in_(list(collections))
            n_docs = s.scalar(select(func.count()).select_from(DocumentRow).where(live)) or 0
            tokens = s.scalar(select(func.coalesce(func.sum(DocumentRow.n_tokens), 0)).where(live)) or 0
            chunks = s.scalar(select(func.coalesce(func.sum(DocumentRow.n_chunks), 0)).where(live)) or 0
            tomb = s.scalar(select(func.count()).select_from(DocumentRow).where(dead)) or 0
            if scoped:
                held = select(DocumentRow.segment_id).where(live).distinct()
                n_seg = s.scalar(select(func.count()).select_from(SegmentRow).where(SegmentRow.id.in_(held))) or 0
                disk = s.scalar(select(func.coalesce(func.sum(SegmentRow.bytes), 0)).where(SegmentRow.id.in_(held))) or 0
            else:
                n_seg = s.scalar(select(func.count()).select_from(SegmentRow)) or 0
            colls = sorted(set(s.scalars(select(DocumentRow.collection).where(live).distinct())))
            srcs = self._source_status(s)
            jobs = [job_dict(j) for j in s.scalars(select(JobRow).order_by(JobRow.id))]
        if scoped:
            srcs = [x for x in srcs if x["collection"] in collections]
            jobs = [j for j in jobs if j["collection"] in collections]
        else:
            disk = sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())
        return {
            "store": str(self.path), "documents": n_docs, "tokens": int(tokens), "chunks": int(chunks),
            "tombstoned": tomb, "segments": n_seg, "bytes_on_disk": int(disk),
            "bytes_per_token": round(disk / tokens, 1) if tokens else None,
            "collections": colls, "model": m.get("model"), "fingerprint": m.get("fingerprint"),
            "format_version": m.get("format_version"), "sources": srcs, "jobs": jobs,
        }

    @staticmethod
    def _source_status(s: Session) -> list[dict]:
        """Per ingested directory (and collection): files, documents, the last run, the last
        successful one, and the files that failed in the last run (those stored before keep their
        last good documents)."""
        out: dict[tuple[str, str], dict] = {}
        for root, coll, n, docs, last in s.execute(
            select(SourceRow.root, SourceRow.collection, func.count(), func.coalesce(func.sum(SourceRow.n_docs), 0),
                   func.max(SourceRow.last_ingest_at)).group_by(SourceRow.root, SourceRow.collection)
        ):
            out[(root, coll)] = {"root": root, "collection": coll, "files": n, "documents": int(docs),
                                 "last_ingest": last}
        runs = s.execute(
            select(IngestRunRow.collection, IngestRunRow.root, func.max(IngestRunRow.id))
            .group_by(IngestRunRow.collection, IngestRunRow.root)).all()
        for coll, root, run_id in runs:
            run = s.get(IngestRunRow, run_id)
            ok = s.scalar(select(func.max(IngestRunRow.finished_at)).where(
                IngestRunRow.collection == coll, IngestRunRow.root == root,
                IngestRunRow.status.in_(("ok", "partial"))))
            entry = out.setdefault((root, coll), {"root": root, "collection": coll, "files": 0, "documents": 0,
                                                  "last_ingest": None})
            entry["last_success_at"] = ok
            entry["last_run"] = {
                "id": run.id, "status": run.status, "started_at": run.started_at, "finished_at": run.finished_at,
                "added": run.added, "updated": run.updated, "removed": run.removed, "unchanged": run.unchanged,
                "failed": run.failed, "reused": run.reused, "tokens": run.tokens, "seconds": run.seconds,
                "error": run.error, "skipped": json.loads(run.skipped_json or "{}"),
            }
            entry["failures"] = json.loads(run.failures_json or "[]")
        for entry in out.values():
            entry.setdefault("last_success_at", None)
            entry.setdefault("last_run", None)
            entry.setdefault("failures", [])
        return [out[k] for k in sorted(out)]

    # ---- checking --------------------------------------------------------------------------

    def verify(self) -> list[str]:
        """Every problem found: corrupt or missing segment files, orphan directories, rows
        pointing outside their segment. Empty when the store is whole."""
        problems: list[str] = []
        with self.session() as s:
            segs = {r.id: r for r in s.scalars(select(SegmentRow))}
            docs = list(s.scalars(select(DocumentRow).where(DocumentRow.tombstone.is_(False))))
        for seg_id, row in segs.items():
            problems += verify_segment(self.segments_dir / seg_id, json.loads(row.checksums))
        on_disk = {p.name for p in self.segments_dir.iterdir() if p.is_dir()} if self.segments_dir.is_dir() else set()
        for name in sorted(on_disk - set(segs)):
            problems.append(f"segment directory {name} has no row (left by an interrupted ingest)")
        for d in docs:
            row = segs.get(d.segment_id)
            if row is None:
                problems.append(f"document {d.id} ({d.path}) points at missing segment {d.segment_id}")
            elif d.chunk_start + d.n_chunks > row.n_chunks:
                problems.append(f"document {d.id} ({d.path}) chunk range beyond segment {d.segment_id}")
        return problems + self._verify_index(docs)

    def _verify_index(self, docs: list[DocumentRow]) -> list[str]:
        """The lexical index holds exactly the live documents and is itself sound."""
        problems: list[str] = []
        with self.session() as s:
            try:
                s.execute(text("INSERT INTO doc_fts(doc_fts) VALUES ('integrity-check')"))
                fts = {r[0] for r in s.execute(text("SELECT rowid FROM doc_fts"))}
            except DBAPIError as e:
                return [f"the lexical index cannot be read ({e.orig})"]
        live = {d.id: d.path for d in docs}
        for i in sorted(set(live) - fts)[:20]:
            problems.append(f"document {i} ({live[i]}) is missing from the lexical index")
        if stale := sorted(fts - set(live)):
            problems.append(f"{len(stale)} lexical index rows have no live document (first: {stale[0]})")
        return problems

    def compact(self, max_chunks: int = COMPACT_CHUNKS) -> dict[str, int | list[str]]:
        """Reclaim the space of tombstoned documents: rewrite every segment that holds dead chunks
        into new segments of its live chunks only, then drop tombstoned rows, unused segments and
        orphan directories. The caller holds the write lock.

        New segment files are written and fsynced before one transaction moves the rows to them;
        old directories go after it commits, so a crash at any point leaves the store whole (at
        worst with orphan directories, which verify reports and the next compact removes). The
        tensors are copied unchanged, so routing over live documents is unchanged. A segment
        whose files fail their checksums is left as it is (and listed in "damaged"): copying it
        would give its damage fresh checksums.
        """
        bytes_before = self._segments_bytes()
        with self.session() as s:
            segs = {r.id: r for r in s.scalars(select(SegmentRow))}
            live = list(s.scalars(select(DocumentRow).where(DocumentRow.tombstone.is_(False))
                                  .order_by(DocumentRow.segment_id, DocumentRow.chunk_start)))
        by_seg: dict[str, list[DocumentRow]] = defaultdict(list)
        for d in live:
            by_seg[d.segment_id].append(d)
        damaged: list[str] = []
        rewrite: list[str] = []
        for seg_id, row in sorted(segs.items(), key=lambda t: t[1].created_at + t[0]):
            if sum(d.n_chunks for d in by_seg.get(seg_id, [])) == row.n_chunks:
                continue  # every chunk still used
            if by_seg.get(seg_id) and verify_segment(self.segments_dir / seg_id, json.loads(row.checksums)):
                damaged.append(seg_id)
                continue
            rewrite.append(seg_id)
        written: list[tuple[SegmentFiles, int]] = []
        moves: dict[int, tuple[str, int]] = {}
        # Segments with and without trained-router keys are never mixed in one new segment.
        for has_rk in (False, True):
            docs = [d for sid in rewrite for d in by_seg.get(sid, []) if (self.segment(sid).rk is not None) == has_rk]
            group: list[DocumentRow] = []
            for d in docs:
                if group and sum(g.n_chunks for g in group) + d.n_chunks > max_chunks:
                    written.append(self._copy_segment(group, moves))
                    fault_point("compact_segment")
                    group = []
                group.append(d)
            if group:
                written.append(self._copy_segment(group, moves))
                fault_point("compact_segment")
        now = utcnow()
        fault_point("compact_commit")
        with self.session() as s, s.begin():
            for files, n_docs in written:
                s.add(SegmentRow(id=files.id, n_chunks=files.n_chunks, n_docs=n_docs, bytes=files.n_bytes,
                                 checksums=json.dumps(files.checksums), created_at=now))
            s.flush()
            for doc_id, (seg_id, start) in moves.items():
                s.execute(update(DocumentRow).where(DocumentRow.id == doc_id)
                          .values(segment_id=seg_id, chunk_start=start))
            dead_docs = s.execute(delete(DocumentRow).where(DocumentRow.tombstone.is_(True))).rowcount
            used = set(s.scalars(select(DocumentRow.segment_id).distinct()))
            dead_segs = [sid for sid in s.scalars(select(SegmentRow.id)) if sid not in used]
            if dead_segs:
                s.execute(delete(SegmentRow).where(SegmentRow.id.in_(dead_segs)))
            keep = set(s.scalars(select(SegmentRow.id)))
        self._segments.clear()
        self._seg_problems.clear()
        removed_dirs = 0
        for p in self.segments_dir.iterdir():
            if p.name not in keep:
                fault_point("compact_cleanup")
                shutil.rmtree(p) if p.is_dir() else p.unlink()
                if p.name not in dead_segs:
                    removed_dirs += 1  # an orphan, not a segment this compaction retired
        return {"documents": dead_docs, "segments": len(dead_segs), "rewritten": len(written),
                "directories": removed_dirs, "bytes_before": bytes_before, "bytes_after": self._segments_bytes(),
                "damaged": damaged}

    def _copy_segment(self, docs: list[DocumentRow], moves: dict[int, tuple[str, int]]) -> tuple[SegmentFiles, int]:
        """Write (and fsync) a new segment holding the given documents' chunks, in order; record
        where each document moves to."""
        seg_id = self.new_segment_id()
        ks, vs, rks, counts = [], [], [], []
        start = 0
        for d in docs:
            src = self.segment(d.segment_id)
            a, b = d.chunk_start, d.chunk_start + d.n_chunks
            ks.append(np.asarray(src.k[:, a:b]))  # (layers, n, Hk, D)
            vs.append(np.asarray(src.v[:, a:b]))
            if src.rk is not None:
                rks.append(np.asarray(src.rk[:, a:b]))
            counts.append(d.n_chunks)
            moves[d.id] = (seg_id, start)
            start += d.n_chunks
        chunks = np.repeat(np.arange(len(docs), dtype=np.int32), counts)  # (N,)
        files = write_segment(self.segments_dir, seg_id, np.concatenate(ks, axis=1), np.concatenate(vs, axis=1),
                              np.concatenate(rks, axis=1) if rks else None, chunks)
        return files, len(docs)

    def _segments_bytes(self) -> int:
        if not self.segments_dir.is_dir():
            return 0
        return sum(f.stat().st_size for f in self.segments_dir.rglob("*") if f.is_file())
