"""Sensor logs: timestamp and sensor columns, UTC conversion, hour windows, malformed rows."""

import csv
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from msa_agent.ingest import SourceError, detect_kind, parse_file

CORPUS = Path(__file__).resolve().parents[2] / "samples" / "corpus"
NORMAL = {"OK", "NORMAL", "INFO", "GOOD"}


def _iso(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def _clock(s: str) -> str:
    return _iso(s).astimezone(timezone.utc).replace(tzinfo=None).isoformat()[11:] + "Z"


def _decimals(s: str) -> int:
    return len(s) - s.index(".") - 1 if "." in s else 0


def check_summary(d, ts="time", long=None) -> list[str]:
    """Recompute every fact of d's summary from d's own rows; return the metrics it describes.

    long: (metric column, value column) of a long-format log.
    """
    body = d.text.split("\n")
    n = d.anchor_data["rows"]
    rows_text = body[-n:]
    if rows_text[0].lstrip().startswith("{"):
        summary, rows = body[1:-n], [json.loads(x) for x in rows_text]
        rows = [{k: json.dumps(v) if not isinstance(v, str) else v for k, v in r.items()} for r in rows]
    else:
        summary, rows = body[1:-n - 1], list(csv.DictReader(body[-n - 1 :]))
    assert len(summary) <= 5 and all(len(x) < 200 for x in summary)
    at = [_clock(r[ts]) for r in rows]
    metrics = []
    for line in summary:
        name, rest = line.split(": ", 1)
        if long:
            vals = [(r[long[1]], t) for r, t in zip(rows, at) if r[long[0]] == name]
        else:
            vals = [(r[name], t) for r, t in zip(rows, at) if r.get(name, "") != ""]
        m = re.fullmatch(r"min (\S+) at (\S+), max (\S+) at (\S+), mean (\S+) \((\d+) rows\)", rest)
        one = re.fullmatch(r"(\S+) at (\S+) \(1 row\)", rest)
        if m or one:
            metrics.append(name)
            if one:
                assert vals == [(one[1], one[2])]
                continue
            nums = [float(v) for v, _ in vals]
            assert int(m[6]) == len(vals)
            lo, hi = min(nums), max(nums)
            assert (m[1], m[2]) == vals[nums.index(lo)] and (m[3], m[4]) == vals[nums.index(hi)]
            assert abs(float(m[5]) - sum(nums) / len(nums)) <= 0.5 * 10 ** -_decimals(m[5]) + 1e-9
            continue
        counts: dict[str, list[str]] = {}
        for r, t in zip(rows, at):
            counts.setdefault(r[name], []).append(t)
        parts = re.findall(r"(\d+) (\S+)(?: \(([^)]*)\))?(?:, |$)", rest)
        assert ", ".join(f"{c} {v}" + (f" ({x})" if x else "") for c, v, x in parts) == rest
        assert {v: int(c) for c, v, _ in parts} == {v: len(ts_) for v, ts_ in counts.items()}
        for c, v, x in parts:
            if v.upper() in NORMAL:
                assert not x
            else:
                times = counts[v]
                assert x == ", ".join(times[:5] + (["…"] if len(times) > 5 else []))
                assert v in d.title.split()
    return metrics


def _check_windows(docs, src: str, max_chars: int):
    lines = src.split("\n")
    seen = []
    for d in docs:
        a = d.anchor_data
        assert d.kind == "log" and 0 < len(d.text) <= max_chars
        assert a["t_start"].endswith("Z") and a["t_end"].endswith("Z")
        t0, t1 = _iso(a["t_start"]), _iso(a["t_end"])
        assert timedelta(0) <= t1 - t0 < timedelta(hours=1)
        assert d.anchor == f"{a['t_start']} – {a['t_end']}, lines {a['line_start']}-{a['line_end']}" or d.anchor.endswith(f"line {a['line_start']}")
        body = d.text.split("\n")
        assert body[0] == f"sensor {a['sensor']}, {a['t_start']} – {a['t_end']}"
        ranges = a.get("line_ranges", [[a["line_start"], a["line_end"]]])
        numbers = [n for x, y in ranges for n in range(x, y + 1)]
        assert sorted(body[-len(numbers) :]) == sorted(lines[n - 1] for n in numbers)  # rows verbatim
        assert 1 <= len(body) - len(numbers) <= 7  # header line, a short summary, the CSV header
        assert a["rows"] == len(numbers)
        seen += numbers
    assert len(seen) == len(set(seen))
    return seen


def test_csv_iso_windows_per_sensor_and_hour(tmp_path):
    t0 = datetime(2024, 3, 1, 22, 30, tzinfo=timezone.utc)
    rows = ["time,device,value"]
    for i in range(120):  # 2 sensors, one reading each per minute, across midnight
        t = t0 + timedelta(minutes=i // 2)
        rows.append(f"{t.isoformat().replace('+00:00', 'Z')},{'a' if i % 2 else 'b'},{i}")
    src = "\n".join(rows) + "\n"
    p = tmp_path / "plant.csv"
    p.write_text(src)
    assert detect_kind(p) == "log"
    docs = parse_file(p, tmp_path)
    seen = _check_windows(docs, src, 2400)
    assert sorted(seen) == list(range(2, 122))
    assert all(d.text.split("\n")[2] == "time,device,value" for d in docs)  # header repeated after the summary
    assert all(check_summary(d) == ["value"] for d in docs)
    spans = sorted((d.anchor_data["sensor"], d.anchor_data["t_start"], d.anchor_data["t_end"]) for d in docs)
    assert spans == [
        ("a", "2024-03-01T22:30:00Z", "2024-03-01T22:59:00Z"),
        ("a", "2024-03-01T23:00:00Z", "2024-03-01T23:29:00Z"),
        ("b", "2024-03-01T22:30:00Z", "2024-03-01T22:59:00Z"),
        ("b", "2024-03-01T23:00:00Z", "2024-03-01T23:29:00Z"),
    ]
    assert "tz_assumed" not in docs[0].anchor_data and docs[0].title in {"a", "b"}

    small = parse_file(p, tmp_path, max_chars=300)
    assert len(small) > len(docs)
    assert sorted(_check_windows(small, src, 300)) == list(range(2, 122))
    assert all(check_summary(d) == ["value"] for d in small)  # each summary counts only its own rows


def test_offsets_are_converted_to_utc_and_rows_sorted_by_event_time(tmp_path):
    src = (
        "timestamp;sensor;value\n"
        "2024-03-01T02:10:00+02:00;s1;2\n"  # 00:10Z
        "2024-03-01T00:05:00Z;s1;1\n"
        "2024-03-01 01:20:00.123456789+01:00;s1;3\n"  # 00:20:00.123456Z, nanoseconds cut
    )
    p = tmp_path / "x.csv"
    p.write_text(src)
    [d] = parse_file(p, tmp_path)
    assert d.anchor_data["t_start"] == "2024-03-01T00:05:00Z"
    assert d.anchor_data["t_end"] == "2024-03-01T00:20:00.123456Z"
    assert d.text.split("\n")[-3:] == [src.split("\n")[i] for i in (2, 1, 3)]
    assert d.text.split("\n")[1] == "value: min 1 at 00:05:00Z, max 3 at 00:20:00.123456Z, mean 2.00 (3 rows)"
    assert d.anchor.endswith("lines 2-4")


def test_epoch_milliseconds_and_naive_timestamps(tmp_path):
    base = int(datetime(2024, 3, 14, 2, 17, tzinfo=timezone.utc).timestamp())
    (tmp_path / "ms.tsv").write_text("ts\ttag\tv\n" + "".join(f"{(base + 60 * i) * 1000}\tpump-3\t{i}\n" for i in range(3)))
    [d] = parse_file(tmp_path / "ms.tsv", tmp_path)
    assert (d.anchor_data["t_start"], d.anchor_data["t_end"]) == ("2024-03-14T02:17:00Z", "2024-03-14T02:19:00Z")
    assert "tz_assumed" not in d.anchor_data and d.anchor_data["sensor"] == "pump-3"

    (tmp_path / "s.csv").write_text("reading,epoch\n1.5,%d\n" % base)  # found by content, not by name
    [d] = parse_file(tmp_path / "s.csv", tmp_path)
    assert d.anchor_data["t_start"] == "2024-03-14T02:17:00Z" and "sensor" not in d.anchor_data
    assert d.text.startswith("all rows, 2024-03-14T02:17:00Z")

    (tmp_path / "naive.csv").write_text("datetime,host,v\n2024-03-14 02:17:00,h1,1\n")
    [d] = parse_file(tmp_path / "naive.csv", tmp_path)
    # No zone written: a wall-clock time of an unknown zone, shown as written (no Z).
    assert d.anchor_data["tz"] == "unknown" and d.anchor_data["t_start"] == "2024-03-14T02:17:00"
    assert d.anchor.startswith("2024-03-14T02:17:00 – 2024-03-14T02:17:00,")
    [d] = parse_file(tmp_path / "naive.csv", tmp_path, timezone="Europe/Berlin")  # --timezone
    assert d.anchor_data["tz"] == "Europe/Berlin" and d.anchor_data["t_start"] == "2024-03-14T02:17:00+01:00"


def test_malformed_rows_are_skipped_and_counted(tmp_path):
    src = "timestamp,sensor,v\n2024-03-01T00:00:00Z,a,1\nnot a time,a,2\n2024-03-01T00:01:00Z,a\n2024-03-01T00:02:00Z,a,3\n"
    p = tmp_path / "m.csv"
    p.write_text(src)
    warnings: list[str] = []
    [d] = parse_file(p, tmp_path, warnings=warnings)
    assert d.anchor_data["rows"] == 2 and d.anchor_data["line_ranges"] == [[2, 2], [5, 5]]
    assert warnings == ["m.csv: skipped 2 malformed row(s), first at line 3"]


def test_log_without_any_parseable_row_is_an_error(tmp_path):
    (tmp_path / "bad.csv").write_text("timestamp,sensor,v\nyesterday,a,1\nsoon,b,2\n")
    with pytest.raises(SourceError, match="bad.csv: no row has a parseable timestamp in 'timestamp'"):
        parse_file(tmp_path / "bad.csv", tmp_path)


def test_csv_without_a_clock_is_text(tmp_path):
    (tmp_path / "parts.csv").write_text("part,qty\nNW-340,400\nNW-CB7,120\n")
    assert detect_kind(tmp_path / "parts.csv") == "text"
    [d] = parse_file(tmp_path / "parts.csv", tmp_path)
    assert d.kind == "text" and d.anchor == "lines 1-3"


def test_json_lines(tmp_path):
    recs = [{"ts": f"2024-03-01T00:{m:02d}:00Z", "sensor": "pump-1" if m % 2 else "pump-2", "p": m / 10} for m in range(10)]
    lines = [json.dumps(r) for r in recs]
    lines.insert(3, "{broken json")
    src = "\n".join(lines) + "\n"
    (tmp_path / "events.jsonl").write_text(src)
    assert detect_kind(tmp_path / "events.jsonl") == "log"
    warnings: list[str] = []
    docs = parse_file(tmp_path / "events.jsonl", tmp_path, warnings=warnings)
    assert {d.anchor_data["sensor"] for d in docs} == {"pump-1", "pump-2"}
    p1 = next(d for d in docs if d.anchor_data["sensor"] == "pump-1")
    assert p1.text.split("\n")[0] == "sensor pump-1, 2024-03-01T00:01:00Z – 2024-03-01T00:09:00Z"
    assert p1.text.split("\n")[1] == "p: min 0.1 at 00:01:00Z, max 0.9 at 00:09:00Z, mean 0.50 (5 rows)"
    assert all(json.loads(x)["sensor"] == "pump-1" for x in p1.text.split("\n")[2:])
    assert warnings == ["events.jsonl: skipped 1 malformed row(s), first at line 4"]


def test_sample_pump3_window_says_what_happened():
    docs = parse_file(CORPUS / "logs/plant_sensors.csv", CORPUS)
    lines = (CORPUS / "logs/plant_sensors.csv").read_text().split("\n")
    alarm = lines.index("2024-03-14T02:17:00Z,pump-3,pressure_bar,9.41,ALARM") + 1
    [d] = [d for d in docs if "ALARM" in d.title]
    a = d.anchor_data
    assert (a["sensor"], a["t_start"], a["t_end"]) == ("pump-3", "2024-03-14T02:01:00Z", "2024-03-14T02:57:00Z")
    assert d.title == "pump-3 ALARM WARN STOPPED"
    assert d.text.split("\n")[:4] == [
        "sensor pump-3, 2024-03-14T02:01:00Z – 2024-03-14T02:57:00Z",
        "pressure_bar: min 0.38 at 02:25:00Z, max 9.41 at 02:17:00Z, mean 6.40 (15 rows)",
        "status: 10 OK, 2 WARN (02:09:00Z, 02:13:00Z), 1 ALARM (02:17:00Z), 2 STOPPED (02:21:00Z, 02:25:00Z)",
        "timestamp,sensor_id,metric,value,status",
    ]
    assert {"t": "2024-03-14T02:17:00Z", "status": "ALARM", "line": alarm} in a["events"]
    assert [e["status"] for e in a["events"]] == ["WARN", "WARN", "ALARM", "STOPPED", "STOPPED"]
    assert a["counts"] == {"status": {"OK": 10, "WARN": 2, "ALARM": 1, "STOPPED": 2}}
    assert a["stats"]["pressure_bar"] == {
        "min": 0.38, "min_t": "2024-03-14T02:25:00Z", "max": 9.41, "max_t": "2024-03-14T02:17:00Z", "mean": 6.4, "n": 15
    }  # fmt: skip
    for x in docs:
        json.dumps(x.anchor_data)
        metric = "level_pct" if x.anchor_data["sensor"] == "tank-1" else "pressure_bar"
        assert check_summary(x, "timestamp", ("metric", "value")) == [metric]
        assert x is d or (x.title == x.anchor_data["sensor"] and "events" not in x.anchor_data)
    _check_windows(docs, "\n".join(lines), 2400)


def test_wide_csv_status_column_with_small_windows(tmp_path):
    levels = {7: "WARN", 20: "ERROR", 21: "ERROR", 40: "WARN"} | {i: "WARN" for i in range(50, 58)}
    rows = ["timestamp,device,seq,temp_c,vibration,level,note"]
    for i in range(60):
        t = f"2024-05-01T10:{i:02d}:00Z"
        rows.append(f"{t},m1,{1000 + i},{20 + i % 7}.{i % 10},{i * 0.01:.2f},{levels.get(i, 'INFO')},")
    src = "\n".join(rows) + "\n"
    (tmp_path / "m.csv").write_text(src)
    [whole] = parse_file(tmp_path / "m.csv", tmp_path, max_chars=100_000)
    assert check_summary(whole, "timestamp") == ["temp_c", "vibration"]  # seq is a counter, note is empty
    assert whole.title == "m1 ERROR WARN"
    level = whole.text.split("\n")[3]
    assert level == (
        "level: 48 INFO, 10 WARN (10:07:00Z, 10:40:00Z, 10:50:00Z, 10:51:00Z, 10:52:00Z, …), 2 ERROR (10:20:00Z, 10:21:00Z)"
    )
    assert len(whole.anchor_data["events"]) == 12 and whole.anchor_data["events"][0]["line"] == 9

    small = parse_file(tmp_path / "m.csv", tmp_path, max_chars=600)
    assert len(small) > 3
    _check_windows(small, src, 600)
    for d in small:  # each summary counts only the rows of its window; a third of max_chars at most
        assert check_summary(d, "timestamp") in (["temp_c", "vibration"], ["temp_c"])
        assert any(x.startswith("level: ") for x in d.text.split("\n")[1:4])  # statuses are dropped last
        flagged = sorted({e["level"] for e in d.anchor_data.get("events", [])}, key=lambda v: v != "ERROR")
        assert d.title == " ".join(["m1", *flagged])
        assert sum(d.anchor_data["counts"]["level"].values()) == d.anchor_data["rows"]


def test_free_text_ids_and_all_normal(tmp_path):
    recs = [
        {"ts": f"2024-03-01T00:{m:02d}:00Z", "host": "h1", "event_id": f"E-{m}", "event": f"door opened by op {m}",
         "state": "ok", "level": 50 + m, "at": {"x": 1}}
        for m in range(6)
    ]  # fmt: skip
    (tmp_path / "e.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    [d] = parse_file(tmp_path / "e.jsonl", tmp_path)
    assert d.title == "h1" and "events" not in d.anchor_data
    assert d.text.split("\n")[1:3] == [
        "level: min 50 at 00:00:00Z, max 55 at 00:05:00Z, mean 52.50 (6 rows)",  # numeric: a metric
        "state: 6 ok",
    ]
    assert d.anchor_data["counts"] == {"state": {"ok": 6}} and list(d.anchor_data["stats"]) == ["level"]
    check_summary(d, "ts")
