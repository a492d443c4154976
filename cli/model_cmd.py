"""`msa model ...` commands."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from msa_agent.errors import MSAError

model_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Inspect models.")
_out = Console()
_err = Console(stderr=True)


@model_app.command("inspect")
def inspect(
    path: Annotated[Optional[str], typer.Argument(help="A model directory or GGUF file (default: the embedded model).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Geometry, router layers, pooling, top-k, memory per token and which protocol the model speaks."""
    from msa_agent.inspect import inspect_model

    try:
        info = inspect_model(path)
    except MSAError as e:
        _err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(info, indent=2))
        return
    for k, v in info.items():
        _out.print(f"{k:>24}: {v}", highlight=False, soft_wrap=True)
