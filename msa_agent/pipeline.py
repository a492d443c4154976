"""`msa ingest`: sources -> documents -> encoded segments -> store, incrementally.

Unchanged files (same content hash) are skipped, changed ones re-encoded and their old documents
tombstoned in the same transaction, deleted ones removed. A file that cannot be parsed is reported
with its path and reason; the run goes on. Segment files are fsynced before the rows that point at
them commit, so a crash leaves at worst an orphan directory that `msa verify` reports.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from msa_agent.ingest import Document, SourceError, parse_file, walk

from .engine import Engine, check_input_dir, stack_layers
from .store import NewDocument, SourceUpdate, Store, write_segment

BATCH_TOKENS = 16384  # tokens per committed segment: bounds the work a crash can lose


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
    documents: int = 0
    tokens: int = 0
    seconds: float = 0.0
    tokens_per_s: float = 0.0
    failures: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Progress:
    """Callbacks the CLI turns into a progress bar; all optional."""

    on_plan: Callable[[int, int], None] = lambda files, tokens: None
    on_advance: Callable[[int, int], None] = lambda files, tokens: None
    on_message: Callable[[str], None] = lambda msg: None


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def doc_text(d: Document) -> str:
    """What memory encodes for a document: a citation header line, then its text."""
    head = f"{d.path} ({d.anchor})" + (f" {d.title}" if d.title and d.title not in d.anchor else "")
    return f"{head}\n{d.text}"


@dataclass
class _Pending:
    update: SourceUpdate
    docs: list[Document]
    tokens: list[list[int]]


def ingest_dir(
    root: Path,
    store: Store,
    engine: Engine,
    *,
    collection: str = "default",
    reencode: bool = False,
    progress: Progress | None = None,
    max_chars: int = 2400,
) -> IngestReport:
    progress = progress or Progress()
    root = check_input_dir(root)
    t0 = time.perf_counter()
    report = IngestReport(store=str(store.path), collection=collection, root=str(root))
    with store.write_lock():
        if reencode:
            store.reset()
        store.bind_model(engine.manifest_info())
        run_id = store.start_run(collection, str(root))
        known = {p: s for p, s in store.sources(collection).items() if s.root == str(root)}
        seen: set[str] = set()
        pending: list[_Pending] = []
        for path in walk(root):
            key = str(path)
            seen.add(key)
            try:
                st = path.stat()
                digest = file_hash(path)
            except OSError as e:
                report.failed += 1
                report.failures.append({"path": key, "reason": e.strerror or str(e)})
                progress.on_message(f"failed: {key}: {e.strerror or e}")
                continue
            old = known.get(key)
            if old is not None and old.content_hash == digest:
                report.unchanged += 1
                continue
            notes: list[str] = []
            try:
                docs = parse_file(path, root, max_chars=max_chars, warnings=notes)
            except SourceError as e:
                report.failed += 1
                report.failures.append({"path": key, "reason": e.reason})
                progress.on_message(f"failed: {key}: {e.reason}")
                continue
            for note in notes:
                report.warnings.append({"path": key, "reason": note})
                progress.on_message(f"warning: {note}")
            for d in docs:
                if d.anchor_data.get("fallback"):
                    report.warnings.append({"path": key, "reason": f"no parser for this language; split into line windows"})
                    progress.on_message(f"warning: {d.path}: no parser for this language, split into line windows")
                    break
            rel = path.relative_to(root).as_posix()
            upd = SourceUpdate(path=key, root=str(root), rel_path=rel, kind=docs[0].kind if docs else "text",
                               content_hash=digest, size=st.st_size, mtime_ns=st.st_mtime_ns)
            toks = engine.doc_tokens([doc_text(d) for d in docs])
            pending.append(_Pending(upd, docs, toks))
            if old is None:
                report.added += 1
            else:
                report.updated += 1
        total_tokens = sum(len(t) for p in pending for t in p.tokens)
        progress.on_plan(len(pending), total_tokens)
        t_enc = time.perf_counter()
        batch: list[_Pending] = []
        batch_tokens = 0
        for p in pending:
            batch.append(p)
            batch_tokens += sum(len(t) for t in p.tokens)
            if batch_tokens >= BATCH_TOKENS:
                _encode_and_commit(batch, store, engine, collection, report, progress)
                batch, batch_tokens = [], 0
        if batch:
            _encode_and_commit(batch, store, engine, collection, report, progress)
        enc_seconds = time.perf_counter() - t_enc
        for path, src in known.items():
            if path not in seen:
                store.remove_source(collection, path)
                report.removed += 1
        report.seconds = round(time.perf_counter() - t0, 3)
        report.tokens_per_s = round(report.tokens / enc_seconds, 1) if report.tokens and enc_seconds > 0 else 0.0
        store.finish_run(run_id, added=report.added, updated=report.updated, removed=report.removed,
                         unchanged=report.unchanged, failed=report.failed, tokens=report.tokens,
                         seconds=report.seconds, status="partial" if report.failed else "ok")
    return report


def _encode_and_commit(
    batch: list[_Pending], store: Store, engine: Engine, collection: str, report: IngestReport, progress: Progress
) -> None:
    flat = [t for p in batch for t in p.tokens]
    layers = engine.cfg.router_layers
    n_chunks = [0] * len(flat)
    ks: list[np.ndarray | None] = [None] * len(flat)
    vs: list[np.ndarray | None] = [None] * len(flat)
    rks: list[np.ndarray | None] = [None] * len(flat)
    for idx, enc in engine.encode_batches(flat):
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
    seg_k = np.concatenate(ks, axis=1) if flat else None
    seg_v = np.concatenate(vs, axis=1) if flat else None
    seg_rk = np.concatenate(rks, axis=1) if flat and rks[0] is not None else None
    chunks = np.repeat(np.arange(len(flat), dtype=np.int32), n_chunks)
    seg = write_segment(store.segments_dir, store.new_segment_id(), seg_k, seg_v, seg_rk, chunks) if flat else None
    start = 0
    di = 0
    for p in batch:
        for d, toks in zip(p.docs, p.tokens):
            n = n_chunks[di]
            p.update.documents.append(NewDocument(
                path=d.path, kind=d.kind, anchor=d.anchor, anchor_data=d.anchor_data, title=d.title, text=d.text,
                content_hash=hashlib.sha256(d.text.encode()).hexdigest(), n_tokens=len(toks),
                chunk_start=start, n_chunks=n,
            ))
            start += n
            di += 1
            report.tokens += len(toks)
        report.documents += len(p.docs)
    store.commit(collection, seg, [p.update for p in batch])
    progress.on_advance(len(batch), 0)
