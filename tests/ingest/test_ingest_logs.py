"""Sensor logs: timestamp and sensor columns, UTC conversion, hour windows, malformed rows."""

import json
from datetime import datetime, timedelta, timezone

import pytest

from msa_agent.ingest import SourceError, detect_kind, parse_file


def _iso(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


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
        assert sorted(body[2:]) == sorted(lines[n - 1] for n in numbers)  # rows verbatim
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
    assert all(d.text.split("\n")[1] == "time,device,value" for d in docs)  # header repeated
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
    assert d.text.split("\n")[2:] == [src.split("\n")[i] for i in (2, 1, 3)]
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
    assert d.anchor_data["tz_assumed"] == "UTC" and d.anchor_data["t_start"] == "2024-03-14T02:17:00Z"


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
    assert all(json.loads(x)["sensor"] == "pump-1" for x in p1.text.split("\n")[1:])
    assert warnings == ["events.jsonl: skipped 1 malformed row(s), first at line 4"]
