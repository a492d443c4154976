"""ingest/timestamps.py: rendering of what a time does not say, zones, year inference, and the
guards that keep numbers and prose from passing for log lines."""

from datetime import datetime, timezone

import pytest

from msa_agent.ingest.syslog import sniff_text_log
from msa_agent.ingest.timestamps import (
    BY_NAME, FLOATING, FLOATING_NOYEAR, clock, infer_years, iso, iso_len, localize, parse_value, zone,
)  # fmt: skip


def test_rendering_says_only_what_is_known():
    cases = [
        (datetime(2005, 12, 4, 4, 47, 44, tzinfo=timezone.utc), "2005-12-04T04:47:44Z"),
        (datetime(2005, 12, 4, 4, 47, 44, 120000, tzinfo=FLOATING), "2005-12-04T04:47:44.120"),
        (datetime(2000, 12, 4, 4, 47, 44, tzinfo=FLOATING_NOYEAR), "--12-04T04:47:44"),
        (localize(datetime(2005, 12, 4, 4, 47, 44, 5, tzinfo=FLOATING), zone("+05:30")), "2005-12-04T04:47:44.000005+05:30"),
    ]
    for t, want in cases:
        assert iso(t) == want and iso_len(t) == len(want)
    assert clock(cases[2][0]) == "04:47:44" and clock(cases[0][0]) == "04:47:44Z"
    assert localize(cases[0][0], zone("Europe/Berlin")) is cases[0][0]  # a zoned time is not moved
    assert zone("UTC") is timezone.utc and str(zone("Asia/Tokyo")) == "Asia/Tokyo"
    with pytest.raises(ValueError, match="unknown time zone"):
        zone("Nowhere/Atlantis")


def test_years_roll_over_and_come_from_the_nearest_dated_context():
    events = [(1, 12, 30), (2, 12, 31), (5, 1, 1), (6, 1, 2)]  # (line, month, day)
    assert infer_years(events, [(4, (2006, 1, 1))], "x.log") == ([2005, 2005, 2006, 2006], "dated line 4")
    assert infer_years(events, [(4, (2031, 7, 9))], "x.log") == (None, "unknown")  # a date that is not the log's
    assert infer_years(events, [], "logs/2005/messages") == ([2005, 2005, 2006, 2006], "file name")
    assert infer_years(events, [], "messages-20060103") == ([2005, 2005, 2006, 2006], "file name")
    assert infer_years(events, [], "messages") == (None, "unknown")


def test_values_in_other_forms_and_guards():
    assert parse_value("3/14/2024 2:17:00 PM") == datetime(2024, 3, 14, 14, 17, tzinfo=FLOATING)
    assert parse_value("14/3/2024 14:17") == datetime(2024, 3, 14, 14, 17, tzinfo=FLOATING)  # day first: 14 > 12
    assert parse_value("Sun Dec 04 04:47:44 2005") == datetime(2005, 12, 4, 4, 47, 44, tzinfo=FLOATING)
    assert parse_value("10/Oct/2000:13:55:36 -0700") == datetime(2000, 10, 10, 20, 55, 36, tzinfo=timezone.utc)
    assert parse_value("pump-3") is None and parse_value("12.5") is None
    assert BY_NAME["epoch"].parse("12345 some counter") is None
    assert BY_NAME["epoch"].parse("4102444800 after 2039") is None  # not a clock we believe
    # Ten-digit numbers years apart (phone numbers, ids) are not epoch seconds; prose is no log.
    assert sniff_text_log("2125551234 Alice\n6175550199 Bob\n3125550142 Carol\n") is None
    assert sniff_text_log("The meeting on 2024-03-14 went well.\nNext steps follow.\n") is None
