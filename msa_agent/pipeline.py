"""`msa ingest`: sources -> documents -> encoded segments -> store, incrementally.

A file whose size and mtime match the stored ones is unchanged without being read; otherwise its
content hash decides. A changed file is re-parsed, and each of its documents gets a deterministic
key (`doc_key`: sha256 of its normalised content, the parser version and options, and the model
fingerprint). A document whose key a live document of the same file already has keeps that
document's row and tensors (only its citation anchor moves); only documents with new keys are
encoded, and the file's other old documents are tombstoned in the same transaction. So an
appended log re-encodes only its last windows. Files gone from the source are tombstoned.

Every file that cannot be read or parsed is reported with its path and reason and the run goes
on; a file stored before keeps its last good documents. Segment files are fsynced before the
rows that point at them commit, so a crash leaves at worst an orphan directory that `msa verify`
reports.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import signal
import stat
import threading
import time
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import msa_agent.ingest as _ingest
from msa_agent.errors import BadInput
from msa_agent.ingest import Document, SourceError, parse_file, walk
from msa_agent.ingest.code import CODE_EXTS
from msa_agent.ingest.html import HTML_EXTS
from msa_agent.ingest.logs import LOG_EXTS
from msa_agent.ingest.sources import PLAIN_EXTS, PROSE_EXTS
from msa_agent.ingest.timestamps import zone
from msa_agent.ingest.walker import BINARY_EXTS, BULK_FACTOR, MAX_BYTES

from .engine import Engine, check_input_dir, stack_layers
from .store import NewDocument, ReusedDocument, SourceUpdate, Store, fault_point, write_segment
from .store.schema import SourceRow

BATCH_TOKENS = 16384  # tokens per committed segment: bounds the work a crash can lose
_TOKENIZE_STEP = 2048  # documents tokenized between two looks at Ctrl-C

# Bump when the parsers' output for the same file changes: every file is then re-parsed and its
# documents re-keyed (so re-encoded). The ingest package's own constant wins when it has one.
PARSER_VERSION = str(getattr(_ingest, "PARSER_VERSION", "1"))
KINDS = ("contract", "code", "log", "text")
_KEY_SCHEME = b"msa-doc-key/1"
# Extensions that promise text: binary content under one of them is a failure, not a skip.
_TEXT_EXTS = CODE_EXTS | PROSE_EXTS | PLAIN_EXTS | LOG_EXTS | HTML_EXTS
# A file modified this close to when it was hashed may change again within the same mtime tick:
# its mtime is not recorded, so the next run hashes it again (git's "racily clean" entries).
_RACY_NS = 2_000_000_000
# Skip reasons that are failures: the file was meant to be ingested and could not be.
_FAILING_SKIPS = {"oversized", "unreadable"}


@dataclass
class IngestReport:
    store: str
    collection: str
    root: str
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    failed: int = 0
    documents: int = 0  # documents of the added and updated files
    tokens: int = 0  # tokens encoded
    seconds: float = 0.0
    tokens_per_s: float = 0.0
    failures: list[dict] = field(default_factory=list)  # {"path", "reason"[, "kept_documents"]}
    warnings: list[dict[str, str]] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # left out on purpose, by reason
    reused_documents: int = 0  # documents of changed files whose stored tensors were kept
    interrupted: bool = False  # stopped by Ctrl-C at a safe point: what is committed is whole
    not_ingested: list[str] = field(default_factory=list)  # when interrupted: files read but not committed

    def as_dict(self) -> dict:
        """The `msa ingest --json` report; `interrupted` and `not_ingested` only when it was."""
        d = dict(self.__dict__)
        if not self.interrupted:
            del d["interrupted"], d["not_ingested"]
        return d


@dataclass
class Progress:
    """Callbacks the CLI turns into a progress bar; all optional."""

    on_plan: Callable[[int, int], None] = lambda files, tokens: None
    on_advance: Callable[[int, int], None] = lambda files, tokens: None
    on_message: Callable[[str], None] = lambda msg: None


def printable_path(path: str) -> str:
    """A path as it can be printed and stored: bytes of a non-UTF-8 name shown as U+FFFD."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def file_hash(path: Path) -> str:
    """sha256 of the file, never through a symbolic link (ELOOP when it became one)."""
    h = hashlib.sha256()
    with os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_SWAPPED = "became a symbolic link after the scan; not followed"


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _outside(path: Path, root: Path) -> bool:
    """The file now resolves outside the ingested directory (a directory above it swapped for a
    link since the scan)."""
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return True
    base = root.resolve()
    return real != base and base not in real.parents


def doc_text(d: Document) -> str:
    """What memory encodes for a document: a citation header line, then its text."""
    head = f"{d.path} ({d.anchor})" + (f" {d.title}" if d.title and d.title not in d.anchor else "")
    return f"{head}\n{d.text}"


def parse_signature(max_chars: int = 2400, kind: str | None = None, timezone: str | None = None) -> str:
    """The parser version and the options that change what a file parses into."""
    return (f"{PARSER_VERSION};max_chars={max_chars}" + (f";kind={kind}" if kind else "")
            + (f";tz={timezone}" if timezone else ""))


def normalize_text(text: str) -> str:
    """NFC, \\n line ends, no trailing blanks on lines or blank lines at either end."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")


def doc_key(d: Document, signature: str, fingerprint: str) -> str:
    """A document's deterministic key: sha256 over its kind, title and normalised text, the
    parser signature and the model fingerprint (each length-prefixed). Not the anchor: a document
    that only moved within its file keeps its key."""
    h = hashlib.sha256(_KEY_SCHEME)
    for part in (signature, fingerprint, d.kind, d.title, normalize_text(d.text)):
        b = part.encode("utf-8", "surrogatepass")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


@dataclass
class _Pending:
    update: SourceUpdate
    docs: list[Document]  # the documents to encode
    keys: list[str]
    ids: list[int]  # reserved: the reference protocol encodes a document with its id
    tokens: list[list[int]]


def check_options(*, kind: str | None = None, max_file_bytes: int = MAX_BYTES, timezone: str | None = None) -> None:
    """BadInput for ingest options that cannot work (checked before anything is created)."""
    if timezone:
        try:
            zone(timezone)
        except ValueError as e:
            raise BadInput(str(e)) from None
    if kind is not None and kind not in KINDS:
        raise BadInput(f"unknown kind {kind!r} (one of {', '.join(KINDS)})")
    if max_file_bytes <= 0:
        raise BadInput(f"the largest file size must be positive, got {max_file_bytes} bytes")


def ingest_dir(
    root: Path,
    store: Store,
    engine: Engine,
    *,
    collection: str = "default",
    reencode: bool = False,
    progress: Progress | None = None,
    max_chars: int = 2400,
    max_file_bytes: int = MAX_BYTES,
    kind: str | None = None,
    wait: float = 0.0,
    timezone: str | None = None,
) -> IngestReport:
    """Bring a collection's memory of a directory in step with it.

    `max_file_bytes`: larger files are reported as failures and never read (logs, PDF and DOCX may
    be `BULK_FACTOR` times larger). `kind` forces the parser family for every file. `wait`: seconds
    to wait for another writer to finish (StoreLocked after). `timezone`: the zone of log times
    written without one (default: MSA_TIMEZONE; else they stay times of an unknown zone).

    Ctrl-C (SIGINT, when called from the main thread) stops the run at the next safe point, within
    a second or two: batches committed stay, the batch being encoded is dropped, files gone from
    the source are not removed (the walk may be incomplete), and the report says `interrupted`
    with the files `not_ingested`. A second Ctrl-C aborts at once (KeyboardInterrupt), though
    never between a segment's files and the rows that point to them: the store stays valid.
    """
    progress = progress or Progress()
    timezone = timezone or os.environ.get("MSA_TIMEZONE") or None
    check_options(kind=kind, max_file_bytes=max_file_bytes, timezone=timezone)
    root = check_input_dir(root)
    t0 = time.perf_counter()
    report = IngestReport(store=str(store.path), collection=collection, root=str(root))
    with store.write_lock(wait):
        if reencode:
            store.reset()
        store.bind_model(engine.manifest_info())
        run_id = store.start_run(collection, str(root))
        status, error = "error", None
        try:
            with _Interrupts(progress) as stop:
                _Run(root, store, engine, collection, report, progress, max_chars, max_file_bytes, kind,
                     timezone, stop).run()
            status = "interrupted" if report.interrupted else "partial" if report.failed else "ok"
        except BaseException as e:
            error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            raise
        finally:
            report.seconds = round(time.perf_counter() - t0, 3)
            try:
                store.finish_run(run_id, added=report.added, updated=report.updated, removed=report.removed,
                                 unchanged=report.unchanged, failed=report.failed, tokens=report.tokens,
                                 seconds=report.seconds, status=status, error=error, reused=report.reused_documents,
                                 failures=report.failures, skipped=report.skipped)
            except Exception:
                if error is None:
                    raise  # else the run's own error (a full disk fails this too) is the one to report
    return report


class _Stopped(Exception):
    """Ctrl-C asked the run to stop: raised at a safe point, caught by _Run.run."""


class _Interrupts:
    """SIGINT during an ingest: the first asks for a stop at the next safe point (`requested`),
    the second aborts at once with KeyboardInterrupt, deferred only while a segment and its rows
    are being written (`critical()`), so that the store never holds one without the other.

    Installed only from the main thread and over Python's default handler (a scheduler or
    server that handles signals itself keeps its own)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.requested = False
        self._abort_pending = False
        self._depth = 0
        self._old = None

    def __enter__(self) -> _Interrupts:
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)

    def _handle(self, signum: int, frame: object) -> None:
        if not self.requested:
            self.requested = True
            self.progress.on_message("interrupted: stopping at the next safe point, keeping what is committed "
                                     "(Ctrl-C again to abort now)")
            return
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        if self._depth:
            self._abort_pending = True
            return
        raise KeyboardInterrupt

    def check(self) -> None:
        """A safe point: _Stopped when a stop was asked for."""
        if self.requested:
            raise _Stopped

    @contextlib.contextmanager
    def critical(self) -> Iterator[None]:
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._abort_pending and not self._depth:
                self._abort_pending = False
                raise KeyboardInterrupt


class _Run:
    """One ingest of one directory: plan (walk, stat, hash, parse, match keys), then encode and
    commit in batches, then forget the files that are gone."""

    def __init__(self, root: Path, store: Store, engine: Engine, collection: str, report: IngestReport,
                 progress: Progress, max_chars: int, max_file_bytes: int, kind: str | None,
                 timezone: str | None = None, stop: _Interrupts | None = None) -> None:
        self.root, self.store, self.engine, self.collection = root, store, engine, collection
        self.report, self.progress = report, progress
        self.max_chars, self.max_file_bytes, self.kind = max_chars, max_file_bytes, kind
        self.timezone = timezone
        self.stop = stop or _Interrupts(progress)
        self.signature = parse_signature(max_chars, kind, timezone)
        self.known: dict[str, SourceRow] = {
            p: s for p, s in store.sources(collection).items() if s.root == str(root)}
        self.seen: set[str] = set()
        self.skipped: Counter = Counter()
        self.touch: list[tuple[str, int, int]] = []
        self._ids: list[int] = []

    def new_ids(self, n: int) -> list[int]:
        """Ids for n new documents, reserved from the store a thousand or more at a time."""
        if len(self._ids) < n:
            self._ids += list(self.store.reserve_document_ids(max(n - len(self._ids), 1024)))
        out, self._ids = self._ids[:n], self._ids[n:]
        return out

    # ---- reporting -----------------------------------------------------------------------------

    def fail(self, key: str, reason: str) -> None:
        """A file that could not be ingested; one stored before keeps its documents."""
        self.report.failed += 1
        shown = printable_path(key)
        entry: dict = {"path": shown, "reason": reason}
        msg = f"failed: {shown}: {reason}"
        if key in self.known:
            self.seen.add(key)  # not gone: keep its last good documents
            kept = self.store.record_source_failure(self.collection, key, reason)
            if kept is not None:
                entry["kept_documents"] = kept
                msg += f" (kept its {kept} documents from the last good version)"
        self.report.failures.append(entry)
        self.progress.on_message(msg)

    def on_skip(self, p: Path, why: str) -> None:
        """Called by walk for each entry it leaves out."""
        key = str(p)
        reason = self._failing_skip(p, why)
        if reason is not None:
            if why == "unreadable" and p.is_dir():
                # What was stored from under it is not gone, only unreachable this time.
                self.seen.update(k for k in self.known if k.startswith(key + "/"))
            self.fail(key, reason)
            return
        self.skipped[why] += 1
        if why == "symlink":
            note = _symlink_reason(p, self.root)
            self.report.warnings.append({"path": key, "reason": note})
            self.progress.on_message(f"skipped: {key}: {note}")

    def _failing_skip(self, p: Path, why: str) -> str | None:
        if why.startswith("error: "):
            return why.removeprefix("error: ")
        if why == "oversized":
            try:
                size = p.stat().st_size
            except OSError:
                size = 0
            mb = self.max_file_bytes / 1e6
            reason = (f"too large to ingest ({size / 1e6:.1f} MB; the limit is {mb:g} MB, {mb * BULK_FACTOR:g} MB "
                      f"for logs, PDF and DOCX: see --max-file-mb)")
            if size <= self.max_file_bytes * BULK_FACTOR and p.suffix.lower() in (".log", ".csv", ".jsonl", ".txt", ".out"):
                # Under the bulk limit, yet refused: its first lines did not read as a log.
                reason += f"; it was not recognised as a log (no timestamped rows in its first lines), so {mb:g} MB applied"
            return reason + "; not read"
        if why == "unreadable":
            try:
                if p.is_dir():
                    os.listdir(p)
                else:
                    open(p, "rb").close()  # noqa: SIM115
            except OSError as e:
                return f"cannot {'list directory' if p.is_dir() else 'read'}: {e.strerror or e}"
            return "cannot read"
        if why == "binary":
            ext = p.suffix.lower()
            if ext in _TEXT_EXTS and ext not in BINARY_EXTS:
                return f"not text: binary content in a {ext} file"
        return None

    # ---- the run -------------------------------------------------------------------------------

    def run(self) -> None:
        pending: list[_Pending] = []
        try:
            self._run(pending)
        except _Stopped:
            self._stopped(pending)

    def _run(self, pending: list[_Pending]) -> None:
        report, progress, stop = self.report, self.progress, self.stop
        # walk counts nothing itself: on_skip sorts what it leaves out into failures and skips.
        for path in walk(self.root, None, self.max_file_bytes, on_skip=self.on_skip):
            stop.check()
            p = self.plan(path)
            if p is not None:
                pending.append(p)
        report.skipped = dict(sorted(self.skipped.items()))
        flat = [(p, d, i) for p in pending for d, i in zip(p.docs, p.ids)]
        toks: list[list[int]] = []
        for s in range(0, len(flat), _TOKENIZE_STEP):  # in steps, so that Ctrl-C is heard
            stop.check()
            part = flat[s : s + _TOKENIZE_STEP]
            toks += self.engine.doc_tokens([doc_text(d) for _, d, _ in part], [i for _, _, i in part])
        for (p, _, _), t in zip(flat, toks, strict=True):
            p.tokens.append(t)
        total_tokens = sum(len(t) for p in pending for t in p.tokens)
        progress.on_plan(len(pending), total_tokens)
        t_enc = time.perf_counter()
        batch: list[_Pending] = []
        batch_tokens = 0
        for p in list(pending):
            batch.append(p)
            batch_tokens += sum(len(t) for t in p.tokens)
            if batch_tokens >= BATCH_TOKENS:
                self.encode_and_commit(batch)
                del pending[: len(batch)]
                batch, batch_tokens = [], 0
        if batch:
            self.encode_and_commit(batch)
            del pending[: len(batch)]
        enc_seconds = time.perf_counter() - t_enc
        self.store.touch_sources(self.collection, self.touch)
        for path in self.known:
            if path not in self.seen:
                stop.check()
                fault_point("tombstone")
                self.store.remove_source(self.collection, path)
                report.removed += 1
        report.tokens_per_s = round(report.tokens / enc_seconds, 1) if report.tokens and enc_seconds > 0 else 0.0

    def _stopped(self, pending: list[_Pending]) -> None:
        """After Ctrl-C: the files planned but not committed are reported, not counted as done."""
        report = self.report
        report.interrupted = True
        report.skipped = dict(sorted(self.skipped.items()))
        for p in pending:
            if p.update.path in self.known:
                report.updated -= 1
            else:
                report.added -= 1
            report.reused_documents -= len(p.update.reused)
            report.documents -= len(p.update.reused)
            report.not_ingested.append(printable_path(p.update.path))
        self.store.touch_sources(self.collection, self.touch)
        shown = ", ".join(report.not_ingested[:5]) + (" …" if len(report.not_ingested) > 5 else "")
        self.progress.on_message(
            f"interrupted: {len(report.not_ingested)} file(s) read but not committed"
            + (f" ({shown})" if report.not_ingested else "")
            + "; files not reached were not looked at and nothing was removed; run msa ingest again to finish")

    def plan(self, path: Path) -> _Pending | None:
        """What to do with one walked file: nothing (unchanged or failed), or a pending update."""
        report, key = self.report, str(path)
        self.seen.add(key)
        old = self.known.get(key)
        # Sources stored before documents had keys ("") count as parsed by the current parsers
        # while their files are unchanged: an upgrade does not re-encode the whole store.
        same_parser = old is not None and old.parser_version in (self.signature, "")
        try:
            # Read where the walker saw it, never through a link swapped in since (issue #21, 5).
            st = os.stat(path, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode) or _outside(path, self.root):
                self.fail(key, _SWAPPED)
                return None
            if (same_parser and old.content_hash and not old.last_error
                    and (old.size, old.mtime_ns) == (st.st_size, st.st_mtime_ns)):
                report.unchanged += 1
                return None
            digest = file_hash(path)
        except OSError as e:
            self.fail(key, _SWAPPED if e.errno == errno.ELOOP else f"cannot read: {e.strerror or e}")
            return None
        mtime_ns = -1 if time.time_ns() - st.st_mtime_ns < _RACY_NS else st.st_mtime_ns
        if same_parser and old.content_hash and digest == old.content_hash:
            report.unchanged += 1
            if (old.size, old.mtime_ns) != (st.st_size, mtime_ns) or old.last_error:
                self.touch.append((key, st.st_size, mtime_ns))
            return None
        notes: list[str] = []
        fault_point("parse")
        try:
            docs = parse_file(path, self.root, max_chars=self.max_chars, warnings=notes, kind=self.kind,
                              timezone=self.timezone)
        except SourceError as e:
            self.fail(key, e.reason)
            return None
        except Exception as e:  # a parser bug on odd input must not end the run
            self.fail(key, f"parser error: {type(e).__name__}: {' '.join(str(e).split())}")
            return None
        try:  # what the parser read is the file that was checked, not a link swapped in meanwhile
            after = os.stat(path, follow_symlinks=False)
        except OSError as e:
            self.fail(key, f"cannot read: {e.strerror or e}")
            return None
        if stat.S_ISLNK(after.st_mode) or not _same_file(st, after) or _outside(path, self.root):
            self.fail(key, _SWAPPED if stat.S_ISLNK(after.st_mode) else "replaced while it was read; not stored "
                      "(run msa ingest again)")
            return None
        for note in notes:
            report.warnings.append({"path": key, "reason": note})
            self.progress.on_message(f"warning: {note}")
        for d in docs:
            if d.anchor_data.get("fallback"):
                report.warnings.append({"path": key, "reason": "no parser for this language; split into line windows"})
                self.progress.on_message(f"warning: {d.path}: no parser for this language, split into line windows")
                break
        rel = path.relative_to(self.root).as_posix()
        upd = SourceUpdate(path=key, root=str(self.root), rel_path=rel, kind=docs[0].kind if docs else "text",
                           content_hash=digest, size=st.st_size, mtime_ns=mtime_ns, parser_version=self.signature)
        # Documents whose key a live document of this file has keep that document's tensors.
        pool: dict[str, list] = defaultdict(list)
        if old is not None:
            for row in self.store.source_documents(self.collection, key):
                if row.doc_key:
                    pool[row.doc_key].append(row)
        fresh: list[Document] = []
        keys: list[str] = []
        for d in docs:
            k = doc_key(d, self.signature, self.engine.fingerprint)
            if pool.get(k):
                row = pool[k].pop(0)
                upd.reused.append(ReusedDocument(
                    id=row.id, path=d.path, kind=d.kind, anchor=d.anchor, anchor_data=d.anchor_data, title=d.title,
                    text=d.text, content_hash=hashlib.sha256(d.text.encode()).hexdigest()))
            else:
                fresh.append(d)
                keys.append(k)
        report.reused_documents += len(upd.reused)
        report.documents += len(upd.reused)
        ids = self.new_ids(len(fresh))
        if old is None:
            report.added += 1
        else:
            report.updated += 1
        return _Pending(upd, fresh, keys, ids, [])  # tokens: run() tokenizes every pending file at once

    def encode_and_commit(self, batch: list[_Pending]) -> None:
        store, engine, report, progress = self.store, self.engine, self.report, self.progress
        flat = [t for p in batch for t in p.tokens]
        layers = engine.cfg.router_layers
        n_chunks = [0] * len(flat)
        ks: list[np.ndarray | None] = [None] * len(flat)
        vs: list[np.ndarray | None] = [None] * len(flat)
        rks: list[np.ndarray | None] = [None] * len(flat)
        for idx, enc in engine.encode_batches(flat) if flat else ():
            self.stop.check()  # the batch is dropped whole: nothing of it is written yet
            fault_point("encode")
            k, v = stack_layers(enc.k, layers), stack_layers(enc.v, layers)
            rk = stack_layers(enc.rk, layers) if enc.rk else None
            off = 0
            for j, i in enumerate(idx):
                n = enc.n_chunks[j]
                n_chunks[i] = n
                ks[i], vs[i] = k[:, off : off + n], v[:, off : off + n]
                if rk is not None:
                    rks[i] = rk[:, off : off + n]
                off += n
            progress.on_advance(0, sum(enc.n_tokens))
        self.stop.check()
        with self.stop.critical():
            self._write_and_commit(batch, flat, n_chunks, ks, vs, rks)

    def _write_and_commit(self, batch: list[_Pending], flat: list[list[int]], n_chunks: list[int],
                          ks: list, vs: list, rks: list) -> None:
        store, report, progress = self.store, self.report, self.progress
        seg = None
        if flat:
            seg_k = np.concatenate(ks, axis=1)  # (layers, N, Hk, D)
            seg_v = np.concatenate(vs, axis=1)
            seg_rk = np.concatenate(rks, axis=1) if rks[0] is not None else None
            chunks = np.repeat(np.arange(len(flat), dtype=np.int32), n_chunks)  # (N,)
            seg = write_segment(store.segments_dir, store.new_segment_id(), seg_k, seg_v, seg_rk, chunks)
            fault_point("segment_written")
        start = 0
        di = 0
        for p in batch:
            for d, k, i, toks in zip(p.docs, p.keys, p.ids, p.tokens):
                n = n_chunks[di]
                p.update.documents.append(NewDocument(
                    path=d.path, kind=d.kind, anchor=d.anchor, anchor_data=d.anchor_data, title=d.title, text=d.text,
                    content_hash=hashlib.sha256(d.text.encode()).hexdigest(), n_tokens=len(toks),
                    chunk_start=start, n_chunks=n, doc_key=k, id=i,
                ))
                start += n
                di += 1
                report.tokens += len(toks)
            report.documents += len(p.docs)
        fault_point("before_commit")
        store.commit(self.collection, seg, [p.update for p in batch])
        fault_point("after_commit")
        progress.on_advance(len(batch), 0)


def _symlink_reason(p: Path, root: Path) -> str:
    """Why walk did not follow a link, in words."""
    try:
        real = p.resolve(strict=True)
    except RuntimeError:
        return "symlink loop, not followed"
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "symlink loop, not followed"
        return "broken symlink, not followed"
    if real != root and root not in real.parents:
        return f"symlink to {real}, outside the ingested directory, not followed"
    return "symlink back to a directory above it (a loop), not followed"


_REPAIR_MARK = -2  # (-1 is a "racy" mtime) a source's mtime_ns while `msa repair` has cleared it and not yet re-encoded it


def repair_store(store: Store, engine: Engine, *, progress: Progress | None = None, wait: float = 0.0) -> dict:
    """`msa repair`: documents stored in damaged segments (files that fail their checksums) are
    re-encoded from their sources when those are still there, and otherwise removed, loudly.

    Two steps, each safe to interrupt: under the write lock, the damaged documents are tombstoned,
    their sources marked for re-reading and the store compacted (which drops the damaged
    segments, now unused); then each affected directory is ingested again.
    """
    from sqlalchemy import select, update

    from .store.schema import DocumentRow, SegmentRow, SourceRow

    with store.session() as s:
        seg_ids = list(s.scalars(select(SegmentRow.id)))
        # Sources an interrupted repair cleared (step 1 done, step 2 not): re-encoded now, so a
        # repair run again after a kill finishes the work instead of losing those documents.
        pending = [(r.collection, r.root, r.path, r.rel_path) for r in
                   s.scalars(select(SourceRow).where(SourceRow.mtime_ns == _REPAIR_MARK))]
    damaged = sorted(sid for sid in seg_ids if store.segment_problems(sid))
    out: dict = {"damaged_segments": damaged, "problems": [p for sid in damaged for p in store.segment_problems(sid)],
                 "documents": 0, "reencoded": [], "removed": [], "resumed": sorted(rel for *_, rel in pending)}
    if not damaged and not pending:
        return out
    store.check_model(engine.fingerprint, engine.name)
    sources = list(pending)
    if damaged:
        with store.write_lock(wait):
            with store.session() as s, s.begin():
                docs = list(s.scalars(select(DocumentRow).where(DocumentRow.segment_id.in_(damaged),
                                                                DocumentRow.tombstone.is_(False))))
                src_ids = {d.source_id for d in docs if d.source_id is not None}
                store._tombstone(s, select(DocumentRow.id).where(DocumentRow.id.in_([d.id for d in docs])))
                # Cleared hash and the repair's mark as mtime: the next ingest re-reads, re-parses
                # and re-encodes them, and a repair run after an interruption finds them.
                s.execute(update(SourceRow).where(SourceRow.id.in_(src_ids)).values(content_hash="",
                                                                                   mtime_ns=_REPAIR_MARK))
                sources += [(r.collection, r.root, r.path, r.rel_path) for r in
                            s.scalars(select(SourceRow).where(SourceRow.id.in_(src_ids)))]
            out["documents"] = len(docs)
            out["orphans"] = sorted({d.path for d in docs if d.source_id is None})
            store.compact()
        fault_point("repair_cleared")
    sources = sorted(set(sources))
    for coll, root, path, rel in sorted(sources):
        if not Path(path).is_file():
            store.remove_source(coll, path)
            out["removed"].append(rel)
    for coll, root in sorted({(c, r) for c, r, p, _ in sources if Path(p).is_file()}):
        if Path(root).is_dir():
            ingest_dir(Path(root), store, engine, collection=coll, progress=progress, wait=wait)
            out["reencoded"] += sorted(rel for c, r, p, rel in sources if c == coll and r == root and Path(p).is_file())
    out["removed"] += out.pop("orphans", [])
    return out
