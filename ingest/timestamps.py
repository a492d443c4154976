"""Timestamps as logs write them: the format of a file's lines, learned from its first lines, and
the time each line says, with what it does not say (a zone, a year) kept unknown.

A time without a zone is a wall-clock time of an unknown zone: its tzinfo is FLOATING, which
orders and subtracts like UTC (so windows and sorting work) but renders without "Z". A time
without a year (RFC 3164 syslog) whose year nothing in its file gives is FLOATING_NOYEAR and
renders as ISO 8601's year-less "--MM-DDThh:mm:ss". `--timezone` replaces FLOATING by a named
zone; then times render with that zone's offset, as the source's wall clock said them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from functools import lru_cache

_ZERO = timedelta(0)
MONTHS = {m: i for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), 1)}
_MON = r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
# A surrogate year for times whose year is unknown: a leap year, so that Feb 29 exists.
SURROGATE_YEAR = 2000


class _Floating(tzinfo):
    """The zone of a time whose source does not say one: compared as if UTC, shown without a zone."""

    def __init__(self, year_known: bool) -> None:
        self.year_known = year_known

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return _ZERO

    def dst(self, dt: datetime | None) -> timedelta:
        return _ZERO

    def tzname(self, dt: datetime | None) -> None:
        return None

    def __repr__(self) -> str:
        return "FLOATING" if self.year_known else "FLOATING_NOYEAR"

    def __reduce__(self):  # noqa: ANN204 - singletons survive pickling
        return (_floating, (self.year_known,))


FLOATING = _Floating(True)
FLOATING_NOYEAR = _Floating(False)


def _floating(year_known: bool) -> _Floating:
    return FLOATING if year_known else FLOATING_NOYEAR


def is_floating(t: datetime) -> bool:
    return isinstance(t.tzinfo, _Floating)


@lru_cache(maxsize=64)
def zone(name: str) -> tzinfo:
    """A zone by IANA name ("Europe/Berlin") or fixed offset ("+01:00", "UTC"); ValueError if unknown."""
    s = name.strip()
    if s.upper() in ("UTC", "Z", "GMT"):
        return timezone.utc
    if m := re.fullmatch(r"([+-])(\d\d):?(\d\d)", s):
        off = timedelta(hours=int(m.group(2)), minutes=int(m.group(3)))
        return timezone(-off if m.group(1) == "-" else off)
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(s)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name like Europe/Berlin, or an offset like +01:00)") from None


def localize(t: datetime, tz: tzinfo | None) -> datetime:
    """A FLOATING time placed in zone tz (kept as the wall clock said it); others unchanged."""
    if tz is None or t.tzinfo is not FLOATING:
        return t
    t = t.replace(tzinfo=tz)
    return t.astimezone(timezone.utc) if tz is timezone.utc else t


def _spec(t: datetime) -> str:
    us = t.microsecond
    return "seconds" if us == 0 else "milliseconds" if us % 1000 == 0 else "microseconds"


def iso(t: datetime) -> str:
    """2024-03-14T02:17:00Z for UTC, 2024-03-14T02:17:00 with no zone known, --03-14T02:17:00 with
    no year known either, 2024-03-14T03:17:00+01:00 in a zone --timezone named."""
    tz = t.tzinfo
    if tz is timezone.utc or tz is None:
        return t.replace(tzinfo=None).isoformat(timespec=_spec(t)) + "Z"
    if tz is FLOATING:
        return t.replace(tzinfo=None).isoformat(timespec=_spec(t))
    if tz is FLOATING_NOYEAR:
        return "--" + t.replace(tzinfo=None).isoformat(timespec=_spec(t))[5:]
    return t.isoformat(timespec=_spec(t))


def iso_len(t: datetime) -> int:
    """len(iso(t)) without formatting it."""
    us = t.microsecond
    n = 19 if us == 0 else 23 if us % 1000 == 0 else 26
    tz = t.tzinfo
    if tz is timezone.utc or tz is None:
        return n + 1
    if tz is FLOATING:
        return n
    if tz is FLOATING_NOYEAR:
        return n - 3
    return n + 6


def clock(t: datetime) -> str:
    """The time of day as iso() writes it: 02:17:00Z, 02:17:00, 03:17:00+01:00."""
    s = iso(t)
    return s[s.index("T") + 1 :]


# --- line formats ----------------------------------------------------------------------------


def _frac(s: str | None) -> int:
    return int((s + "000000")[:6]) if s else 0


def _offset(s: str | None) -> tzinfo | None:
    """+0100, -07:00, +05, Z, UTC, GMT -> a fixed zone; None -> no zone said."""
    if not s:
        return None
    if s in ("Z", "UTC", "GMT", "z"):
        return timezone.utc
    sign = -1 if s[0] == "-" else 1
    digits = s[1:].replace(":", "")
    minutes = int(digits[:2]) * 60 + (int(digits[2:4]) if len(digits) >= 4 else 0)
    if minutes == 0:
        return timezone.utc
    return timezone(timedelta(minutes=sign * minutes))


def build(y: int | None, mo: int, d: int, h: int, mi: int, s: int, us: int, tz: tzinfo | None) -> datetime | None:
    """The datetime of these fields: UTC when a zone was said, FLOATING(_NOYEAR) when not."""
    try:
        if tz is None:
            return datetime(SURROGATE_YEAR if y is None else y, mo, d, h, mi, s, us, tzinfo=_floating(y is not None))
        t = datetime(y if y is not None else SURROGATE_YEAR, mo, d, h, mi, s, us, tzinfo=tz)
    except ValueError:
        return None
    return t if tz is timezone.utc else t.astimezone(timezone.utc)


def _iso(m: re.Match) -> datetime | None:
    y, mo, d, h, mi, s, f, z = m.groups()
    return build(int(y), int(mo), int(d), int(h), int(mi), int(s), _frac(f), _offset(z))


def _ctime(m: re.Match) -> datetime | None:
    mon, d, h, mi, s, f, y = m.groups()
    return build(int(y), MONTHS[mon.lower()], int(d), int(h), int(mi), int(s), _frac(f), None)


def _clf(m: re.Match) -> datetime | None:
    d, mon, y, h, mi, s, z = m.groups()
    return build(int(y), MONTHS[mon.lower()], int(d), int(h), int(mi), int(s), 0, _offset(z))


def _yymmdd(m: re.Match) -> datetime | None:
    yy, mo, d, h, mi, s, f = m.groups()
    y = int(yy)
    return build(y + (2000 if y < 70 else 1900), int(mo), int(d), int(h), int(mi), int(s), _frac(f), None)


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _epoch(m: re.Match) -> datetime | None:
    whole, f = m.groups()
    v = int(whole)
    if len(whole) == 13:  # milliseconds
        v, f = v // 1000, f"{v % 1000:03d}" + (f or "")
    if not 600_000_000 <= v < 2_200_000_000:  # 1989-2039: a clock, not a counter
        return None
    return _EPOCH + timedelta(seconds=v, microseconds=_frac(f))


def _jul(m: re.Match) -> datetime | None:
    mon, d, y, h, mi, s, ampm = m.groups()
    hour = int(h) % 12 + (12 if ampm.upper() == "PM" else 0)
    return build(int(y), MONTHS[mon.lower()], int(d), hour, int(mi), int(s), 0, None)


def _us(m: re.Match) -> datetime | None:
    a, b, y, h, mi, s, ampm = m.groups()
    mo, d = (int(a), int(b)) if int(a) <= 12 else (int(b), int(a))  # 14/3/2024 can only be day first
    hour = int(h)
    if ampm:
        hour = hour % 12 + (12 if ampm.upper() == "PM" else 0)
    return build(int(y), mo, d, hour, int(mi), int(s or 0), 0, None)


@dataclass(frozen=True)
class LineFormat:
    """One way logs write the time on each line."""

    name: str
    label: str  # what it is, for anchor_data and messages
    rx: re.Pattern
    make: Callable[[re.Match], datetime | None]
    search: bool = False  # anywhere in the line's first 200 characters, not only at its start

    def parse(self, line: str) -> tuple[datetime, int] | None:
        """(time, end of the timestamp in the line) or None."""
        m = self.rx.search(line, 0, 200) if self.search else self.rx.match(line)
        if m is None:
            return None
        t = self.make(m)
        return None if t is None else (t, m.end())


_ISO_RX = re.compile(
    r"\[?(\d{4})[-/.](\d\d)[-/.](\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d{1,9}))?(?: ?(Z|[+-]\d\d(?::?\d\d)?|UTC|GMT)(?![\w:]))?\]?"
)

LINE_FORMATS: tuple[LineFormat, ...] = (
    LineFormat("iso8601", "ISO 8601 (2015-07-29 17:41:44,747)", _ISO_RX, _iso),
    LineFormat(
        "ctime", "ctime, as in Apache error logs ([Sun Dec 04 04:47:44 2005])",
        re.compile(rf"\[?{_DAY} {_MON} {{1,2}}(\d{{1,2}}) (\d\d):(\d\d):(\d\d)(?:\.(\d{{1,6}}))? (\d{{4}})\]?"), _ctime,
    ),
    LineFormat(
        "clf", "common log format, as in Apache/Nginx access logs ([10/Oct/2000:13:55:36 -0700], [10/Oct/2000 13:55:36])",
        re.compile(rf"\[(\d\d)/{_MON}/(\d{{4}})[: ](\d\d):(\d\d):(\d\d)(?: ([+-]\d{{4}}))?\]"), _clf, search=True,
    ),
    LineFormat(
        "yymmdd", "yyMMdd HHmmss, as in Hadoop logs (081109 203615)",
        re.compile(r"(\d\d)(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01]) ([01]\d|2[0-3])([0-5]\d)([0-5]\d)(?:[.,](\d{1,6}))?(?![\d:])"),
        _yymmdd,
    ),
    LineFormat(
        "epoch", "epoch seconds or milliseconds (1117838570, 1286536308.779)",
        re.compile(r"(?:[\w-]{1,16} )?(\d{13}|\d{10})(?:\.(\d{1,9}))?(?![\d.:])"), _epoch,
    ),
    LineFormat(
        "jul", "java.util.logging (Mar 14, 2024 2:17:00 AM)",
        re.compile(rf"{_MON} (\d{{1,2}}), (\d{{4}}) (\d{{1,2}}):(\d\d):(\d\d) ([AP]M)"), _jul,
    ),
)  # fmt: skip
BY_NAME = {f.name: f for f in LINE_FORMATS}

# Values in CSV/JSON columns beyond ISO and epoch numbers: Windows' 3/14/2024 2:17:00 PM, ctime, CLF.
_US_RX = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})[ T](\d{1,2}):(\d\d)(?::(\d\d))?(?: ?([AaPp][Mm]))?$")
_VALUE_FORMATS = (
    LineFormat("us", "M/d/yyyy h:mm:ss AM/PM", _US_RX, _us),
    LineFormat("ctime", "", re.compile(LINE_FORMATS[1].rx.pattern + "$"), _ctime),
    LineFormat("clf", "", re.compile(LINE_FORMATS[2].rx.pattern.replace(r"\[", r"\[?").replace(r"\]", r"\]?") + "$"), _clf),
    LineFormat("jul", "", re.compile(LINE_FORMATS[5].rx.pattern + "$"), _jul),
)


def parse_value(s: str) -> datetime | None:
    """A column value in one of the non-ISO forms (see _VALUE_FORMATS), or None."""
    if not s or not s[0].isalnum() and s[0] != "[":
        return None
    for f in _VALUE_FORMATS:
        r = f.parse(s)
        if r is not None:
            return r[0]
    return None


def sniff_line_format(lines: list[str], enough: Callable[[list[bool]], bool]) -> LineFormat | None:
    """The line format most of these lines start with (clf: contain), when `enough` of them do."""
    best, best_n = None, 0
    for f in LINE_FORMATS:
        ok = [f.parse(ln) is not None for ln in lines]
        n = sum(ok)
        if n > best_n and enough(ok):
            best, best_n = f, n
    return best


# --- levels ----------------------------------------------------------------------------------

# A level word near the time: INFO, [error], [core:error] (Apache 2.4), <WARN>, level 'E' of glog is not read.
_LEVEL = re.compile(
    r"(?<![\w-])(TRACE|DEBUG|FINE|FINER|FINEST|CONFIG|INFO|LOG|NOTICE|WARN|WARNING|ERROR|SEVERE|CRITICAL|CRIT|FATAL|PANIC|ALERT|EMERG)(?![\w-])"
    r"|\[(?:[\w-]+:)?(trace\d|debug|info|notice|warn|warning|error|crit|alert|emerg)\]"
)


# java.util.logging writes the level at the start of an event's second line: "INFO: message".
JUL_LEVEL = re.compile(r"(SEVERE|WARNING|INFO|CONFIG|FINE|FINER|FINEST): ")


def level_after(line: str, pos: int) -> str | None:
    """The level written within 80 characters after the timestamp, as written (INFO, error)."""
    m = _LEVEL.search(line, pos, pos + 80)
    if m is None:
        return None
    return m.group(1) or m.group(2)


# --- years -----------------------------------------------------------------------------------

# Full dates in free text: 2005-12-04, 2005/12/04, 04/Dec/2005, 4 Dec 2005, Dec 4 [hh:mm:ss] 2005, Dec 4, 2005.
_TEXT_DATE = re.compile(
    r"(?<!\d)(\d{4})[-/.](\d\d)[-/.](\d\d)(?!\d)"
    rf"|(?<!\d)(\d{{1,2}})[ /-]{_MON}[ /-](\d{{4}})(?!\d)"
    rf"|\b{_MON} +(\d{{1,2}})(?: \d\d:\d\d:\d\d)?,? (\d{{4}})(?!\d)",
    re.I,
)
_NAME_DATE = re.compile(r"(?<!\d)((?:19|20)\d\d)[-_.]?(0[1-9]|1[0-2])[-_.]?(0[1-9]|[12]\d|3[01])(?!\d)")
_NAME_YEAR = re.compile(r"(?<!\d)((?:19|20)\d\d)(?!\d)")


_FOUR_DIGITS = re.compile(r"\d{4}")


def text_dates(line: str) -> list[tuple[int, int, int]]:
    """(year, month, day) of the full dates written in a line."""
    out: list[tuple[int, int, int]] = []
    if _FOUR_DIGITS.search(line) is None:  # no year in it: most lines, cheaply
        return out
    for m in _TEXT_DATE.finditer(line):
        g = m.groups()
        if g[0]:
            y, mo, d = int(g[0]), int(g[1]), int(g[2])
        elif g[3]:
            y, mo, d = int(g[5]), MONTHS[g[4].lower()], int(g[3])
        else:
            y, mo, d = int(g[8]), MONTHS[g[6].lower()], int(g[7])
        if 1970 <= y <= 2100 and 1 <= mo <= 12 and 1 <= d <= 31:
            out.append((y, mo, d))
    return out


def _near(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Same month and day within one, or adjacent days across a month's end."""
    if a == b or (a[0] == b[0] and abs(a[1] - b[1]) <= 1):
        return True
    # Mar 1 vs Feb 28/29, Jan 1 vs Dec 31: a line stamped in one zone, its context in another.
    return (b[0] % 12 + 1 == a[0] and a[1] == 1 and b[1] >= 28) or (a[0] % 12 + 1 == b[0] and b[1] == 1 and a[1] >= 28)


def relative_years(events: list[tuple[int, int, int]]) -> list[int]:
    """Years after the first event's, for (line, month, day) events in file order: a month more
    than five months before the previous line's starts the next year."""
    rel = [0]
    for (_, m0, _), (_, m1, _) in zip(events, events[1:]):
        rel.append(rel[-1] + (1 if m0 - m1 >= 6 else 0))
    return rel


def infer_years(
    events: list[tuple[int, int, int]], context: Iterable[tuple[int, tuple[int, int, int]]], path: str
) -> tuple[list[int] | None, str]:
    """Years for year-less events (line, month, day) in file order, or None when nothing says them,
    and where they came from ("dated line N", "file name", "unknown").

    `context`: (line, full date) in line order. Years only move forward through a file: a month more than five months before the previous
    line's is the next year (Dec 31 -> Jan 1). A full date written in the file (a header, a
    dated line, a message repeating its date) that falls on the day of the nearest event fixes
    that event's year, so every event's; else a date in the file's path (syslog-20051205: the day
    it was rotated, on or after its last line), else a year in the path (first line's year).
    """
    if not events:
        return [], "unknown"
    rel = relative_years(events)
    lines = [e[0] for e in events]

    import bisect

    for no, (y, mo, d) in context:  # in line order, read lazily: the first that fits is enough
        i = bisect.bisect_left(lines, no)
        near = [j for j in (i - 1, i) if 0 <= j < len(events)]
        j = min(near, key=lambda k: abs(lines[k] - no))
        if _near((events[j][1], events[j][2]), (mo, d)):
            # Dec 31 in a line, Jan 1 in its context: the context's year is the next one.
            y0 = y - (1 if events[j][1] == 12 and mo == 1 else 0) + (1 if events[j][1] == 1 and mo == 12 else 0)
            base = y0 - rel[j]
            return [base + k for k in rel], f"dated line {no}"
    parts = path.replace("\\", "/").split("/")
    for part in reversed(parts):
        if m := _NAME_DATE.search(part):
            y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
            last = (events[-1][1], events[-1][2])
            y_last = y if last <= (mo, d + 1) else y - 1
            return [y_last - rel[-1] + k for k in rel], "file name"
    for part in reversed(parts):
        if m := _NAME_YEAR.search(part):
            return [int(m.group(1)) + k for k in rel], "file name"
    return None, "unknown"
