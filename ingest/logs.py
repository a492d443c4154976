"""Sensor logs (CSV/TSV with a header, JSON lines): per-sensor windows of at most an hour, in UTC."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path

from .base import Document, SourceError, compress_lines, line_range_label

CSV_EXTS = {".csv", ".tsv"}
JSONL_EXTS = {".jsonl", ".ndjson"}
LOG_EXTS = CSV_EXTS | JSONL_EXTS

WINDOW = timedelta(hours=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

# Earlier names win: a file with both "timestamp" and "date" is keyed on "timestamp".
_TS_NAMES = [
    "timestamp", "time", "ts", "datetime", "date_time", "event_time", "eventtime", "time_utc",
    "timestamp_utc", "utc", "@timestamp", "recorded_at", "created_at", "logged_at", "date", "t",
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


def _norm(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().strip('"').lower())


def parse_timestamp(value: object) -> tuple[datetime, bool] | None:
    """(aware UTC datetime, naive?) for ISO-8601 text or epoch seconds/ms/µs/ns; None otherwise.

    Epoch units are told apart by magnitude, which is unambiguous for dates 1973–2286.
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
        return None
    s = s[:4] + "-" + s[5:7] + "-" + s[8:]  # 2024/03/14 -> 2024-03-14
    if s[-1] in "zZ":
        s = s[:-1] + "+00:00"
    s = _FRACTION.sub(r"\1", s)  # fromisoformat takes at most microseconds
    try:
        t = datetime.fromisoformat(s)
    except ValueError:
        return None
    if t.tzinfo is None:
        return t.replace(tzinfo=timezone.utc), True
    return t.astimezone(timezone.utc), False


def iso_z(t: datetime) -> str:
    """2024-03-14T02:17:00Z (milli- or microseconds only when present)."""
    t = t.astimezone(timezone.utc)
    if t.microsecond == 0:
        spec = "seconds"
    elif t.microsecond % 1000 == 0:
        spec = "milliseconds"
    else:
        spec = "microseconds"
    return t.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def _iso_len(t: datetime) -> int:
    """len(iso_z(t)) without formatting it."""
    return 20 if t.microsecond == 0 else 24 if t.microsecond % 1000 == 0 else 27


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


@dataclass
class _Layout:
    fmt: str  # "csv" | "jsonl"
    ts: int | str
    sensor: int | str | None
    delimiter: str = ","
    header_lines: tuple[int, int] = (0, 0)
    header_raw: str = ""
    ts_name: str = ""
    sensor_name: str | None = None


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
    ts, sensor = _pick_columns(keys, [[o.get(k) for k in keys] for o in objs])
    if ts is None:
        return None
    return _Layout(
        fmt="jsonl",
        ts=keys[ts],
        sensor=keys[sensor] if sensor is not None else None,
        ts_name=keys[ts],
        sensor_name=keys[sensor] if sensor is not None else None,
    )


def sniff_log(path: Path, text: str) -> bool:
    """Whether a CSV/TSV/JSONL file has a clock we can window by."""
    ext = path.suffix.lower()
    try:
        if ext in CSV_EXTS:
            return _layout_csv(path, text) is not None
        if ext in JSONL_EXTS:
            return _layout_jsonl(text) is not None
    except (csv.Error, ValueError):
        return False
    return False


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
            rows.append(_Row(parsed[0], parsed[1], sensor, a, b, "\n".join(lines[a - 1 : b])))
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
            rows.append(_Row(parsed[0], parsed[1], sensor, i, i, ln))
    return rows, skipped, first_bad


def _header_line(sensor: str | None, t0: datetime, t1: datetime) -> str:
    who = "all rows" if sensor is None else f"sensor {sensor or '(none)'}"
    return f"{who}, {iso_z(t0)} – {iso_z(t1)}"


def parse_log(path: Path, rel: str, text: str, max_chars: int, warnings: list[str] | None) -> list[Document]:
    """Rows grouped per sensor into clock-hour windows (split further to fit max_chars), in UTC.

    Windows are aligned to whole hours so that appending rows to a log changes only the last
    window of each sensor, and re-ingestion can keep the rest.
    """
    ext = path.suffix.lower()
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

    prefix = layout.header_raw + "\n" if layout.fmt == "csv" else ""
    by_sensor: dict[str | None, list[_Row]] = {}
    for r in rows:
        by_sensor.setdefault(r.sensor, []).append(r)

    windows: list[tuple[str | None, list[_Row]]] = []
    for sensor, srows in by_sensor.items():
        srows.sort(key=lambda r: (r.t, r.line_start))
        who = len(_header_line(sensor, _EPOCH, _EPOCH)) - 2 * len(iso_z(_EPOCH))
        cur: list[_Row] = []
        size = 0
        for r in srows:
            if cur:
                same_hour = r.t - cur[0].t < WINDOW and r.t.hour == cur[0].t.hour
                head = who + _iso_len(cur[0].t) + _iso_len(r.t)
                fits = head + 1 + len(prefix) + size + len(r.raw) <= max_chars
                if not (same_hour and fits):
                    windows.append((sensor, cur))
                    cur, size = [], 0
            cur.append(r)
            size += len(r.raw) + 1
        if cur:
            windows.append((sensor, cur))
    windows.sort(key=lambda w: (w[1][0].t, "" if w[0] is None else w[0]))

    docs = []
    for sensor, wrows in windows:
        t0, t1 = wrows[0].t, wrows[-1].t
        text_out = _header_line(sensor, t0, t1) + "\n" + prefix + "\n".join(r.raw for r in wrows)
        data: dict = {"t_start": iso_z(t0), "t_end": iso_z(t1)}
        ranges = compress_lines([n for r in wrows for n in range(r.line_start, r.line_end + 1)])
        data.update(line_start=ranges[0][0], line_end=ranges[-1][1], rows=len(wrows))
        if len(ranges) > 1:
            data["line_ranges"] = [list(x) for x in ranges]
        if sensor is not None:
            data["sensor"] = sensor
        if any(r.naive for r in wrows):
            data["tz_assumed"] = "UTC"
        if len(text_out) > max_chars:  # one row longer than the whole budget
            text_out = text_out[: max_chars - 1] + "…"
            data["truncated"] = True
        docs.append(
            Document(
                path=rel,
                kind="log",
                anchor=f"{data['t_start']} – {data['t_end']}, {line_range_label([(ranges[0][0], ranges[-1][1])])}",
                anchor_data=data,
                text=text_out,
                title="" if sensor is None else sensor,
            )
        )
    return docs
