"""Table questions over CSV evidence, answered without a model, or not at all.

A 135M reader given CSV rows takes a neighbouring row's value, reads the wrong column and cannot
take a maximum. Most questions over a time series are a lookup, a filter or a superlative over
rows the evidence holds, so this module answers them deterministically and says None whenever it
is not sure (the reader then runs as before):

- `tables` finds the CSV sections of the documents (a header line of names, then rows of as many
  fields; a window's summary lines above are skipped), merges the windows of one file, drops
  repeated rows and attaches header-less chunks of the same file;
- a question is parsed into dates, clock times and ranges ("between X and Y", "from X to Y",
  "March 14th, 15th and 16th 2015"), categorical values ("foggy days", "nuclear"), numeric
  conditions ("non-zero precipitation", "above 369"), a superlative and the columns it names;
- a two-hop question ("the wind on the hottest day between …", "the reading one hour after that
  peak") selects an anchor row with one part and reads another column, category or table at
  that key (or the next row) with the other.

Precision over recall: a key the rows do not hold, a range with gaps, a column the question does
not name, a tie, two tables that fit equally well: None. Cells are returned as written.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache

from .focus import stem


@dataclass
class TableAnswer:
    answer: str  # verbatim cell text(s) as written in the CSV; several values joined by ", "
    cells: list[tuple[int, int]]  # (doc index into `docs`, 0-based line within that doc's text) of each row used
    how: str  # lookup | max | min | first-above | first-below | filter | argmax-then-read | …


# ---- tables ---------------------------------------------------------------------------------------

_FIELD_NAME = re.compile(r"[A-Za-z_][\w .%/+#*()\[\]:-]{0,39}")
_NUM = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_KEY = re.compile(r"(\d{4})(?:([-/]?)(\d{2})\2(\d{2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?Z?)?)?")
_KEY_NAMES = frozenset("date time timestamp datetime year month week day period ts".split())


@dataclass
class _Row:
    doc: int
    line: int
    cells: list[str]
    dt: datetime | None = None


@dataclass
class _Table:
    path: str
    header: list[str]  # names as written, quotes off
    rows: list[_Row] = field(default_factory=list)
    key: int | None = None  # the key (time) column
    numeric: set[int] = field(default_factory=set)
    unit: str = ""  # year | month | day | minute: how keys are compared
    step: int | None = None  # the usual gap between consecutive keys, in `unit`s

    @property
    def width(self) -> int:
        return len(self.header)


def _fields(line: str) -> list[str]:
    if '"' not in line:
        return line.split(",")
    try:
        return next(csv.reader([line]))
    except (csv.Error, StopIteration):
        return line.split(",")


def _is_num(s: str) -> bool:
    return bool(_NUM.fullmatch(s.strip()))


def _num(s: str) -> float | None:
    s = s.strip()
    return float(s) if _NUM.fullmatch(s) else None


_MON3 = {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())}
# 19-Sep-03, 4 Jul 2013, 04/Jul/2013: a day, a month's name and a year (two digits: 19xx from 70 on)
_KEY_DMY = re.compile(r"(\d{1,2})[-/ ]([A-Za-z]{3})[a-z]*[-/ ,]+(\d{2}|\d{4})")


def parse_key(cell: str) -> datetime | None:
    """A key cell as a time: 2013/07/04, 2013-07-04T00:00:00Z, 19900106, 2010/07/01 15:00, 1871,
    19-Sep-03, 4 Jul 2013."""
    c = cell.strip().strip('"')
    m = _KEY.fullmatch(c)
    if not m:
        d = _KEY_DMY.fullmatch(c)
        if d is None or d.group(2).lower() not in _MON3:
            return None
        y = int(d.group(3))
        y = y + (1900 if y >= 70 else 2000) if y < 100 else y
        try:
            return datetime(y, _MON3[d.group(2).lower()], int(d.group(1)))
        except ValueError:
            return None
    y, _, mo, d, h, mi, s = m.groups()
    try:
        return datetime(int(y), int(mo or 1), int(d or 1), int(h or 0), int(mi or 0), int(s or 0))
    except ValueError:
        return None


@lru_cache(maxsize=256)
def _header(line: str) -> tuple[str, ...] | None:
    """A CSV header: two or more names, none a number (windows of one file repeat it: cached)."""
    if "," not in line or len(line) > 400:
        return None
    fs = [f.strip().strip('"').strip() for f in _fields(line)]
    if len(fs) < 2 or not all(_FIELD_NAME.fullmatch(f) and not _is_num(f) and len(f.split()) <= 4 for f in fs):
        return None
    return tuple(fs)


def _sections(text: str) -> tuple[list[tuple[list[str], list[tuple[int, list[str]]]]], list[tuple[int, list[str]]]]:
    """CSV sections of a text (header, [(line, fields)]) and, when it has none, its comma lines."""
    lines = text.split("\n")
    out = []
    i = 0
    while i < len(lines) - 1:
        h = _header(lines[i])
        if h is not None:
            h = list(h)
            rows = []
            j = i + 1
            while j < len(lines) and lines[j].strip():
                fs = _fields(lines[j])
                if len(fs) != len(h):
                    break
                rows.append((j, fs))
                j += 1
            if rows and any(_is_num(f) or parse_key(f) for _, fs in rows for f in fs):
                out.append((h, rows))
                i = j
                continue
        i += 1
    loose = []
    if not out:
        loose = [(k, fs) for k, ln in enumerate(lines) if ln.count(",") >= 1 and len(fs := _fields(ln)) >= 2]
    return out, loose


def tables(docs: list[tuple[str, str, str]]) -> list[_Table]:
    """The CSV tables of `docs`: windows of one file with one header merged, repeated rows once."""
    by: dict[tuple[str, tuple[str, ...]], _Table] = {}
    seen: dict[tuple[str, tuple[str, ...]], set[str]] = {}
    headless: list[tuple[int, str, list[tuple[int, list[str]]]]] = []
    for j, (path, _anchor, text) in enumerate(docs):
        secs, loose = _sections(text)
        for h, rows in secs:
            t = by.setdefault((path, tuple(h)), _Table(path, h))
            s = seen.setdefault((path, tuple(h)), set())
            for k, fs in rows:
                sig = ",".join(f.strip() for f in fs)
                if sig not in s:
                    s.add(sig)
                    t.rows.append(_Row(j, k, [f.strip() for f in fs]))
        if loose:
            headless.append((j, path, loose))
    for t in by.values():
        _settle(t)
    # A long file read in chunks: only the first chunk has the header.
    for j, path, loose in headless:
        cands = [t for (p, _), t in by.items() if p == path and t.key is not None]
        for t in cands:
            fit = [(k, fs) for k, fs in loose if len(fs) == t.width and parse_key(fs[t.key])]
            if len(fit) * 5 >= len(loose) * 4:
                s = seen[(t.path, tuple(t.header))]
                for k, fs in fit:
                    sig = ",".join(f.strip() for f in fs)
                    if sig not in s:
                        s.add(sig)
                        t.rows.append(_Row(j, k, [f.strip() for f in fs]))
                _settle(t)
                break
    return [t for t in by.values() if t.key is not None and t.rows]


def _settle(t: _Table) -> None:
    """Key column, numeric columns, rows in key order, the key unit and step."""
    # columns are judged on a sample of rows, spread over the table
    sample = t.rows[:: max(1, len(t.rows) // 120)]
    n = len(sample)
    t.key = None
    cands = []
    for c in range(t.width):
        ok = sum(1 for r in sample if parse_key(r.cells[c]) is not None)
        if ok * 10 >= n * 9:
            named = any(p in _KEY_NAMES for p in _parts(t.header[c]))
            cands.append((not named, c))
    if cands:
        t.key = min(cands)[1]
    t.numeric = {c for c in range(t.width) if c != t.key
                 and sum(1 for r in sample if _is_num(r.cells[c])) * 10 >= n * 8}
    if t.key is None:
        return
    for r in t.rows:
        r.dt = parse_key(r.cells[t.key])
    t.rows = [r for r in t.rows if r.dt is not None]
    t.rows.sort(key=lambda r: r.dt)
    dts = sorted({r.dt for r in t.rows})
    if all(d.month == 1 and d.day == 1 and d.hour == 0 and d.minute == 0 for d in dts):
        t.unit = "year"
    elif all(d.day == 1 and d.hour == 0 and d.minute == 0 for d in dts):
        t.unit = "month"
    elif all(d.hour == 0 and d.minute == 0 for d in dts):
        t.unit = "day"
    else:
        t.unit = "minute"
    diffs = Counter(_ord(b, t.unit) - _ord(a, t.unit) for a, b in zip(dts, dts[1:]))
    t.step = diffs.most_common(1)[0][0] if diffs else None


def _ord(d: datetime, unit: str) -> int:
    if unit == "year":
        return d.year
    if unit == "month":
        return d.year * 12 + d.month - 1
    if unit == "day":
        return d.toordinal()
    return d.toordinal() * 1440 + d.hour * 60 + d.minute


# ---- words ----------------------------------------------------------------------------------------

_CAMEL = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*")
_MONTHS = "january february march april may june july august september october november december".split()


def _parts(name: str) -> list[str]:
    """Header name → lower-case parts: temp_max → temp, max; netGeneration → net, generation."""
    return [p.lower() for chunk in re.split(r"[_\s/.-]+", name) for p in _CAMEL.findall(chunk)]


# canonical tag → the words that stand for it; "max"/"min" are qualifiers, weighed less
_SYN = {
    "temp": "temp temperature temperatures",
    "precip": "precip precipitation rainfall",
    "wind": "wind winds windspeed",
    "max": "max maximum high highest",
    "min": "min minimum low lowest",
    "gen": "generation generate generated generating output produce produced production",
    "volume": "volume traded trading turnover",
    "close": "close closing",
    "open": "open opening",
}
# superlatives that also name what they measure
_IMPLIED = {
    "hottest": ("temp", "max"), "warmest": ("temp", "max"), "coldest": ("temp", "min"), "coolest": ("temp", "min"),
    "wettest": ("precip", "max"), "rainiest": ("precip", "max"), "driest": ("precip", "min"),
    "windiest": ("wind", "max"), "calmest": ("wind", "min"),
}
_CANON = {stem(w): tag for tag, ws in _SYN.items() for w in ws.split()}
_QUALIFIER = frozenset({"max", "min"})
_MAX_WORDS = frozenset("highest hottest warmest heaviest largest greatest biggest most maximum peak peaked "
                       "wettest rainiest windiest max top".split())
_MIN_WORDS = frozenset("lowest coldest coolest smallest least minimum min driest calmest lightest".split())
_STOPISH = frozenset("the and for with from what which when was were how much many did does are has have had "
                     "that this its their all any day days year years week weeks hour hours time".split())


def _canon(part: str) -> str:
    s = stem(part)
    if part.lower() in _MONTHS or (len(part) == 3 and part.lower() in {m[:3] for m in _MONTHS}):
        return f"month{[m[:3] for m in _MONTHS].index(part.lower()[:3]) + 1}"
    return _CANON.get(s, s)


def _qtags(text: str) -> dict[str, float]:
    """The question's words as column tags, with their weight."""
    tags: dict[str, float] = {}
    for w in _WORD.findall(text):
        lw = w.lower()
        for p in [lw] + (_parts(w) if "_" in w or any(c.isupper() for c in w[1:]) else []):
            if p in _IMPLIED:
                for tg in _IMPLIED[p]:
                    tags[tg] = max(tags.get(tg, 0), 0.5 if tg in _QUALIFIER else 1.0)
                continue
            tg = _canon(p) if p in _MONTHS else _CANON.get(stem(p), stem(p))
            tags[tg] = max(tags.get(tg, 0), 0.5 if tg in _QUALIFIER else 1.0)
    return tags


def _col_score(t: _Table, c: int, tags: dict[str, float], text: str) -> float:
    name = t.header[c]
    parts = set(_parts(name))
    hits = {p: tags.get(_canon(p), 0.0) for p in parts}
    s = sum(hits.values())
    if re.search(rf"(?<![\w]){re.escape(name.strip('*'))}(?![\w])", text, re.I):
        # the column named as written: temp_min; a one-word name ("High" in "the highest daily
        # high") counts once more than its word as a superlative
        s += 3 if len(parts) > 1 else 1
    return s


def _unnamed(t: _Table, c: int, tags: dict[str, float]) -> int:
    """How many words of column `c`'s name the question does not name (a tie-break: of "Close" and
    "Adj. Close", "the closing price" is the first)."""
    return sum(1 for p in set(_parts(t.header[c])) if not tags.get(_canon(p)))


def _adjective(w: str) -> set[str]:
    """foggy → fog, snowy → snow, sunny → sun: a category value named by its adjective."""
    lw = w.lower()
    out = {stem(lw)}
    if lw.endswith("y") and len(lw) > 3:
        b = lw[:-1]
        out |= {b, b[:-1]} if len(b) > 2 and b[-1] == b[-2] else {b}
    return out


# ---- question parsing -----------------------------------------------------------------------------

_MON = (r"(Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?"
        r"|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)")
_ORDN = r"(\d{1,2})(?:st|nd|rd|th)?"
_YR = r"(1[5-9]\d\d|2[0-2]\d\d)"
_CMP = re.compile(r"\b(above|over|exceed(?:ed|ing|s)?|more than|greater than|higher than|at least|below|under|"
                  r"less than|lower than|at most)\s+(-?\d[\d,]*(?:\.\d+)?)(?![\d:])", re.I)
# "first" as an order ("first went above"), not a calendar phrase ("the first week of July")
_FIRST = re.compile(r"\bfirst\b(?!\s+(?:week|day|days|month|months|hour|hours|half|quarter|part|fortnight)\s+of\b)",
                    re.I)
# parts of a period the parser does not place: they need explicit dates beside them
_VAGUE_DAYS = re.compile(r"\b(?:(?:first|last|second|third|fourth|final)\s+(?:week|weeks|days|half|quarter|part|"
                         r"fortnight)\s+of|early|late|mid|weekends?|weekdays?)\b", re.I)
_VAGUE_MONTHS = re.compile(r"\b(?:spring|summer|autumn|fall|winter)\b", re.I)
_VAGUE_CLOCK = re.compile(r"\b(?:morning|afternoon|evening|night|daytime|overnight)\b", re.I)
_NONZERO = re.compile(r"\bnon-?zero\b|\bany\s+(?=precip|rain)", re.I)


@dataclass
class _Mention:
    kind: str  # date | month | year | clock
    start: int
    end: int
    y: int | None = None
    m: int | None = None
    d: int | None = None
    minute: int | None = None  # clock: minute of the day


def _mon(s: str) -> int:
    return [m[:3] for m in _MONTHS].index(s[:3].lower()) + 1


def _mentions(q: str) -> list[_Mention]:
    forms: list[tuple[re.Pattern, str]] = [
        (re.compile(r"\b(\d{4})([-/])(\d{1,2})\2(\d{1,2})(?:[ T](\d{1,2}):(\d{2}))?\b"), "iso"),
        (re.compile(rf"\b{_MON}\.?\s+{_ORDN}\b(?:,?\s+{_YR}\b)?"), "md"),
        (re.compile(rf"\b{_ORDN}\s+(?:of\s+)?{_MON}\b\.?(?:,?\s+{_YR}\b)?"), "dm"),
        (re.compile(rf"\b{_MON}\.?,?\s+(?:of\s+)?{_YR}\b"), "my"),
        (re.compile(rf"\b{_MON}\b"), "m"),
        (re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)\b(?:,?\s+{_YR}\b)?"), "d"),
        (re.compile(r"\b(\d{1,2})(?::(\d{2}))?\s*([ap])\.?m\b\.?", re.I), "ampm"),
        (re.compile(r"\b(\d{1,2})(?::(\d{2}))?\s+(?:o'clock\s+)?in\s+the\s+(morning|afternoon|evening|night)", re.I),
         "inthe"),
        (re.compile(r"\b(noon|midday|midnight)\b", re.I), "named"),
        (re.compile(r"\b([01]?\d|2[0-3]):([0-5]\d)\b"), "hhmm"),
        (re.compile(rf"\b{_YR}\b"), "y"),
    ]
    taken: list[tuple[int, int]] = []
    out: list[_Mention] = []
    for rx, kind in forms:
        for m in rx.finditer(q):
            if any(a < m.end() and m.start() < b for a, b in taken):
                continue
            g = m.groups()
            mt: _Mention | None = None
            if kind == "iso":
                mt = _Mention("date", m.start(), m.end(), int(g[0]), int(g[2]), int(g[3]))
                if g[4] is not None:
                    out.append(_Mention("clock", m.start(), m.end(), minute=int(g[4]) * 60 + int(g[5])))
            elif kind == "md":
                mt = _Mention("date", m.start(), m.end(), int(g[2]) if g[2] else None, _mon(g[0]), int(g[1]))
            elif kind == "dm":
                mt = _Mention("date", m.start(), m.end(), int(g[2]) if g[2] else None, _mon(g[1]), int(g[0]))
            elif kind == "my":
                mt = _Mention("month", m.start(), m.end(), int(g[1]), _mon(g[0]))
            elif kind == "m":
                if g[0] in ("May", "March") and re.match(r"\s+(?:be|have|not)\b", q[m.end():]):
                    continue
                mt = _Mention("month", m.start(), m.end(), None, _mon(g[0]))
            elif kind == "d":
                mt = _Mention("date", m.start(), m.end(), int(g[1]) if g[1] else None, None, int(g[0]))
            elif kind == "ampm":
                h = int(g[0]) % 12 + (12 if g[2].lower() == "p" else 0)
                mt = _Mention("clock", m.start(), m.end(), minute=h * 60 + int(g[1] or 0))
            elif kind == "inthe":
                h = int(g[0]) % 12 + (0 if g[2].lower() == "morning" else 12)
                mt = _Mention("clock", m.start(), m.end(), minute=h * 60 + int(g[1] or 0))
            elif kind == "named":
                mt = _Mention("clock", m.start(), m.end(), minute=0 if g[0].lower() == "midnight" else 720)
            elif kind == "hhmm":
                mt = _Mention("clock", m.start(), m.end(), minute=int(g[0]) * 60 + int(g[1]))
            elif kind == "y":
                mt = _Mention("year", m.start(), m.end(), int(g[0]))
            if mt is not None:
                taken.append((m.start(), m.end()))
                out.append(mt)
    out.sort(key=lambda x: x.start)
    # a bare day takes the month before it; a date or month without a year takes the next year named,
    # else the one before
    cal = [x for x in out if x.kind != "clock"]
    for i, x in enumerate(cal):
        if x.kind == "date" and x.m is None:
            prev = [p for p in cal[:i] if p.m is not None]
            if not prev:
                return []
            x.m = prev[-1].m
    for i, x in enumerate(cal):
        if x.y is None:
            nxt = [p for p in cal[i + 1:] if p.y is not None]
            prev = [p for p in cal[:i] if p.y is not None]
            if nxt:
                x.y = nxt[0].y
            elif prev:
                x.y = prev[-1].y
    return out


_RANGE_GAP = re.compile(r"\s*(?:-|–|—|to|through|thru|until|till|up to)\s*", re.I)


def _span(x: _Mention) -> tuple[datetime, datetime] | None:
    try:
        if x.kind == "date" and x.y is not None:
            a = datetime(x.y, x.m, x.d)
            return a, a + timedelta(days=1) - timedelta(minutes=1)
        if x.kind == "month" and x.y is not None:
            a = datetime(x.y, x.m, 1)
            b = datetime(x.y + (x.m == 12), x.m % 12 + 1, 1)
            return a, b - timedelta(minutes=1)
        if x.kind == "year":
            return datetime(x.y, 1, 1), datetime(x.y, 12, 31, 23, 59)
    except (ValueError, TypeError):
        return None
    return None


@dataclass
class _When:
    """What the question's dates and times select: intervals of time (points or ranges)."""

    spans: list[tuple[datetime, datetime, bool]] = field(default_factory=list)  # (lo, hi, is a range)
    clocks: list[tuple[int, int]] = field(default_factory=list)  # minutes of the day, when not folded in
    bad: bool = False  # a date the parser could not place

    def holds(self, d: datetime) -> bool:
        if self.spans and not any(lo <= d <= hi for lo, hi, _ in self.spans):
            return False
        if self.clocks and not any(a <= d.hour * 60 + d.minute <= b for a, b in self.clocks):
            return False
        return True


def _groups(q: str, ms: list[_Mention]) -> list[tuple[_Mention, _Mention | None]]:
    """Mentions paired into ranges (a, b) or left as points (a, None)."""
    out: list[tuple[_Mention, _Mention | None]] = []
    i = 0
    while i < len(ms):
        a = ms[i]
        if i + 1 < len(ms):
            b = ms[i + 1]
            gap = q[a.end:b.start]
            between = re.search(r"\bbetween\s*$", q[:a.start], re.I) and re.fullmatch(r"\s*and\s*", gap, re.I)
            if (_RANGE_GAP.fullmatch(gap) or between) and (a.kind == "clock") == (b.kind == "clock"):
                out.append((a, b))
                i += 2
                continue
        out.append((a, None))
        i += 1
    return out


def _when(q: str, ms: list[_Mention], strict: bool = True) -> _When:
    """The spans and clock times the mentions select; with `strict` off, a date that cannot be
    placed (a month without a year) is left out instead of spoiling the whole."""
    w = _When()
    if not strict:
        ms = [x for x in ms if x.kind in ("clock", "year") or _span(x) is not None]
    cal = [x for x in ms if x.kind != "clock"]
    clk = [x for x in ms if x.kind == "clock"]
    spans: list[tuple[datetime, datetime, bool]] = []
    for a, b in _groups(q, cal):
        sa = _span(a)
        sb = _span(b) if b is not None else sa
        if sa is None or sb is None:
            w.bad = True
            return w
        spans.append((sa[0], sb[1], b is not None))
    # a coarser span around finer ones ("July 2013 (July 1st to 7th)") adds nothing
    spans = [s for s in spans if not any(o != s and s[0] <= o[0] and o[1] <= s[1] for o in spans)]
    clocks = [(a.minute, (b or a).minute) for a, b in _groups(q, clk)]
    if clocks and spans and all(hi - lo < timedelta(days=1) for lo, hi, _ in spans):
        spans = [(lo + timedelta(minutes=a), lo + timedelta(minutes=b), a != b or rng)
                 for lo, _, rng in spans for a, b in clocks]
        clocks = []
    w.spans, w.clocks = spans, clocks
    return w


# ---- the question's parts -------------------------------------------------------------------------

_ASK_KEY = re.compile(r"\b(?:which|what)\s+(?:[\w-]+\s+){0,2}?(day|days|date|dates|year|years|week|weeks|month|"
                      r"months|hour|hours|time|times)\b|^\s*when\b|\bat what time\b", re.I)
_UNIT = {"hour": ("minute", 60), "day": ("day", 1), "week": ("day", 7), "month": ("month", 1), "year": ("year", 1)}
_NUMWORD = {"one": 1, "a": 1, "an": 1, "the": 1, "two": 2, "three": 3, "1": 1, "2": 2, "3": 3}


@dataclass
class _Cond:
    col_text: str  # the words naming the column
    op: str  # > >= < <= !=
    value: float


def _conds(text: str) -> tuple[str, list[_Cond]]:
    """Numeric conditions of `text`, and the text with their numbers blanked (not dates)."""
    out = []
    for m in _CMP.finditer(text):
        word = m.group(1).lower()
        op = {"above": ">", "over": ">", "more than": ">", "greater than": ">", "higher than": ">",
              "at least": ">=", "below": "<", "under": "<", "less than": "<", "lower than": "<",
              "at most": "<="}.get(word, ">")
        out.append(_Cond(text[max(0, m.start() - 60):m.start()], op, float(m.group(2).replace(",", ""))))
    text = _CMP.sub(lambda m: m.group(1) + " " + "#" * len(m.group(2)), text)
    for m in _NONZERO.finditer(text):
        out.append(_Cond(text[m.end():m.end() + 40], "!=", 0.0))
    return text, out


def _superlative(text: str) -> str | None:
    ws = {w.lower() for w in _WORD.findall(text)}
    hi, lo = bool(ws & _MAX_WORDS), bool(ws & _MIN_WORDS)
    if hi == lo:
        return None
    return "max" if hi else "min"


def _path_words(path: str) -> set[str]:
    name = re.split(r"[\\/]", path)[-1].rsplit(".", 1)[0]
    return {stem(p) for p in re.findall(r"[a-z]+|[A-Z][a-z]*", name) if len(p) >= 3} | (
        {re.sub(r"[^a-z]", "", name.lower())} if len(re.sub(r"[^a-z]", "", name.lower())) >= 4 else set())


def _cats(t: _Table, text: str) -> dict[int, set[str]]:
    """Category filters: text columns whose values the question names ("fog", "Nuclear Energy")."""
    qw: set[str] = set()
    for w in _WORD.findall(text):
        for p in w.split("-"):  # fossil-fuel, but rain_mm names a column, not the value "rain"
            qw |= _adjective(p)
    qtok = set(re.findall(r"[a-z0-9][\w.:+-]*[a-z0-9]", text.lower()))
    out: dict[int, set[str]] = {}
    for c in range(t.width):
        if c == t.key or c in t.numeric:
            continue
        vals = {r.cells[c] for r in t.rows}
        if not vals or len(vals) > 30:
            continue
        vw = {v: {stem(p) for p in re.findall(r"[A-Za-z]{3,}", v)} for v in vals}
        common = set.intersection(*vw.values()) if len(vw) > 1 else set()
        # a value named as written ("pump-1", "ALARM") picks its rows, and only those; else values
        # whose own words the question names ("foggy" → fog)
        exact = {v for v in vals if len(v) >= 2 and v.lower() in qtok}
        hit = exact or {v for v, ws in vw.items() if (ws - common) & qw}
        if hit and len(hit) < len(vals):
            out[c] = hit
    return out


def _month_cols(t: _Table) -> dict[int, int]:
    out = {}
    for c, h in enumerate(t.header):
        hl = h.lower()
        if c != t.key and (hl in _MONTHS or hl in [m[:3] for m in _MONTHS]):
            out[_mon(hl)] = c
    return out if len(out) >= 3 else {}


@dataclass
class _Plan:
    table: _Table
    rows: list[_Row]  # the rows the question's dates, categories and conditions leave, in key order
    cols: list[int]  # value columns asked, in the order named
    points: int  # how many separate keys the question names (0: a range or none)
    op: str | None  # max | min | first-above | first-below | None
    cond_col: int | None = None
    threshold: float | None = None
    cmp: str = ">"
    ask_key: bool = False
    month_cols: list[int] = field(default_factory=list)
    ranged: bool = False  # the question names a range of keys
    filtered: bool = False  # rows were kept by a category or a numeric condition


def _score_table(t: _Table, text: str, tags: dict[str, float], when: _When) -> float:
    qs = {stem(w) for w in _WORD.findall(text)} | {re.sub(r"[^a-z]", "", text.lower())}
    squash = re.sub(r"[^a-z0-9]", "", text.lower())
    s = 2.0 * sum(1 for p in _path_words(t.path) if p in qs or (len(p) >= 4 and p in squash))
    s += max((_col_score(t, c, tags, text) for c in range(t.width) if c != t.key), default=0.0)
    s += len(_cats(t, text))
    if when.spans or when.clocks:
        s += 3.0 if any(when.holds(r.dt) for r in t.rows) else 0.0
    return s


def _pick_table(ts: list[_Table], text: str, when: _When, prefer: _Table | None = None) -> _Table | None:
    tags = _qtags(text)
    scored = sorted(((_score_table(t, text, tags, when), k) for k, t in enumerate(ts)), reverse=True)
    if not scored:
        return None
    best = scored[0][0]
    top = [ts[k] for s, k in scored if s == best]
    if prefer is not None and (prefer in top or best <= 0):
        return prefer
    return top[0] if len(top) == 1 and best > 0 else None


def _covered(t: _Table, rows: list[_Row], when: _When, n_points: int) -> bool:
    """The rows hold every key the question names, and every range without a gap."""
    if when.clocks and not when.spans:
        return False  # a clock time on every day: no single key
    for lo, hi, rng in when.spans:
        inside = sorted({r.dt for r in rows if lo <= r.dt <= hi})
        if not inside:
            return False
        if len(inside) == 1 and not rng and _ord(lo, t.unit) == _ord(hi, t.unit):
            continue  # a point at the table's own grain
        if t.step is None:
            return False  # can't tell whether rows are missing
        o = [_ord(d, t.unit) for d in inside]
        if any(b - a != t.step for a, b in zip(o, o[1:])):
            return False
        if o[0] - _ord(lo, t.unit) >= t.step or _ord(hi, t.unit) - o[-1] >= t.step:
            return False
    return True


def _plan(ts: list[_Table], text: str, prefer: _Table | None = None, need_value: bool = True) -> _Plan | None:
    text, conds = _conds(text)
    ms = _mentions(text)
    t = _pick_table(ts, text, _when(text, ms, strict=False), prefer)
    if t is None:
        return None
    mcols = _month_cols(t)
    month_cols: list[int] = []
    if mcols:
        # in a wide table of months, a month named without a day is a column, its year the key
        named = [x for x in ms if x.kind == "month" and x.m in mcols]
        month_cols = [mcols[x.m] for x in named]
        ms = [x if x not in named else _Mention("year", x.start, x.end, x.y) for x in ms if x.y is not None
              or x not in named]
        ms = _dedupe_years(ms)
    when = _when(text, ms)
    if when.bad:
        return None
    if _VAGUE_DAYS.search(text) and not any(x.kind == "date" and x.y is not None for x in ms):
        return None
    if _VAGUE_MONTHS.search(text) and not any(x.kind in ("date", "month") and x.y is not None for x in ms):
        return None
    if _VAGUE_CLOCK.search(text) and t.unit == "minute" and not when.clocks and not any(
            rng or hi - lo < timedelta(days=1) for lo, hi, rng in when.spans if rng or hi - lo < timedelta(hours=1)):
        return None
    tags = _qtags(text)
    cats = _cats(t, text)
    rows = [r for r in t.rows if when.holds(r.dt) and all(r.cells[c] in v for c, v in cats.items())]
    cat_words = {stem(p) for v in cats.values() for x in v for p in re.findall(r"[A-Za-z]+", x)}
    scores = {c: _col_score(t, c, tags, text) for c in t.numeric}
    for c in cats:
        scores.pop(c, None)
    plan = _Plan(t, rows, [], 0, _superlative(text), ask_key=bool(_ASK_KEY.search(text)), month_cols=month_cols)
    # numeric conditions name their column in the words before (above) or after (non-zero) them
    for cd in conds:
        cs = {c: _col_score(t, c, _qtags(cd.col_text), cd.col_text) for c in t.numeric}
        best = max(cs.values(), default=0)
        cands = [c for c, s in cs.items() if s == best and s >= 1]
        if not cands:
            cands = sorted(t.numeric) if len(t.numeric) == 1 else []
        if len(cands) != 1:
            return None
        c = cands[0]
        first = _FIRST.search(text) and cd.op != "!="
        if first:
            plan.op, plan.cond_col, plan.threshold, plan.cmp = ("first-above" if ">" in cd.op else "first-below",
                                                                c, cd.value, cd.op)
        else:
            plan.rows = [r for r in plan.rows if _holds(r.cells[c], cd.op, cd.value)]
            scores.pop(c, None) if cd.op == "!=" else None
    if not plan.op:
        for c in range(t.width):
            if c != t.key and c not in t.numeric and c not in cats:
                scores[c] = _col_score(t, c, tags, text)
    best = max(scores.values(), default=0.0)
    if best >= 1:
        top = [c for c, s in scores.items() if s == best]
        strong = sorted((c for c, s in scores.items() if s >= 1), key=lambda c: _first_pos(t.header[c], text))
        if len(strong) > 1 and _joined(text, [_first_pos(t.header[c], text) for c in strong]):
            top = strong  # "both the precipitation and the wind speed"
        elif len(top) > 1:
            fewest = min(_unnamed(t, c, tags) for c in top)
            top = [c for c in top if _unnamed(t, c, tags) == fewest]
            if len(top) > 1:
                return None
        plan.cols = sorted(top, key=lambda c: _first_pos(t.header[c], text))
    elif plan.cond_col is not None:
        plan.cols = [plan.cond_col]
    elif len(t.numeric) == 1 and not cat_words >= {stem(w) for w in _WORD.findall(t.header[next(iter(t.numeric))])}:
        plan.cols = sorted(t.numeric)
    if month_cols:
        plan.cols = month_cols
    if need_value and not plan.cols and not (plan.ask_key and (cats or conds)):
        return None
    plan.points = sum(1 for _, _, rng in when.spans if not rng)
    if not _covered(t, plan.rows if not conds and not cats else [r for r in t.rows if when.holds(r.dt)], when,
                    plan.points) and (when.spans or when.clocks):
        return None
    plan.ranged = any(rng for _, _, rng in when.spans) or bool(when.clocks)
    plan.filtered = bool(cats) or any(cd.op == "!=" or not _FIRST.search(text) for cd in conds)
    return plan


def _dedupe_years(ms: list[_Mention]) -> list[_Mention]:
    out: list[_Mention] = []
    for x in ms:
        if x.kind == "year" and any(o.kind == "year" and o.y == x.y for o in out):
            continue
        out.append(x)
    return out


def _joined(text: str, pos: list[int]) -> bool:
    """Columns named together: "both X and Y", "X, Y and Z"."""
    if len(text) in pos:
        return False
    if re.search(r"\bboth\b", text, re.I):
        return True
    return all(b - a < 40 and re.search(r",|\band\b|&", text[a:b]) for a, b in zip(pos, pos[1:]))


def _first_pos(name: str, text: str) -> int:
    exact = re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", text, re.I)
    if exact:
        return exact.start()
    tags = {_canon(p) for p in _parts(name)} - _QUALIFIER
    for m in _WORD.finditer(text):
        w = m.group()
        implied = _IMPLIED.get(w.lower(), ())
        if any(_canon(p) in tags for p in [w.lower(), *_parts(w)]) or any(t in tags for t in implied):
            return m.start()
    return len(text)


def _holds(cell: str, op: str, v: float) -> bool:
    x = _num(cell)
    if x is None:
        return False
    return {">": x > v, ">=": x >= v, "<": x < v, "<=": x <= v, "!=": x != v}[op]


def _keys_unique(rows: list[_Row]) -> bool:
    return len({r.dt for r in rows}) == len(rows)


def _select(p: _Plan, value_only: bool = False) -> tuple[_Row, int | None, str] | None:
    """The anchor row of a superlative or a first-above plan (and, in a wide table, its column).
    A tie is None, unless only the value is wanted (`value_only`): then the first tied row."""
    rows = p.rows
    if not rows or not _keys_unique(rows):
        return None
    if p.op in ("first-above", "first-below"):
        for r in rows:
            if _holds(r.cells[p.cond_col], p.cmp, p.threshold):
                return r, p.cond_col, p.op
        return None
    if p.op not in ("max", "min") or not p.cols:
        return None
    if len(p.cols) > 1:
        if not p.month_cols or len(rows) != 1:
            return None
        vals = [(_num(rows[0].cells[c]), c) for c in p.cols]
        if any(v is None for v, _ in vals):
            return None
        best = (max if p.op == "max" else min)(v for v, _ in vals)
        hit = [c for v, c in vals if v == best]
        return (rows[0], hit[0], p.op + "-over-columns") if len(hit) == 1 else None
    c = p.cols[0]
    vals = [(_num(r.cells[c]), r) for r in rows]
    if any(v is None for v, _ in vals):
        return None
    best = (max if p.op == "max" else min)(v for v, _ in vals)
    hit = [r for v, r in vals if v == best]
    if len(hit) != 1 and not value_only:
        return None
    return hit[0], c, p.op


FILTER_ROWS = 5  # rows a filter with no key named may answer with


def _one_hop(ts: list[_Table], q: str) -> TableAnswer | None:
    p = _plan(ts, q)
    if p is None:
        return None
    rows = p.rows
    if p.op is not None:
        sel = _select(p, value_only=not p.ask_key and p.op in ("max", "min"))
        if sel is None:
            return None
        r, c, how = sel
        if how.endswith("-over-columns"):
            if not re.search(r"\b(which|what)\s+month\b", q, re.I):
                return None
            return TableAnswer(p.table.header[c], [(r.doc, r.line)], how)
        if p.ask_key:
            return TableAnswer(r.cells[p.table.key], [(r.doc, r.line)], how)
        if p.op.startswith("first"):
            if len(p.cols) != 1:
                return None
            return TableAnswer(r.cells[p.cols[0]], [(r.doc, r.line)], how)
        return TableAnswer(r.cells[c], [(r.doc, r.line)], how)
    if not rows or not _keys_unique(rows):
        return None
    text_cols = [c for c in p.cols if c not in p.table.numeric]
    if p.ask_key:
        if not p.filtered:
            return None
        if text_cols and text_cols == p.cols and len(rows) <= FILTER_ROWS:
            # "which sensor reported ALARM, and at what time": the named columns, then the key
            return TableAnswer("; ".join(", ".join([*(r.cells[c] for c in text_cols), r.cells[p.table.key]])
                                         for r in rows), [(r.doc, r.line) for r in rows], "filter")
        return TableAnswer(", ".join(r.cells[p.table.key] for r in rows), [(r.doc, r.line) for r in rows], "filter")
    if not p.points and p.filtered and p.cols and not p.ranged and len(rows) <= FILTER_ROWS:
        # no key named, rows picked by their values ("which sensor reported ALARM")
        return TableAnswer(", ".join(r.cells[c] for r in rows for c in p.cols), [(r.doc, r.line) for r in rows],
                           "filter")
    # a lookup: one row for each key named
    if not p.points or len(rows) != p.points or p.ranged:
        return None
    vals = [r.cells[c] for r in rows for c in p.cols]
    return TableAnswer(", ".join(vals), [(r.doc, r.line) for r in rows], "lookup")


# ---- two hops -------------------------------------------------------------------------------------

_UNITW = r"(year|day|week|month|hour|date|time)"
_HOP_AFTER = re.compile(rf"^(?P<read>.*?)\b(?:in|on|at|for|during)\s+the\s+{_UNITW}\s+(?:right\s+|immediately\s+|"
                        rf"just\s+)?(?P<dir>after|before|following|preceding)\s+(?P<sel>.*)$", re.I | re.S)
_HOP_WITH = re.compile(rf"^(?P<read>.*?)\b(?:in|on|at|for|during)\s+the\s+{_UNITW}\s+(?:with|when|that|in which|"
                       rf"where|whose|its)\b(?P<sel>.*)$", re.I | re.S)
_HOP_SUPER = re.compile(rf"^(?P<read>.*?)\b(?:in|on|at|for|during)\s+the\s+(?P<sel>(?:\w+est|peak)\s+{_UNITW}\b.*)$",
                        re.I | re.S)
_HOP_FIRST = re.compile(rf"^\s*(?:in|on|at|during)\s+the\s+(?P<sel>first\s+{_UNITW}\s+(?:that|when|in which)\b"
                        rf"(?:[^,;?]|,(?=\d))*)[,;]\s*(?P<read>.*)$", re.I | re.S)
_OFFSET = re.compile(r"\b(?:(one|a|an|the|two|three|1|2|3)\s+)?(hour|day|week|month|year)s?\s+(?:right\s+|just\s+)?"
                     r"(after|before|later|earlier|following)\b|\b(next|following|previous|preceding)\s+"
                     r"(hour|day|week|month|year)\b", re.I)


def _split(q: str) -> tuple[str, str, int, str | None] | None:
    """(read part, selector part, row offset, offset unit) of a two-hop question, or None."""
    if ";" in q:
        a, b = q.split(";", 1)
        parts = [(a, b), (b, a)]
        for sel, read in parts:
            if _superlative(sel) or _CMP.search(sel) or re.search(r"\bpeak", sel, re.I):
                off, unit = _offset(read)
                return read, sel, off, unit
        return None
    m = _HOP_FIRST.match(q)
    if m:
        off, unit = _offset(m["read"])
        return m["read"], m["sel"], off, unit
    m = _HOP_AFTER.match(q)
    if m:
        sign = -1 if m["dir"].lower() in ("before", "preceding") else 1
        return m["read"], m["sel"], sign, m[2].lower()
    for rx in (_HOP_WITH, _HOP_SUPER):
        m = rx.match(q)
        if m and m["read"].strip() and (_superlative(m["sel"]) or _CMP.search(m["sel"])):
            off, unit = _offset(m["read"])
            return m["read"], m["sel"], off, unit
    return None


def _offset(text: str) -> tuple[int, str | None]:
    m = _OFFSET.search(text)
    if not m:
        return 0, None
    if m[4]:
        return (-1 if m[4].lower() in ("previous", "preceding") else 1), m[5].lower()
    n = _NUMWORD.get((m[1] or "one").lower(), 1)
    return (-n if m[3].lower() in ("before", "earlier") else n), m[2].lower()


def _two_hop(ts: list[_Table], q: str, parts: tuple[str, str, int, str | None]) -> TableAnswer | None:
    read, sel_text, off, unit = parts
    sp = _plan(ts, sel_text)
    if sp is None and not _pick_table(ts, sel_text, _When()):
        return None
    if sp is None:
        # the selector may name its table only in the other half ("Iowa's …")
        t = _pick_table(ts, q, _When())
        sp = _plan(ts, sel_text, prefer=t) if t is not None else None
    if sp is None:
        return None
    if sp.op is None:
        # "the week after March 7th 1998": a named key is the anchor
        if sp.points != 1 or sp.ranged or len(sp.rows) != 1 or len(sp.cols) != 1:
            return None
        sel = (sp.rows[0], sp.cols[0], "lookup")
    else:
        sel = _select(sp)
    if sel is None or sel[2].endswith("-over-columns"):
        return None
    anchor, acol, how = sel
    t = sp.table
    target = anchor.dt
    if off:
        if unit is not None and unit in _UNIT:
            u, n = _UNIT[unit]
            want = _ord(anchor.dt, u) + off * n
        else:
            u, want = t.unit, _ord(anchor.dt, t.unit) + off * (t.step or 0)
            if not t.step:
                return None
        hits = sorted({r.dt for r in t.rows if _ord(r.dt, u) == want and (t.unit != "minute" or u == "minute" or
                                                                           r.dt.time() == anchor.dt.time())})
        if len(hits) != 1:
            return None
        target = hits[0]
    rp = _plan(ts, read, prefer=t, need_value=True)
    if rp is None:
        # the read part may name no column: "what was the reading one hour after that peak"
        if _qtags_named(read, t) or any(_score_table(o, read, _qtags(read), _When()) > 0 for o in ts if o is not t):
            return None
        rp = _Plan(t, list(t.rows), [acol] if acol in t.numeric else [], 0, None)
        if not rp.cols:
            return None
    rt = rp.table
    if rt is not t and rt.unit != t.unit and {rt.unit, t.unit} != {"year"}:
        if not (t.unit == "year" or rt.unit == "year"):
            return None
    rows = [r for r in rt.rows if _same_key(r.dt, target, t.unit, rt.unit)]
    cats = _cats(rt, read)
    rows = [r for r in rows if all(r.cells[c] in v for c, v in cats.items())]
    if len(rows) != 1 or len(rp.cols) != 1:
        return None
    r = rows[0]
    cells = [(anchor.doc, anchor.line), (r.doc, r.line)]
    word = {"max": "argmax", "min": "argmin"}.get(how, how)
    return TableAnswer(r.cells[rp.cols[0]], cells, f"{word}-then-read")


def _qtags_named(read: str, t: _Table) -> bool:
    """The read part names a column of `t` (so a failed plan is not a bare "the reading")."""
    tags = _qtags(read)
    return any(_col_score(t, c, tags, read) >= 1 for c in t.numeric)


def _same_key(a: datetime, b: datetime, ua: str, ub: str) -> bool:
    if "year" in (ua, ub):
        return a.year == b.year
    if "month" in (ua, ub):
        return (a.year, a.month) == (b.year, b.month)
    return a == b


# ---- the entry point ------------------------------------------------------------------------------


def answer_table(question: str, docs: list[tuple[str, str, str]]) -> TableAnswer | None:
    """The answer to a table question from the CSV rows of `docs`, or None when unsure.

    docs are (path, anchor, text) in routing order, as msa_agent.focus.focus receives them."""
    ts = tables(docs)
    if not ts:
        return None
    q = question.strip()
    parts = _split(q)
    if parts is not None:
        return _two_hop(ts, q, parts)
    return _one_hop(ts, q)
