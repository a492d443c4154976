"""Crash safety: `msa ingest` (fresh, and an update that re-encodes, adds and tombstones) and
`msa compact` SIGKILLed at every stage (MSA_FAULT, see msa_agent.store.fault_point) and at random
times; after each kill the store verifies (orphan segment directories only, which compact
removes), loses no committed document, answers, and a re-run converges to the clean run's store.
The trials run in children forked from a server process (bench/crash_trials.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TRIALS = int(os.environ.get("MSA_CRASH_TRIALS", "30"))  # ~5 s a trial on 2 cores; bench/crash_trials.py runs more


def test_sigkill_at_every_stage_loses_nothing_and_converges(crash, engine, tiny_model_dir, tmp_path):
    trials = crash.Trials(engine, tmp_path / "trials", tiny_model_dir)
    try:
        res = trials.run(TRIALS, seed=1)
    finally:
        trials.close()
    print(json.dumps({k: v for k, v in res.items() if k != "points_per_clean_run"}))
    assert res["trials"] == TRIALS
    assert res["failures"] == [] and res["survived"] == TRIALS, res["failures"]
    assert res["documents_lost"] == 0
    assert res["killed"] >= TRIALS * 0.7, res
    stages = set(res["faults_by_stage"])
    for s in (*crash.INGEST_STAGES, *crash.UPDATE_STAGES, *crash.COMPACT_STAGES):
        assert s in stages, (s, res["faults_by_stage"])


def test_the_cli_killed_at_a_fault_point_recovers(crash, tiny_model_dir, tmp_path):
    """The hook through the real `msa` command: killed before its first commit, verify reports
    only an orphan directory, compact removes it, verify is clean, a re-run completes."""
    tree = crash.make_tree(tmp_path / "tree")
    store = tmp_path / "store"
    env = {**os.environ, "MSA_MODEL": str(tiny_model_dir), "MSA_DTYPE": "float32"}

    def msa(*args: str, fault: str | None = None) -> subprocess.CompletedProcess:
        e = dict(env)
        if fault:
            e["MSA_FAULT"] = fault
        return subprocess.run([sys.executable, "-m", "msa_agent.cli.main", *args, "--store", str(store)],
                              env=e, capture_output=True, text=True, timeout=120)

    killed = msa("ingest", str(tree), fault="segment_written:1")
    assert killed.returncode == -9, killed.stderr
    v = msa("verify")
    assert v.returncode != 0 and "has no row" in v.stdout + v.stderr
    assert msa("compact").returncode == 0
    assert msa("verify").returncode == 0
    done = msa("ingest", str(tree))
    assert done.returncode == 0, done.stderr
    assert msa("verify").returncode == 0
    assert not list(Path(store, "segments").glob(".tmp-*"))
