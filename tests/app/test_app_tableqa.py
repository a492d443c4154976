"""Table questions over CSV evidence: lookups, superlatives, filters, first-above, two hops, and
None whenever the rows do not settle the question."""

from __future__ import annotations

import pytest

from msa_agent.tableqa import TableAnswer, answer_table

WEATHER = """day,rain_mm,t_high,t_low,gust,sky
2020-03-01,0.0,10.1,2.0,3.1,sun
2020-03-02,4.2,8.5,1.5,6.2,rain
2020-03-03,12.7,7.0,0.5,7.9,rain
2020-03-04,0.3,9.9,-1.5,2.0,mist
2020-03-05,0.0,13.4,3.3,1.1,sun
2020-03-06,1.1,12.0,4.0,4.4,mist
"""

HOURLY = """stamp,level
2021/05/02 10:00,3.5
2021/05/02 11:00,3.9
2021/05/02 12:00,4.6
2021/05/02 13:00,4.1
2021/05/02 14:00,3.8
"""

ENERGY = """yr,kind,output
2001-01-01,Coal Plants,500
2002-01-01,Coal Plants,520
2003-01-01,Coal Plants,480
2001-01-01,Hydro Power,90
2002-01-01,Hydro Power,95
2003-01-01,Hydro Power,99
"""

LAKE = """year,depth
1950,40
1951,42
1952,38
1953,45
"""


def _doc(text: str, path: str = "data/weather.csv") -> tuple[str, str, str]:
    return (path, "lines 1-9", text)


def _window(header: str, rows: list[str], path: str) -> tuple[str, str, str]:
    """A sensor window as ingest writes it: summary lines, the header, the rows."""
    first, last = rows[0].split(",")[0], rows[-1].split(",")[0]
    summary = f"all rows, {first} – {last}\nlevel: 1.0 at 00:00:00Z ({len(rows)} rows)"
    return (path, "window", "\n".join([summary, header, *rows]))


def _ask(question: str, *docs: tuple[str, str, str]) -> TableAnswer | None:
    return answer_table(question, list(docs))


def test_lookup_in_a_raw_csv() -> None:
    a = _ask("How much rain (rain_mm) fell on March 3rd, 2020?", _doc(WEATHER))
    assert a is not None and a.answer == "12.7" and a.how == "lookup"
    assert a.cells == [(0, 3)]


def test_lookup_in_a_window_with_summary_lines() -> None:
    lines = WEATHER.strip().split("\n")
    d = _window(lines[0], lines[2:4], "data/weather.csv")
    a = _ask("What was the gust on 3 Mar 2020?", d)
    assert a is not None and a.answer == "7.9"
    assert d[2].split("\n")[a.cells[0][1]].startswith("2020-03-03")


def test_windows_of_one_file_are_merged_and_repeats_dropped() -> None:
    lines = WEATHER.strip().split("\n")
    w1 = _window(lines[0], lines[1:5], "data/weather.csv")
    w2 = _window(lines[0], lines[4:7], "data/weather.csv")  # repeats 2020-03-04
    a = _ask("Which day between March 1st and March 6th 2020 had the highest gust?", w2, w1)
    assert a is not None and a.answer == "2020-03-03" and a.how == "max"


def test_a_header_less_chunk_of_the_same_file_is_attached() -> None:
    lines = LAKE.strip().split("\n")
    a = _ask("What was the lake depth in 1953?", ("data/lake.csv", "lines 1-3", "\n".join(lines[:3])),
             ("data/lake.csv", "lines 4-5", "\n".join(lines[3:])))
    assert a is not None and a.answer == "45" and a.cells == [(1, 1)]


def test_a_non_csv_document_is_ignored() -> None:
    prose = ("docs/notes.md", "lines 1-3", "Notes, March 3rd 2020\nThe gust was 99 that day, they said.\n")
    a = _ask("What was the gust on March 3rd 2020?", prose, _doc(WEATHER))
    assert a is not None and a.answer == "7.9" and a.cells == [(1, 3)]


def test_a_missing_date_is_none() -> None:
    assert _ask("What was the gust on March 9th 2020?", _doc(WEATHER)) is None


def test_a_missing_column_is_none() -> None:
    assert _ask("What was the humidity on March 3rd 2020?", _doc(WEATHER)) is None


def test_a_prose_question_or_no_table_is_none() -> None:
    assert _ask("Who may amend the constitution, and with what majority?", _doc(WEATHER)) is None
    code = ("src/retry.py", "lines 1-4", "def retry(a, b):\n    return a, b\n")
    assert _ask("What was the gust on March 3rd 2020?", code) is None


def test_an_ambiguous_column_is_none() -> None:
    # t_high and t_low both say "t": neither is the temperature asked
    assert _ask("What was the t on March 3rd 2020?", _doc(WEATHER)) is None


def test_several_columns_are_joined_in_the_order_asked() -> None:
    a = _ask("What were both the gust and the rain_mm on March 2nd 2020?", _doc(WEATHER))
    assert a is not None and a.answer == "6.2, 4.2"


def test_several_keys_are_joined() -> None:
    a = _ask("Give the lake depth for 1951 and 1952.", _doc(LAKE, "data/lake.csv"))
    assert a is not None and a.answer == "42, 38" and len(a.cells) == 2


def test_min_over_a_range_returns_the_value() -> None:
    a = _ask("What was the lowest t_low between March 2nd and March 5th, 2020?", _doc(WEATHER))
    assert a is not None and a.answer == "-1.5" and a.how == "min"


def test_max_over_listed_days_returns_the_key_as_written() -> None:
    a = _ask("Among March 1st, 2nd and 3rd 2020, which day had the heaviest rain_mm?", _doc(WEATHER))
    assert a is not None and a.answer == "2020-03-03"


def test_a_range_with_a_gap_is_none() -> None:
    lines = WEATHER.strip().split("\n")
    gappy = "\n".join([lines[0], lines[1], lines[2], lines[4], lines[5]])  # 2020-03-03 missing
    assert _ask("What was the highest gust from March 1st to March 4th 2020?", _doc(gappy)) is None


def test_first_above_in_row_order() -> None:
    a = _ask("On which day did the rain_mm first go above 1?", _doc(WEATHER))
    assert a is not None and a.answer == "2020-03-02" and a.how == "first-above"


def test_filter_by_category_and_non_zero_value_lists_keys() -> None:
    a = _ask("Which misty days between March 1st and 6th 2020 had non-zero rain_mm?", _doc(WEATHER))
    assert a is not None and a.answer == "2020-03-04, 2020-03-06" and a.how == "filter"


def test_clock_times_pick_the_hour() -> None:
    a = _ask("What was the level at 1 pm on May 2nd 2021?", _doc(HOURLY, "data/level.csv"))
    assert a is not None and a.answer == "4.1"
    assert _ask("What was the level at 9 pm on May 2nd 2021?", _doc(HOURLY, "data/level.csv")) is None


def test_long_format_rows_are_filtered_by_the_category_named() -> None:
    d = _doc(ENERGY, "data/energy.csv")
    a = _ask("How much output came from hydro in 2002?", d)
    assert a is not None and a.answer == "95"
    assert _ask("How much output was there in 2002?", d) is None  # which kind?
    assert _ask("How much output came from solar in 2002?", d) is None


def test_two_hop_argmax_then_read_another_column() -> None:
    a = _ask("What was the gust on the warmest day (t_high) between March 1st and March 6th 2020?", _doc(WEATHER))
    assert a is not None and a.answer == "1.1" and a.how == "argmax-then-read" and len(a.cells) == 2


def test_two_hop_another_category_in_the_selected_year() -> None:
    a = _ask("How much hydro output was there in the year its coal output was highest?", _doc(ENERGY, "data/e.csv"))
    assert a is not None and a.answer == "95"


def test_two_hop_the_row_after_a_peak() -> None:
    a = _ask("On May 2nd 2021 (10 am to 2 pm) the level peaked at some hour; what was the level one hour after that?",
             _doc(HOURLY, "data/level.csv"))
    assert a is not None and a.answer == "4.1"


def test_which_month_in_a_wide_table_of_months() -> None:
    wide = '"YEAR","JAN","FEB","MAR","APR"\n1990,1.5,2.5,2.0,1.0\n1991,3.0,1.0,1.2,0.5\n'
    a = _ask("Of January, February and March 1990, which month had the highest value?", _doc(wide, "data/w.csv"))
    assert a is not None and a.answer == "FEB"
    b = _ask("What was the March value in 1991?", _doc(wide, "data/w.csv"))
    assert b is not None and b.answer == "1.2"


def test_a_tie_for_the_key_is_none() -> None:
    tied = "year,depth\n1950,40\n1951,45\n1952,45\n"
    assert _ask("Which year had the greatest depth?", _doc(tied, "data/lake.csv")) is None


@pytest.mark.parametrize("question", [
    "What was the gust on March 3rd?",  # no year
    "What was the highest gust in the first week of March 2020?",  # a part of a month not placed
    "What was the level in the afternoon of May 2nd 2021?",  # no clock times
])
def test_dates_that_cannot_be_placed_are_none(question: str) -> None:
    assert _ask(question, _doc(WEATHER), _doc(HOURLY, "data/level.csv")) is None


READINGS = """ts,unit_id,metric,reading,state
2022-01-05T08:00:00Z,valve-1,flow_lpm,12.5,OK
2022-01-05T08:01:00Z,valve-2,flow_lpm,19.75,OK
2022-01-05T08:02:00Z,valve-1,flow_lpm,14.0,OK
2022-01-05T08:03:00Z,valve-2,flow_lpm,22.5,FAULT
2022-01-05T08:04:00Z,valve-3,flow_lpm,11.0,OK
"""


def test_a_value_named_as_written_filters_only_its_rows() -> None:
    got = answer_table("What was the highest reading of valve-1?", [("logs/valves.csv", "all", READINGS)])
    assert got is not None and got.answer == "14.0"


def test_rows_picked_by_a_value_answer_with_the_named_column_and_the_time() -> None:
    got = answer_table("Which unit reported state FAULT, and at what time?", [("logs/valves.csv", "all", READINGS)])
    assert got is not None and got.answer == "valve-2, 2022-01-05T08:03:00Z"
    got = answer_table("Which unit reported state FAULT?", [("logs/valves.csv", "all", READINGS)])
    assert got is not None and got.answer == "valve-2"
    assert answer_table("Which unit reported state LEAK?", [("logs/valves.csv", "all", READINGS)]) is None


QUOTES = """Date,Open,High,Low,Close,Volume,Adj. Close*
15-Aug-03,25.61,25.66,25.43,25.54,27607900,25.40
14-Aug-03,25.66,25.71,25.52,25.63,37338300,25.49
13-Aug-03,25.79,25.89,25.50,25.60,39636900,25.46
12-Aug-03,25.71,25.77,25.45,25.73,38208400,25.59
11-Aug-03,25.61,25.99,25.54,25.61,36433900,25.47
"""


def test_a_price_table_with_day_month_year_keys() -> None:
    docs = [("data/quotes.csv", "all", QUOTES)]
    # a header with punctuation, keys written 13-Aug-03, rows newest first
    got = answer_table("What was the closing price on August 13th 2003?", docs)
    assert got is not None and got.answer == "25.60"  # Close, not Adj. Close*: fewer words unnamed
    got = answer_table("What was the highest daily high between August 11 and August 15, 2003?", docs)
    assert got is not None and got.answer == "25.99"  # "high" names the High column
    got = answer_table("How many shares traded on 14 Aug 2003?", docs)
    assert got is not None and got.answer == "37338300"
    assert answer_table("What was the closing price on 3 October 2003?", docs) is None
