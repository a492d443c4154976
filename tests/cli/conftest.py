"""Running `msa` in-process with typer's CliRunner, on the tiny model (MSA_MODEL), over the small
corpus the application tests use."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from msa_agent.cli.main import app

CORPUS = Path(__file__).resolve().parents[1] / "app" / "corpus"


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A fresh copy of the small corpus, free to edit."""
    return Path(shutil.copytree(CORPUS, tmp_path / "corpus"))


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "store"


def assert_clean_failure(res: Result, *needles: str) -> str:
    """Exit 1 through the CLI's own error path: one `error:` line (containing `needles`) ending
    stderr, nothing on stdout, no traceback. Returns that line."""
    assert res.exit_code == 1, (res.exit_code, res.stdout, res.stderr, res.exception)
    assert isinstance(res.exception, SystemExit), f"uncaught {res.exception!r}"  # CliRunner also says 1 for a crash
    lines = res.stderr.rstrip("\n").split("\n")
    assert lines[-1].startswith("error: "), res.stderr
    assert sum(ln.startswith("error:") for ln in lines) == 1, res.stderr
    assert "Traceback" not in res.output and res.stdout == ""
    for n in needles:
        assert n in lines[-1], (n, lines[-1])
    return lines[-1]


@pytest.fixture
def fails() -> Callable[..., str]:
    """assert_clean_failure, for test modules (they cannot import a conftest by name)."""
    return assert_clean_failure


@pytest.fixture
def msa(monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path) -> Callable[..., Result]:
    """`msa(*args, code=0)`: run the command; assert its exit code (and a clean one-line error
    for code 1)."""
    monkeypatch.setenv("MSA_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("MSA_DTYPE", "float32")
    runner = CliRunner()

    def invoke(*args: object, code: int = 0) -> Result:
        res = runner.invoke(app, [str(a) for a in args])
        if code == 1:
            assert_clean_failure(res)
        else:
            assert res.exit_code == code, (res.exit_code, res.stdout, res.stderr, res.exception)
            assert "Traceback" not in res.output
        return res

    return invoke


@pytest.fixture
def msa_json(msa) -> Callable[..., dict]:
    """`msa_json(*args, code=0)`: run with --json and parse stdout."""

    def invoke(*args: object, code: int = 0) -> dict:
        return json.loads(msa(*args, "--json", code=code).stdout)

    return invoke
