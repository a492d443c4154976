"""Syslog (RFC 3164, RFC 5424) and logfmt: detection, UTC and assumed years, windows, summaries;
every line log (and CSV) stays stable when rows are appended."""

import json
import os
from datetime import datetime, timezone

import pytest

from msa_agent.ingest import SourceError, detect_kind, parse_file
from msa_agent.ingest.syslog import logfmt_pairs, sniff_text_log


def _write(p, text, mtime=None):
    p.write_text(text)
    if mtime is not None:
        t = mtime.timestamp()
        os.utime(p, (t, t))
    return p


def _by_source(docs):
    out = {}
    for d in docs:
        out.setdefault(d.anchor_data.get("source"), []).append(d)
    return out


RFC3164 = """\
<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8
<38>Oct 11 22:14:20 mymachine sshd[4711]: Accepted publickey for bob from 10.0.0.7
<36>Oct 11 22:20:01 mymachine CRON[88]: (root) pam_unix: warning, session opened
<35>Oct 11 22:41:00 mymachine kernel: EXT4-fs error (device sda1): bad block
<38>Oct 11 23:02:00 mymachine sshd[4711]: Disconnected from 10.0.0.7
<38>Oct 11 22:15:00 otherhost sshd[12]: Accepted password for alice
"""


def test_rfc3164_with_pri_windows_per_host_and_hour(tmp_path):
    p = _write(tmp_path / "auth.log", RFC3164, datetime(2003, 11, 1, tzinfo=timezone.utc))
    assert detect_kind(p) == "log"
    docs = parse_file(p, tmp_path)
    assert all(d.kind == "log" and d.path == "auth.log" for d in docs)
    spans = [(d.anchor_data["source"], d.anchor_data["t_start"], d.anchor_data["t_end"]) for d in docs]
    # No year and no zone in the lines, none in the file or its name: both stay unknown (the
    # file's mtime says when it was last written, not when its lines were).
    assert spans == [  # sorted by event time, then source
        ("mymachine", "--10-11T22:14:15", "--10-11T22:41:00"),
        ("otherhost", "--10-11T22:15:00", "--10-11T22:15:00"),
        ("mymachine", "--10-11T23:02:00", "--10-11T23:02:00"),
    ]
    d = docs[0]
    a = d.anchor_data
    assert a["source_field"] == "host" and a["tz"] == "unknown" and a["year"] == "unknown" and a["format"] == "rfc3164"
    assert d.anchor == "--10-11T22:14:15 – --10-11T22:41:00, lines 1-4"
    assert (a["line_start"], a["line_end"], a["rows"]) == (1, 4, 4)
    assert d.title == "mymachine crit err warning"  # most severe first
    lines = RFC3164.split("\n")
    assert d.text.split("\n") == [
        "host mymachine, --10-11T22:14:15 – --10-11T22:41:00",
        "severity: 1 info, 1 crit (22:14:15), 1 warning (22:20:01), 1 err (22:41:00)",
        "app: 1 su, 1 sshd, 1 CRON, 1 kernel",
        *lines[:4],
    ]
    assert a["counts"] == {"severity": {"crit": 1, "info": 1, "warning": 1, "err": 1}, "app": {"su": 1, "sshd": 1, "CRON": 1, "kernel": 1}}
    assert [(e["severity"], e["line"]) for e in a["events"]] == [("crit", 1), ("warning", 3), ("err", 4)]
    assert docs[2].title == "mymachine" and "events" not in docs[2].anchor_data
    json.dumps([x.anchor_data for x in docs])


def test_rfc3164_year_from_the_file_name_rolls_over_new_year_and_mtime_is_ignored(tmp_path):
    src = "Dec 31 23:59:58 gw ntpd[1]: step\nJan  1 00:00:02 gw ntpd[1]: stepped\n"
    (tmp_path / "2024").mkdir()
    p = _write(tmp_path / "2024" / "syslog-20250102", src, datetime(2031, 6, 1, tzinfo=timezone.utc))
    assert detect_kind(p) == "log"  # no extension: by content
    docs = parse_file(p, tmp_path)
    # Rotated on 2025-01-02: its last line (Jan 1) is of 2025, the line before the new year of 2024.
    assert [(d.anchor_data["t_start"], d.anchor_data["year_from"]) for d in docs] == [
        ("2024-12-31T23:59:58", "file name"),
        ("2025-01-01T00:00:02", "file name"),
    ]
    assert all(d.anchor_data["tz"] == "unknown" and "year" not in d.anchor_data for d in docs)
    assert all("severity" not in d.anchor_data.get("counts", {}) for d in docs)  # no PRI: no severity
    assert docs[0].text.split("\n")[1] == "app: 1 ntpd"

    p = _write(tmp_path / "syslog", src, datetime(2031, 6, 1, tzinfo=timezone.utc))  # no date in the path
    assert [d.anchor_data["t_start"] for d in parse_file(p, tmp_path)] == ["--12-31T23:59:58", "--01-01T00:00:02"]


def test_rfc3164_year_from_a_dated_line_and_timezone(tmp_path):
    src = (
        "# rotated by logrotate on 2019-03-15\n"
        "Mar 14 23:59:00 gw app: one\n"
        "Mar 15 00:10:00 gw app: two\n"
        "Mar 15 00:20:00 gw app: three\n"
    )
    p = _write(tmp_path / "gw.log", src)
    docs = parse_file(p, tmp_path)
    assert [d.anchor_data["t_start"] for d in docs] == ["2019-03-14T23:59:00", "2019-03-15T00:10:00"]
    assert docs[0].anchor_data["year_from"] == "dated line 1" and docs[1].anchor_data["t_end"] == "2019-03-15T00:20:00"
    # --timezone says the zone: the wall clock is kept, with the zone's offset (UTC -> Z).
    docs = parse_file(p, tmp_path, timezone="America/New_York")
    assert [d.anchor_data["t_start"] for d in docs] == ["2019-03-14T23:59:00-04:00", "2019-03-15T00:10:00-04:00"]
    assert docs[0].anchor_data["tz"] == "America/New_York"
    docs = parse_file(p, tmp_path, timezone="UTC")
    assert docs[0].anchor_data["t_start"] == "2019-03-14T23:59:00Z"
    with pytest.raises(ValueError, match="unknown time zone"):
        parse_file(p, tmp_path, timezone="Mars/Olympus")


def test_var_log_syslog_style_continuations_and_banner(tmp_path):
    src = (
        "--- log opened ---\n"
        "Mar 14 02:17:00 host proc[123]: Traceback (most recent call last):\n"
        '  File "x.py", line 1, in <module>\n'
        "\n"
        "ValueError: boom\n"
        "Mar 14 02:18:00 host proc[123]: recovered\n"
        "Mar 14 02:19:00 host systemd[1]: Started session.\n"
    )
    p = _write(tmp_path / "messages.txt", src, datetime(2024, 6, 1, tzinfo=timezone.utc))
    assert detect_kind(p) == "log"
    warnings: list[str] = []
    [d] = parse_file(p, tmp_path, warnings=warnings)
    assert d.anchor_data["rows"] == 3 and d.anchor_data["line_start"] == 2 and d.anchor_data["line_end"] == 7
    assert d.text.endswith("\n".join(src.split("\n")[1:7]))  # the trace stays with its event, verbatim
    assert warnings == [
        "messages.txt: skipped 1 malformed line(s), first at line 1",
        "messages.txt: 2 line(s) not in syslog format kept with the event above, first at line 3",
    ]


def test_rfc5424_structured_data_nil_fields_and_offsets(tmp_path):
    src = (
        '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" '
        'eventSource="Application" eventID="1011"] An application event log entry...\n'
        '<165>1 2003-10-11T22:14:16.003Z mymachine.example.com evntslog - ID47 [a@1 x="]\\"quoted"] [b@2 y="2"]\n'
        "<11>1 2003-10-11T17:30:00-05:00 mymachine.example.com app 77 - - disk failed\n"
        "<14>1 - mymachine.example.com app - - - no time\n"
    )
    p = _write(tmp_path / "x.syslog", src)
    assert detect_kind(p) == "log"
    warnings: list[str] = []
    [d] = parse_file(p, tmp_path, warnings=warnings)
    a = d.anchor_data
    assert (a["t_start"], a["t_end"], a["rows"]) == ("2003-10-11T22:14:15.003Z", "2003-10-11T22:30:00Z", 3)
    assert "tz_assumed" not in a and "year_assumed" not in a
    assert a["counts"]["severity"] == {"notice": 2, "err": 1} and d.title == "mymachine.example.com err"
    assert warnings == ["x.syslog: skipped 1 malformed line(s), first at line 4"]


def test_logfmt_per_sensor_with_level_and_metrics(tmp_path):
    rows = []
    for m in range(0, 90, 5):
        level = "error" if m in (15, 75) else "warn" if m == 40 else "info"
        rows.append(f'ts=2024-03-14T02:{m % 60:02d}:00Z level={level} sensor=pump-{3 if m < 60 else 4} msg="pressure reading" value={5 + m / 10:.2f}')
    rows.insert(2, 'level=info sensor=pump-3 msg="no clock"')
    src = "\n".join(rows) + "\n"
    p = _write(tmp_path / "pumps.log", src)
    assert sniff_text_log(src) == "logfmt" and detect_kind(p) == "log"
    warnings: list[str] = []
    docs = parse_file(p, tmp_path, warnings=warnings)
    assert warnings == ["pumps.log: skipped 1 malformed line(s), first at line 3"]
    assert [(d.anchor_data["source"], d.anchor_data["t_start"]) for d in docs] == [
        ("pump-3", "2024-03-14T02:00:00Z"),
        ("pump-4", "2024-03-14T02:00:00Z"),
    ]
    d = docs[0]
    assert d.anchor_data["source_field"] == "sensor" and "tz_assumed" not in d.anchor_data
    assert d.title == "pump-3 error warn"
    head = d.text.split("\n")[:3]
    assert head[0] == "sensor pump-3, 2024-03-14T02:00:00Z – 2024-03-14T02:55:00Z"
    assert head[1] == "value: min 5.00 at 02:00:00Z, max 10.50 at 02:55:00Z, mean 7.75 (12 rows)"
    assert head[2] == "level: 10 info, 1 error (02:15:00Z), 1 warn (02:40:00Z)"
    assert d.anchor_data["counts"] == {"level": {"info": 10, "error": 1, "warn": 1}}
    assert docs[1].title == "pump-4 error" and docs[1].anchor_data["rows"] == 6


def test_logfmt_tokens_and_detection_rules(tmp_path):
    assert logfmt_pairs('ts=1 a="x \\"y\\"" flag b=') == {"ts": "1", "a": 'x "y"', "flag": "true", "b": ""}
    assert logfmt_pairs("just some words") is None and logfmt_pairs("a=1") is None
    assert sniff_text_log("This Agreement is made between the Parties.\nkey=value other=thing\n") is None
    assert sniff_text_log("time=2024-01-01T00:00:00Z app=api level=info\n") == "logfmt"
    assert sniff_text_log("2024-03-14T02:17:00Z INFO starting server\n") == "iso8601"  # not syslog: no host/tag
    assert sniff_text_log("2024-03-14T02:17:00.5+01:00 web-1 nginx[12]: GET /\n") == "syslog"
    (tmp_path / "nda.txt").write_text("This Agreement between the Parties (hereinafter 'Discloser') shall terminate; governing law.")
    assert detect_kind(tmp_path / "nda.txt") == "contract"
    (tmp_path / "notes.log").write_text("started the thing\nstopped it\n")
    assert detect_kind(tmp_path / "notes.log") == "text"
    (tmp_path / "messages.1").write_text("Mar 14 02:17:00 host proc[123]: msg\n")
    assert detect_kind(tmp_path / "messages.1") == "log"
    (tmp_path / "empty.syslog").write_text("nothing to see\n")
    assert detect_kind(tmp_path / "empty.syslog") == "log"  # by extension
    with pytest.raises(SourceError, match="empty.syslog: no syslog line with a parseable timestamp"):
        parse_file(tmp_path / "empty.syslog", tmp_path)


def test_rfc3339_syslog_with_zone_and_forced_kind(tmp_path):
    src = "2024-03-14T03:17:00.250+01:00 web-1 nginx[12]: GET / 200\n2024-03-14T03:18:00+01:00 web-1 nginx[12]: GET /x 404\n"
    p = _write(tmp_path / "web.conf", src)
    assert detect_kind(p) == "text"
    [d] = parse_file(p, tmp_path, kind="log")  # forced: still read as syslog, not as CSV
    assert (d.anchor_data["t_start"], d.anchor_data["t_end"]) == ("2024-03-14T02:17:00.250Z", "2024-03-14T02:18:00Z")
    assert d.anchor_data["source"] == "web-1" and "tz_assumed" not in d.anchor_data


# --- appending -----------------------------------------------------------------------------------


def _key(d):
    return (d.text, d.anchor, json.dumps(d.anchor_data, sort_keys=True), d.title)


def _check_append(tmp_path, name, before: str, after: str, changed_sources: set, max_chars=600, mtime=None):
    p = tmp_path / name
    _write(p, before, mtime)
    old = parse_file(p, tmp_path, max_chars=max_chars)
    _write(p, before + after, mtime)
    new = parse_file(p, tmp_path, max_chars=max_chars)
    new_keys = {_key(d) for d in new}
    src_of = (lambda d: d.anchor_data.get("source", d.anchor_data.get("sensor")))
    lost = [d for d in old if _key(d) not in new_keys]
    # Only the last window of a source can change, and only of a source that got rows.
    last = {}
    for d in old:
        s = src_of(d)
        if s not in last or (d.anchor_data["t_start"], d.anchor_data["line_start"]) > (last[s].anchor_data["t_start"], last[s].anchor_data["line_start"]):
            last[s] = d
    assert all(src_of(d) in changed_sources and d is last[src_of(d)] for d in lost), [d.anchor for d in lost]
    assert len(lost) == len(changed_sources)
    assert len(new) > len(old) - len(lost)
    assert len(old) >= 3 * len(last)  # several windows per source and hour: the test means something
    old_keys = {_key(d) for d in old}
    assert all(src_of(d) in changed_sources for d in new if _key(d) not in old_keys)
    return old, new


def test_appended_csv_changes_only_the_last_window_of_each_touched_sensor(tmp_path):
    head = "timestamp,sensor,value,status\n"
    before = "".join(
        f"2024-03-14T{h:02d}:{m:02d}:00Z,{s},{(h * 60 + m) % 17 / 2},{'ALARM' if m == 30 else 'OK'}\n"
        for h in (1, 2) for m in range(0, 60, 3) for s in ("pump-1", "pump-2")
    )  # fmt: skip
    after = "".join(f"2024-03-14T{h:02d}:{m:02d}:30Z,pump-1,9.5,WARN\n" for h, m in ((2, 58), (2, 59), (3, 0), (3, 5)))
    old, new = _check_append(tmp_path, "p.csv", head + before, after, {"pump-1"})
    assert any(d.anchor_data["t_start"].startswith("2024-03-14T03") for d in new)


def test_appended_syslog_changes_only_the_last_windows(tmp_path):
    before = "".join(
        f"<{30 if m % 7 else 27}>Mar 14 {h:02d}:{m:02d}:00 {host} app{m % 3}[{m}]: message number {h}-{m} for {host}\n"
        for h in (1, 2) for m in range(0, 60, 2) for host in ("alpha", "beta")
    )  # fmt: skip
    after = "<27>Mar 14 02:59:30 alpha app1[7]: late failure\n<30>Mar 14 03:00:10 alpha app1[7]: next hour\n"
    _check_append(tmp_path, "host.log", before, after, {"alpha"}, mtime=datetime(2024, 3, 14, 4, tzinfo=timezone.utc))


def test_appended_logfmt_changes_only_the_last_windows(tmp_path):
    before = "".join(
        f'ts=2024-03-14T{h:02d}:{m:02d}:00Z level={"error" if m == 33 else "info"} sensor={s} msg="r {m}" value={m / 3:.2f}\n'
        for h in (5, 6) for m in range(0, 60, 3) for s in ("pump-3", "pump-4")
    )  # fmt: skip
    after = 'ts=2024-03-14T06:59:59Z level=warn sensor=pump-4 msg="late" value=1\nts=2024-03-14T07:00:00Z level=info sensor=pump-4 value=2\n'
    _check_append(tmp_path, "pumps.log", before, after, {"pump-4"})
