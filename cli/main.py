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


def _fail(e: Exception) -> None:
    err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def _open_store(store: Path | None, create: bool = False):  # noqa: ANN202
    from msa_agent.store import Store

    return Store.open(settings.store_path(store), create=create)


def _engine(model: str | None, purpose: str = "encode"):  # noqa: ANN202
    from msa_agent.engine import Engine

    with err.status("loading model…"):
        return Engine.load(model, purpose=purpose)


@app.command()
def ingest(
    directory: Annotated[Path, typer.Argument(help="Directory of contracts, code and logs.")],
    store: StoreOpt = None,
    collection: CollectionOpt = None,
    model: ModelOpt = None,
    reencode: Annotated[bool, typer.Option("--reencode", help="Drop stored memory and re-encode everything (after a model change).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Ingest a directory into memory: new and changed files are encoded, deleted ones removed."""
    from msa_agent.engine import check_input_dir
    from msa_agent.pipeline import Progress as Callbacks
    from msa_agent.pipeline import ingest_dir

    try:
        root = check_input_dir(directory)
        st = _open_store(store, create=True)
        engine = _engine(model)
        bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[files]} files"),
                       TextColumn("{task.completed:,.0f}/{task.total:,.0f} tokens"), TextColumn("{task.fields[rate]}"),
                       TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=False)
        task = bar.add_task("encoding", total=1, files=0, rate="")
        state = {"files": 0}

        def plan(files: int, tokens: int) -> None:
            bar.update(task, total=max(tokens, 1), files=f"0/{files}")
            state["total_files"] = files

        def advance(files: int, tokens: int) -> None:
            state["files"] += files
            bar.advance(task, tokens)
            t = bar.tasks[0]
            rate = f"{t.completed / t.elapsed:,.0f} tok/s" if t.elapsed else ""
            bar.update(task, files=f"{state['files']}/{state.get('total_files', 0)}", rate=rate)

        with bar:
            report = ingest_dir(root, st, engine, collection=collection or "default", reencode=reencode,
                                progress=Callbacks(plan, advance, lambda m: err.print(m, highlight=False, soft_wrap=True)))
    except MSAError as e:
        _fail(e)
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        out.print(f"added {report.added}, updated {report.updated}, removed {report.removed}, "
                  f"unchanged {report.unchanged}, failed {report.failed}; {report.documents} documents, "
                  f"{report.tokens:,} tokens in {report.seconds:.1f} s ({report.tokens_per_s:,.0f} tok/s)", highlight=False)
        for f in report.failures:
            out.print(f"  failed: {f['path']}: {f['reason']}", highlight=False, soft_wrap=True)
    if report.failed:
        raise typer.Exit(2)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    store: StoreOpt = None,
    collection: CollectionOpt = None,
    model: ModelOpt = None,
    top_k: Annotated[Optional[int], typer.Option("--top-k", min=1, help="Documents routed per router layer.")] = None,
    rounds: Annotated[int, typer.Option("--rounds", min=1, max=8, help="Most routing rounds (memory interleave).")] = 3,
    mode: Annotated[str, typer.Option("--mode", help="Routing: auto, msa, lexical or hybrid.")] = "auto",
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1, help="Most answer tokens.")] = 96,
    as_json: JsonOpt = False,
) -> None:
    """Answer a question from memory, with citations (page, line range or time range)."""
    from msa_agent.ask import ask as run_ask

    try:
        st = _open_store(store)
        engine = _engine(model, "generate")
        stream = None if as_json else (lambda s: out.print(s, end="", highlight=False, markup=False))
        result = run_ask(st, engine, question, collection=collection, top_k=top_k, rounds=rounds, mode=mode,
                         max_new_tokens=max_tokens, on_token=stream)
    except MSAError as e:
        _fail(e)
    if as_json:
        print(json.dumps(result.as_dict(), indent=2))
        return
    out.print()
    out.print("[bold]Sources[/]")
    for i, c in enumerate(result.citations, 1):
        out.print(f"  [{i}] {c['path']} — {c['anchor']}", highlight=False, markup=False)
    t = result.timing
    err.print(f"[dim]{result.mode} routing, {len(result.rounds)} round(s), {t['route_ms']:.0f} ms; "
              f"answer {t['tokens']} tokens at {t['tokens_per_s']:.1f} tok/s[/]")


@app.command()
def route(
    question: Annotated[str, typer.Argument(help="The question.")],
    store: StoreOpt = None,
    collection: CollectionOpt = None,
    model: ModelOpt = None,
    top_k: Annotated[Optional[int], typer.Option("--top-k", min=1)] = None,
    mode: Annotated[str, typer.Option("--mode", help="Routing: auto, msa, lexical or hybrid.")] = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Routing only: the documents memory would use for a question, best first."""
    from msa_agent.ask import route as run_route

    try:
        st = _open_store(store)
        engine = _engine(model, "generate")
        result = run_route(st, engine, question, collection=collection, top_k=top_k, mode=mode)
    except MSAError as e:
        _fail(e)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    table = Table("#", "score", "path", "anchor")
    for i, d in enumerate(result["docs"], 1):
        table.add_row(str(i), f"{d['score']:.4f}", d["path"], d["anchor"])
    out.print(table)


@app.command()
def status(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Documents, tokens, chunks, bytes on disk, model fingerprint, sources and jobs."""
    try:
        st = _open_store(store)
        info = st.status()
    except MSAError as e:
        _fail(e)
    if as_json:
        print(json.dumps(info, indent=2))
        return
    for key in ("store", "documents", "tokens", "chunks", "tombstoned", "segments", "bytes_on_disk",
                "bytes_per_token", "collections", "model", "fingerprint"):
        out.print(f"{key:>16}: {info[key]}", highlight=False)
    for s in info["sources"]:
        out.print(f"{'source':>16}: {s['root']} [{s['collection']}] {s['files']} files, last ingest {s['last_ingest']}", highlight=False)


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
            out.print(p, highlight=False, soft_wrap=True)
        out.print("store is whole" if not problems else f"{len(problems)} problem(s)")
    if problems:
        raise typer.Exit(2)


@app.command()
def compact(store: StoreOpt = None) -> None:
    """Delete tombstoned documents, unused segments and orphan segment directories."""
    try:
        st = _open_store(store)
        with st.write_lock():
            res = st.compact()
    except MSAError as e:
        _fail(e)
    out.print(f"removed {res['documents']} documents, {res['segments']} segments, {res['directories']} directories")


def main() -> None:
    """Entry point: usage errors are user errors (exit 1, one line), not partial runs (exit 2)."""
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
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
