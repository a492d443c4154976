"""`msa train router|reader`: parse, call one library function (msa_agent.train), render.

Training runs in resumable pieces (each under the device's 10-minute call limit); progress goes to
stderr, the final record (steps, loss, validation figures) to stdout or `--json`.
"""

from __future__ import annotations

import typer
from rich.console import Console

train_app = typer.Typer(add_completion=False, no_args_is_help=True,
                        help="Training: the MSA router projectors and the reader's adapters.")
_out = Console()
_err = Console(stderr=True)

# ---- msa train router (owned by the router work) ----------------------------------------------


# ---- msa train reader (owned by the reader work) ----------------------------------------------
