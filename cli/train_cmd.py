"""`msa train router|reader`: parse, call one library function (msa_agent.train), render.

Training runs in resumable pieces (each under the device's 10-minute call limit); progress goes to
stderr, the final record (steps, loss, validation figures) to stdout or `--json`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

train_app = typer.Typer(add_completion=False, no_args_is_help=True,
                        help="Training: the MSA router projectors and the reader's adapters.")
_out = Console()
_err = Console(stderr=True)

# ---- msa train router (owned by the router work) ----------------------------------------------


@train_app.command("router")
def router(
    out: Annotated[Path, typer.Option("--out", help="Where router.safetensors, router.json and the checkpoint go.")],
    minutes: Annotated[float, typer.Option("--minutes", help="Training time of this piece (data and the backbone pass come on top).")] = 4.0,
    total_minutes: Annotated[Optional[float], typer.Option("--total-minutes", help="Cap on the whole piece: training shortens to fit it.")] = None,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Length of the whole schedule (a fresh piece fits it to its time; later pieces resume towards it).")] = 6000,
    batch: Annotated[int, typer.Option("--batch", min=2, help="Questions per step (in-batch negatives).")] = 256,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate (AdamW, cosine decay).")] = 3e-3,
    query_reduce: Annotated[str, typer.Option("--query-reduce", help="Reduction over question tokens: max or mean (as routing uses it).")] = "max",
    max_files: Annotated[int, typer.Option("--max-files", min=1, help="Third-party package files read.")] = 3000,
    contracts: Annotated[int, typer.Option("--contracts", min=0, help="Synthetic contracts.")] = 1200,
    logs: Annotated[int, typer.Option("--logs", min=0, help="Synthetic sensor logs.")] = 600,
    max_pairs: Annotated[int, typer.Option("--max-pairs", min=1, help="Training pairs kept.")] = 64000,
    checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", help="Checkpoint directory to resume from and save to (default: OUT/checkpoint).")] = None,
    model: Annotated[Optional[str], typer.Option("--model", help="A GGUF file or HF directory (default: MSA_MODEL or the embedded model).")] = None,
    device: Annotated[str, typer.Option("--device", help="cpu or cuda.")] = "cpu",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the data and the training.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the record as JSON.")] = False,
) -> None:
    """Train the MSA router projectors on the frozen backbone (resumable; exports router.safetensors + router.json)."""
    import time

    from msa_agent.engine import Engine
    from msa_agent.errors import MSAError
    from msa_agent.train.router import RouterTrainConfig, train_router

    t0 = time.perf_counter()

    def log(msg: str) -> None:
        _err.print(f"[{time.perf_counter() - t0:6.1f}s] {msg}", highlight=False, markup=False, soft_wrap=True)

    try:
        cfg = RouterTrainConfig(seed=seed, steps=steps, batch=batch, lr=lr, query_reduce=query_reduce,
                                time_budget_s=minutes * 60, max_files=max_files, contracts=contracts, logs=logs,
                                max_pairs=max_pairs, total_budget_s=total_minutes * 60 if total_minutes else None)
        cfg.check()
        if device not in ("cpu", "cuda"):
            raise MSAError(f"unknown device {device!r} (cpu or cuda)")
        engine = Engine.load(model, device=device, dtype="bfloat16" if device == "cuda" else "float32",
                             router="none")
        log(f"backbone {engine.name} on {device}")
        record = train_router(cfg, out, engine, checkpoint=checkpoint, log=log, started=t0)
    except MSAError as e:
        _err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(record, indent=2))
        return
    v = record["validation"]["after"] or {}
    _out.print(f"router: {record['outputs']['router']}  steps {record['training']['steps']}  "
               f"loss {record['training']['final_loss']}  validation R@1 {v.get('recall@1')} R@5 {v.get('recall@5')} "
               f"R@16 {v.get('recall@16')}", highlight=False)


# ---- msa train reader (owned by the reader work) ----------------------------------------------


@train_app.command("reader")
def reader(
    out: Annotated[Path, typer.Option("--out", help="Where the adapter (.safetensors) and its JSON record go.")],
    examples: Annotated[int, typer.Option("--examples", min=1, help="Training examples generated.")] = 60000,
    minutes: Annotated[float, typer.Option("--minutes", help="Training time budget (the schedule fits it).")] = 4.0,
    max_steps: Annotated[Optional[int], typer.Option("--max-steps", min=1, help="Stop after this many steps.")] = None,
    batch_tokens: Annotated[int, typer.Option("--batch-tokens", min=256, help="Padded tokens per step.")] = 32768,
    mem_every: Annotated[int, typer.Option("--mem-every", min=0, help="A memory-path micro-batch every N steps (0: off).")] = 4,
    val: Annotated[int, typer.Option("--val", min=0, help="Validation questions per domain (0: none).")] = 48,
    paths: Annotated[str, typer.Option("--paths", help="Validated paths: text, memory or both.")] = "text,memory",
    code_files: Annotated[int, typer.Option("--code-files", min=1, help="Site-packages files read for code facts.")] = 16000,
    model: Annotated[Optional[str], typer.Option("--model", help="A GGUF file or HF directory (default: MSA_MODEL or the embedded model).")] = None,
    device: Annotated[str, typer.Option("--device", help="cpu or cuda.")] = "cpu",
    dtype: Annotated[str, typer.Option("--dtype", help="Base weights' dtype.")] = "bfloat16",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the data and the adapters.")] = 0,
    init_adapter: Annotated[Optional[Path], typer.Option("--init-adapter", help="Go on training this adapter (same rank) instead of starting from zero.")] = None,
    lr: Annotated[float, typer.Option("--lr", min=0.0, help="Peak learning rate.")] = 5e-4,
    mix: Annotated[str, typer.Option("--mix", help="Domain shares, e.g. contracts=0.3,code=0.33,two_hop=0.1,lists=0.1 (logs take the rest).")] = "",
    real_corpus: Annotated[Optional[Path], typer.Option("--real-corpus", help="Real-text corpus for the mix's `real` share (`msa train real-corpus`; default: this machine's).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the record as JSON.")] = False,
) -> None:
    """Fine-tune the backbone as a reader (low-rank adapters): answers drawn from the evidence, or "Not stated."."""
    from msa_agent.errors import BadInput, MSAError
    from msa_agent.train.reader import ReaderTrainConfig, run

    try:
        chosen = tuple(p for p in paths.split(",") if p) if val else ()
        if any(p not in ("text", "memory") for p in chosen):
            raise BadInput(f"--paths: text and/or memory, got {paths!r}")
        cfg = ReaderTrainConfig(examples=examples, val_per_domain=val, seed=seed, batch_tokens=batch_tokens,
                                time_budget_s=minutes * 60, max_steps=max_steps, mem_every=mem_every,
                                max_code_files=code_files, init_adapter=init_adapter, lr=lr, mix=_mix(mix),
                                real_corpus=real_corpus)
        if init_adapter is not None and not init_adapter.is_file():
            raise BadInput(f"{init_adapter}: no such adapter file")
        if real_corpus is not None and not real_corpus.is_file():
            raise BadInput(f"{real_corpus}: no such real-text corpus (make one with `msa train real-corpus`)")
        record = run(model, out, cfg, device=device, dtype=dtype,
                     log=lambda m: _err.print(m, highlight=False, markup=False, soft_wrap=True), validate_paths=chosen)
    except MSAError as e:
        _err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(record, indent=2, default=str))
        return
    v = record.get("validation", {})
    _out.print(f"{record['steps']} steps, {record['train_seconds']} s, final loss {record['final_loss']}, "
               f"{record['tokens_per_s']} tok/s on {record['card']}", highlight=False)
    for key, s in v.items():
        _out.print(f"{key:>28}: contains {s['contains']}%  quote {s['quote']}%  abstains on unanswerable "
                   f"{s['abstention']}%  wrong abstentions {s['wrong_abstention']}%", highlight=False)


@train_app.command("real-corpus")
def real_corpus_cmd(
    out: Annotated[Path, typer.Option("--out", help="The corpus file to write (gzip JSON).")],
) -> None:
    """Collect this machine's Debian changelog entries and package records for reader training
    (the dev set's packages and the held-out sources left out), to carry to a training machine."""
    from msa_agent.train.real_data import collect, save

    corpus = collect()
    digest = save(corpus, out)
    _out.print(f"{out}: {len(corpus['entries'])} changelog entries, {len(corpus['records'])} package records, "
               f"digest {digest}", highlight=False)


def _mix(text: str):  # noqa: ANN202
    from msa_agent.errors import BadInput
    from msa_agent.train.reader_data import Mix

    try:
        return Mix.parse(text)
    except ValueError as e:
        raise BadInput(f"--mix: {e}") from None
