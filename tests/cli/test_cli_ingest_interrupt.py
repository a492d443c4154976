"""Ctrl-C during `msa ingest` (issue 20 item 6): a real subprocess is sent SIGINT mid-run. The
first stops it within seconds at a safe point, keeping the committed batches and reporting the
files it did not commit; a second aborts at once. Either way `msa verify` finds the store whole,
and the next run finishes the job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# Generous for a shared 2-core machine (a stop waits for the encode step in flight: about 2 s with
# the tiny model); the whole run is about 20 s longer than this.
_STOP_WITHIN_S = 5.0
N_FILES = 48  # about 80K tokens: five committed batches


def _tree(root: Path, n: int = N_FILES) -> Path:
    root.mkdir()
    for i in range(n):
        body = "\n\n".join(f"Pump {i} inspection note {j}: pressure {i * 7 % 90 + j} bar, valve {j} checked and logged."
                           for j in range(60))
        (root / f"note-{i:03d}.md").write_text(f"# Note {i}\n\n{body}\n")
    return root


def _msa(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "msa_agent.cli.main", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def _start(env: dict, tree: Path, store: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "msa_agent.cli.main", "ingest", str(tree), "--store", str(store), "--json"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_first_commit(proc: subprocess.Popen, store: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    seg = store / "segments"
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if seg.is_dir() and any(seg.iterdir()):
            return
        time.sleep(0.05)
    pytest.fail("no segment was committed in time")


@pytest.fixture
def env(tiny_model_dir: Path) -> dict:
    return {**os.environ, "MSA_MODEL": str(tiny_model_dir), "MSA_DTYPE": "float32"}


def test_ctrl_c_stops_at_a_safe_point_and_the_store_stays_valid(env, tmp_path):
    tree, store = _tree(tmp_path / "tree"), tmp_path / "store"
    proc = _start(env, tree, store)
    _wait_for_first_commit(proc, store)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    stopped_in = time.monotonic() - t0
    print(f"stopped {stopped_in:.2f} s after SIGINT")
    assert proc.returncode == 130, (out, err)
    assert stopped_in < _STOP_WITHIN_S, stopped_in
    report = json.loads(out)
    assert report["interrupted"] is True
    assert report["not_ingested"], report  # what is not committed is named
    assert "Traceback" not in err and "stopping at the next safe point" in err and "run msa ingest again" in err
    committed = report["added"]
    assert 0 < committed < N_FILES and report["removed"] == 0

    v = _msa(env, "verify", "--store", str(store))
    assert v.returncode == 0, (v.stdout, v.stderr)
    st = json.loads(_msa(env, "status", "--store", str(store), "--json").stdout)
    assert st["documents"] > 0

    # The next run ingests the rest and keeps what was committed.
    done = _msa(env, "ingest", str(tree), "--store", str(store), "--json")
    assert done.returncode == 0, done.stderr
    again = json.loads(done.stdout)
    assert "interrupted" not in again and again["unchanged"] == committed and again["added"] == N_FILES - committed
    assert _msa(env, "verify", "--store", str(store)).returncode == 0


def test_second_ctrl_c_aborts_at_once_and_the_store_stays_valid(env, tmp_path):
    tree, store = _tree(tmp_path / "tree"), tmp_path / "store"
    proc = _start(env, tree, store)
    _wait_for_first_commit(proc, store)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert time.monotonic() - t0 < _STOP_WITHIN_S
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err
    v = _msa(env, "verify", "--store", str(store))
    assert v.returncode == 0, (v.stdout, v.stderr)
    done = _msa(env, "ingest", str(tree), "--store", str(store), "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["added"] + json.loads(done.stdout)["unchanged"] == N_FILES
