"""Line logs: syslog (RFC 3164, RFC 5424, RFC 3339-stamped) and logfmt, in the CSV log's windows.

One event per line; a line that is not an event (a stack trace, a wrapped message) stays with the
event above it. Windows per source (syslog: host; logfmt: its sensor/host/app field) and clock
hour, in UTC, built and summarised by logs.window_documents.
"""

from __future__ import annotations

import re
from datetime import timedelta, tzinfo
from pathlib import Path

from .base import Document, SourceError
from .logs import _Row, _norm, _pick_columns, parse_timestamp, window_documents
from .timestamps import BY_NAME, FLOATING, FLOATING_NOYEAR, JUL_LEVEL, build, infer_years, level_after, localize, sniff_line_format, text_dates

SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
_MONTHS = {m: i for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), 1)}
_SNIFF_LINES = 20
_MAX_SNIFF_SPAN = timedelta(days=400)
# "GET /x HTTP/1.1" 200: an access log's method and status, after its [time]
_CLF_REQUEST = re.compile(r'\s"(?:([A-Z]+) [^"]*|[^"]*)" (\d{3})\b')

# <PRI>VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [MSG]
_SD = r'(?:-|(?:\[(?:[^\]"\\]|\\.|"(?:[^"\\]|\\.)*")*\])+)'
_RFC5424 = re.compile(rf"^<(\d{{1,3}})>(\d{{1,2}}) (\S+) (\S+) (\S+) (\S+) (\S+) ({_SD})(?: (.*))?$")
# [<PRI>]Mmm dd hh:mm:ss REST  (BSD syslog, /var/log/syslog and /var/log/messages)
_RFC3164 = re.compile(
    r"^(?:<(\d{1,3})>)?(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ([ \d]\d) (\d\d):(\d\d):(\d\d)(\.\d+)? (.*)$",
    re.I,
)
# [<PRI>]2024-03-14T02:17:00.123+01:00 host tag[pid]: msg  (rsyslog's RFC 3339 file format)
_RFC3339 = re.compile(r"^(?:<(\d{1,3})>)?(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?) (.*)$")
# HOST TAG[PID]: MSG, or TAG[PID]: MSG with no host (messages from the local socket)
_HOST_TAG = re.compile(r"^(\S+) ([^\s:\[\]]+)(?:\[([^\]\s]*)\])?: ?(.*)$")
_TAG = re.compile(r"^([^\s:\[\]]+)(?:\[([^\]\s]*)\])?: ?(.*)$")
_LEVEL_WORDS = {"trace", "debug", "info", "notice", "warn", "warning", "error", "err", "crit", "critical", "fatal"}

# key=value key="quoted \"value\"" bare_key
_LOGFMT_TOKEN = re.compile(r'([^\s="]+)(?:=("(?:[^"\\]|\\.)*"|[^\s"]*))?(?=\s|$)')
# Fields that name where a logfmt line comes from, beyond the CSV log's sensor columns.
_LOGFMT_SOURCES = ["app", "service", "component", "program", "logger", "module"]


# --- syslog ------------------------------------------------------------------------------------


class _Syslog:
    """Parses syslog lines. RFC 3164 gives neither year nor zone: its events carry "md" (month,
    day, h, m, s, µs) and their times are made once the file's years are known (_place_years)."""

    def parse(self, line: str) -> dict | None:
        """{t, naive, host, app, severity?} ({md, ...} for RFC 3164) or None when the line is not syslog."""
        if line.startswith("<"):
            if m := _RFC5424.match(line):
                pri, ts, host, app = m.group(1), m.group(3), m.group(4), m.group(5)
                if int(pri) > 191:
                    return None
                parsed = parse_timestamp(ts) if ts != "-" else None
                out = _event(pri, host, app)
                if parsed is None:
                    out["bad"] = True  # an event, but no time we can place it at
                    return out
                out.update(t=parsed[0], naive=parsed[1])
                return out
        if m := _RFC3164.match(line):
            pri, mon, day, h, mi, s, frac, rest = m.groups()
            if pri is not None and int(pri) > 191:
                return None
            host, app = _host_and_tag(rest, strict=False)
            out = _event(pri, host, app)
            md = (_MONTHS[mon.lower()], int(day), int(h), int(mi), int(s), int((frac[1:] + "000000")[:6]) if frac else 0)
            if build(None, *md, None) is None:  # Feb 30, 25:00
                out["bad"] = True
                return out
            out.update(t=None, naive=True, md=md)
            return out
        if m := _RFC3339.match(line):
            pri, ts, rest = m.groups()
            if pri is not None and int(pri) > 191:
                return None
            host, app = _host_and_tag(rest, strict=True)
            if app is None and pri is None:
                return None  # "2024-03-14T02:17:00Z INFO starting": an app log, not syslog
            parsed = parse_timestamp(ts)
            if parsed is None:
                return None
            out = _event(pri, host, app)
            out.update(t=parsed[0], naive=parsed[1])
            return out
        return None


def _event(pri: str | None, host: str | None, app: str | None) -> dict:
    out: dict = {"host": None if host in (None, "-") else host, "app": None if app in (None, "-") else app}
    if pri is not None:
        out["severity"] = SEVERITIES[int(pri) % 8]
    return out


def _host_and_tag(rest: str, *, strict: bool) -> tuple[str | None, str | None]:
    """(host, app) from "host tag[pid]: msg"; a line without a host starts with its tag."""
    first = rest.split(" ", 1)[0]
    if first.endswith(":") or ("[" in first and first.rstrip(":").endswith("]")):
        m = _TAG.match(rest)
        if m:
            return None, m.group(1)
    m = _HOST_TAG.match(rest)
    if m and m.group(1).lower() not in _LEVEL_WORDS:
        return m.group(1), m.group(2)
    if strict:
        return None, None
    # "host -- MARK --", "host kernel [123.4] ...": a host and a message without a tag.
    return (first or None), None


# --- logfmt ------------------------------------------------------------------------------------


def logfmt_pairs(line: str) -> dict[str, str] | None:
    """The key=value pairs of a logfmt line (quotes removed), or None when it is not logfmt:
    fewer than two pairs, or anything left over that is neither a pair nor a bare key."""
    pairs: dict[str, str] = {}
    pos, n = 0, 0
    s = line.strip()
    while pos < len(s):
        while pos < len(s) and s[pos].isspace():
            pos += 1
        if pos >= len(s):
            break
        m = _LOGFMT_TOKEN.match(s, pos)
        if not m or m.end() == pos:
            return None
        key, value = m.group(1), m.group(2)
        if value is not None:
            n += 1
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            pairs.setdefault(key, value)
        else:
            pairs.setdefault(key, "true")
        pos = m.end()
    return pairs if n >= 2 else None


def _logfmt_layout(sample: list[dict[str, str]]) -> tuple[str, str | None] | None:
    """(timestamp key, source key) chosen as for a CSV log's columns."""
    keys = list(dict.fromkeys(k for o in sample for k in o))
    ts, sensor = _pick_columns(keys, [[o.get(k) for k in keys] for o in sample])
    if ts is None:
        return None
    if sensor is None:
        normed = [_norm(k) for k in keys]
        sensor = next((normed.index(n) for n in _LOGFMT_SOURCES if n in normed and normed.index(n) != ts), None)
    return keys[ts], (keys[sensor] if sensor is not None else None)


# --- detection ---------------------------------------------------------------------------------


def _first_lines(text: str, n: int = _SNIFF_LINES) -> list[str]:
    out = []
    for ln in text.split("\n", 4 * n)[: 4 * n]:
        if ln.strip():
            out.append(ln.rstrip("\r"))
            if len(out) >= n:
                break
    return out


def _enough(ok: list[bool]) -> bool:
    """At least half of the sampled lines, and the first line or three of them (a banner line
    may open a log)."""
    n = sum(ok)
    return n > 0 and 2 * n >= len(ok) and (ok[0] or n >= 3)


def sniff_text_log(text: str) -> str | None:
    """"syslog" | "logfmt" | the name of a timestamps.LINE_FORMATS format ("iso8601", "ctime",
    "clf", "yymmdd", "epoch", "jul") when enough of the first 20 non-empty lines are in that
    format (logfmt: with a timestamp field that parses), else None. The format is learned per
    file, from these lines, and then read on every line."""
    lines = _first_lines(text)
    if not lines:
        return None
    sy = _Syslog()
    if _enough([sy.parse(ln) is not None for ln in lines]):
        return "syslog"
    pairs = [logfmt_pairs(ln) for ln in lines]
    found = [p for p in pairs if p is not None]
    layout = _logfmt_layout(found) if found else None
    if layout is not None and _enough([p is not None and parse_timestamp(p.get(layout[0])) is not None for p in pairs]):
        return "logfmt"
    f = sniff_line_format(lines, _enough)
    if f is None:
        return None
    times = [r[0] for ln in lines if (r := f.parse(ln)) is not None]
    if max(times) - min(times) > _MAX_SNIFF_SPAN:
        return None  # first lines years apart: numbers that only look like clocks (ids, phone numbers)
    return f.name


# --- parsing -----------------------------------------------------------------------------------


def parse_text_log(
    path: Path, rel: str, text: str, max_chars: int, warnings: list[str] | None, tz: tzinfo | None = None
) -> list[Document]:
    """Windows of a line log (see the module docstring and logs.window_documents).

    Syslog: source = host, severity from PRI (a line without PRI has none), the app counted in
    the summary. RFC 3164 times have no year and no zone: the year comes from the nearest dated
    context (a dated line or header in the file, else the file's path: timestamps.infer_years)
    and is otherwise unknown (anchor_data "year": "unknown", times shown as --MM-DDThh:mm:ss);
    never from the file's mtime. logfmt: source = its sensor/device/host/app field, every other
    field summarised as a CSV column is (level as a status, numbers as metrics). Other
    timestamped lines: one source, the level (INFO, [error]) as a status; access logs' method
    and status counted. A time without a zone stays a wall-clock time of an unknown zone
    (anchor_data "tz": "unknown") unless `tz` (--timezone) names it. anchor_data["format"] says
    which format was read.
    """
    fmt = sniff_text_log(text)
    if fmt is None:
        if path.suffix.lower() != ".syslog":
            raise SourceError(rel, "not a recognised log: its first lines have no timestamped events")
        fmt = "syslog"
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()

    sy = _Syslog()
    lf = BY_NAME.get(fmt)
    ts_key = src_key = None
    if fmt == "logfmt":
        sample = [p for ln in _first_lines(text, 50) if (p := logfmt_pairs(ln)) is not None]
        ts_key, src_key = _logfmt_layout(sample) or (None, None)
        if ts_key is None:
            raise SourceError(rel, "logfmt without a timestamp field")

    rows: list[_Row] = []
    yearless: list[tuple[_Row, tuple]] = []  # RFC 3164 rows and their (month, day, h, m, s, µs)
    skipped = first_bad = 0
    kept = first_kept = 0
    cur: _Row | None = None  # the row continuation lines join

    def bad(no: int) -> None:
        nonlocal skipped, first_bad, cur
        skipped += 1
        first_bad = first_bad or no
        cur = None

    for no, ln in enumerate(lines, 1):
        if not ln.strip():
            continue
        row: _Row | None = None
        if lf is not None:
            parsed = lf.parse(ln)
            if parsed is not None:
                t, end = parsed
                fields = {}
                if fmt == "clf":
                    if m := _CLF_REQUEST.search(ln, end):
                        fields = {"method": m.group(1) or "-", "status": m.group(2)}
                elif (level := level_after(ln, end)) is not None:
                    fields = {"level": level}
                row = _Row(t, t.tzinfo is FLOATING, None, no, no, "", fields)
        elif fmt == "syslog":
            ev = sy.parse(ln)
            if ev is not None and ev.get("bad"):
                bad(no)
                continue
            if ev is not None:
                fields = {"app": ev["app"] or "-"}
                if "severity" in ev:
                    fields = {"severity": ev["severity"], **fields}
                row = _Row(ev["t"], ev["naive"], ev["host"], no, no, "", fields)
                if ev["t"] is None:
                    yearless.append((row, ev["md"]))
        elif (pairs := logfmt_pairs(ln)) is not None:
            parsed = parse_timestamp(pairs.get(ts_key))
            if parsed is None:
                bad(no)
                continue
            source = None if src_key is None else pairs.get(src_key, "").strip()
            fields = {k: v for k, v in pairs.items() if k not in (ts_key, src_key)}
            row = _Row(parsed[0], parsed[1], source, no, no, "", fields)
        if row is not None:
            cur = row
            rows.append(row)
        elif cur is None:
            bad(no)
        else:  # a continuation: stack trace, wrapped message
            cur.line_end = no
            if fmt == "jul" and cur.line_end == cur.line_start + 1 and (m := JUL_LEVEL.match(ln)):
                cur.fields = {"level": m.group(1)}  # the event's own second line, not a stray one
                continue
            kept += 1
            first_kept = first_kept or no

    extra: dict = {"format": "rfc3164" if fmt == "syslog" and yearless and len(yearless) == len(rows) else fmt}
    if yearless:
        year_from = _place_years(yearless, lines, rel)
        if year_from is not None:
            extra["year_from"] = year_from
        rows = [r for r in rows if r.t is not None]
    if not rows:
        raise SourceError(rel, f"no {fmt} line with a parseable timestamp")
    if tz is not None:
        for r in rows:
            r.t = localize(r.t, tz)
        extra["tz"] = str(tz)
    for r in rows:
        r.raw = "\n".join(lines[r.line_start - 1 : r.line_end])
    if warnings is not None:
        if skipped:
            warnings.append(f"{rel}: skipped {skipped} malformed line(s), first at line {first_bad}")
        if kept:
            warnings.append(f"{rel}: {kept} line(s) not in {fmt} format kept with the event above, first at line {first_kept}")
    if fmt == "syslog":
        return window_documents(rel, rows, max_chars=max_chars, word="host", source_field="host", tally=("app",),
                                extra=extra)
    if lf is not None:
        tally = ("method", "status") if fmt == "clf" else ()
        return window_documents(rel, rows, max_chars=max_chars, tally=tally, extra=extra)
    word = src_key or "sensor"
    return window_documents(rel, rows, max_chars=max_chars, word=word, source_field=src_key, extra=extra)


def _place_years(yearless: list[tuple[_Row, tuple]], lines: list[str], rel: str) -> str | None:
    """Give RFC 3164 rows their times: the year from the nearest dated context, else unknown
    (a surrogate year that keeps their order, shown as --MM-DD). Returns where the year came from."""
    events = [(r.line_start, md[0], md[1]) for r, md in yearless]
    context = ((no, d) for no, ln in enumerate(lines, 1) for d in text_dates(ln))
    years, source = infer_years(events, context, rel)
    if years is None:
        from .timestamps import SURROGATE_YEAR, relative_years

        years, known = [SURROGATE_YEAR + k for k in relative_years(events)], False
    else:
        known = True
    for (r, md), y in zip(yearless, years):
        r.t = build(y, *md, None)
        if r.t is not None and not known:
            r.t = r.t.replace(tzinfo=FLOATING_NOYEAR)
    return source if known else None
