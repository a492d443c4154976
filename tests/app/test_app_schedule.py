"""The scheduler as a library: durations, windows, when jobs fall due, what it records after a
success and after failures, the foreground loop, and the systemd and cron files it writes."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import threading
from pathlib import Path
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from msa_agent import schedule as sched
from msa_agent.errors import BadInput
from msa_agent.store import Store
from msa_agent.store.schema import JobRow

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # 12:00 UTC
PLUS2 = timezone(timedelta(hours=2))  # the machine's zone in these tests: 14:00 local at T0


@pytest.mark.parametrize("text, seconds", [("30m", 1800), ("6h", 21600), ("1d", 86400), ("1h30m", 5400),
                                           ("45s", 45), ("2w", 1209600), (" 1D ", 86400), ("1d12h", 129600)])
def test_durations(text, seconds):
    assert sched.parse_duration(text) == seconds
    assert sched.parse_duration(sched.format_duration(seconds)) == seconds


@pytest.mark.parametrize("text", ["", "6", "h", "6x", "1.5h", "-1h", "0m", "1h 30m", "30m1h30m", "6hours", "1h-"])
def test_bad_durations(text):
    with pytest.raises(BadInput, match="bad duration") as e:
        sched.parse_duration(text)
    assert "\n" not in str(e.value)


def test_windows():
    w = sched.parse_window("01:00-05:00")
    assert (w.start, w.end, str(w)) == (60, 300, "01:00-05:00")
    at = lambda h, m=0: datetime(2026, 3, 2, h, m, tzinfo=PLUS2)  # noqa: E731
    assert w.contains(at(1)) and w.contains(at(4, 59)) and not w.contains(at(5)) and not w.contains(at(0, 59))
    assert w.next_open(at(3)) == at(3)
    assert w.next_open(at(6)) == at(1) + timedelta(days=1)
    assert w.next_open(at(0, 30)) == at(1)
    night = sched.parse_window("22:00-04:00")  # crosses midnight
    assert night.contains(at(23)) and night.contains(at(3)) and not night.contains(at(12))
    assert night.next_open(at(12)) == at(22)
    for bad in ("1-5", "01:00", "25:00-26:00", "01:00-01:00", "01:60-02:00", "01:00-05:00-06:00", "a-b"):
        with pytest.raises(BadInput, match="bad window"):
            sched.parse_window(bad)


def test_align_puts_a_time_inside_the_window():
    w = sched.parse_window("01:00-05:00")
    assert sched.align(T0, None) == T0
    # 12:00 UTC is 14:00 at +2: the window next opens at 01:00 +2 = 23:00 UTC.
    assert sched.align(T0, w, PLUS2) == datetime(2026, 3, 2, 23, 0, tzinfo=UTC)
    inside = datetime(2026, 3, 2, 0, 30, tzinfo=UTC)  # 02:30 local
    assert sched.align(inside, w, PLUS2) == inside


@pytest.fixture
def jobs_store(tmp_path):
    st = Store.open(tmp_path / "store", create=True)
    yield st
    st.close()


class Clock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t

    def advance(self, **kw) -> None:
        self.t += timedelta(**kw)


def test_jobs_fall_due_run_and_record_their_outcome(jobs_store, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    clock = Clock(T0)
    job = sched.add_job(jobs_store, src, "6h", collection="c", now=clock())
    assert (job["dir"], job["collection"], job["every_seconds"], job["next_due_at"]) == (str(src), "c", 21600,
                                                                                         "2026-03-02T12:00:00Z")
    with pytest.raises(BadInput, match="already scheduled"):
        sched.add_job(jobs_store, src, "1h", collection="c")
    with pytest.raises(BadInput, match="no such directory"):
        sched.add_job(jobs_store, tmp_path / "nowhere", "1h")
    calls: list[tuple] = []

    def ingest(root, collection):
        calls.append((root, collection))
        return {"added": 1, "updated": 0, "removed": 0, "failed": 0}

    [o] = sched.run_due(jobs_store, ingest, now=clock)
    assert o.status == "ok" and calls == [(src, "c")]
    j = sched.list_jobs(jobs_store)[0]
    assert (j["last_status"], j["last_success_at"], j["consecutive_failures"], j["failing"]) == (
        "ok", "2026-03-02T12:00:00Z", 0, False)
    assert j["next_due_at"] == "2026-03-02T18:00:00Z"
    clock.advance(hours=5, minutes=59)
    assert sched.run_due(jobs_store, ingest, now=clock) == [] and len(calls) == 1
    clock.advance(minutes=1)
    assert [o.status for o in sched.run_due(jobs_store, ingest, now=clock)] == ["ok"]

    # Failing: recorded with its reason, retried after 5 min, 10 min... at most the period.
    def broken(root, collection):
        raise BadInput(f"{root}: no such directory")

    clock.advance(hours=6)
    for n, retry in [(1, 5), (2, 10), (3, 20)]:
        [o] = sched.run_due(jobs_store, broken, now=clock)
        assert (o.status, o.error) == ("failed", f"{src}: no such directory")
        j = sched.list_jobs(jobs_store)[0]
        assert (j["consecutive_failures"], j["failing"], j["last_error"], j["last_status"]) == (
            n, True, f"{src}: no such directory", "failed")
        assert j["last_failure_at"] == sched._ts(clock())
        assert j["next_due_at"] == sched._ts(clock() + timedelta(minutes=retry))
        assert j["last_success_at"] == "2026-03-02T18:00:00Z"  # kept
        clock.advance(minutes=retry)
    # A partial run (some files failed) is a success of the job.
    [o] = sched.run_due(jobs_store, lambda r, c: {"added": 0, "updated": 0, "removed": 0, "failed": 2}, now=clock)
    j = sched.list_jobs(jobs_store)[0]
    assert (o.status, j["consecutive_failures"], j["failing"], j["last_status"]) == ("partial", 0, False, "partial")
    assert j["last_error"] == f"{src}: no such directory"  # the last failure's reason stays on record

    assert sched.remove_job(jobs_store, job["id"])["id"] == job["id"]
    assert sched.list_jobs(jobs_store) == []
    with pytest.raises(BadInput, match="no scheduled job"):
        sched.remove_job(jobs_store, job["id"])


def test_a_windowed_job_runs_only_inside_its_window(jobs_store, tmp_path):
    clock = Clock(T0)  # 14:00 local
    job = sched.add_job(jobs_store, tmp_path, "6h", window="01:00-05:00", now=clock(), tz=PLUS2)
    assert job["window"] == "01:00-05:00" and job["next_due_at"] == "2026-03-02T23:00:00Z"
    ok = lambda r, c: {"added": 0, "updated": 0, "removed": 0, "failed": 0}  # noqa: E731
    assert sched.run_due(jobs_store, ok, now=clock, tz=PLUS2) == []
    clock.t = datetime(2026, 3, 2, 23, 0, tzinfo=UTC)  # 01:00 local
    assert len(sched.run_due(jobs_store, ok, now=clock, tz=PLUS2)) == 1
    # Every 6 h from 01:00 is 07:00, outside: next night at 01:00.
    assert sched.list_jobs(jobs_store)[0]["next_due_at"] == "2026-03-03T23:00:00Z"
    # Overdue while no scheduler ran, and now outside the window: waits for the window.
    clock.t = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)  # 12:00 local
    assert sched.run_due(jobs_store, ok, now=clock, tz=PLUS2) == []
    with jobs_store.session() as s:
        [j] = s.scalars(select(JobRow)).all()
    assert sched.effective_due(j, clock(), PLUS2) == datetime(2026, 3, 4, 23, 0, tzinfo=UTC)


def test_the_foreground_loop_runs_due_jobs_and_sleeps_until_the_next(jobs_store, tmp_path):
    sched.add_job(jobs_store, tmp_path, "30m", now=T0 - timedelta(seconds=1))
    clock = Clock(T0)
    stop = threading.Event()
    sleeps: list[float] = []
    ran: list[str] = []

    def on_sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 14:
            stop.set()

    def ingest(root, collection):
        ran.append(sched._ts(clock()))
        return {"added": 0, "updated": 0, "removed": 0, "failed": 0}

    sched.run_forever(jobs_store, ingest, stop=stop, on_sleep=on_sleep, now=clock,
                      sleep=lambda s: clock.advance(seconds=s))
    assert set(sleeps) == {300.0}  # at most MAX_SLEEP at a time, to see jobs added meanwhile
    assert ran == ["2026-03-02T12:00:00Z", "2026-03-02T12:30:00Z", "2026-03-02T13:00:00Z"]


def test_one_scheduler_per_store(jobs_store):
    with sched.scheduler_lock(jobs_store):
        with pytest.raises(sched.SchedulerBusy, match="another `msa schedule run`"):
            with sched.scheduler_lock(Store.open(jobs_store.path)):
                pass
    with sched.scheduler_lock(jobs_store):
        pass


def test_systemd_units_and_cron_line(tmp_path, monkeypatch):
    monkeypatch.setenv("MSA_MODEL", "/models/my model")
    store = tmp_path / "st"
    units = sched.systemd_units(store, "15m")
    assert sorted(units) == ["msa-schedule.service", "msa-schedule.timer"]
    service, timer = units["msa-schedule.service"], units["msa-schedule.timer"]
    assert "Type=oneshot" in service and f"schedule run --once --store {store}" in service
    assert 'Environment="MSA_MODEL=/models/my model"' in service
    assert "OnCalendar=*:0/15" in timer and "Persistent=true" in timer and "WantedBy=timers.target" in timer
    assert "OnCalendar=0/6:00" in sched.systemd_units(store, "6h")["msa-schedule.timer"]
    assert "OnCalendar=daily" in sched.systemd_units(store, "1d")["msa-schedule.timer"]
    line = sched.cron_line(store, "15m")
    home = tmp_path / "msa-home"  # the isolated MSA_HOME: passed on too
    assert line.startswith(f"*/15 * * * * MSA_HOME={home} MSA_MODEL='/models/my model' flock -n ")
    assert f"{store}/cron.lock" in line and f"schedule run --once --store {store} >> {store}/schedule.log 2>&1" in line
    assert sched.cron_line(store, "1h").startswith("0 */1 * * * ")
    with pytest.raises(BadInput, match="must divide an hour or a day"):
        sched.systemd_units(store, "7m")
    written = sched.write_units(tmp_path / "units", units)
    assert [p.read_text() for p in written] == [service, timer]


# A store path or model path with the characters each target reads specially (issue #21, item 7).
_AWKWARD = "st %Q 50% $HOME 'q' \"d\" ;x"


def _cron_command(line: str) -> str:
    """What cron runs of a crontab line: the text after the five time fields, cut at the first
    unescaped `%` (the rest would go to standard input), with `\\%` turned back into `%`."""
    command = line.split(None, 5)[5]
    cut = re.search(r"(?<!\\)%", command)
    assert cut is None, f"unescaped % at {cut.start()}: {command!r}"
    return command.replace("\\%", "%")


def test_cron_line_survives_percent_quotes_and_dollars(tmp_path, monkeypatch):
    monkeypatch.setenv("MSA_MODEL", f"/models/{_AWKWARD}.gguf")
    store = tmp_path / _AWKWARD
    words = shlex.split(_cron_command(sched.cron_line(store, "15m")))
    assert f"MSA_MODEL=/models/{_AWKWARD}.gguf" in words
    assert words[words.index("--store") + 1] == str(store)
    assert str(store / "cron.lock") in words and str(store / "schedule.log") in words


@pytest.mark.parametrize("bad", ["/srv/a\nb", "/srv/a\rb", "/srv/a\x00b"])
def test_control_characters_never_reach_a_unit_or_crontab(tmp_path, monkeypatch, bad):
    store = Path(bad)
    with pytest.raises(BadInput, match="control character"):
        sched.cron_line(store, "15m")
    with pytest.raises(BadInput, match="control character"):
        sched.systemd_units(store, "15m")
    if "\x00" in bad:
        return  # no environment variable can hold a NUL
    monkeypatch.setenv("MSA_MODEL", f"/m{bad}ExecStartPre=/bin/sh -c evil")
    with pytest.raises(BadInput, match="control character"):
        sched.systemd_units(tmp_path / "st", "15m")
    with pytest.raises(BadInput, match="control character"):
        sched.cron_line(tmp_path / "st", "15m")


def test_systemd_units_with_awkward_paths_verify(tmp_path, monkeypatch):
    monkeypatch.setenv("MSA_MODEL", f"/models/{_AWKWARD}.gguf")
    units = sched.systemd_units(tmp_path / _AWKWARD, "15m")
    service = units["msa-schedule.service"]
    assert "%Q" not in service.replace("%%", "")  # no specifier left to expand anywhere
    for line in service.splitlines():
        if line.startswith(("ExecStart=", "Environment=")):
            assert "$HOME" not in line.replace("$$", "")  # nor a variable in a command or assignment
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed: the units' syntax is not checked by systemd here")
    paths = sched.write_units(tmp_path / "units", units)
    done = subprocess.run([tool, "verify", "--man=no", *map(str, paths)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
