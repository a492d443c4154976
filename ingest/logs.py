"""Sensor logs (CSV/TSV with a header, JSON lines): per-sensor windows of at most an hour, in UTC.

The windows and their summaries (window_documents) also serve the line logs of syslog.py."""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path

from .base import Document, SourceError, compress_lines, line_range_label
from .timestamps import FLOATING, FLOATING_NOYEAR, clock, iso, iso_len, localize, parse_value

CSV_EXTS = {".csv", ".tsv"}
JSONL_EXTS = {".jsonl", ".ndjson"}
# Lines of text, one event each (syslog RFC 3164/5424, logfmt): a log by extension for .syslog,
# by content for .log; .txt, extension-less and rotated ("syslog.1") files only by content.
TEXT_LOG_EXTS = {".log", ".syslog"}
LOG_EXTS = CSV_EXTS | JSONL_EXTS | TEXT_LOG_EXTS

WINDOW = timedelta(hours=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

# Earlier names win: a file with both "timestamp" and "date" is keyed on "timestamp".
_TS_NAMES = [
    "timestamp", "time", "ts", "datetime", "date_time", "event_time", "eventtime", "time_utc",
    "timestamp_utc", "utc", "@timestamp", "recorded_at", "created_at", "logged_at", "date_and_time", "timecreated",
    "time_created", "date", "t",
]  # fmt: skip
# A column with one of these names is the clock even when its values do not parse: then the
# file is a log we fail on loudly, not a text file.
_STRONG_TS_NAMES = {"timestamp", "datetime", "@timestamp", "event_time", "time_utc", "timestamp_utc"}
_SENSOR_NAMES = [
    "sensor", "sensor_id", "sensorid", "sensor_name", "sensor_tag", "device", "device_id", "deviceid",
    "device_name", "tag", "tag_id", "tag_name", "tagname", "source", "source_id", "host", "hostname",
    "asset", "asset_id", "equipment", "equipment_id", "id",
]  # fmt: skip
_NUMERIC = re.compile(r"^[+-]?\d+(?:\.\d+)?$")
_ISO_START = re.compile(r"^\d{4}[-/]\d{2}[-/]\d{2}")
_FRACTION = re.compile(r"(\.\d{6})\d+")
_SAMPLE_ROWS = 50
# (smallest magnitude, ticks per second): epoch seconds, milliseconds, microseconds, nanoseconds
_EPOCH_UNITS = [(Decimal("1e8"), 1), (Decimal("1e11"), 10**3), (Decimal("1e14"), 10**6), (Decimal("1e17"), 10**9)]

# --- window summary: facts computed from the rows, put between the header line and the rows ---
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
_MISSING = {"", "-", "na", "n/a", "nan", "null", "none"}
_STATUS_NAME = re.compile(r"status|state|level|severity|event|alarm|alert")
_NORMAL = {
    "ok", "normal", "nominal", "info", "notice", "good", "healthy", "debug", "trace", "pass", "passed", "false", "no",
    "information", "informational", "log", "config", "fine", "finer", "finest",
}  # fmt: skip
# Order among the severe (and among the warning) values in a title: syslog's, most severe first.
_RANK = {
    "emerg": 0, "emergency": 0, "panic": 0, "alert": 1, "crit": 2, "critical": 2, "fatal": 2, "err": 3, "error": 3,
    "warning": 4, "warn": 4,
}  # fmt: skip
_SEVERE = re.compile(r"crit|fatal|emerg|alarm|alert|err|fail|fault|trip|panic|danger", re.I)
_WARNING = re.compile(r"warn|caution", re.I)
_ID_LIKE = re.compile(r"^(?:id|.*_id|seq.*|index|idx|row|row_?(?:no|num|number)|line|line_?(?:no|num|number)|record)$")
_METRIC_NAMES = ("metric", "metric_name", "measurement", "variable", "quantity", "parameter", "signal")
_VALUE_NAMES = ("value", "reading", "val", "metric_value", "measurement_value")
_MAX_TIMES = 5  # times listed per status value in the summary
_MAX_STATUS_VALUES = 16  # a "status" column with more distinct values in a window is free text
_MAX_STATUS_LEN = 24
_MAX_STATUS_LINES = 2
_MAX_SUMMARY_LINES = 5


def _norm(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().strip('"').lower())


def parse_timestamp(value: object) -> tuple[datetime, bool] | None:
    """(aware datetime, naive?) for ISO-8601 text, epoch seconds/ms/µs/ns, or the other forms of
    timestamps.parse_value (3/14/2024 2:17:00 PM, ctime, CLF); None otherwise.

    A time with a zone is returned in UTC; one without (naive) in timestamps.FLOATING: a wall
    clock of an unknown zone. Epoch units are told apart by magnitude, which is unambiguous for
    dates 1973–2286.
    """
    if isinstance(value, bool) or value is None:
        return None
    s = str(value).strip()
    if not s:
        return None
    if _NUMERIC.match(s):
        try:
            v = Decimal(s)
        except InvalidOperation:
            return None
        a = abs(v)
        for lo, per_second in _EPOCH_UNITS:
            if lo <= a < lo * 1000:
                micros = int((v * 10**6 / per_second).to_integral_value())
                try:
                    return _EPOCH + timedelta(microseconds=micros), False
                except OverflowError:
                    return None
        return None
    if not _ISO_START.match(s):
        t = parse_value(s)
        return None if t is None else (t, t.tzinfo is FLOATING)
    s = s[:4] + "-" + s[5:7] + "-" + s[8:]  # 2024/03/14 -> 2024-03-14
    if s[-1] in "zZ":
        s = s[:-1] + "+00:00"
    s = _FRACTION.sub(r"\1", s)  # fromisoformat takes at most microseconds
    try:
        t = datetime.fromisoformat(s)
    except ValueError:
        return None
    if t.tzinfo is None:
        return t.replace(tzinfo=FLOATING), True
    return t.astimezone(timezone.utc), False


def iso_z(t: datetime) -> str:
    """2024-03-14T02:17:00Z (milli- or microseconds only when present); without the Z when the
    source said no zone, without the year when it said none (see timestamps.iso)."""
    return iso(t)


_iso_len = iso_len


def _pick_columns(names: list[str], samples: list[list[object]]) -> tuple[int | None, int | None]:
    """(timestamp column, sensor column) indexes by name, the timestamp falling back to content."""
    normed = [_norm(n) for n in names]
    ts = next((normed.index(n) for n in _TS_NAMES if n in normed), None)
    if ts is None:
        named = [
            i for i, n in enumerate(normed) if n.endswith(("_time", "_ts", "timestamp", "_at")) or n.startswith("time")
        ]
        ts = named[0] if named else None
    if ts is not None and samples and normed[ts] not in _STRONG_TS_NAMES:
        ok = sum(1 for r in samples if ts < len(r) and parse_timestamp(r[ts]) is not None)
        if ok == 0:
            ts = None  # a "time" column of durations or labels is not our clock
    if ts is None and samples:
        best = 0.0
        for i in range(len(names)):
            vals = [r[i] for r in samples if i < len(r)]
            parsed = [v for v in vals if parse_timestamp(v) is not None]
            # ISO text beats bare numbers, which may just as well be counters.
            iso = any(_ISO_START.match(str(v).strip()) for v in parsed)
            score = len(parsed) / max(len(vals), 1) + (0.5 if iso else 0)
            if len(parsed) >= 0.8 * len(vals) and score > best:
                best, ts = score, i
    sensor = next((normed.index(n) for n in _SENSOR_NAMES if n in normed and normed.index(n) != ts), None)
    if sensor is not None and normed[sensor] == "id" and len(samples) >= 20:
        values = [r[sensor] for r in samples if sensor < len(r)]
        if len(set(values)) == len(values):
            sensor = None  # a row number, not a device: one window per row would be useless
    if sensor is None:
        sensor = next((i for i, n in enumerate(normed) if i != ts and ("sensor" in n or "device" in n)), None)
    return ts, sensor


def _delimiter(path: Path, header_line: str) -> str:
    if path.suffix.lower() == ".tsv":
        return "\t"
    counts = {d: header_line.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


@dataclass
class _Row:
    t: datetime
    naive: bool
    sensor: str | None
    line_start: int
    line_end: int
    raw: str
    fields: dict[str, str]  # the other columns, by name (JSON scalars as JSON text)


@dataclass
class _Layout:
    fmt: str  # "csv" | "jsonl" | "journald"
    ts: int | str
    sensor: int | str | None
    delimiter: str = ","
    header_lines: tuple[int, int] = (0, 0)
    header_raw: str = ""
    ts_name: str = ""
    sensor_name: str | None = None
    names: tuple[str, ...] = ()  # CSV column names
    long: tuple[str, str] | None = None  # (metric column, value column) of a long-format log


def _csv_records(text: str, delimiter: str):
    """(line_start, line_end, fields | None) per record; None for a record csv cannot parse."""
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    prev = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error:
            yield prev + 1, reader.line_num, None
            prev = reader.line_num
            continue
        if row:  # csv yields [] for a blank line
            yield prev + 1, reader.line_num, row
        prev = reader.line_num


def _layout_csv(path: Path, text: str) -> _Layout | None:
    first = next((ln for ln in text.split("\n", 50)[:50] if ln.strip()), "")
    delim = _delimiter(path, first)
    records = _csv_records(text, delim)
    header = None
    samples = []
    for a, b, row in records:
        if header is None:
            if row is None:
                return None
            header = (a, b, row)
            continue
        if row is not None:
            samples.append(row)
        if len(samples) >= _SAMPLE_ROWS:
            break
    if header is None or len(header[2]) < 2:
        return None
    ts, sensor = _pick_columns(header[2], samples)
    if ts is None:
        return None
    lines = text.split("\n")
    return _Layout(
        fmt="csv",
        ts=ts,
        sensor=sensor,
        delimiter=delim,
        header_lines=(header[0], header[1]),
        header_raw="\n".join(lines[header[0] - 1 : header[1]]),
        ts_name=header[2][ts].strip(),
        sensor_name=header[2][sensor].strip() if sensor is not None else None,
        names=tuple(n.strip() for n in header[2]),
        long=_long_format([n.strip() for n in header[2]]),
    )


def _layout_jsonl(text: str) -> _Layout | None:
    objs = []
    for ln in text.split("\n", 2 * _SAMPLE_ROWS)[: 2 * _SAMPLE_ROWS]:
        try:
            o = json.loads(ln)
        except ValueError:
            continue
        if isinstance(o, dict):
            objs.append(o)
    if not objs:
        return None
    keys = list(dict.fromkeys(k for o in objs for k in o))
    if "__REALTIME_TIMESTAMP" in keys and "MESSAGE" in keys:  # journalctl -o json
        return _Layout(fmt="journald", ts="__REALTIME_TIMESTAMP", sensor="_HOSTNAME", ts_name="__REALTIME_TIMESTAMP",
                       sensor_name="_HOSTNAME")
    ts, sensor = _pick_columns(keys, [[o.get(k) for k in keys] for o in objs])
    if ts is None:
        return None
    return _Layout(
        fmt="jsonl",
        ts=keys[ts],
        sensor=keys[sensor] if sensor is not None else None,
        ts_name=keys[ts],
        sensor_name=keys[sensor] if sensor is not None else None,
        long=_long_format(keys),
    )


_SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")


def _journald_fields(o: dict) -> dict[str, str]:
    """A journal entry's severity (PRIORITY) and app (SYSLOG_IDENTIFIER, else _COMM); its dozens
    of other fields (_PID, _UID, cursors) would only be noise in a summary."""
    out = {}
    p = str(o.get("PRIORITY", ""))
    if p.isdigit() and int(p) < 8:
        out["severity"] = _SEVERITIES[int(p)]
    app = o.get("SYSLOG_IDENTIFIER") or o.get("_COMM")
    out["app"] = app if isinstance(app, str) and app else "-"
    return out


def _long_format(names: list[str]) -> tuple[str, str] | None:
    """(metric column, value column) when rows are metric/value pairs, as in plant_sensors.csv."""
    normed = [_norm(n) for n in names]
    m = next((names[normed.index(n)] for n in _METRIC_NAMES if n in normed), None)
    v = next((names[normed.index(n)] for n in _VALUE_NAMES if n in normed), None)
    return (m, v) if m is not None and v is not None else None


def _scalar(v: object) -> str | None:
    if isinstance(v, str):
        return v
    if v is None or isinstance(v, (dict, list)):
        return None
    return json.dumps(v)


def sniff_log(path: Path, text: str) -> bool:
    """Whether a CSV/TSV/JSONL file has a clock we can window by; whether a .log file's first
    lines are syslog or logfmt (a .syslog file is a log by its name)."""
    ext = path.suffix.lower()
    if ext in TEXT_LOG_EXTS:
        from .syslog import sniff_text_log

        return ext == ".syslog" or sniff_text_log(text) is not None
    try:
        if ext in CSV_EXTS:
            return _layout_csv(path, text) is not None
        if ext in JSONL_EXTS:
            return _layout_jsonl(text) is not None
    except (csv.Error, ValueError):
        return False
    return False


_MAYBE_LOG_EXTS = {".txt", "", ".out", ".err"}
_ROTATED = re.compile(r"\.[\d_-]+")  # messages.1, syslog.2005-12-04, app.log.20051204


def maybe_text_log(path: Path, text: str) -> bool:
    """Whether a .txt, .out, .err, extension-less or rotated ("messages.1") file is a line log
    (syslog, logfmt, or timestamped lines: see syslog.sniff_text_log); whether a .json file is
    JSON lines with a clock (journalctl -o json)."""
    ext = path.suffix.lower()
    if ext == ".json":
        try:
            return json_lines(text) and _layout_jsonl(text) is not None
        except (ValueError, RecursionError):
            return False
    if ext not in _MAYBE_LOG_EXTS and not _ROTATED.fullmatch(ext):
        return False
    from .syslog import sniff_text_log

    return sniff_text_log(text) is not None


def _rows(text: str, layout: _Layout) -> tuple[list[_Row], int, int]:
    """Parsed rows, the number skipped as malformed, and the first malformed line."""
    rows: list[_Row] = []
    skipped, first_bad = 0, 0
    lines = text.split("\n")

    def bad(line: int) -> None:
        nonlocal skipped, first_bad
        skipped += 1
        first_bad = first_bad or line

    if layout.fmt == "csv":
        width = None
        keep: dict[str, int] = {}
        for i, n in enumerate(layout.names):
            if n and i != layout.ts and i != layout.sensor and n not in keep:
                keep[n] = i
        for a, b, fields in _csv_records(text, layout.delimiter):
            if b <= layout.header_lines[1]:
                if fields is not None:
                    width = len(fields)
                continue
            if fields is None:
                bad(a)
                continue
            extra = fields[width:] if width is not None else []
            if width is not None and (len(fields) < width or any(f.strip() for f in extra)):
                bad(a)
                continue
            parsed = parse_timestamp(fields[layout.ts])
            if parsed is None:
                bad(a)
                continue
            sensor = fields[layout.sensor].strip() if layout.sensor is not None else None
            values = {n: fields[i] for n, i in keep.items() if i < len(fields)}
            rows.append(_Row(parsed[0], parsed[1], sensor, a, b, "\n".join(lines[a - 1 : b]), values))
    else:
        for i, ln in enumerate(lines, 1):
            if not ln.strip():
                continue
            try:
                o = json.loads(ln)
            except ValueError:
                bad(i)
                continue
            parsed = parse_timestamp(o.get(layout.ts)) if isinstance(o, dict) else None
            if parsed is None:
                bad(i)
                continue
            sensor = None
            if layout.sensor is not None:
                v = o.get(layout.sensor)
                sensor = "" if v is None else str(v).strip()
            if layout.fmt == "journald":
                values = _journald_fields(o)
            else:
                values = {}
                for k, v in o.items():
                    if k != layout.ts and k != layout.sensor and (sv := _scalar(v)) is not None:
                        values[k] = sv
            rows.append(_Row(parsed[0], parsed[1], sensor, i, i, ln, values))
    return rows, skipped, first_bad


def _header_line(sensor: str | None, t0: datetime, t1: datetime, word: str = "sensor") -> str:
    who = "all rows" if sensor is None else f"{word} {sensor or '(none)'}"
    return f"{who}, {iso_z(t0)} – {iso_z(t1)}"


def _clock(t: datetime) -> str:
    """02:17:00Z: the time of day, enough within a window of one clock hour."""
    return clock(t)


class _Stat:
    """Count, sum, first minimum and first maximum of one metric, as written in the rows."""

    def __init__(self) -> None:
        self.n, self.total, self.decimals, self.exp = 0, 0.0, 0, False
        self.min: tuple[float, str, datetime] | None = None
        self.max: tuple[float, str, datetime] | None = None

    def add(self, x: float, raw: str, t: datetime) -> None:
        self.n += 1
        self.total += x
        if "e" in raw or "E" in raw:
            self.exp = True
        elif "." in raw:
            self.decimals = max(self.decimals, len(raw) - raw.index(".") - 1)
        if self.min is None or x < self.min[0]:
            self.min = (x, raw, t)
        if self.max is None or x > self.max[0]:
            self.max = (x, raw, t)

    def mean(self) -> tuple[float, str]:
        m = self.total / self.n
        if self.exp:
            return float(f"{m:.6g}"), f"{m:.6g}"
        d = min(max(self.decimals, 2), 6)
        return round(m, d), f"{m:.{d}f}"

    def line(self, name: str) -> str:
        assert self.min is not None and self.max is not None
        if self.n == 1:
            return f"{name}: {self.min[1]} at {_clock(self.min[2])} (1 row)"
        lo, hi = self.min, self.max
        span = f"min {lo[1]} at {_clock(lo[2])}, max {hi[1]} at {_clock(hi[2])}"
        return f"{name}: {span}, mean {self.mean()[1]} ({self.n} rows)"

    def data(self) -> dict:
        assert self.min is not None and self.max is not None
        return {
            "min": self.min[0], "min_t": iso_z(self.min[2]), "max": self.max[0], "max_t": iso_z(self.max[2]),
            "mean": self.mean()[0], "n": self.n,
        }  # fmt: skip


def _normal(value: str) -> bool:
    return value.lower() in _NORMAL


def _severity(value: str) -> tuple[int, int]:
    return (0 if _SEVERE.search(value) else 1 if _WARNING.search(value) else 2), _RANK.get(value.lower(), 9)


@lru_cache(maxsize=1024)
def _column_kind(name: str) -> tuple[bool, bool]:
    """(an identifier or a second clock: neither metric nor status, named like a status)."""
    n = _norm(name)
    clock = n in _TS_NAMES or n.endswith(("_time", "_ts", "timestamp", "_at")) or n.startswith("time")
    return bool(clock or _ID_LIKE.match(n)), bool(_STATUS_NAME.search(n))


class _Summary:
    """Facts about one window's rows, added one row at a time.

    Numeric columns (or, in a long-format log, each metric name) get min/max/mean; a column named
    like a status (status, state, level, severity, event, alarm, alert) whose values are short
    codes gets counts per value and the times of every value other than OK/NORMAL/INFO/...
    Columns are classified per window, from its rows only, so appending rows to a log changes
    only its last windows. Tally columns (a syslog's app) are counted per value, most frequent
    first, and flag nothing.
    """

    def __init__(self, long: tuple[str, str] | None, tally: tuple[str, ...] = ()) -> None:
        self.long = long
        self.tallies: dict[str, dict[str, int]] = {k: {} for k in tally}
        self.stats: dict[str, _Stat] = {}
        self.text: dict[str, int] = {}  # column -> non-numeric values seen
        self.codes: dict[str, dict[str, list]] = {}  # status column -> value -> [count, first times]
        self.free: set[str] = set()  # status-named columns whose values are not short codes

    def copy(self) -> _Summary:
        c = _Summary(self.long)
        c.tallies = {k: dict(v) for k, v in self.tallies.items()}
        c.stats = {k: copy.copy(s) for k, s in self.stats.items()}
        c.text = dict(self.text)
        c.codes = {k: {v: [n, *ts] for v, (n, *ts) in values.items()} for k, values in self.codes.items()}
        c.free = set(self.free)
        return c

    def _stat(self, name: str, v: str, t: datetime) -> bool:
        if not _NUMBER.match(v):
            return False
        x = float(v)
        if math.isfinite(x):
            s = self.stats.get(name)
            if s is None:
                s = self.stats[name] = _Stat()
            s.add(x, v, t)
        return True

    def add(self, r: _Row) -> None:
        long = self.long or ()
        for k, v in r.fields.items():
            v = v.strip()
            if k in long or v.lower() in _MISSING:
                continue
            if k in self.tallies:
                self.tallies[k][v] = self.tallies[k].get(v, 0) + 1
                continue
            skip, status_named = _column_kind(k)
            if skip or self._stat(k, v, r.t):
                continue
            self.text[k] = self.text.get(k, 0) + 1
            if k in self.free or not status_named:
                continue
            values = self.codes.setdefault(k, {})
            seen = values.get(v)
            if seen is None:
                values[v] = [1, r.t]
                if len(values) > _MAX_STATUS_VALUES or len(v) > _MAX_STATUS_LEN or len(v.split()) != 1:
                    self.free.add(k)
                    del self.codes[k]
            else:
                seen[0] += 1
                if len(seen) <= _MAX_TIMES:
                    seen.append(r.t)
        if long:
            m, v = (r.fields.get(c, "").strip() for c in long)
            if m and v.lower() not in _MISSING:
                self._stat(m, v, r.t)

    def metrics(self) -> dict[str, _Stat]:
        """Metrics whose values are at least 90% numbers in this window."""
        return {k: s for k, s in self.stats.items() if s.n >= 9 * self.text.get(k, 0)}

    def statuses(self) -> dict[str, dict[str, list]]:
        metrics = self.metrics()
        return {k: v for k, v in self.codes.items() if k not in metrics}

    def flagged(self) -> list[str]:
        """Non-normal status values present, most severe first, then in order of appearance."""
        seen = dict.fromkeys(v for values in self.statuses().values() for v in values if not _normal(v))
        return sorted(seen, key=_severity)

    def lines(self, budget: int) -> list[str]:
        """At most 5 lines, metrics then statuses, of at most `budget` chars in all (statuses kept first)."""
        status_lines = []
        for k, values in list(self.statuses().items())[:_MAX_STATUS_LINES]:
            normal = sorted((v for v in values if _normal(v)), key=lambda v: -values[v][0])
            parts = [f"{values[v][0]} {v}" for v in normal]
            for v, (n, *times) in values.items():
                if not _normal(v):
                    listed = [_clock(t) for t in times] + (["…"] if n > len(times) else [])
                    parts.append(f"{n} {v} ({', '.join(listed)})")
            status_lines.append(f"{k}: " + ", ".join(parts))
        tally_lines = [_tally_line(k, c) for k, c in self.tallies.items() if c]
        room = _MAX_SUMMARY_LINES - len(status_lines) - len(tally_lines)
        metric_lines = [s.line(k) for k, s in self.metrics().items()][: max(room, 0)]
        keep, used = set(), 0
        for ln in status_lines + tally_lines + metric_lines:
            if used + len(ln) + 1 <= budget:
                keep.add(ln)
                used += len(ln) + 1
        return [ln for ln in metric_lines + status_lines + tally_lines if ln in keep]

    def data(self, rows: list[_Row]) -> dict:
        """JSON-serialisable facts: stats per metric, counts per status value, the non-normal rows."""
        out: dict = {}
        if metrics := self.metrics():
            out["stats"] = {k: s.data() for k, s in metrics.items()}
        statuses = self.statuses()
        counts = {k: {v: x[0] for v, x in values.items()} for k, values in statuses.items()}
        counts.update({k: dict(_most_first(c)) for k, c in self.tallies.items() if c})
        if counts:
            out["counts"] = counts
        if statuses:
            events = []
            for r in rows:
                flags = {}
                for k, values in statuses.items():
                    v = r.fields.get(k, "").strip()
                    if v in values and not _normal(v):
                        flags[k] = v
                if flags:
                    events.append({"t": iso_z(r.t), **flags, "line": r.line_start})
            if events:
                out["events"] = events
        return out


def _most_first(counts: dict[str, int]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda kv: -kv[1])  # stable: ties in order of appearance


_MAX_TALLY = 8


def _tally_line(name: str, counts: dict[str, int]) -> str:
    items = _most_first(counts)
    parts = [f"{n} {v}" for v, n in items[:_MAX_TALLY]]
    if len(items) > _MAX_TALLY:
        parts.append(f"{sum(n for _, n in items[_MAX_TALLY:])} in {len(items) - _MAX_TALLY} other(s)")
    return f"{name}: " + ", ".join(parts)


def _summarise(rows: list[_Row], s: _Summary) -> _Summary:
    for r in rows:
        s.add(r)
    return s


def _time_notes(rows: list[_Row], extra: dict | None) -> dict:
    """What a window's times leave unsaid, and how they were read: {"format", "tz", "year", ...}."""
    out = {k: v for k, v in (extra or {}).items() if k not in ("tz", "year_from")}
    floating = noyear = named = False
    for r in rows:
        tz = r.t.tzinfo
        if tz is FLOATING:
            floating = True
        elif tz is FLOATING_NOYEAR:
            noyear = True
        elif r.naive:
            named = True
    if floating or noyear:
        out["tz"] = "unknown"
    elif named and extra and "tz" in extra:
        out["tz"] = extra["tz"]  # --timezone placed the wall clock in this zone
    if noyear:
        out["year"] = "unknown"
    elif extra and "year_from" in extra:
        out["year_from"] = extra["year_from"]
    return out


def _render(sensor: str | None, rows: list[_Row], summary: _Summary, prefix: str, max_chars: int, word: str) -> str:
    head = [_header_line(sensor, rows[0].t, rows[-1].t, word), *summary.lines(max_chars // 3)]
    return "\n".join(head) + "\n" + prefix + "\n".join(r.raw for r in rows)


def parse_log(
    path: Path, rel: str, text: str, max_chars: int, warnings: list[str] | None, tz: tzinfo | None = None
) -> list[Document]:
    """Rows grouped per sensor into clock-hour windows (split further to fit max_chars).

    Each window's text is a header line (sensor, first and last time), a short summary of its
    rows (see _Summary), the CSV header and the rows verbatim. Windows are aligned to whole hours
    so that appending rows to a log changes only the last window of each sensor, and
    re-ingestion can keep the rest. Other extensions (.log, .syslog, .txt...) are line logs
    (syslog, logfmt, or lines that start with a timestamp), read by syslog.parse_text_log.
    Times with a zone are shown in UTC; times without one as written, unless `tz` (--timezone)
    names their zone. journald's JSON export (journalctl -o json) is windowed per host, its
    PRIORITY read as a syslog severity.
    """
    ext = path.suffix.lower()
    if ext not in CSV_EXTS and ext not in JSONL_EXTS and not (ext == ".json" and json_lines(text)):
        from .syslog import parse_text_log

        return parse_text_log(path, rel, text, max_chars, warnings, tz=tz)
    try:
        layout = _layout_csv(path, text) if ext in CSV_EXTS else _layout_jsonl(text)
    except csv.Error as e:
        raise SourceError(rel, f"malformed CSV: {e}") from None
    if layout is None:
        raise SourceError(rel, "no timestamp column found")
    rows, skipped, first_bad = _rows(text, layout)
    if not rows:
        raise SourceError(rel, f"no row has a parseable timestamp in '{layout.ts_name}'")
    if skipped and warnings is not None:
        warnings.append(f"{rel}: skipped {skipped} malformed row(s), first at line {first_bad}")
    extra: dict = {"format": layout.fmt}
    if tz is not None:
        for r in rows:
            r.t = localize(r.t, tz)
        extra["tz"] = str(tz)
    if layout.fmt == "journald":
        return window_documents(rel, rows, max_chars=max_chars, word="host", source_field="host", tally=("app",),
                                extra=extra)
    prefix = layout.header_raw + "\n" if layout.fmt == "csv" else ""
    return window_documents(rel, rows, max_chars=max_chars, prefix=prefix, long=layout.long, extra=extra)


def json_lines(text: str) -> bool:
    """Whether a .json file is JSON lines (one object per line, journalctl -o json), not one document."""
    lines = [ln for ln in text.split("\n", 8)[:8] if ln.strip()]
    if len(lines) < 2 or not all(ln.lstrip().startswith("{") and ln.rstrip().endswith("}") for ln in lines[:-1]):
        return False
    try:
        return isinstance(json.loads(lines[0]), dict)
    except ValueError:
        return False


def window_documents(
    rel: str,
    rows: list[_Row],
    *,
    max_chars: int,
    prefix: str = "",
    long: tuple[str, str] | None = None,
    word: str = "sensor",
    source_field: str | None = None,
    tally: tuple[str, ...] = (),
    extra: dict | None = None,
) -> list[Document]:
    """Rows grouped per source (row.sensor) into clock-hour windows, split further to fit max_chars.

    Each window's text is a header line ("<word> <source>, first time – last time"), a short
    summary of its rows (see _Summary), the prefix (a CSV header) and the rows verbatim, in event
    time order. Windows are aligned to whole hours and filled greedily in time order, so appending
    rows to a log changes only the last window of each source (and adds new ones).
    anchor_data names the source as "sensor" or, given source_field, as "source" and
    "source_field"; says what the times do not ("tz": "unknown" for wall-clock times of no stated
    zone, "year": "unknown" when not even the year is known; see _time_notes); and holds `extra`
    (the format, where a year was inferred from, the zone --timezone named).
    """
    by_sensor: dict[str | None, list[_Row]] = {}
    for r in rows:
        by_sensor.setdefault(r.sensor, []).append(r)

    budget = max_chars // 3  # for the summary lines
    windows: list[tuple[str | None, list[_Row], _Summary]] = []
    for sensor, srows in by_sensor.items():
        srows.sort(key=lambda r: (r.t, r.line_start))
        who = len(_header_line(sensor, _EPOCH, _EPOCH, word)) - 2 * len(iso_z(_EPOCH))
        cur: list[_Row] = []
        summary = _Summary(long, tally)
        added = 0  # cur[:added] are in summary: rows are added only once the summary's size matters
        size = 0  # rows joined, plus one
        for r in srows:
            if cur and r.t - cur[0].t < WINDOW and r.t.hour == cur[0].t.hour:
                bare = who + _iso_len(cur[0].t) + _iso_len(r.t) + 1 + len(prefix) + size + len(r.raw)  # no summary
                if bare + budget <= max_chars:
                    cur.append(r)
                    size += len(r.raw) + 1
                    continue
                for x in cur[added:]:
                    summary.add(x)
                added = len(cur)
                trial = summary.copy()
                trial.add(r)
                if bare + sum(len(ln) + 1 for ln in trial.lines(budget)) <= max_chars:
                    cur.append(r)
                    summary, added = trial, added + 1
                    size += len(r.raw) + 1
                    continue
            if cur:
                windows.append((sensor, cur, _summarise(cur[added:], summary)))
            summary, added = _Summary(long, tally), 0
            cur, size = [r], len(r.raw) + 1
        if cur:
            windows.append((sensor, cur, _summarise(cur[added:], summary)))
    windows.sort(key=lambda w: (w[1][0].t, "" if w[0] is None else w[0]))

    docs = []
    for sensor, wrows, summary in windows:
        t0, t1 = wrows[0].t, wrows[-1].t
        text_out = _render(sensor, wrows, summary, prefix, max_chars, word)
        data: dict = {"t_start": iso_z(t0), "t_end": iso_z(t1)}
        ranges = compress_lines([n for r in wrows for n in range(r.line_start, r.line_end + 1)])
        data.update(line_start=ranges[0][0], line_end=ranges[-1][1], rows=len(wrows))
        if len(ranges) > 1:
            data["line_ranges"] = [list(x) for x in ranges]
        if sensor is not None:
            if source_field is None:
                data["sensor"] = sensor
            else:
                data.update(source=sensor, source_field=source_field)
        data.update(_time_notes(wrows, extra))
        data.update(summary.data(wrows))
        if len(text_out) > max_chars:  # one row longer than the whole budget
            text_out = text_out[: max_chars - 1] + "…"
            data["truncated"] = True
        title = " ".join(([] if sensor is None else [sensor]) + summary.flagged())
        docs.append(
            Document(
                path=rel,
                kind="log",
                anchor=f"{data['t_start']} – {data['t_end']}, {line_range_label([(ranges[0][0], ranges[-1][1])])}",
                anchor_data=data,
                text=text_out,
                title=title,
            )
        )
    return docs
