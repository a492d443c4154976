"""The `msa` command: parse, call one library function, render.

Progress and chatter go to stderr through one rich Console; results go to stdout.
Exit codes: 0 success, 1 user error (one line, no traceback), 2 finished with some inputs failed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from msa_agent import settings
from msa_agent.errors import MSAError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="msa: an enterprise memory agent on Memory Sparse Attention.")
err = Console(stderr=True)
out = Console()

StoreOpt = Annotated[Optional[Path], typer.Option("--store", help="Store directory (default: MSA_STORE or MSA_HOME/stores/default).")]
CollectionOpt = Annotated[Optional[str], typer.Option("--collection", help="Collection name.")]
ModelOpt = Annotated[Optional[str], typer.Option("--model", help="A GGUF file or HF directory (default: MSA_MODEL or the embedded SmolLM2-135M).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu, cuda or cuda:N (default: MSA_DEVICE, else cpu).",
                                        envvar="MSA_DEVICE")]


def _fail(e: Exception) -> None:
    err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def _open_store(store: Path | None, create: bool = False):  # noqa: ANN202
    from msa_agent.store import Store

    return Store.open(settings.store_path(store), create=create)


def _engine(model: str | None, purpose: str = "encode", device: str = "cpu"):  # noqa: ANN202
    from msa_agent.engine import Engine, check_device

    check_device(device)
    with err.status("loading model…"):
        return Engine.load(model, purpose=purpose, device=device)


def _memory(store: Path | None, model: str | None = None, device: str = "cpu", create: bool = False):  # noqa: ANN202
    from msa_agent.api import Memory

    return Memory.open(store, model=model, device=device, create=create)


def _load(mem, purpose: str = "generate"):  # noqa: ANN001, ANN202
    """The Memory's model for `purpose`, loaded (on first use) under a status line."""
    with err.status("loading model…"):
        return mem.engine(purpose)


WaitOpt = Annotated[float, typer.Option("--wait", min=0, help="Seconds to wait for another writer to finish (default: exit at once).")]


def _ingest_callbacks(bar: Progress, task):  # noqa: ANN001, ANN202
    from msa_agent.pipeline import Progress as Callbacks

    state = {"files": 0, "total_files": 0}

    def plan(files: int, tokens: int) -> None:
        bar.update(task, total=max(tokens, 1), files=f"0/{files}")
        state["total_files"] = files

    def advance(files: int, tokens: int) -> None:
        state["files"] += files
        bar.advance(task, tokens)
        t = bar.tasks[0]
        rate = f"{t.completed / t.elapsed:,.0f} tok/s" if t.elapsed else ""
        bar.update(task, files=f"{state['files']}/{state['total_files']}", rate=rate)

    return Callbacks(plan, advance, lambda m: err.print(m, highlight=False, soft_wrap=True, markup=False))


@app.command()
def ingest(
    directory: Annotated[Path, typer.Argument(help="Directory of contracts, code and logs.")],
    store: StoreOpt = None,
    collection: CollectionOpt = None,
    model: ModelOpt = None,
    reencode: Annotated[bool, typer.Option("--reencode", help="Drop stored memory and re-encode everything (after a model change).")] = False,
    max_file_mb: Annotated[float, typer.Option("--max-file-mb", min=0.001, help="Larger files are reported as failed and not read (logs, PDF and DOCX: 50x this).")] = 2.0,
    kind: Annotated[Optional[str], typer.Option("--kind", help="Read every file as this kind: contract, code, log or text.")] = None,
    timezone: Annotated[Optional[str], typer.Option("--timezone", envvar="MSA_TIMEZONE", help="Zone of log times written without one (Europe/Berlin, +01:00); default: unknown, shown as written.")] = None,
    wait: WaitOpt = 0.0,
    device: DeviceOpt = "cpu",
    as_json: JsonOpt = False,
) -> None:
    """Ingest a directory into memory: new and changed files are encoded, deleted ones removed."""
    from msa_agent.api import Memory
    from msa_agent.pipeline import check_options

    try:
        check_options(timezone=timezone)
        root = Memory.check_ingest(directory, kind=kind, max_file_mb=max_file_mb)  # before anything is created
        mem = _memory(store, model, device, create=True)
        _load(mem, "encode")
        bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[files]} files"),
                       TextColumn("{task.completed:,.0f}/{task.total:,.0f} tokens"), TextColumn("{task.fields[rate]}"),
                       TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=False)
        task = bar.add_task("encoding", total=1, files=0, rate="")
        with bar:
            report = mem.ingest(root, collection=collection or "default", reencode=reencode,
                                progress=_ingest_callbacks(bar, task), max_file_mb=max_file_mb, kind=kind, wait=wait,
                                timezone=timezone)
    except MSAError as e:
        _fail(e)
    except OSError as e:  # creating the store: nothing half-written is committed
        _fail(MSAError(f"cannot write the store: {e.strerror or e}; it keeps its last committed state"))
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        out.print(f"added {report.added}, updated {report.updated}, removed {report.removed}, "
                  f"unchanged {report.unchanged}, failed {report.failed}; {report.documents} documents, "
                  f"{report.tokens:,} tokens in {report.seconds:.1f} s ({report.tokens_per_s:,.0f} tok/s)", highlight=False,
                  soft_wrap=True)
        if report.reused_documents:
            out.print(f"  {report.reused_documents} documents of changed files kept their stored encoding", highlight=False)
        if report.skipped:
            reasons = ", ".join(f"{n} {why}" for why, n in report.skipped.items())
            out.print(f"  skipped {sum(report.skipped.values())}: {reasons}", highlight=False, soft_wrap=True, markup=False)
        for f in report.failures:
            kept = f" (kept its {f['kept_documents']} documents)" if "kept_documents" in f else ""
            out.print(f"  failed: {f['path']}: {f['reason']}{kept}", highlight=False, soft_wrap=True, markup=False)
    if getattr(report, "interrupted", False):
        err.print(f"interrupted: {len(report.not_ingested)} file(s) not committed; the store is whole, "
                  "run msa ingest again to finish", highlight=False, soft_wrap=True, markup=False)
        raise typer.Exit(130)
    if report.failed:
        raise typer.Exit(2)


ServerOpt = Annotated[Optional[str], typer.Option("--server", envvar="MSA_SERVER",
                                                  help="A running `msa serve` to ask (default: MSA_SERVER; else in-process).")]
TokenOpt = Annotated[Optional[str], typer.Option("--token", envvar="MSA_TOKEN", help="Bearer token for --server (default: MSA_TOKEN).")]


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    store: StoreOpt = None,
    collection: CollectionOpt = None,
    model: ModelOpt = None,
    top_k: Annotated[Optional[int], typer.Option("--top-k", min=1, help="Documents routed per router layer.")] = None,
    rounds: Annotated[int, typer.Option("--rounds", min=1, max=8, help="Most routing rounds (memory interleave).")] = 3,
    mode: Annotated[str, typer.Option("--mode", help="Routing: auto, msa, lexical or hybrid.")] = "auto",
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1, max=2048, help="Most answer tokens.")] = 96,
    device: DeviceOpt = "cpu",
    server: ServerOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer a question from memory, with citations (page, line range or time range)."""
    stream = None if as_json else (lambda s: out.print(s, end="", highlight=False, markup=False))
    try:
        if server:
            from msa_agent.api import Memory

            mem = Memory.connect(server, token)
        else:
            from msa_agent.api import check_query

            mem = _memory(store, model, device)
            check_query(question, mode=mode, top_k=top_k, rounds=rounds, max_tokens=max_tokens)  # before the load
            _load(mem, "generate")
        result = mem.ask(question, collection=collection, top_k=top_k, rounds=rounds, mode=mode,
                         max_tokens=max_tokens, on_token=stream).as_dict()
    except MSAError as e:
        _fail(e)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    _print_answer(result)


def _print_answer(result: dict) -> None:
    """The sources and the status line after a streamed answer (in-process or from a server)."""
    out.print()
    out.print("[bold]Sources[/]")
    for i, c in enumerate(result["citations"], 1):
        out.print(f"  [{i}] {c['path']} — {c['anchor']}", highlight=False, markup=False)
        if c.get("quote"):
            first, last = c["quote_lines"]
            where = f"line {first}" if first == last else f"lines {first}-{last}"
            for line in c["quote"].splitlines()[:6]:
                out.print(f"      > {line}", highlight=False, markup=False, soft_wrap=True)
            out.print(f"      ({where} of the passage)", highlight=False, markup=False, style="dim")
    if not result["citations"]:
        out.print("  (none: the memory does not support an answer)", highlight=False, markup=False)
    t = result["timing"]
    how = (result.get("reading") or {}).get("how", "")
    made = (f"answer read off the table's rows ({how.split(':', 1)[1]}) in {t['generate_ms']:.0f} ms"
            if how.startswith("table:") else f"answer {t['tokens']} tokens at {t['tokens_per_s']:.1f} tok/s")
    err.print(f"[dim]{result['mode']} routing, {len(result['rounds'])} round(s), {t['route_ms']:.0f} ms; {made}[/]")


@app.command()
def route(
    question: Annotated[str, typer.Argument(help="The question.")],
    store: StoreOpt = None,
    collection: CollectionOpt = None,
    model: ModelOpt = None,
    top_k: Annotated[Optional[int], typer.Option("--top-k", min=1)] = None,
    mode: Annotated[str, typer.Option("--mode", help="Routing: auto, msa, lexical or hybrid.")] = "auto",
    device: DeviceOpt = "cpu",
    server: ServerOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Routing only: the documents memory would use for a question, best first."""
    try:
        if server:
            from msa_agent.api import Memory

            mem = Memory.connect(server, token)
        else:
            from msa_agent.api import check_query

            mem = _memory(store, model, device)
            check_query(question, mode=mode, top_k=top_k)  # before the load
            _load(mem, "generate")
        result = mem.route(question, collection=collection, top_k=top_k, mode=mode).as_dict()
    except MSAError as e:
        _fail(e)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    table = Table("#", "score", "path", "anchor")
    for i, d in enumerate(result["docs"], 1):
        table.add_row(str(i), f"{d['score']:.4f}", escape(d["path"]), escape(d["anchor"]))
    out.print(table)
    out.print(f"{result['mode']} routing, {result['timing']['route_ms']:.0f} ms", highlight=False)


@app.command()
def status(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Documents, tokens, chunks, bytes on disk, model fingerprint, sources and jobs."""
    from msa_agent.engine import reader_label

    try:
        st = _open_store(store)
        info = st.status()
    except MSAError as e:
        _fail(e)
    # The reader is not part of the memory (a new one never forces a re-ingest): shown apart.
    info["reader"] = reader_label()
    if as_json:
        print(json.dumps(info, indent=2))
        return
    for key in ("store", "documents", "tokens", "chunks", "tombstoned", "segments", "bytes_on_disk",
                "bytes_per_token", "collections", "model", "fingerprint", "reader"):
        out.print(f"{key:>16}: {info[key]}", highlight=False, markup=False)
    for s in info["sources"]:
        run = s["last_run"]
        last = f"last run {run['status']} at {run['finished_at'] or run['started_at']}" if run else "no recorded run"
        out.print(f"{'source':>16}: {s['root']} [{s['collection']}] {s['files']} files, {s['documents']} documents, "
                  f"last ingest {s['last_ingest']}; {last}; last success {s['last_success_at']}",
                  highlight=False, markup=False, soft_wrap=True)
        if run and run["error"]:
            out.print(f"{'':>18}error: {run['error']}", highlight=False, markup=False, soft_wrap=True)
        for f in s["failures"][:20]:
            kept = f" (kept its {f['kept_documents']} documents)" if "kept_documents" in f else ""
            out.print(f"{'':>18}failed: {f['path']}: {f['reason']}{kept}", highlight=False, markup=False, soft_wrap=True)
    for j in info["jobs"]:
        out.print(f"{'job':>16}: {_job_line(j)}", highlight=False, markup=False, soft_wrap=True)


def _job_line(j: dict) -> str:
    from msa_agent.schedule import format_duration

    window = f" in {j['window']}" if j["window"] else ""
    line = (f"#{j['id']} {j['dir']} [{j['collection']}] every {format_duration(j['every_seconds'])}{window}; "
            f"next due {j['next_due_at']}; last run {j['last_status'] or 'never'}")
    if j["last_success_at"]:
        line += f", last success {j['last_success_at']}"
    if j["failing"]:
        line += f"; FAILING ({j['consecutive_failures']} in a row, last at {j['last_failure_at']}): {j['last_error']}"
    return line


@app.command()
def verify(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Check every segment and row; exit 0 only when the store is whole."""
    try:
        problems = _open_store(store).verify()
    except MSAError as e:
        _fail(e)
    if as_json:
        print(json.dumps({"ok": not problems, "problems": problems}, indent=2))
    else:
        for p in problems:
            out.print(p, highlight=False, soft_wrap=True, markup=False)
        out.print("store is whole" if not problems else f"{len(problems)} problem(s)")
    if problems:
        raise typer.Exit(2)


@app.command()
def compact(store: StoreOpt = None, wait: WaitOpt = 0.0, as_json: JsonOpt = False) -> None:
    """Reclaim the space of removed documents: rewrite segments without them, drop orphans."""
    try:
        st = _open_store(store)
        with st.write_lock(wait):
            res = st.compact()
    except MSAError as e:
        _fail(e)
    if as_json:
        print(json.dumps(res, indent=2))
    else:
        out.print(f"removed {res['documents']} documents, {res['segments']} segments ({res['rewritten']} written "
                  f"in their place), {res['directories']} orphan directories; segments {res['bytes_before']:,} -> "
                  f"{res['bytes_after']:,} bytes", highlight=False, soft_wrap=True)
        for seg in res["damaged"]:
            out.print(f"  segment {seg} is damaged and was left as it is (see msa verify)", highlight=False)
    if res["damaged"]:
        raise typer.Exit(2)


@app.command()
def repair(store: StoreOpt = None, model: ModelOpt = None, wait: WaitOpt = 0.0, as_json: JsonOpt = False) -> None:
    """Re-encode documents of damaged segments from their sources; remove those whose sources are gone."""
    from msa_agent.pipeline import repair_store

    try:
        st = _open_store(store)
        res = repair_store(st, _engine(model), wait=wait)
    except MSAError as e:
        _fail(e)
    if as_json:
        print(json.dumps(res, indent=2))
    else:
        if not res["damaged_segments"]:
            out.print("no damaged segments")
        if res.get("resumed"):
            out.print(f"finishing an interrupted repair: {len(res['resumed'])} sources to re-encode", highlight=False)
        for p in res["problems"]:
            err.print(f"damaged: {p}", highlight=False, soft_wrap=True, markup=False)
        for r in res["reencoded"]:
            out.print(f"re-encoded from source: {r}", highlight=False, soft_wrap=True, markup=False)
        for r in res["removed"]:
            err.print(f"[bold red]removed[/] (source gone): {escape(str(r))}", highlight=False, soft_wrap=True)
    if res["removed"]:
        raise typer.Exit(2)


@app.command()
def forget(
    path: Annotated[Path, typer.Argument(help="A file, or a directory: every file stored from under it.")],
    store: StoreOpt = None,
    collection: Annotated[Optional[str], typer.Option("--collection", help="Only this collection (default: all).")] = None,
    wait: WaitOpt = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Remove a file's or a directory's documents from memory (a later ingest of it adds them back)."""
    try:
        st = _open_store(store)
        with st.write_lock(wait):
            res = st.forget(path, collection)
        if not res["sources"]:
            where = f" in collection {collection!r}" if collection else ""
            raise MSAError(f"nothing stored from {path}{where} (see msa status)")
    except MSAError as e:
        _fail(e)
    if as_json:
        print(json.dumps(res, indent=2))
    else:
        out.print(f"forgot {res['sources']} files, {res['documents']} documents (msa compact reclaims their space)",
                  highlight=False, soft_wrap=True)


# `msa model ...` (cli/model_cmd.py)
from .model_cmd import model_app  # noqa: E402
from .bench_cmd import bench_app  # noqa: E402
from .train_cmd import train_app  # noqa: E402

app.add_typer(model_app, name="model")
app.add_typer(bench_app, name="bench")
app.add_typer(train_app, name="train")

# `msa serve` and `msa token ...` (cli/serve_cmd.py)
from .serve_cmd import serve as _serve_command, token_app  # noqa: E402

app.command("serve")(_serve_command)
app.add_typer(token_app, name="token")


# ---- msa schedule ----------------------------------------------------------------------------

schedule_app = typer.Typer(no_args_is_help=True, help="Scheduled re-ingestion: add, list, remove, run, install.")
app.add_typer(schedule_app, name="schedule")


@schedule_app.command("add")
def schedule_add(
    directory: Annotated[Path, typer.Argument(help="Directory to re-ingest.")],
    every: Annotated[str, typer.Option("--every", help="How often: 30m, 6h, 1d, 1h30m.")],
    store: StoreOpt = None,
    collection: CollectionOpt = None,
    window: Annotated[Optional[str], typer.Option("--window", help="Only run inside this daily local-time window, like 01:00-05:00.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-ingest a directory every DURATION (first run: the next `msa schedule run`)."""
    from msa_agent.schedule import add_job, parse_duration, parse_window

    try:
        parse_duration(every)
        if window:
            parse_window(window)
        job = add_job(_open_store(store, create=True), directory, every, collection=collection or "default",
                      window=window)
    except MSAError as e:
        _fail(e)
    if as_json:
        print(json.dumps(job, indent=2))
    else:
        out.print(f"job {job['id']}: {_job_line(job)}", highlight=False, markup=False, soft_wrap=True)


@schedule_app.command("list")
def schedule_list(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """The scheduled jobs, when each is next due and how its last run went."""
    from msa_agent.schedule import list_jobs

    try:
        jobs = list_jobs(_open_store(store))
    except MSAError as e:
        _fail(e)
    if as_json:
        print(json.dumps({"jobs": jobs}, indent=2))
        return
    for j in jobs:
        out.print(_job_line(j), highlight=False, markup=False, soft_wrap=True)
    if not jobs:
        out.print("no scheduled jobs")


@schedule_app.command("remove")
def schedule_remove(job_id: Annotated[int, typer.Argument(help="Job id (see msa schedule list).")], store: StoreOpt = None) -> None:
    """Remove a scheduled job (its documents stay in memory)."""
    from msa_agent.schedule import remove_job

    try:
        job = remove_job(_open_store(store), job_id)
    except MSAError as e:
        _fail(e)
    out.print(f"removed job {job['id']} ({job['dir']} [{job['collection']}])", highlight=False, markup=False)


@schedule_app.command("run")
def schedule_run(
    store: StoreOpt = None,
    model: ModelOpt = None,
    once: Annotated[bool, typer.Option("--once", help="Run the due jobs once and exit (cron, systemd timers).")] = False,
    wait: Annotated[float, typer.Option("--wait", min=0, help="Seconds a job waits for another writer before it counts as failed.")] = 60.0,
) -> None:
    """Run the due jobs; without --once, keep running them as they fall due (for containers)."""
    import signal
    import threading

    from msa_agent import schedule as sched
    from msa_agent.pipeline import Progress as Callbacks
    from msa_agent.pipeline import ingest_dir

    engines: list = []

    def run_ingest(root: Path, coll: str) -> dict:
        if not engines:
            engines.append(_engine(model))
        quiet = Callbacks(on_message=lambda m: err.print(f"  {m}", highlight=False, soft_wrap=True, markup=False))
        return ingest_dir(root, st, engines[0], collection=coll, progress=quiet, wait=wait).as_dict()

    def started(job) -> None:  # noqa: ANN001
        err.print(f"job {job.id}: ingesting {job.root} [{job.collection}]", highlight=False, markup=False)

    def done(o) -> None:  # noqa: ANN001
        r = o.report or {}
        what = (f"added {r['added']}, updated {r['updated']}, removed {r['removed']}, failed {r['failed']}"
                if r else o.error)
        err.print(f"job {o.job['id']}: {o.status}: {what}", highlight=False, markup=False, soft_wrap=True)

    try:
        st = _open_store(store, create=True)
        with sched.scheduler_lock(st):
            if once:
                outcomes = sched.run_due(st, run_ingest, on_start=started)
                for o in outcomes:
                    done(o)
                if not outcomes:
                    err.print("no job is due")
                if any(o.status != "ok" for o in outcomes):
                    raise typer.Exit(2)
                return
            stop = threading.Event()
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
            err.print(f"running the scheduled jobs of {st.path} (stop: Ctrl-C or SIGTERM)", highlight=False)
            sched.run_forever(st, run_ingest, stop=stop, on_outcome=done, on_start=started,
                              on_sleep=lambda s: err.print(f"[dim]next check in {s:.0f} s[/]"))
    except MSAError as e:
        _fail(e)


@schedule_app.command("install")
def schedule_install(
    store: StoreOpt = None,
    write: Annotated[Optional[Path], typer.Option("--write", help="Write the files into this directory (the crontab line into this file) instead of printing them.")] = None,
    cron: Annotated[bool, typer.Option("--cron", help="A crontab line instead of a systemd service and timer.")] = False,
    check_every: Annotated[str, typer.Option("--check-every", help="How often the timer looks for due jobs.")] = "15m",
) -> None:
    """A systemd service + timer (Persistent=true) or a crontab line that runs `msa schedule run --once`."""
    from msa_agent import schedule as sched

    try:
        path = settings.store_path(store).expanduser().resolve()
        if cron:
            line = sched.cron_line(path, check_every)
            if write is None:
                print(line)
                return
            write.parent.mkdir(parents=True, exist_ok=True)
            write.write_text(line + "\n")
            err.print(f"wrote {write}; install it with: crontab {write}", highlight=False, markup=False)
            return
        units = sched.systemd_units(path, check_every)
        if write is None:
            for name, body in units.items():
                print(f"# {name}\n{body}")
            return
        files = sched.write_units(write, units)
    except MSAError as e:
        _fail(e)
    except OSError as e:
        _fail(MSAError(f"{write}: {e.strerror or e}"))
    err.print(f"wrote {', '.join(str(f) for f in files)}; enable with: systemctl --user daemon-reload && "
              f"systemctl --user enable --now {sched.UNIT}.timer", highlight=False, markup=False, soft_wrap=True)


def main() -> None:
    """Entry point: usage errors are user errors (exit 1, one line), not partial runs (exit 2)."""
    from rich.markup import escape
    from sqlalchemy.exc import DatabaseError
    from typer.exceptions import TyperException

    try:
        rv = app(standalone_mode=False)
    except TyperException as e:  # typer's own click: usage errors, bad parameters
        ctx = getattr(e, "ctx", None)
        if type(e).__name__ == "NoArgsIsHelpError" and ctx is not None:
            print(ctx.get_help())
            sys.exit(0)
        msg = e.format_message() if hasattr(e, "format_message") else str(e)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        err.print(f"[bold red]error:[/] {' '.join(msg.split())}{hint}", highlight=False, soft_wrap=True, markup=True)
        sys.exit(1)
    except (typer.Abort, KeyboardInterrupt):
        err.print("interrupted")
        sys.exit(130)
    except DatabaseError as e:  # a store database damaged after it opened: one line, not a traceback
        err.print(f"[bold red]error:[/] the store's database cannot be read: {escape(str(e.orig))}",
                  highlight=False, soft_wrap=True)
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
