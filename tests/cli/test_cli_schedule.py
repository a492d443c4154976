"""`msa schedule add|list|remove|run|install` and what `msa status` shows of jobs; each test looks
at the store afterwards."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys

import pytest

from msa_agent.store import Store


def _force_due(store_dir) -> None:
    """Time passes: every job is due."""
    with sqlite3.connect(store_dir / "msa.db") as c:
        c.execute("UPDATE jobs SET next_due_at = '2000-01-01T00:00:00Z'")


def _docs(store_dir):
    st = Store.open(store_dir)
    try:
        return {(d.collection, d.path) for d in st.live_documents(None)}
    finally:
        st.close()


def test_schedule_add_run_list_remove(msa, msa_json, fails, corpus, store_dir):
    job = msa_json("schedule", "add", corpus, "--every", "6h", "--collection", "plant", "--store", store_dir)
    assert (job["id"], job["dir"], job["collection"], job["every_seconds"], job["window"]) == (
        1, str(corpus), "plant", 21600, None)
    assert job["next_due_at"] and job["last_run"] is None
    fails(msa("schedule", "add", corpus, "--every", "1h", "--collection", "plant", "--store", store_dir, code=1),
          "already scheduled")
    assert msa_json("schedule", "list", "--store", store_dir)["jobs"] == [job]
    assert "every 6h" in msa("schedule", "list", "--store", store_dir).stdout

    res = msa("schedule", "run", "--once", "--store", store_dir)  # due at once: ingests
    assert "job 1: ok: added 4" in res.stderr
    assert {c for c, _ in _docs(store_dir)} == {"plant"} and len(_docs(store_dir)) == 4  # files
    [j] = msa_json("schedule", "list", "--store", store_dir)["jobs"]
    assert (j["last_status"], j["consecutive_failures"], j["failing"]) == ("ok", 0, False)
    assert j["last_success_at"] and j["next_due_at"] > j["last_success_at"]

    res = msa("schedule", "run", "--once", "--store", store_dir)  # not due again for 6 h
    assert "no job is due" in res.stderr
    assert msa_json("schedule", "list", "--store", store_dir)["jobs"] == [j]

    (corpus / "contracts" / "nda.md").write_text("# NDA\n\nSecrets stay secret for five years.\n")
    _force_due(store_dir)
    assert "job 1: ok: added 1" in msa("schedule", "run", "--once", "--store", store_dir).stderr
    assert ("plant", "contracts/nda.md") in _docs(store_dir)

    status = msa_json("status", "--store", store_dir)
    [sj] = status["jobs"]
    assert (sj["id"], sj["last_status"], sj["failing"]) == (1, "ok", False)
    assert status["sources"][0]["last_run"]["status"] == "ok"

    assert msa("schedule", "remove", "1", "--store", store_dir).stdout.startswith("removed job 1")
    assert msa_json("schedule", "list", "--store", store_dir)["jobs"] == []
    fails(msa("schedule", "remove", "1", "--store", store_dir, code=1), "no scheduled job 1")
    assert ("plant", "contracts/nda.md") in _docs(store_dir)  # its documents stay


def test_a_job_that_keeps_failing_shows_in_status(msa, msa_json, corpus, tmp_path, store_dir):
    src = tmp_path / "share"
    shutil.copytree(corpus, src)
    msa("schedule", "add", src, "--every", "1h", "--store", store_dir)
    msa("schedule", "run", "--once", "--store", store_dir)
    shutil.rmtree(src)  # the share went away
    for n in (1, 2):
        _force_due(store_dir)
        res = msa("schedule", "run", "--once", "--store", store_dir, code=2)
        assert f"job 1: failed: {src}: no such directory" in res.stderr
        [j] = msa_json("status", "--store", store_dir)["jobs"]
        assert (j["failing"], j["consecutive_failures"], j["last_status"]) == (True, n, "failed")
        assert j["last_error"] == f"{src}: no such directory" and j["last_failure_at"] and j["last_success_at"]
    text = msa("status", "--store", store_dir).stdout
    assert f"FAILING (2 in a row, last at {j['last_failure_at']}): {src}: no such directory" in text
    # The documents of its last good run stay.
    assert len(_docs(store_dir)) == 4


def test_a_locked_store_fails_the_job_until_it_is_free(msa, msa_json, corpus, store_dir):
    msa("schedule", "add", corpus, "--every", "1h", "--store", store_dir)
    st = Store.open(store_dir)
    with st.write_lock():
        res = msa("schedule", "run", "--once", "--wait", "0", "--store", store_dir, code=2)
        assert "another msa process is writing" in res.stderr
    st.close()
    [j] = msa_json("schedule", "list", "--store", store_dir)["jobs"]
    assert j["failing"] and "another msa process is writing" in j["last_error"]
    _force_due(store_dir)
    msa("schedule", "run", "--once", "--store", store_dir)
    [j] = msa_json("schedule", "list", "--store", store_dir)["jobs"]
    assert (j["failing"], j["consecutive_failures"], j["last_status"]) == (False, 0, "ok")


@pytest.mark.parametrize("args, needle", [
    (["--every", "6x"], "bad duration '6x'"),
    (["--every", "0h"], "bad duration '0h'"),
    (["--every", "6h", "--window", "1-5"], "bad window '1-5'"),
    (["--every", "6h", "--window", "05:00-05:00"], "opens and closes at the same time"),
])
def test_bad_durations_and_windows_exit_1(msa, fails, corpus, store_dir, args, needle):
    fails(msa("schedule", "add", corpus, *args, "--store", store_dir, code=1), needle)
    assert not store_dir.exists()  # nothing created for a bad argument


def test_schedule_add_a_missing_directory_exits_1(msa, fails, tmp_path, store_dir):
    fails(msa("schedule", "add", tmp_path / "nowhere", "--every", "1h", "--store", store_dir, code=1),
          "no such directory")


def test_schedule_window_is_kept(msa_json, corpus, store_dir):
    job = msa_json("schedule", "add", corpus, "--every", "1d", "--window", "22:00-04:00", "--store", store_dir)
    assert job["window"] == "22:00-04:00"


def test_install_prints_or_writes_a_systemd_timer_or_a_cron_line(msa, tmp_path, store_dir):
    out = msa("schedule", "install", "--store", store_dir).stdout
    assert "# msa-schedule.service" in out and "# msa-schedule.timer" in out
    assert f"schedule run --once --store {store_dir}" in out and "Persistent=true" in out
    units = tmp_path / "units"
    res = msa("schedule", "install", "--store", store_dir, "--write", units, "--check-every", "1h")
    assert sorted(p.name for p in units.iterdir()) == ["msa-schedule.service", "msa-schedule.timer"]
    assert "OnCalendar=0/1:00" in (units / "msa-schedule.timer").read_text()
    assert "systemctl --user enable --now msa-schedule.timer" in res.stderr
    line = msa("schedule", "install", "--store", store_dir, "--cron").stdout.strip()
    assert line.startswith("*/15 * * * * ") and "flock -n" in line and "schedule run --once" in line
    msa("schedule", "install", "--store", store_dir, "--cron", "--write", tmp_path / "crontab")
    assert (tmp_path / "crontab").read_text() == line + "\n"
    msa("schedule", "install", "--store", store_dir, "--check-every", "7m", code=1)


@pytest.mark.slow
def test_the_foreground_loop_stops_on_sigterm(corpus, tmp_path, tiny_model_dir):
    """`msa schedule run` as a container runs it: due jobs at once, then waits; SIGTERM ends it."""
    import os
    import signal
    import time

    store = tmp_path / "store"
    env = {**os.environ, "MSA_HOME": str(tmp_path / "home"), "MSA_MODEL": str(tiny_model_dir), "MSA_DTYPE": "float32"}
    cmd = [sys.executable, "-m", "msa_agent.cli.main"]
    subprocess.run([*cmd, "schedule", "add", str(corpus), "--every", "1h", "--store", str(store)], env=env,
                   check=True, capture_output=True, timeout=120)
    proc = subprocess.Popen([*cmd, "schedule", "run", "--store", str(store)], env=env, stderr=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            st = Store.open(store)
            done = st.status()["jobs"][0]["last_status"]
            st.close()
            if done:
                break
            time.sleep(0.2)
        assert done == "ok"
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "job 1: ok: added 4" in err and "next check in" in err
