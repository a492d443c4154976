"""`msa serve`: the model and every collection's memory index stay resident behind an HTTP API.

Endpoints (JSON unless said otherwise; errors are `{"error": {"message", "type"}}`):
- `POST /v1/ask`: the `msa ask --json` object; with `"stream": true`, server-sent events: `token`
  events as the answer is written, then one `result` event holding the whole object (or `error`).
- `POST /v1/route`: the `msa route --json` object. `GET /v1/status`: the `msa status --json` one.
- `POST /v1/ingest` {path, collection?}: an ingest job over a directory under an allowed root;
  `GET /v1/jobs/{id}`: its status, progress and report.
- `POST /v1/chat/completions`, `GET /v1/models`: OpenAI-compatible; the reply carries the
  citations in a top-level `citations` field.
- `GET /v1/documents/{id}`: a cited document's text (the page's preview); `GET /v1/jobs`: the
  ingest jobs a token may see.
- `GET /healthz`, and a page at `/` (`msa_agent/page.py`).

Model calls are not thread-safe: every one runs on one worker thread, in arrival order, off the
event loop (a slow client only slows its own stream: tokens go to an unbounded queue). An ingest
job runs on a thread of its own and takes the same model lock for each encoded batch, so questions
are answered between batches. The server is built on the library API (`msa_agent.api.Memory`):
each collection's routing index stays resident in it and is rebuilt only when the database has
changed since it was built (SQLite's `data_version`, one cheap pragma per question).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import signal
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .api import Memory
from .engine import Engine
from .errors import BadInput, MSAError
from .page import PAGE
from .store import Store
from .store.schema import utcnow

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8750
MAX_BODY = 1 << 20  # bytes of a request body


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, *, no_auth: bool, tokens: int) -> None:
    """Refuse a server that others could reach without a token (BadInput, one line)."""
    if no_auth and not is_loopback(host):
        raise BadInput(f"--no-auth is allowed only on a loopback host (127.0.0.1, ::1, localhost), not {host}")
    if not no_auth and not is_loopback(host) and tokens == 0:
        raise BadInput(f"--host {host} is reachable from other machines and the store has no token: "
                       "create one first (msa token create --collection NAME)")


# ---- the model worker -----------------------------------------------------------------------


class ModelWorker:
    """One thread for every model call, in arrival order; `lock` is held for each call (ingest
    jobs take it per encoded batch)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="msa-model")
        self.busy = 0

    def _call(self, fn: Callable, args: tuple) -> object:
        with self.lock:
            return fn(*args)

    async def run(self, fn: Callable, *args: object) -> object:
        self.busy += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, self._call, fn, args)
        finally:
            self.busy -= 1

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)  # answers in flight finish


class _LockedEngine:
    """The engine as an ingest job sees it: each encoded batch (and tokenisation) holds the model
    lock, so questions are answered between batches."""

    def __init__(self, engine: Engine, lock: threading.Lock, stop: threading.Event) -> None:
        self._engine, self._lock, self._stop = engine, lock, stop

    def __getattr__(self, name: str) -> object:
        return getattr(self._engine, name)

    def doc_tokens(self, *a: object, **kw: object) -> list[list[int]]:
        with self._lock:
            return self._engine.doc_tokens(*a, **kw)

    def encode_batches(self, *a: object, **kw: object):  # noqa: ANN201
        it = self._engine.encode_batches(*a, **kw)
        while True:
            if self._stop.is_set():
                raise MSAError("the server is shutting down; the batches committed so far are kept")
            with self._lock:
                try:
                    item = next(it)
                except StopIteration:
                    return
            yield item


# ---- ingest jobs ----------------------------------------------------------------------------


@dataclass
class Job:
    id: int
    path: str
    collection: str
    status: str = "queued"  # queued | running | ok | partial | error
    created_at: str = field(default_factory=utcnow)
    started_at: str | None = None
    finished_at: str | None = None
    progress: dict = field(default_factory=lambda: {"files": 0, "files_total": None, "tokens": 0, "tokens_total": None})
    report: dict | None = None
    error: str | None = None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class Jobs:
    """Ingest jobs, one at a time, on a thread of their own, with their own Store connection."""

    def __init__(self, store: Store, engine: Engine, lock: threading.Lock) -> None:
        self.store_path, self.stop = store.path, threading.Event()
        self.engine = _LockedEngine(engine, lock, self.stop)
        self._jobs: dict[int, Job] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="msa-ingest")
        self._next = 1
        self._lock = threading.Lock()

    def submit(self, root: Path, collection: str) -> Job:
        with self._lock:
            job = Job(self._next, str(root), collection)
            self._jobs[job.id] = job
            self._next += 1
        self._pool.submit(self._run, job, root)
        return job

    def get(self, job_id: int) -> Job | None:
        return self._jobs.get(job_id)

    def all(self) -> list[Job]:
        return list(self._jobs.values())

    def running(self) -> list[Job]:
        return [j for j in self._jobs.values() if j.status in ("queued", "running")]

    def _run(self, job: Job, root: Path) -> None:
        from .pipeline import Progress

        if self.stop.is_set():
            job.status, job.error = "error", "the server shut down before the job started"
            return
        job.status, job.started_at = "running", utcnow()

        def plan(files: int, tokens: int) -> None:
            job.progress.update(files_total=files, tokens_total=tokens)

        def advance(files: int, tokens: int) -> None:
            job.progress["files"] += files
            job.progress["tokens"] += tokens

        mem = None
        try:
            # a Memory of its own (its own Store connection) over the shared, locked engine
            mem = Memory(Store.open(self.store_path), engine=self.engine)
            report = mem.ingest(root, collection=job.collection, progress=Progress(plan, advance), wait=60.0)
            job.report = report.as_dict()
            job.status = "partial" if report.failed else "ok"
        except MSAError as e:
            job.status, job.error = "error", str(e)
        except Exception as e:  # noqa: BLE001 - a job reports its failure; the server goes on
            job.status, job.error = "error", f"{type(e).__name__}: {e}"
        finally:
            job.finished_at = utcnow()
            if mem is not None:
                mem.close()

    def shutdown(self) -> None:
        self.stop.set()  # a running job stops after its current batch (committed batches stay)
        self._pool.shutdown(wait=True, cancel_futures=True)


# ---- the application ------------------------------------------------------------------------


@dataclass
class Scope:
    """What a request may read: `collections` None means every collection (no auth)."""

    collections: list[str] | None

    def pick(self, requested: object, *, fallback: str | None = None) -> str | None:
        """The collection a request works on: the one it names (403 outside the scope), else the
        token's only collection, else `fallback` (no auth), else 400."""
        if requested is not None:
            if not isinstance(requested, str) or not requested:
                raise ApiError(400, "collection: a non-empty string")
            if self.collections is not None and requested not in self.collections:
                raise ApiError(403, f"this token does not grant collection {requested!r}", "permission_error")
            return requested
        if self.collections is None:
            return fallback
        if len(self.collections) == 1:
            return self.collections[0]
        raise ApiError(400, f"this token grants several collections ({', '.join(self.collections)}): name one "
                            "with \"collection\"")

    def allows(self, collection: str) -> bool:
        return self.collections is None or collection in self.collections


class Server:
    """The state behind the routes: the Memory (store, engine, resident indexes), the model worker,
    jobs. `owns`: the Memory is closed with the server (else only its indexes are let go)."""

    def __init__(self, memory: Memory, *, auth: bool = True, allow_roots: list[Path] | None = None,
                 owns: bool = False) -> None:
        self.memory, self.auth, self.owns = memory, auth, owns
        self.engine, self.store = memory.engine("generate"), memory.store
        self.allow_roots = [Path(r).expanduser().resolve() for r in allow_roots or []]
        self.worker = ModelWorker()
        self.jobs = Jobs(self.store, self.engine, self.worker.lock)
        self.started = time.time()

    # -- auth --

    def scope(self, request: Request) -> Scope:
        if not self.auth:
            return Scope(None)
        from .store.tokens import check_token

        header = request.headers.get("authorization", "")
        kind, _, token = header.partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            raise ApiError(401, "a bearer token is required (Authorization: Bearer msa_…)", "authentication_error")
        colls = check_token(self.store, token)
        if colls is None:
            raise ApiError(401, "invalid or revoked token", "authentication_error")
        return Scope(colls)

    # -- model calls (on the worker thread) --

    def _ask(self, q: dict, collection: str | None, on_token: Callable[[str], None] | None) -> dict:
        return self.memory.ask(q["question"], collection=collection, top_k=q["top_k"], rounds=q["rounds"],
                               mode=q["mode"], max_tokens=q["max_tokens"], on_token=on_token).as_dict()

    def _route(self, q: dict, collection: str | None) -> dict:
        return self.memory.route(q["question"], collection=collection, top_k=q["top_k"], mode=q["mode"]).as_dict()

    async def ask(self, q: dict, collection: str | None) -> dict:
        return await self.worker.run(self._ask, q, collection, None)

    async def ask_stream(self, q: dict, collection: str | None) -> AsyncIterator[tuple[str, object]]:
        """("token", text)… then ("result", dict) or ("error", ApiError). A client that goes away
        stops the answer at its next token, freeing the worker."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        gone = threading.Event()

        def on_token(text: str) -> None:
            if gone.is_set():
                raise _ClientGone
            loop.call_soon_threadsafe(queue.put_nowait, ("token", text))

        def done(t: asyncio.Future) -> None:
            if not t.cancelled():
                t.exception()  # retrieved: a client gone before the result leaves no unread error behind
            queue.put_nowait(("done", None))

        task = asyncio.ensure_future(self.worker.run(self._ask, q, collection, on_token))
        task.add_done_callback(done)
        try:
            while True:
                kind, text = await queue.get()
                if kind == "done":
                    break
                yield "token", text
            try:
                yield "result", task.result()
            except Exception as e:  # noqa: BLE001 - becomes an error event
                yield "error", api_error(e)
        finally:
            gone.set()

    async def route(self, q: dict, collection: str | None) -> dict:
        return await self.worker.run(self._route, q, collection)

    def status(self, scope: Scope) -> dict:
        """The store's status; for a token, only its collections' (totals, sources and jobs)."""
        return self.memory.status(scope.collections)

    def allowed_dir(self, path: object) -> Path:
        if not isinstance(path, str) or not path:
            raise ApiError(400, "path: the directory to ingest, as a string")
        p = Path(path).expanduser()
        if not p.is_absolute():
            raise ApiError(400, f"{path}: give an absolute path")
        real = p.resolve()  # symlinks resolved: a link inside a root to elsewhere is elsewhere
        if not any(real == r or real.is_relative_to(r) for r in self.allow_roots):
            roots = ", ".join(map(str, self.allow_roots)) or "none (start the server with --allow-root DIR)"
            raise ApiError(403, f"{path}: not under an allowed root of this server (allowed: {roots})",
                           "permission_error")
        if not real.is_dir():
            raise ApiError(400, f"{path}: no such directory")
        return real

    def shutdown(self) -> None:
        self.jobs.shutdown()
        self.worker.shutdown()
        if self.owns:
            self.memory.close()
        else:
            self.memory.release_indexes()


class _ClientGone(Exception):
    pass


def api_error(e: Exception) -> ApiError:
    if isinstance(e, ApiError):
        return e
    if isinstance(e, BadInput):
        return ApiError(400, str(e))
    if isinstance(e, MSAError):
        return ApiError(409, str(e), "store_error")
    return ApiError(500, f"{type(e).__name__}: {e}", "server_error")


def _error_response(e: ApiError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
    return JSONResponse({"error": {"message": e.message, "type": e.kind}}, e.status, headers=headers)


async def _json_body(request: Request) -> dict:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise ApiError(413, f"request body over {MAX_BODY} bytes")
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise ApiError(400, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


def _int(body: dict, key: str, default: int | None, lo: int, hi: int) -> int | None:
    v = body.get(key, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ApiError(400, f"{key}: an integer from {lo} to {hi}")
    return v


def ask_params(body: dict, question: object = None) -> dict:
    """The `msa ask` options of a request body, checked."""
    q = body.get("question") if question is None else question
    if not isinstance(q, str) or not q.strip():
        raise ApiError(400, "question: a non-empty string")
    mode = body.get("mode", "auto")
    if not isinstance(mode, str):
        raise ApiError(400, "mode: auto, msa, lexical or hybrid")
    return {"question": q, "mode": mode, "top_k": _int(body, "top_k", None, 1, 1024),
            "rounds": _int(body, "rounds", 3, 1, 8), "max_tokens": _int(body, "max_tokens", 96, 1, 2048)}


def _sse(event: str | None, data: object) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {data if isinstance(data, str) else json.dumps(data)}\n\n"


SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def create_app(memory: Memory | Engine, store: Store | None = None, *, auth: bool = True,
               allow_roots: list[Path] | None = None, device: str | None = None) -> Starlette:
    """The ASGI app over a Memory (closed with the app), or over an already loaded engine and an
    open store (left open)."""
    owns = isinstance(memory, Memory)
    if not owns:
        if store is None:
            raise TypeError("create_app(engine, store): the store is missing")
        memory = Memory(store, engine=memory, device=device)
    srv = Server(memory, auth=auth, allow_roots=allow_roots, owns=owns)
    engine, store = srv.engine, srv.store

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True, "model": engine.name, "device": str(engine.device), "auth": srv.auth,
                             "uptime_s": round(time.time() - srv.started, 1), "queued": srv.worker.busy,
                             "jobs_running": len(srv.jobs.running())})

    async def v1_ask(request: Request) -> Response:
        scope = srv.scope(request)
        body = await _json_body(request)
        q = ask_params(body)
        collection = scope.pick(body.get("collection"))
        if not body.get("stream"):
            return JSONResponse(await srv.ask(q, collection))

        async def events() -> AsyncIterator[str]:
            async for kind, v in srv.ask_stream(q, collection):
                if kind == "token":
                    yield _sse("token", {"text": v})
                elif kind == "result":
                    yield _sse("result", v)
                else:
                    yield _sse("error", {"error": {"message": v.message, "type": v.kind}, "status": v.status})

        return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)

    async def v1_route(request: Request) -> Response:
        scope = srv.scope(request)
        body = await _json_body(request)
        q = ask_params(body)
        return JSONResponse(await srv.route(q, scope.pick(body.get("collection"))))

    async def v1_status(request: Request) -> Response:
        scope = srv.scope(request)
        info = await asyncio.get_running_loop().run_in_executor(None, srv.status, scope)
        return JSONResponse(info)

    async def v1_ingest(request: Request) -> Response:
        scope = srv.scope(request)
        body = await _json_body(request)
        collection = scope.pick(body.get("collection"), fallback="default")
        root = srv.allowed_dir(body.get("path"))
        job = srv.jobs.submit(root, collection)
        return JSONResponse(job.as_dict(), 202)

    async def v1_job(request: Request) -> Response:
        scope = srv.scope(request)
        try:
            job = srv.jobs.get(int(request.path_params["job_id"]))
        except ValueError:
            job = None
        if job is None or not scope.allows(job.collection):
            raise ApiError(404, f"no job {request.path_params['job_id']}", "not_found_error")
        return JSONResponse(job.as_dict())

    async def v1_jobs(request: Request) -> Response:
        scope = srv.scope(request)
        return JSONResponse({"jobs": [j.as_dict() for j in srv.jobs.all() if scope.allows(j.collection)]})

    async def v1_document(request: Request) -> Response:
        scope = srv.scope(request)
        raw = request.path_params["doc_id"]
        doc = None
        if raw.isdigit():
            doc = await asyncio.get_running_loop().run_in_executor(None, srv.memory.document, int(raw), scope.collections)
        if doc is None:  # outside the token's collections reads as absent: nothing leaks
            raise ApiError(404, f"no document {raw}", "not_found_error")
        return JSONResponse(doc)

    async def v1_models(request: Request) -> Response:
        srv.scope(request)
        return JSONResponse({"object": "list", "data": [
            {"id": engine.name, "object": "model", "created": int(srv.started), "owned_by": "msa"}]})

    async def chat(request: Request) -> Response:
        scope = srv.scope(request)
        body = await _json_body(request)
        if isinstance(body.get("max_tokens"), int) and body["max_tokens"] > 2048:  # chat clients ask for lots
            body["max_tokens"] = 2048
        q = ask_params(body, last_user_message(body.get("messages")))
        collection = scope.pick(body.get("collection"))
        cid, created, model = f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), engine.name
        if not body.get("stream"):
            res = await srv.ask(q, collection)
            t = res["timing"]
            return JSONResponse({
                "id": cid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": res["answer"]},
                             "finish_reason": "stop", "logprobs": None}],
                "usage": {"prompt_tokens": t.get("prompt_tokens", 0), "completion_tokens": t.get("tokens", 0),
                          "total_tokens": t.get("prompt_tokens", 0) + t.get("tokens", 0)},
                "citations": res["citations"], "msa": {k: res[k] for k in ("rounds", "timing", "mode", "reading")},
            })

        def chunk(delta: dict, finish: str | None = None, **extra: object) -> str:
            return _sse(None, {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                               "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
                               **extra})

        async def events() -> AsyncIterator[str]:
            yield chunk({"role": "assistant", "content": ""})
            async for kind, v in srv.ask_stream(q, collection):
                if kind == "token":
                    yield chunk({"content": v})
                elif kind == "result":
                    yield chunk({}, "stop", citations=v["citations"],
                                msa={k: v[k] for k in ("rounds", "timing", "mode", "reading")})
                else:
                    yield _sse(None, {"error": {"message": v.message, "type": v.kind, "code": v.status}})
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)

    async def page(request: Request) -> Response:
        return HTMLResponse(PAGE)

    async def on_api_error(request: Request, e: Exception) -> Response:
        return _error_response(api_error(e))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await asyncio.get_running_loop().run_in_executor(None, srv.shutdown)

    routes = [
        Route("/", page), Route("/healthz", healthz),
        Route("/v1/ask", v1_ask, methods=["POST"]), Route("/v1/route", v1_route, methods=["POST"]),
        Route("/v1/status", v1_status), Route("/v1/ingest", v1_ingest, methods=["POST"]),
        Route("/v1/jobs", v1_jobs), Route("/v1/jobs/{job_id}", v1_job), Route("/v1/documents/{doc_id}", v1_document),
        Route("/v1/models", v1_models),
        Route("/v1/chat/completions", chat, methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={ApiError: on_api_error, MSAError: on_api_error},
                    lifespan=lifespan)
    app.state.server = srv
    return app


def last_user_message(messages: object) -> str:
    """The question of a chat request: the text of its last user message."""
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages: a non-empty list")
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, list):  # content parts: keep the text ones
                content = "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
            if isinstance(content, str) and content.strip():
                return content
            break
    raise ApiError(400, "messages: no user message with text")


def serve(memory: Memory, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, auth: bool = True,
          allow_roots: list[Path] | None = None, log_level: str = "info") -> None:
    """Run the server until SIGINT/SIGTERM; answers in flight finish first."""
    import uvicorn

    from .store.tokens import active_tokens

    class _Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: object) -> None:
            # uvicorn re-raises the signal once shut down (exit status -15); a requested stop that
            # finished its answers is a success here (exit 0), as for `msa schedule run`.
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True  # a second Ctrl-C: stop now
            else:
                self.should_exit = True

    check_bind(host, no_auth=not auth, tokens=active_tokens(memory.store))
    app = create_app(memory, auth=auth, allow_roots=allow_roots)
    _Server(uvicorn.Config(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=300)).run()


# ---- the client side: `msa ask --server URL` ---------------------------------------------------


class RemoteError(MSAError):
    """A running server refused a request or could not be reached."""


def _request(url: str, path: str, body: dict | None, token: str | None, timeout: float):  # noqa: ANN202
    """POST `body` to `path` (GET when None)."""
    import urllib.error
    import urllib.request

    headers = {"Accept": "application/json, text/event-stream"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url.rstrip("/") + path, data=data, headers=headers,
                                 method="POST" if body is not None else "GET")
    try:
        return urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 - the user's own server URL
    except urllib.error.HTTPError as e:
        try:
            msg = json.loads(e.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            msg = e.reason
        raise RemoteError(f"{url}: {e.code} {msg}") from None
    except (urllib.error.URLError, OSError) as e:
        raise RemoteError(f"cannot reach the server at {url}: {getattr(e, 'reason', e)}") from None


def remote_ask(url: str, body: dict, *, token: str | None = None, on_token: Callable[[str], None] | None = None,
               timeout: float = 600.0) -> dict:
    """POST /v1/ask on a running server: the `msa ask --json` object; tokens stream to `on_token`."""
    if on_token is None:
        with _request(url, "/v1/ask", {**body, "stream": False}, token, timeout) as r:
            return json.loads(r.read())
    with _request(url, "/v1/ask", {**body, "stream": True}, token, timeout) as r:
        event = None
        for raw in r:
            line = raw.decode("utf-8").rstrip("\r\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                if event == "token":
                    on_token(data["text"])
                elif event == "result":
                    return data
                elif event == "error":
                    raise RemoteError(f"{url}: {data['error']['message']}")
    raise RemoteError(f"{url}: the stream ended without a result")


def remote_route(url: str, body: dict, *, token: str | None = None, timeout: float = 600.0) -> dict:
    """POST /v1/route on a running server: the `msa route --json` object."""
    with _request(url, "/v1/route", body, token, timeout) as r:
        return json.loads(r.read())


def remote_get(url: str, path: str, *, token: str | None = None, timeout: float = 600.0) -> dict:
    """GET `path` (/v1/status, /v1/jobs/N) on a running server: its JSON object."""
    with _request(url, path, None, token, timeout) as r:
        return json.loads(r.read())
