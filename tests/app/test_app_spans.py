"""Extractive spans: what a question asks for, the spans cut from the evidence, and an answer
written in part completed (the batched span scorer is tested in tests/model/test_model_spans.py)."""

from __future__ import annotations


import pytest

from msa_agent.focus import focus
from msa_agent.spans import answer_type, candidates


@pytest.mark.parametrize(("question", "kind"), [
    ("Which version of kubectl was installed in June?", "version"),
    ("Which CVE covers the recursion fix?", "cve"),
    ("To which email address are violations reported?", "email"),
    ("When did the apt run finish?", "datetime"),
    ("How many members can the committee have?", "number"),
    ("What priority did ed give itself?", "number"),
    ("Which exception does the wrapper raise to retry?", "ident"),
    ("Who founded the project?", None),
])
def test_answer_type_reads_the_question(question: str, kind: str | None) -> None:
    assert answer_type(question) == kind


def _enc(s: str) -> list[int]:
    return [0] * (len(s) // 4 + 1)


def test_candidates_are_spans_of_the_asked_kind_from_the_best_lines() -> None:
    text = ("Start-Date: 2025-06-24  14:42:05\n"
            "Install: kubectl:amd64 (1:528.0.0-0), libc6:amd64 (2.36-9+deb12u10)\n"
            "End-Date: 2025-06-24  14:42:30\n"
            "unrelated line about nothing\n")
    f = focus([("logs/apt.log", "lines 1-4", text)], "Which version of kubectl was installed?", 400, _enc)
    spans = [s.text for s in candidates(f, "version")]
    assert "1:528.0.0-0" in spans and "2.36-9+deb12u10" in spans
    assert all(s in text for s in spans)  # verbatim evidence


def test_candidates_without_a_kind_skip_question_words() -> None:
    text = "The Technical Committee may have up to eight members.\nOther text."
    f = focus([("c.txt", "line 1", text)], "Who sits on the Technical Committee?", 400, _enc)
    spans = [s.text for s in candidates(f, None)]
    assert "eight members" in spans
    assert "Technical Committee" not in spans  # only repeats the question


def test_a_value_written_in_part_is_completed_from_the_best_line_holding_it() -> None:
    from msa_agent.reader import complete_span

    log = ("2026-09-22 04:45:53 install osslsigncode:amd64 <none> 2.5-1\n"
           "2026-09-22 04:45:54 status half-installed osslsigncode:amd64 2.5-1\n")
    f = focus([("dpkg.log", "lines 1-2", log)], "At what time was the osslsigncode package installed?", 400, _enc)
    assert complete_span("2026-09-22", f) == "2026-09-22 04:45:53"
    assert complete_span("2026-09-22 04:45:53", f) is None  # already whole
    apt = "Upgrade: libc6:amd64 (2.36-9+deb12u10, 2.36-9+deb12u14)\n"
    f = focus([("history.log", "line 1", apt)], "Which version was libc6 upgraded to?", 400, _enc)
    assert complete_span("2.36-9", f) is None  # two versions hold it: not ours to choose
    f = focus([("c.txt", "line 1", "The committee has eight members.\n")], "Who founded the committee?", 400, _enc)
    assert complete_span("eight", f) is None  # the question asks for no kind of span
