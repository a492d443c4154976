"""Reliability tests: the tiny model loaded once, and bench/crash_trials.py's small enterprise tree
and store snapshots (live documents and routing results) to compare a recovered store with a clean one."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from msa_agent.engine import Engine

_CRASH = Path(__file__).resolve().parents[2] / "bench" / "crash_trials.py"


def _load_crash():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location("crash_trials", _CRASH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["crash_trials"] = mod
    spec.loader.exec_module(mod)
    return mod


crash_trials = _load_crash()
make_tree, change_tree, snapshot, QUESTIONS = (
    crash_trials.make_tree, crash_trials.change_tree, crash_trials.snapshot, crash_trials.QUESTIONS)


@pytest.fixture(scope="session")
def crash():  # noqa: ANN201
    """bench/crash_trials.py as a module."""
    return crash_trials


@pytest.fixture(scope="session")
def engine(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MSA_HOME", str(tmp_path_factory.mktemp("engine-home")))
        return Engine.load(str(tiny_model_dir), dtype="float32")
