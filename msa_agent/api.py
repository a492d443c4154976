"""The library API: `from msa_agent import Memory`.

    from msa_agent import Memory

    with Memory.open("~/stores/acme", create=True) as mem:
        mem.ingest("contracts/", collection="legal")
        res = mem.ask("What does Blue Harbor Robotics pay per quarter?", collection="legal")
        print(res.answer, res.citations[0]["path"], res.citations[0]["anchor"])

A `Memory` is one open store and the model that reads it. The model is loaded on first use (once
per purpose: batched encoding and answering may want different dtypes on a CPU), and each
collection's routing index stays resident until the database changes, so a second question
costs only its own routing and generation. `msa ask`, `msa route`, `msa ingest` and `msa serve`
are built on it. `Memory.connect(url)` is the same interface over a running `msa serve`.

Errors are the library's named exceptions (`msa_agent.errors`), each one line for a user.
A Memory is not thread-safe: `msa serve` runs every model call on one worker thread.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import settings
from .errors import BadInput, MSAError
from .store import Store

__all__ = ["Answer", "Memory", "RemoteMemory", "Routing", "StoreWriteError"]

MAX_ROUNDS = 8
MAX_TOKENS = 2048


class StoreWriteError(MSAError):
    """The store could not be written (disk full, I/O error); it keeps its last committed state."""


@dataclass
class Answer:
    """An answer with its citations: `.answer`, `.citations` (each {doc_id, path, kind, anchor,
    score, quote, …}), `.rounds` (the routing rounds), `.timing`, `.mode`, `.reading`;
    `.as_dict()` is the `msa ask --json` object."""

    answer: str
    citations: list[dict]
    rounds: list[dict]
    timing: dict
    mode: str
    reading: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict, repr=False)  # keys a newer server may add

    @classmethod
    def from_dict(cls, d: dict) -> Answer:
        known = {"answer", "citations", "rounds", "timing", "mode", "reading"}
        return cls(d["answer"], d["citations"], d["rounds"], d["timing"], d["mode"], d.get("reading") or {},
                   {k: v for k, v in d.items() if k not in known})

    def as_dict(self) -> dict:
        """The `msa ask --json` object."""
        return {"answer": self.answer, "citations": self.citations, "rounds": self.rounds, "timing": self.timing,
                "mode": self.mode, "reading": self.reading, **self.extra}

    def __str__(self) -> str:
        return self.answer


@dataclass
class Routing:
    """The documents routing picks, best first: `.docs` (each {doc_id, path, kind, anchor,
    score}), `.mode`, `.timing`; `.as_dict()` is the `msa route --json` object."""

    docs: list[dict]
    mode: str
    timing: dict
    memory: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, d: dict) -> Routing:
        known = {"docs", "mode", "timing", "memory"}
        return cls(d["docs"], d["mode"], d["timing"], d.get("memory") or {}, {k: v for k, v in d.items() if k not in known})

    def as_dict(self) -> dict:
        """The `msa route --json` object."""
        return {"mode": self.mode, "docs": self.docs, "timing": self.timing, "memory": self.memory, **self.extra}


def check_query(question: object, *, mode: object = "auto", top_k: object = None, rounds: object = 3,
                max_tokens: object = 96) -> None:
    """BadInput for options of ask/route that cannot work, before any model is loaded."""
    from .memory import MODES

    if not isinstance(question, str) or not question.strip():
        raise BadInput("the question is empty")
    if mode not in MODES:
        raise BadInput(f"unknown routing mode {mode!r} (one of {', '.join(MODES)})")
    for name, v, lo, hi, none_ok in (("top_k", top_k, 1, 1024, True), ("rounds", rounds, 1, MAX_ROUNDS, False),
                                     ("max_tokens", max_tokens, 1, MAX_TOKENS, False)):
        if v is None and none_ok:
            continue
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise BadInput(f"{name}: an integer from {lo} to {hi}, got {v!r}")


def _default_device(device: str | None) -> str:
    return device or os.environ.get("MSA_DEVICE") or "cpu"


class Memory:
    """One open store and the model that reads it (see the module docstring)."""

    def __init__(self, store: Store, *, model: str | Path | None = None, device: str | None = None,
                 engine: object | None = None, dtype: str | None = None) -> None:
        """`engine`: an already loaded `msa_agent.engine.Engine` to use for every purpose (the
        server, tests); else one is loaded from `model` (default: MSA_MODEL, else the embedded
        SmolLM2-135M) on `device` when first needed."""
        self.store = store
        self.model = str(model) if model is not None else None
        self.device = _default_device(device) if engine is None else (device or str(engine.device))
        self.dtype = dtype
        self._given = engine
        self._engines: dict[str, object] = {}
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._version: int | None = None
        self._indexes: dict[str | None, object] = {}
        self.builds = 0  # routing indexes built (tests, /healthz)

    @classmethod
    def open(cls, store: str | Path | None = None, *, model: str | Path | None = None, device: str | None = None,
             create: bool = False, engine: object | None = None, dtype: str | None = None) -> Memory:
        """Open a store (default: MSA_STORE, else MSA_HOME/stores/default); `create` makes it when
        missing. `model`: a GGUF file or HF directory; `device`: cpu, cuda or cuda:N (default:
        MSA_DEVICE, else cpu). Nothing is loaded until the model is needed."""
        st = Store.open(settings.store_path(store), create=create)
        if engine is None:
            from .engine import check_device

            try:
                check_device(_default_device(device))
            except MSAError:
                st.close()
                raise
        return cls(st, model=model, device=device, engine=engine, dtype=dtype)

    @staticmethod
    def connect(url: str, token: str | None = None, *, timeout: float = 600.0) -> RemoteMemory:
        """The same interface (ask, route, status) over a running `msa serve` at `url`."""
        return RemoteMemory(url, token, timeout=timeout)

    @property
    def path(self) -> Path:
        return self.store.path

    def engine(self, purpose: str = "generate"):  # noqa: ANN201 - Engine, imported lazily (torch)
        """The model for `purpose` ("generate": answering and routing; "encode": batched document
        encoding), loaded on first use."""
        if self._given is not None:
            return self._given
        if purpose not in ("generate", "encode"):
            raise ValueError(f"purpose: generate or encode, not {purpose!r}")
        eng = self._engines.get(purpose)
        if eng is None:
            from .engine import Engine

            eng = Engine.load(self.model, purpose=purpose, device=self.device, dtype=self.dtype)
            self._engines[purpose] = eng
        return eng

    # -- resident routing indexes --

    def index(self, collection: str | None):  # noqa: ANN201 - MemoryIndex
        """The routing index of `collection` (None: every collection), rebuilt only when another
        connection (an ingest, `msa forget`) has committed since it was built: SQLite's
        `data_version` of a private read-only connection, one cheap pragma per question."""
        from .memory import MemoryIndex

        engine = self.engine("generate")
        with self._lock:
            if self._conn is None:
                self._conn = sqlite3.connect(f"file:{self.store.path / 'msa.db'}?mode=ro", uri=True,
                                             check_same_thread=False)
            v = int(self._conn.execute("PRAGMA data_version").fetchone()[0])
            if v != self._version:
                self._indexes.clear()
                self._version = v
            mem = self._indexes.get(collection)
            if mem is None:
                mem = MemoryIndex(self.store, collection, engine.cfg, device=self.device)
                self._indexes[collection] = mem
                self.builds += 1
            return mem

    # -- the interface --

    @staticmethod
    def check_ingest(directory: str | Path, *, kind: str | None = None, max_file_mb: float = 2.0) -> Path:
        """The directory to ingest, resolved; BadInput for options that cannot work (nothing is
        created or loaded)."""
        from .engine import check_input_dir
        from .pipeline import check_options

        check_options(kind=kind, max_file_bytes=int(max_file_mb * 1e6))
        return check_input_dir(Path(directory).expanduser())

    def ingest(self, directory: str | Path, *, collection: str = "default", reencode: bool = False,
               max_file_mb: float = 2.0, kind: str | None = None, wait: float = 0.0, progress: object = None,
               timezone: str | None = None):  # noqa: ANN201
        """Bring `collection`'s memory of `directory` in step with it: new and changed files are
        encoded, deleted ones removed. Returns the `IngestReport` (`.as_dict()` is `msa ingest
        --json`); files that failed are listed in it, the run goes on. `progress`: a
        `msa_agent.pipeline.Progress` of callbacks. `wait`: seconds to wait for another writer.
        `timezone`: the zone of log times written without one (default: MSA_TIMEZONE, else unknown)."""
        from sqlalchemy.exc import OperationalError

        from .pipeline import ingest_dir

        root = self.check_ingest(directory, kind=kind, max_file_mb=max_file_mb)
        if not isinstance(collection, str) or not collection:
            raise BadInput("collection: a non-empty name")
        try:
            return ingest_dir(root, self.store, self.engine("encode"), collection=collection, reencode=reencode,
                              progress=progress, max_file_bytes=int(max_file_mb * 1e6), kind=kind, wait=wait,
                              timezone=timezone)
        except OSError as e:  # disk full, I/O error: nothing half-written is committed
            raise StoreWriteError(f"cannot write the store: {e.strerror or e}; it keeps its last committed state") from e
        except OperationalError as e:
            raise StoreWriteError(f"cannot write the store: {' '.join(str(e.orig).split())}; "
                                  "it keeps its last committed state") from e

    def _checked_engine(self):  # noqa: ANN202
        engine = self.engine("generate")
        self.store.check_model(engine.fingerprint, engine.name)  # before the index: its message is the clear one
        return engine

    def ask(self, question: str, *, collection: str | None = None, mode: str = "auto", rounds: int = 3,
            top_k: int | None = None, max_tokens: int = 96, on_token: Callable[[str], None] | None = None) -> Answer:
        """Answer a question from memory, with citations. `collection`: one collection (default:
        all); `mode`: routing (auto, msa, lexical, hybrid); `rounds`: most routing rounds (memory
        interleave); `top_k`: documents routed per router layer; `on_token`: called with each
        piece of the answer as it is written."""
        from .ask import ask as run_ask

        check_query(question, mode=mode, top_k=top_k, rounds=rounds, max_tokens=max_tokens)
        engine = self._checked_engine()
        res = run_ask(self.store, engine, question, collection=collection, top_k=top_k, rounds=rounds, mode=mode,
                      max_new_tokens=max_tokens, on_token=on_token, memory=self.index(collection))
        return Answer.from_dict(res.as_dict())

    def route(self, question: str, *, collection: str | None = None, mode: str = "auto",
              top_k: int | None = None) -> Routing:
        """Routing only: the documents memory would use for a question, best first."""
        from .ask import route as run_route

        check_query(question, mode=mode, top_k=top_k)
        engine = self._checked_engine()
        return Routing.from_dict(run_route(self.store, engine, question, collection=collection, top_k=top_k, mode=mode,
                                           memory=self.index(collection)))

    def status(self, collections: list[str] | None = None) -> dict:
        """`msa status --json`: documents, tokens, chunks, bytes, model fingerprint, sources,
        jobs; with `collections`, only what those collections hold."""
        from .engine import reader_label

        info = self.store.status(collections)
        # The reader is not part of the memory (a new one never forces a re-ingest): shown apart.
        info["reader"] = reader_label(self.model)
        return info

    def release_indexes(self) -> None:
        """Let go of the resident indexes (they are rebuilt on next use); the store stays open."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self._indexes.clear()
            self._version = None

    def document(self, doc_id: int, collections: list[str] | None = None) -> dict | None:
        """A live document as cited: {doc_id, collection, path, kind, anchor, anchor_detail, title,
        text}; None when there is none (or, with `collections`, when it is in another one)."""
        import json

        from .store.schema import DocumentRow

        with self.store.session() as s:
            d = s.get(DocumentRow, doc_id)
        if d is None or d.tombstone or (collections is not None and d.collection not in collections):
            return None
        return {"doc_id": d.id, "collection": d.collection, "path": d.path, "kind": d.kind, "anchor": d.anchor,
                "anchor_detail": json.loads(d.anchor_json or "{}"), "title": d.title, "text": d.text}

    def close(self) -> None:
        """Let go of the indexes and close the store (the loaded model goes with the object)."""
        self.release_indexes()
        self.store.close()

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Memory({str(self.store.path)!r}, device={self.device!r})"


class RemoteMemory:
    """`Memory`'s ask, route and status over a running `msa serve` (POST /v1/ask, /v1/route,
    GET /v1/status); errors are `msa_agent.serve.RemoteError`, one line each."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 600.0) -> None:
        self.url, self.token, self.timeout = url.rstrip("/"), token, timeout

    def ask(self, question: str, *, collection: str | None = None, mode: str = "auto", rounds: int = 3,
            top_k: int | None = None, max_tokens: int = 96, on_token: Callable[[str], None] | None = None) -> Answer:
        from .serve import remote_ask

        body = {"question": question, "collection": collection, "top_k": top_k, "rounds": rounds, "mode": mode,
                "max_tokens": max_tokens}
        return Answer.from_dict(remote_ask(self.url, body, token=self.token, on_token=on_token, timeout=self.timeout))

    def route(self, question: str, *, collection: str | None = None, mode: str = "auto",
              top_k: int | None = None) -> Routing:
        from .serve import remote_route

        body = {"question": question, "collection": collection, "top_k": top_k, "mode": mode}
        return Routing.from_dict(remote_route(self.url, body, token=self.token, timeout=self.timeout))

    def status(self) -> dict:
        from .serve import remote_get

        return remote_get(self.url, "/v1/status", token=self.token, timeout=self.timeout)

    def close(self) -> None:
        pass

    def __enter__(self) -> RemoteMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RemoteMemory({self.url!r})"
