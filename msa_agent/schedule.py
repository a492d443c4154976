"""Scheduled re-ingestion: jobs kept in the store's database and run by `msa schedule run`.

A job re-ingests one directory into one collection every DURATION, optionally only inside a
daily time window (local time, may cross midnight). The scheduler alone records each job's
outcome: last success, last failure and its reason, consecutive failures and when it is next due.
A failed job is retried sooner than its period (5 min, doubling, at most the period), so a store
locked by a manual ingest costs minutes, not a period; one that keeps failing shows in
`msa status`.

`run_due` runs the jobs that are due once (cron, systemd timers: `msa schedule run --once`);
`run_forever` loops, sleeping until the next job is due (containers: `msa schedule run`).
"""

from __future__ import annotations

import fcntl
import os
import re
import shlex
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path

from sqlalchemy import select

from .engine import check_input_dir
from .errors import BadInput, MSAError
from .store import Store
from .store.schema import JobRow
from .store.store import job_dict

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+)([smhdw])")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
RETRY_SECONDS = 300  # first retry after a failure; doubles per consecutive failure, at most the period
MAX_SLEEP = 300.0  # the loop re-reads the jobs at least this often (jobs added or removed meanwhile)
_TIME = "%Y-%m-%dT%H:%M:%SZ"


class SchedulerBusy(MSAError):
    """Another scheduler is running the jobs of this store."""


def parse_duration(text: str) -> int:
    """"30m", "6h", "1d", "1h30m", "45s", "2w" -> seconds."""
    t = text.strip().lower()
    parts = _DURATION.findall(t)
    units = [u for _, u in parts]
    if not t or "".join(n + u for n, u in parts) != t or len(set(units)) != len(units):
        raise BadInput(f"bad duration {text!r}: a number and a unit (s, m, h, d, w), like 30m, 6h, 1d or 1h30m")
    seconds = sum(int(n) * UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise BadInput(f"bad duration {text!r}: must be longer than zero")
    return seconds


def format_duration(seconds: int) -> str:
    """3600 -> "1h", 5400 -> "1h30m"."""
    out = ""
    for unit in ("w", "d", "h", "m", "s"):
        n, seconds = divmod(seconds, UNITS[unit])
        if n:
            out += f"{n}{unit}"
    return out or "0s"


@dataclass(frozen=True)
class Window:
    """A daily window of local time, [start, end) in minutes after midnight; may cross midnight."""

    start: int
    end: int

    def __str__(self) -> str:
        return f"{self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:{self.end % 60:02d}"

    def contains(self, local: datetime) -> bool:
        m = local.hour * 60 + local.minute
        if self.start < self.end:
            return self.start <= m < self.end
        return m >= self.start or m < self.end

    def next_open(self, local: datetime) -> datetime:
        """`local` when inside the window, else the window's next opening (same zone)."""
        if self.contains(local):
            return local
        opening = local.replace(hour=self.start // 60, minute=self.start % 60, second=0, microsecond=0)
        return opening if opening > local else opening + timedelta(days=1)


def parse_window(text: str) -> Window:
    """"01:00-05:00" (local time; "22:00-04:00" crosses midnight) -> Window."""
    parts = text.strip().split("-")
    clocks = [_CLOCK.match(p.strip()) for p in parts]
    if len(parts) != 2 or not all(clocks):
        raise BadInput(f"bad window {text!r}: HH:MM-HH:MM in local time, like 01:00-05:00")
    start, end = (int(m.group(1)) * 60 + int(m.group(2)) for m in clocks)
    if start == end:
        raise BadInput(f"bad window {text!r}: it opens and closes at the same time")
    return Window(start, end)


def _ts(t: datetime) -> str:
    return t.astimezone(UTC).strftime(_TIME)


def _parse_ts(s: str) -> datetime:
    return datetime.strptime(s, _TIME).replace(tzinfo=UTC)


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def align(t: datetime, window: Window | None, tz: tzinfo | None = None) -> datetime:
    """The first moment at or after t (UTC) that lies inside the window (`tz`: its zone, default
    the machine's local one)."""
    if window is None:
        return t
    local = t.astimezone(tz) if tz is not None else t.astimezone()
    opened = window.next_open(local)
    if tz is None and opened != local:  # a DST change between now and the opening: recompute the offset
        opened = opened.replace(tzinfo=None).astimezone()
    return opened.astimezone(UTC)


def _window(job: JobRow) -> Window | None:
    return parse_window(job.window) if job.window else None


def effective_due(job: JobRow, now: datetime, tz: tzinfo | None = None) -> datetime:
    """When a job will next run: its due time, but never outside its window (a job whose time
    passed while no scheduler ran, and is now outside its window, waits for the window)."""
    due = _parse_ts(job.next_due_at) if job.next_due_at else now
    return align(max(due, now), _window(job), tz)


# ---- jobs ---------------------------------------------------------------------------------------


def add_job(store: Store, directory: Path, every: str, *, collection: str = "default", window: str | None = None,
            now: datetime | None = None, tz: tzinfo | None = None) -> dict:
    """Schedule re-ingestion of a directory; it is first due now (or when its window opens)."""
    seconds = parse_duration(every)
    win = parse_window(window) if window else None
    root = str(check_input_dir(Path(directory)))
    now = now or now_utc()
    with store.session() as s, s.begin():
        dup = s.scalar(select(JobRow).where(JobRow.root == root, JobRow.collection == collection))
        if dup is not None:
            raise BadInput(f"{root} is already scheduled into collection {collection!r} as job {dup.id} "
                           f"(remove it first: msa schedule remove {dup.id})")
        job = JobRow(root=root, collection=collection, every_seconds=seconds, window=str(win) if win else None,
                     created_at=_ts(now), next_due_at=_ts(align(now, win, tz)), consecutive_failures=0)
        s.add(job)
        s.flush()
        return job_dict(job)


def list_jobs(store: Store) -> list[dict]:
    with store.session() as s:
        return [job_dict(j) for j in s.scalars(select(JobRow).order_by(JobRow.id))]


def remove_job(store: Store, job_id: int) -> dict:
    with store.session() as s, s.begin():
        job = s.get(JobRow, job_id)
        if job is None:
            raise BadInput(f"no scheduled job {job_id} in {store.path} (see msa schedule list)")
        out = job_dict(job)
        s.delete(job)
    return out


def due_jobs(store: Store, now: datetime, tz: tzinfo | None = None) -> list[JobRow]:
    with store.session() as s:
        jobs = list(s.scalars(select(JobRow).order_by(JobRow.id)))
    return [j for j in jobs if effective_due(j, now, tz) <= now]


@dataclass
class JobOutcome:
    job: dict
    status: str  # ok | partial | failed
    error: str | None = None
    report: dict | None = None


# The function that re-ingests a job's directory: (root, collection) -> report dict, raising on failure.
IngestFn = Callable[[Path, str], dict]


def run_job(store: Store, job_id: int, ingest: IngestFn, *, now: Callable[[], datetime] = now_utc,
            tz: tzinfo | None = None) -> JobOutcome:
    """Run one job and record its outcome."""
    with store.session() as s:
        job = s.get(JobRow, job_id)
        if job is None:
            raise BadInput(f"no scheduled job {job_id}")
    started = now()
    report, error = None, None
    try:
        report = ingest(Path(job.root), job.collection)
        status = "partial" if report.get("failed") else "ok"
    except Exception as e:  # noqa: BLE001: any failure of a job is recorded, and the next job runs
        status = "failed"
        error = " ".join(str(e).split()) or type(e).__name__
    finished = now()
    with store.session() as s, s.begin():
        job = s.get(JobRow, job_id)
        if job is None:  # removed while it ran
            return JobOutcome({"id": job_id}, status, error, report)
        win = _window(job)
        job.last_run_at, job.last_status = _ts(started), status
        if status == "failed":
            job.consecutive_failures = (job.consecutive_failures or 0) + 1
            job.last_failure_at, job.last_error = _ts(finished), error
            retry = min(job.every_seconds, RETRY_SECONDS * 2 ** (job.consecutive_failures - 1))
            job.next_due_at = _ts(align(finished + timedelta(seconds=retry), win, tz))
        else:
            job.consecutive_failures = 0
            job.last_success_at = _ts(finished)
            job.next_due_at = _ts(align(started + timedelta(seconds=job.every_seconds), win, tz))
        s.flush()
        return JobOutcome(job_dict(job), status, error, report)


@contextmanager
def scheduler_lock(store: Store) -> Iterator[None]:
    """One scheduler per store (the jobs' own ingests still take the store's write lock)."""
    fd = os.open(store.path / "schedule.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            who = f" (pid {holder})" if holder.isdigit() else ""
            raise SchedulerBusy(f"{store.path}: another `msa schedule run` is running its jobs{who}") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)


def run_due(store: Store, ingest: IngestFn, *, now: Callable[[], datetime] = now_utc, tz: tzinfo | None = None,
            on_start: Callable[[JobRow], None] = lambda job: None,
            stop: threading.Event | None = None) -> list[JobOutcome]:
    """Run every job that is due now, one after another. The caller holds the scheduler lock."""
    out = []
    for job in due_jobs(store, now(), tz):
        if stop is not None and stop.is_set():
            break
        on_start(job)
        out.append(run_job(store, job.id, ingest, now=now, tz=tz))
    return out


def run_forever(store: Store, ingest: IngestFn, *, stop: threading.Event,
                on_outcome: Callable[[JobOutcome], None] = lambda o: None,
                on_start: Callable[[JobRow], None] = lambda job: None,
                on_sleep: Callable[[float], None] = lambda seconds: None,
                now: Callable[[], datetime] = now_utc, tz: tzinfo | None = None,
                sleep: Callable[[float], object] | None = None) -> None:
    """Run due jobs, sleep until the next one is due (at most MAX_SLEEP, to see new jobs), until
    `stop` is set. The caller holds the scheduler lock."""
    while not stop.is_set():
        for o in run_due(store, ingest, now=now, tz=tz, on_start=on_start, stop=stop):
            on_outcome(o)
        t = now()
        with store.session() as s:
            jobs = list(s.scalars(select(JobRow)))
        wake = min((effective_due(j, t, tz) for j in jobs), default=t + timedelta(seconds=MAX_SLEEP))
        seconds = min(MAX_SLEEP, max(1.0, (wake - t).total_seconds()))
        on_sleep(seconds)
        (sleep or stop.wait)(seconds)


# ---- installing: systemd timer or cron ----------------------------------------------------------


def msa_command() -> list[str]:
    """How a timer or cron calls this msa: the `msa` script beside this Python, else on PATH,
    else `python -m`."""
    beside = Path(sys.executable).parent / "msa"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which("msa")
    return [found] if found else [sys.executable, "-m", "msa_agent.cli.main"]


def _calendar(seconds: int) -> tuple[str, str]:
    """A check interval as (systemd OnCalendar, cron schedule)."""
    m, h = seconds // 60, seconds // 3600
    if seconds % 60 == 0 and 0 < m < 60 and 60 % m == 0:
        return f"*:0/{m}", f"*/{m} * * * *"
    if seconds % 3600 == 0 and 0 < h < 24 and 24 % h == 0:
        return f"0/{h}:00", f"0 */{h} * * *"
    if seconds == 86400:
        return "daily", "0 0 * * *"
    raise BadInput(f"the check interval must divide an hour or a day (like 5m, 15m, 1h, 6h or 1d), "
                   f"got {format_duration(seconds)}")


def _env() -> dict[str, str]:
    """The variables a timer or cron job needs to see the same home and model as this shell."""
    return {k: os.environ[k] for k in ("MSA_HOME", "MSA_MODEL", "MSA_DTYPE") if os.environ.get(k)}


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _no_control(what: str, value: str) -> str:
    """A path or variable that goes into a unit file or a crontab: a control character (a newline
    above all) would end the line and start an entry of the caller's choosing, so it is refused."""
    if _CONTROL.search(value):
        raise BadInput(f"{what} holds a control character ({value!r}): a timer or cron entry cannot carry it safely")
    return value


def _sd_quote(arg: str) -> str:
    """One word of a systemd command line or assignment: quoted, with `$` and `%` (variable and
    specifier expansion) doubled."""
    _no_control("a scheduled command's argument", arg)
    if arg and not re.search(r"[\s\"'\\$%;]", arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$").replace("%", "%%") + '"'


def _sd_text(text: str) -> str:
    """Free text of a unit (Description=): specifiers (`%`) doubled, control characters refused."""
    return _no_control("the store path", text).replace("%", "%%")


def _cron_word(arg: str) -> str:
    """One shell word of a crontab command: shell-quoted, and `%` escaped (cron turns an unescaped
    `%` into a newline and feeds the rest to the command's standard input)."""
    return shlex.quote(_no_control("a scheduled command's argument", arg)).replace("%", "\\%")


UNIT = "msa-schedule"


def systemd_units(store: Path, check_every: str = "15m") -> dict[str, str]:
    """A oneshot service running the due jobs and a persistent timer starting it: {file name: text}.
    Persistent=true: a run missed while the machine was off happens when it is back."""
    calendar, _ = _calendar(parse_duration(check_every))
    cmd = [*msa_command(), "schedule", "run", "--once", "--store", str(store)]
    env = "".join(f"Environment={_sd_quote(f'{k}={v}')}\n" for k, v in _env().items())
    service = (
        "[Unit]\n"
        f"Description=msa scheduled re-ingestion for {_sd_text(str(store))}\n\n"
        "[Service]\n"
        "Type=oneshot\n"
        f"{env}"
        f"ExecStart={' '.join(_sd_quote(a) for a in cmd)}\n"
        "Nice=10\n"
    )
    timer = (
        "[Unit]\n"
        f"Description=Run msa scheduled re-ingestion for {_sd_text(str(store))} ({check_every} checks)\n\n"
        "[Timer]\n"
        f"OnCalendar={calendar}\n"
        "Persistent=true\n"
        f"Unit={UNIT}.service\n\n"
        "[Install]\n"
        "WantedBy=timers.target\n"
    )
    return {f"{UNIT}.service": service, f"{UNIT}.timer": timer}


def cron_line(store: Path, check_every: str = "15m") -> str:
    """One crontab line; `flock -n` drops a check while the previous one still runs."""
    _, when = _calendar(parse_duration(check_every))
    env = " ".join(f"{k}={_cron_word(v)}" for k, v in _env().items())
    cmd = " ".join(_cron_word(a) for a in [*msa_command(), "schedule", "run", "--once", "--store", str(store)])
    lock = _cron_word(str(store / "cron.lock"))
    log = _cron_word(str(store / "schedule.log"))
    return f"{when} {env + ' ' if env else ''}flock -n {lock} {cmd} >> {log} 2>&1"


def write_units(directory: Path, units: dict[str, str]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for name, body in units.items():
        p = directory / name
        p.write_text(body)
        out.append(p)
    return out
