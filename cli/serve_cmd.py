"""`msa serve` and `msa token create|list|revoke`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from msa_agent.errors import MSAError

# Imported by cli/main.py as it finishes loading (also when it runs as `python -m`): the shared
# helpers are looked up when a command runs, not at import.
StoreOpt = Annotated[Optional[Path], typer.Option("--store", help="Store directory (default: MSA_STORE or MSA_HOME/stores/default).")]
ModelOpt = Annotated[Optional[str], typer.Option("--model", help="A GGUF file or HF directory (default: MSA_MODEL or the embedded SmolLM2-135M).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu, cuda or cuda:N (default: MSA_DEVICE, else cpu).",
                                        envvar="MSA_DEVICE")]


def _main():  # noqa: ANN202
    from . import main

    return main


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 8750,
    store: StoreOpt = None,
    model: ModelOpt = None,
    device: DeviceOpt = "cpu",
    no_auth: Annotated[bool, typer.Option("--no-auth", help="Serve without tokens (loopback hosts only).")] = False,
    allow_root: Annotated[Optional[list[Path]], typer.Option("--allow-root", help="A directory POST /v1/ingest may read from (repeatable).")] = None,
) -> None:
    """Serve the memory over HTTP: the model and every collection's index stay resident."""
    from msa_agent.api import Memory
    from msa_agent.serve import check_bind, serve as run_serve
    from msa_agent.store.tokens import active_tokens

    m = _main()
    try:
        mem = Memory.open(store, model=model, device=device)
        check_bind(host, no_auth=no_auth, tokens=active_tokens(mem.store))  # before the model loads
        roots = []
        for r in allow_root or []:
            if not r.expanduser().is_dir():
                raise MSAError(f"--allow-root {r}: no such directory")
            roots.append(r.expanduser().resolve())
        engine = m._load(mem, "generate")
        mem.store.check_model(engine.fingerprint, engine.name)
    except MSAError as e:
        m._fail(e)
    auth = "no auth (loopback only)" if no_auth else "bearer tokens"
    m.err.print(f"serving {mem.path} on http://{host}:{port} ({engine.name} on {device}; {auth})", highlight=False,
                markup=False, soft_wrap=True)
    run_serve(mem, host=host, port=port, auth=not no_auth, allow_roots=roots)


token_app = typer.Typer(no_args_is_help=True, help="Bearer tokens of msa serve: create, list, revoke.")


@token_app.command("create")
def token_create(
    collection: Annotated[list[str], typer.Option("--collection", help="A collection the token grants (repeatable).")],
    store: StoreOpt = None,
    label: Annotated[str, typer.Option("--label", help="A note to tell tokens apart.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Create a token for the given collections; it is printed once, only its hash is kept."""
    from msa_agent.store.tokens import create_token

    try:
        info, token = create_token(_main()._open_store(store, create=True), collection, label)
    except MSAError as e:
        _main()._fail(e)
    if as_json:
        print(json.dumps({**info, "token": token}, indent=2))
        return
    print(token)
    _main().err.print(f"token {info['id']} for {', '.join(info['collections'])}: keep it now, it cannot be shown again",
              highlight=False, markup=False)


@token_app.command("list")
def token_list(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Every token (id, collections, created, revoked); never the secrets."""
    from msa_agent.store.tokens import list_tokens

    try:
        tokens = list_tokens(_main()._open_store(store))
    except MSAError as e:
        _main()._fail(e)
    if as_json:
        print(json.dumps({"tokens": tokens}, indent=2))
        return
    for t in tokens:
        state = f"revoked {t['revoked_at']}" if t["revoked_at"] else "active"
        label = f" ({t['label']})" if t["label"] else ""
        _main().out.print(f"{t['id']}: {', '.join(t['collections'])}{label}; created {t['created_at']}; {state}",
                  highlight=False, markup=False)
    if not tokens:
        _main().out.print("no tokens")


@token_app.command("revoke")
def token_revoke(token_id: Annotated[int, typer.Argument(help="Token id (see msa token list).")], store: StoreOpt = None) -> None:
    """Revoke a token: requests carrying it are refused from now on."""
    from msa_agent.store.tokens import revoke_token

    try:
        t = revoke_token(_main()._open_store(store), token_id)
    except MSAError as e:
        _main()._fail(e)
    _main().out.print(f"revoked token {t['id']} ({', '.join(t['collections'])})", highlight=False, markup=False)
