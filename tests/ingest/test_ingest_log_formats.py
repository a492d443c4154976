"""Log formats recognised by content, one test per format, on real samples (tests/ingest/logsamples,
each written by the program named in its README): the format is learned per file from its first
lines, events become time windows with the format recorded, and times say only what the source
said (no zone -> "tz": "unknown", no year -> "--MM-DD" unless the file's context dates it)."""

import shutil
from pathlib import Path

import pytest

from msa_agent.ingest import detect_kind, parse_file
from msa_agent.ingest.syslog import sniff_text_log

SAMPLES = Path(__file__).parent / "logsamples"

# sample, format, events, first time, last time, zone note, levels counted in the first window
CASES = [
    ("python_logging.log", "iso8601", 6, "2026-12-03T18:12:11.763", "2026-12-03T18:12:11.763", "unknown",
     {"INFO": 2, "DEBUG": 1, "WARNING": 1, "ERROR": 2}),
    ("python_iso_tz.log", "iso8601", 6, "2026-12-03T18:12:12Z", "2026-12-03T18:12:12Z", None, {"INFO": 5, "ERROR": 1}),
    ("postgres.log", "iso8601", 10, "2026-12-03T18:12:29.139Z", "2026-12-03T18:12:31.306Z", None, {"LOG": 8, "ERROR": 1}),
    ("nginx_error.log", "iso8601", 12, "2026-12-03T18:12:13", "2026-12-03T18:12:14", "unknown",
     {"notice": 6, "info": 4, "error": 2}),
    ("apache/error_log", "ctime", 6, "2026-12-03T18:12:15.880257", "2026-12-03T18:12:16.993986", "unknown",
     {"notice": 3, "info": 3}),
    ("apache/access_log", "clf", 3, "2026-12-03T18:12:16Z", "2026-12-03T18:12:16Z", None, None),
    ("nginx_access.log", "clf", 4, "2026-12-03T18:12:14Z", "2026-12-03T18:12:14Z", None, None),
    ("http_server.log", "clf", 5, "2026-12-03T18:12:13", "2026-12-03T18:12:13", "unknown", None),
    ("hadoop_yymmdd.log", "yymmdd", 5, "2026-12-03T18:12:25", "2026-12-03T18:12:26", "unknown", {"INFO": 4, "WARNING": 1}),
    ("python_epoch.log", "epoch", 6, "2026-12-03T18:12:12.562325Z", "2026-12-03T18:12:12.562620Z", None,
     {"INFO": 5, "WARNING": 1}),
    ("strace_ttt.log", "epoch", 10, "2026-12-03T18:12:23.191520Z", "2026-12-03T18:12:23.199424Z", None, None),
    ("java_epoch_ms.log", "epoch", 5, "2026-12-03T18:12:25.084Z", "2026-12-03T18:12:26.293Z", None, {"INFO": 4, "SEVERE": 1}),
    ("jul.log", "jul", 5, "2026-12-03T18:12:24", "2026-12-03T18:12:26", "unknown", {"INFO": 4, "WARNING": 1}),
    ("rsyslog/messages", "rfc3164", 5, "--12-03T18:12:19", "--12-03T18:12:19", "unknown", None),
    ("rsyslog/rfc5424.log", "syslog", 5, "2026-12-03T18:12:19.010577Z", "2026-12-03T18:12:19.051609Z", None, None),
    ("journal.json", "journald", 10, "2026-12-03T18:07:12.865041Z", "2026-12-03T18:12:22.153057Z", None, None),
]  # fmt: skip


@pytest.mark.parametrize("name,fmt,events,t0,t1,tz,levels", CASES, ids=[c[0] for c in CASES])
def test_real_sample_is_a_time_windowed_log(name, fmt, events, t0, t1, tz, levels, tmp_path):
    p = SAMPLES / name
    assert detect_kind(p) == "log"
    warnings: list[str] = []
    docs = parse_file(p, SAMPLES, warnings=warnings)
    assert docs and all(d.kind == "log" for d in docs)
    a = [d.anchor_data for d in docs]
    assert {x["format"] for x in a} == {fmt}
    assert sum(x["rows"] for x in a) == events  # every timestamped line is an event
    assert (min(x["t_start"] for x in a), max(x["t_end"] for x in a)) == (t0, t1)
    assert a[0].get("tz") == tz and "tz_assumed" not in a[0]
    if levels is not None:
        assert a[0]["counts"].get("level") == levels
    # The anchor is a time range, the text the lines verbatim.
    assert docs[0].anchor.startswith(f"{a[0]['t_start']} – {a[0]['t_end']}, line")
    lines = p.read_text().split("\n")
    assert docs[0].text.endswith("\n".join(lines[a[0]["line_start"] - 1 : a[0]["line_end"]]))
    if fmt not in ("syslog", "rfc3164", "journald"):
        assert sniff_text_log(p.read_text()) == fmt


def test_apache_error_log_of_two_lines_is_anchored_by_time_not_lines(tmp_path):
    """The case of issue 20: a file `error_log` with two Apache error lines fell back to "lines 1-2"."""
    src = "\n".join((SAMPLES / "apache/error_log").read_text().split("\n")[:2]) + "\n"
    (tmp_path / "error_log").write_text(src)
    [d] = parse_file(tmp_path / "error_log", tmp_path)
    assert d.kind == "log" and d.anchor == "2026-12-03T18:12:15.880257 – 2026-12-03T18:12:15.880390, lines 1-2"
    assert d.text.split("\n")[0] == "all rows, 2026-12-03T18:12:15.880257 – 2026-12-03T18:12:15.880390"


def test_access_log_counts_methods_and_statuses():
    [d] = parse_file(SAMPLES / "nginx_access.log", SAMPLES)
    assert d.anchor_data["counts"] == {"method": {"GET": 4}, "status": {"200": 2, "404": 2}}
    assert "status: 2 200, 2 404" in d.text.split("\n")[1:4]


def test_journald_json_windows_per_host_with_severity_and_app():
    docs = parse_file(SAMPLES / "journal.json", SAMPLES)
    assert {d.anchor_data["source"] for d in docs} == {"vm"}
    counts = [d.anchor_data["counts"] for d in docs]
    assert sum(c["app"].get("backup", 0) for c in counts) == 4
    assert any(c.get("severity", {}).get("err") for c in counts)
    assert any(d.title.startswith("vm err") for d in docs)


def test_syslog_year_from_a_dated_file_name_else_unknown(tmp_path):
    shutil.copy(SAMPLES / "rsyslog/messages", tmp_path / "messages-20261204")
    docs = parse_file(tmp_path / "messages-20261204", tmp_path)
    assert [(d.anchor_data["t_start"], d.anchor_data["year_from"]) for d in docs] == [("2026-12-03T18:12:19", "file name")]
    assert "year" not in docs[0].anchor_data and docs[0].anchor_data["tz"] == "unknown"
    [d] = parse_file(SAMPLES / "rsyslog/messages", SAMPLES)  # nothing dates it: said so
    assert d.anchor_data["year"] == "unknown" and d.anchor.startswith("--12-03T18:12:19 – --12-03T18:12:19, lines 1-5")


def test_timezone_names_the_zone_of_times_written_without_one():
    [d] = parse_file(SAMPLES / "nginx_error.log", SAMPLES, timezone="Europe/Berlin")
    assert (d.anchor_data["t_start"], d.anchor_data["tz"]) == ("2026-12-03T18:12:13+01:00", "Europe/Berlin")
    # Times that carry their zone are not moved by it.
    [d] = parse_file(SAMPLES / "postgres.log", SAMPLES, timezone="Europe/Berlin")
    assert d.anchor_data["t_start"] == "2026-12-03T18:12:29.139Z" and "tz" not in d.anchor_data


def test_windows_event_viewer_csv_layout(tmp_path):
    """NOT a real sample (no Windows machine here): Event Viewer's "Save All Events As… CSV" column
    layout with en-US times; checks that such a file is keyed on "Date and Time" and windowed."""
    src = (
        "Level,Date and Time,Source,Event ID,Task Category\n"
        "Information,12/3/2026 6:12:24 PM,Service Control Manager,7036,None\n"
        "Error,12/3/2026 6:40:02 PM,Service Control Manager,7031,None\n"
        "Information,12/3/2026 7:01:00 PM,EventLog,6013,None\n"
    )
    (tmp_path / "System.csv").write_text(src)
    assert detect_kind(tmp_path / "System.csv") == "log"
    docs = parse_file(tmp_path / "System.csv", tmp_path)
    assert [(d.anchor_data["sensor"], d.anchor_data["t_start"]) for d in docs] == [
        ("Service Control Manager", "2026-12-03T18:12:24"),
        ("EventLog", "2026-12-03T19:01:00"),
    ]
    assert docs[0].anchor_data["tz"] == "unknown" and docs[0].title == "Service Control Manager Error"
