"""Focused reading: dates however written, the lines that answer, CSV headers kept, list
questions recognised, and the reader policy (abstention overruled, ungrounded answers replaced,
lists from the evidence lines)."""

from __future__ import annotations

import random

import pytest
import torch

from msa_agent.ask import ask
from msa_agent.focus import RECORD_CAP, QueryTerms, focus, question_dates, rank_units, records
from msa_agent.reader import ReadPolicy, grounded, is_list_question, read_answer, snap_to_best
from msa_agent.reading import ABSTAIN


def _tok_len(text: str) -> list[int]:
    return [0] * (len(text) // 4 + 1)


@pytest.mark.parametrize("question, text", [
    ("What was the max temperature on July 4th 2013?", "2013-07-04,21.1,12.2"),
    ("Rain on 4 Jul 2013?", "date 2013/07/04 rain"),
    ("what happened on 2013-07-04", "04/Jul/2013:10:00:01 GET /"),
    ("What did apt do on Dec 3rd?", "Dec  3 10:44:12 host apt[1]: done"),
    ("What did apt do on 3 December?", "2026-12-03 10:44:12 install foo"),
    ("Flow in March 2014?", "2014-03-17,5.5"),
])
def test_question_dates_match_the_forms_evidence_writes(question: str, text: str) -> None:
    dates = question_dates(question)
    assert dates and any(d.found(text) for d in dates)


def test_question_dates_do_not_match_other_days() -> None:
    (d,) = question_dates("What was the reading on July 4th 2013?")
    assert not d.found("2013-07-14,1") and not d.found("2014-07-04,1")


def test_query_words_are_stemmed_and_identifiers_split() -> None:
    q = QueryTerms.of("Which retries does emergency_stop allow?")
    assert {"retrie", "emergency_stop", "emergency", "stop", "allow"} <= q.words or {"retry"} & q.words


def test_rank_units_puts_the_answering_line_first_among_lookalikes() -> None:
    rng = random.Random(7)
    rows = [f"2013-07-{d:02d},{rng.uniform(5, 30):.1f},{rng.uniform(0, 9):.1f}" for d in range(1, 29)]
    text = "date,temp_max,precipitation\n" + "\n".join(rows)
    ranked, total = rank_units([text, "unrelated prose about July weather"], "What was temp_max on July 17th 2013?")
    assert ranked[0].text == rows[16] and total > 0


def test_focus_keeps_the_header_the_head_and_the_budget() -> None:
    rows = [f"2013-07-{d:02d},{d}.5,{d % 3}" for d in range(1, 29)]
    csv_text = "date,temp_max,precipitation\n" + "\n".join(rows)
    prose = "Title line\n" + "\n".join(f"Filler sentence number {i} about nothing." for i in range(60))
    f = focus([("w.csv", "rows", csv_text), ("p.txt", "lines", prose)], "temp_max on July 17th 2013", 80, _tok_len)
    assert f.docs == [0]  # the prose matches nothing
    block = f.blocks[0]
    assert "date,temp_max,precipitation" in block and "2013-07-17,17.5,2" in block and "…" in block
    assert "2013-07-01" not in block.split("\n", 2)[-1] or block.count("\n") < 8
    assert len(_tok_len(block)) <= 80 + 20


@pytest.mark.parametrize("question", [
    "Which packages were upgraded on May 20th?", "What fields does the statistics tuple have?",
    "List the members of the board.", "Give both the precipitation and the wind speed.",
    "What are the levels of the enforcement ladder?", "Which three posts must be held by different people?",
    "Which days in that week had snow?",
])
def test_list_questions(question: str) -> None:
    assert is_list_question(question)


@pytest.mark.parametrize("question", [
    "What is the default timeout?", "Which exception is raised when the cache is full?",
    "How many days is the notice period?", "When did the run finish?", "Who signs the release?",
    "Which version of kubectl was installed?",
])
def test_single_questions(question: str) -> None:
    assert not is_list_question(question)


def test_grounded() -> None:
    ev = "The fee is EUR 4,750 for each day of delay. Notice: 30 days."
    assert grounded("EUR 4,750", ev) and grounded("30 days", ev)
    assert not grounded("EUR 4,700", ev) and not grounded("the buyer pays nothing", ev)


class _Scripted:
    """A reader whose first-token logits and answer are set by the test."""

    def __init__(self, tok, vocab: int, first: dict[int, float], answer: str) -> None:  # noqa: ANN001
        self.tok, self.vocab, self.first, self.answer = tok, vocab, first, answer

    def prefill(self, prefix, prompt, memory=None):  # noqa: ANN001, ANN201, ARG002
        logits = torch.zeros(self.vocab)
        for i, v in self.first.items():
            logits[i] = v
        return logits, None, 0

    def decode(self, logits, cache, pos, **kw):  # noqa: ANN001, ANN201, ARG002
        ids = self.tok.encode(self.answer)
        if torch.isinf(logits).any() and self.answer == ABSTAIN:  # the abstention was banned
            ids = self.tok.encode("EUR 4,750")
        yield from ids


class _Engine:
    def __init__(self, tok, reader) -> None:  # noqa: ANN001
        self.tok, self.answerer = tok, reader


DOCS = [("c.txt", "lines 1-3", "SUPPLY AGREEMENT\nSupplier shall pay Buyer liquidated damages of EUR 4,750 for each day "
         "of delay.\nGoverning law: Norway.")]


def _read(engine, question: str, answer: str, first: dict[int, float], policy: ReadPolicy | None = None) -> object:  # noqa: ANN001
    eng = _Engine(engine.tok, _Scripted(engine.tok, engine.cfg.vocab_size, first, answer))
    f = focus(DOCS, question, 400, engine.tok.encode)
    return read_answer(eng, [1, 2, 3], None, policy or ReadPolicy(), f)


def test_a_hesitant_abstention_is_overruled_and_a_confident_one_stands(engine) -> None:  # noqa: ANN001
    q = "How much does the supplier owe for each day a delivery is late?"
    not_id = engine.tok.encode(ABSTAIN)[0]
    hesitant = _read(engine, q, ABSTAIN, {not_id: 2.0})  # p(abstain) well under 0.9
    assert hesitant.how == "forced" and hesitant.answer == "EUR 4,750" and hesitant.grounded
    sure = _read(engine, q, ABSTAIN, {not_id: 40.0})
    assert sure.how == "abstained" and sure.answer == ABSTAIN and sure.p_abstain > 0.99


def test_an_answer_not_in_the_evidence_is_replaced(engine) -> None:  # noqa: ANN001
    q = "How much does the supplier pay the buyer for each day of delay?"
    r = _read(engine, q, "EUR 9,999", {})
    assert r.how in ("extracted", "ungrounded") and r.generated == "EUR 9,999"
    assert r.answer == ABSTAIN or "EUR 4,750" in r.answer
    plain = _read(engine, q, "EUR 9,999", {}, ReadPolicy(grounding=False))
    assert plain.answer == "EUR 9,999"


def test_list_questions_are_answered_with_the_matching_lines(engine) -> None:  # noqa: ANN001
    docs = [("h.log", "lines 1-5", "Start-Date: 2026-05-20\nUpgrade: libc6 (2.36-9), libc-bin (2.36-9)\n"
             "Install: nodejs (20.1)\nUpgrade: libc-dev-bin (2.36-9)\nEnd-Date: 2026-05-20")]
    eng = _Engine(engine.tok, _Scripted(engine.tok, engine.cfg.vocab_size, {}, "libc6"))
    q = "Which packages were upgraded on May 20th 2026?"
    r = read_answer(eng, [1], None, ReadPolicy(), focus(docs, q, 400, engine.tok.encode))
    assert r.how == "listed" and "libc-dev-bin" in r.answer and "libc-bin" in r.answer
    # a confident "Not stated." does not stop the lines: the reader says it to most list questions
    not_id = engine.tok.encode(ABSTAIN)[0]
    eng = _Engine(engine.tok, _Scripted(engine.tok, engine.cfg.vocab_size, {not_id: 40.0}, ABSTAIN))
    r = read_answer(eng, [1], None, ReadPolicy(), focus(docs, q, 400, engine.tok.encode))
    assert r.how == "listed" and "libc-dev-bin" in r.answer and r.p_abstain > 0.99


def test_ask_reports_how_it_read(built, engine, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    ids = engine.tok.encode("2.5")
    monkeypatch.setattr(engine.answerer, "prefill", lambda p, q, m=None: (torch.zeros(engine.cfg.vocab_size), None, 0))
    monkeypatch.setattr(engine.answerer, "decode", lambda *a, **k: iter(ids))
    res = ask(built, engine, "What is the default timeout_s of PumpController.emergency_stop?", mode="lexical", rounds=1)
    assert res.answer == "2.5" and res.reading["how"] == "generated" and res.reading["grounded"]
    assert res.as_dict()["reading"]["coverage"] > 0


def test_a_value_read_off_a_weaker_line_snaps_to_the_best_line() -> None:
    docs = [("s.csv", "window", "sensor pump-3\nstatus: 1 ALARM (02:17:00Z), 2 STOPPED (02:21:00Z)\n"
             "timestamp,sensor_id,metric,value,status\n2024-03-14T02:13:00Z,pump-3,pressure_bar,9.02,WARN\n"
             "2024-03-14T02:17:00Z,pump-3,pressure_bar,9.41,ALARM\n2024-03-14T02:21:00Z,pump-3,pressure_bar,0.42,STOPPED")]
    f = focus(docs, "Which sensor reported status ALARM, and at what time?", 400, _tok_len)
    assert snap_to_best("02:21:00Z", f) == "02:17:00Z"  # the next row's time
    assert snap_to_best("9.02", f) == "9.41"
    assert snap_to_best("02:17:00Z", f) is None  # already the best line's
    assert snap_to_best("pump-3", f) is None and snap_to_best("STOPPED", f) is None  # no digits: left alone


# ---- records, pieces of long lines, paraphrase ------------------------------------------------------

APT = """Start-Date: 2026-05-20  16:20:01
Commandline: apt-get install -y build-essential
Install: gcc:amd64 (12.2.0-14), make:amd64 (4.3-4.1)
Upgrade: libc6:amd64 (2.36-9+deb12u10, 2.36-9+deb12u13)
End-Date: 2026-05-20  16:27:32

Start-Date: 2026-05-20  16:49:02
Commandline: apt-get install -y nodejs
Install: nodejs:amd64 (20.20.2-1nodesource1)
Upgrade: libc6:amd64 (2.36-9+deb12u13, 2.36-9+deb12u14)
End-Date: 2026-05-20  16:49:21"""


def test_a_line_is_ranked_with_the_terms_of_its_record() -> None:
    ranked, _ = rank_units([APT], "In the apt run that installed nodejs, what version was libc6 upgraded to?")
    assert ranked[0].text.startswith("Upgrade:") and "deb12u14" in ranked[0].text
    ranked, _ = rank_units([APT], "When did the apt session that installed nodejs finish?")
    assert "16:49:21" in "\n".join(u.text for u in ranked[:3])  # "finish" is an End-Date's "end"


def test_records_follow_blank_lines_indentation_and_shared_minutes() -> None:
    text = ("class Pump:\n    def stop(self, timeout_s=2.5):\n        \"\"\"Stop now.\"\"\"\n        return timeout_s\n"
            "\n2026-09-22 04:45:20 install gdb 13.1-3\n2026-09-22 04:45:20 status installed gdb 13.1-3\n"
            "2026-09-22 04:46:02 install vim 9.0")
    recs = records(text.split("\n"))
    assert (1, 3) in recs[3] and (0, 3) in recs[3]  # the def, then the class
    assert recs[5][0] == (5, 6) and (5, 6) not in recs[7]


def test_adjacent_windows_of_one_file_share_records() -> None:
    head = "Start-Date: 2026-06-24  14:37:36\nCommandline: apt-get install -y google-cloud-cli"
    tail = "Install: openjdk-17-jre:amd64 (17.0.15, automatic)\nEnd-Date: 2026-06-24  14:38:01"
    q = "Which apt command started the run in which openjdk-17-jre was installed?"
    ranked, _ = rank_units([head, tail], q, [("h.log", "lines 1-2"), ("h.log", "lines 3-4")])
    joined = next(u for u in ranked if u.text.startswith("Commandline"))
    alone, _ = rank_units([head, tail], q, [("h.log", "lines 1-2"), ("other.log", "lines 3-4")])
    assert joined.score > next(u for u in alone if u.text.startswith("Commandline")).score


def test_a_long_line_is_shown_by_the_piece_that_answers_after_its_key() -> None:
    pkgs = ", ".join(f"libpkg{i}:amd64 ({i}.0-1, automatic)" for i in range(60))
    text = f"Start-Date: 2026-10-16  23:03:57\nInstall: {pkgs}, cmake-data:amd64 (3.25.1-1, automatic)\nEnd-Date: 2026-10-16"
    f = focus([("h.log", "lines 1-3", text)], "Which version of cmake-data was installed?", 120, _tok_len)
    assert f.ranked[0].span is not None and "cmake-data" in f.ranked[0].text and len(f.ranked[0].text) < 300
    block = f.blocks[0]
    assert "Install: " in block and "cmake-data:amd64 (3.25.1-1" in block and "libpkg30:" not in block
    assert len(_tok_len(block)) <= 120


def test_clock_times_and_paraphrase_match() -> None:
    ranked, _ = rank_units(["Start-Date: 2026-05-09  07:28:46\nStart-Date: 2026-05-09  17:28:46"],
                           "What ran at 7:28 on May 9th 2026?")
    assert "07:28:46" in ranked[0].text
    text = "The minimum discussion period is 2 weeks.\nThe maximum discussion period is 3 weeks."
    ranked, _ = rank_units([text], "What is the longest the discussion period can last?")
    assert "3 weeks" in ranked[0].text
    text = ("Violations are reported to the community leaders by phone.\n"
            "Violations are reported to the community leaders at conduct@example.org.")
    ranked, _ = rank_units([text], "To which email should violations be reported?")
    assert "@" in ranked[0].text
    ranked, _ = rank_units(["Commandline: apt-get install -y tzdata", "Install: tzdata"], "Which apt command installed tzdata?")
    assert ranked[0].text.startswith("Commandline")  # "command" finds "Commandline"


def test_coverage_counts_a_units_own_terms_only() -> None:
    f = focus([("h.log", "lines 1-11", APT)], "In the apt run that installed nodejs, what version was libc6 upgraded to?",
              400, _tok_len)
    assert 0 < f.coverage <= 1 and f.coverage == pytest.approx(max(u.own for u in f.ranked) / f.total)


def test_a_record_lifts_a_unit_by_at_most_its_own_score_times_the_cap() -> None:
    # a page of prose without blank lines is one record: its title line holds few of the question's
    # words and must not climb over the lines that hold them on the strength of the page's words
    page = ("SUPPLY AGREEMENT\n"
            "Made between Northwind Components Ltd and Blue Harbor Robotics Inc.\n"
            "1. Fees\n"
            "The Customer shall pay EUR 48,500 per Quarter.\n"
            "2. Term\n"
            "The term is two years from the Effective Date.")
    ranked, _ = rank_units([page], "What does Blue Harbor Robotics pay per quarter under the supply agreement?")
    assert all(u.score <= (1 + RECORD_CAP) * u.own + 1e-9 for u in ranked)
    heading = next(u for u in ranked if u.text == "1. Fees")  # one weak word of the question
    answer = next(u for u in ranked if "48,500" in u.text)
    assert heading.own > 0 and heading.score <= 2.5 * heading.own + 1e-9 < answer.score


@pytest.mark.parametrize(("question", "labels"), [
    ("Among March 14th, 15th and 16th 2015, which day was wettest?", ["2015-03-14", "2015-03-15", "2015-03-16"]),
    ("From July 1st to 7th, 2010, what was the peak?", ["2010-07-01", "2010-07-07"]),
    ("Between December 14th and December 19th 2012, which days had snow?", ["2012-12-14", "2012-12-19"]),
    ("What happened on Dec 3rd?", ["--12-03"]),
])
def test_listed_days_and_ranges_share_their_month_and_year(question: str, labels: list[str]) -> None:
    assert sorted(d.label for d in question_dates(question)) == sorted(labels)


def test_list_lines_leave_out_lookalike_records_of_another_name() -> None:
    """Asked for the values of "shady-clover", the lines of "coastal-clover" and "shady-fox" are
    another record's, not items of the list (RULER multikey: before, all six lines were listed)."""
    from msa_agent.reader import list_lines

    text = "\n".join(f"One of the special magic numbers for {k} is: {v}." for k, v in (
        ("coastal-clover", 9139024), ("shady-clover", 4082543), ("solar-clover", 5053941),
        ("shady-fox", 2121811), ("shady-clover", 7100009)))
    q = "What are all the special magic numbers for shady-clover mentioned in the provided text?"
    f = focus([("notes.txt", "lines 1-5", text)], q, 480, lambda t: [0] * (len(t) // 4 + 1))
    got = list_lines(f, ReadPolicy())
    assert got and all("shady-clover" in ln for ln in got)
    assert any("4082543" in ln for ln in got) and any("7100009" in ln for ln in got)
    # no name in the question: nothing is left out on that ground
    plain = focus([("notes.txt", "lines 1-5", text)], "What are all the special magic numbers?", 480,
                  lambda t: [0] * (len(t) // 4 + 1))
    assert len(list_lines(plain, ReadPolicy())) >= 3
