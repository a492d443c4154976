"""Two-hop questions as two one-hop questions: the decomposition, the bridge's name, and how the
two answers are put together (with a scripted `ask`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from msa_agent.hops import ask_two_hops, bridge_name, decompose


@pytest.mark.parametrize(("question", "sub", "second"), [
    ("In which city is the registered office of the company that guarantees Yororia Logistics?",
     "Which company guarantees Yororia Logistics?", "In which city is the registered office of {}?"),
    ("How long is the term of office of the Debian official who settles disputes about the constitution?",
     "Which Debian official settles disputes about the constitution?", "How long is the term of office of {}?"),
    ("Which Django body selects the people whose PGP key signs the notices?",
     "Whose PGP key signs the notices?", "Which Django body selects {}?"),
])
def test_a_thing_named_by_a_clause_is_asked_first(question: str, sub: str, second: str) -> None:
    h = decompose(question)
    assert h is not None and h.sub == sub and h.template == second


@pytest.mark.parametrize("question", [
    "What time did the apt run that installed heaptrack begin?",  # an event: records join it
    "In the same apt run that installed postgresql-contrib, what version was libc6 upgraded to?",
    "For how long does the kind of release that gets security updates keep receiving fixes?",  # ran into the verb
    "Which apt command started the run in which openjdk was installed?",
    "Who is the chief executive of Calavex Holdings?",
])
def test_events_subjects_and_plain_questions_are_left_whole(question: str) -> None:
    assert decompose(question) is None


def test_the_bridge_is_the_name_the_first_answer_gives() -> None:
    assert bridge_name("guaranteed by its parent company, Dunello Dynamics", "Which company guarantees X?") == \
        "Dunello Dynamics"
    assert bridge_name("steering council", "Which Django body selects Releasers?") == "steering council"
    assert bridge_name("Calavex Holdings", "Which company supplies Calavex Holdings?") is None  # a copy
    assert bridge_name("line one\nline two", "Which company?") is None


@dataclass
class _Result:
    answer: str
    citations: list = field(default_factory=list)
    rounds: list = field(default_factory=list)
    timing: dict = field(default_factory=dict)
    reading: dict = field(default_factory=dict)


def test_two_hops_put_the_bridge_in_the_second_question_and_report_both() -> None:
    asked: list[str] = []
    answers = {"Which company guarantees Yororia?": "Dunello Dynamics",
               "In which city is the office of Dunello Dynamics?": "Yorennby"}

    def one(q: str, **kw) -> _Result:  # noqa: ANN003, ARG001
        asked.append(q)
        return _Result(answers.get(q, "Not stated."), [{"doc_id": len(asked)}], [{"round": 1}],
                       {"total_ms": 10.0}, {"how": "generated"})

    h = decompose("In which city is the office of the company that guarantees Yororia?")
    got = ask_two_hops(one, "", h)
    assert asked == ["Which company guarantees Yororia?", "In which city is the office of Dunello Dynamics?"]
    assert got.answer == "Yorennby" and got.reading["bridge"]["answer"] == "Dunello Dynamics"
    assert [c["doc_id"] for c in got.citations] == [2, 1] and [r["hop"] for r in got.rounds] == [1, 2]
    assert got.timing["total_ms"] == 20.0
    assert got.reading["bridge"]["used"] is True
    answers["In which city is the office of Dunello Dynamics?"] = "Not stated."
    attempt: dict = {}
    assert ask_two_hops(one, "", h, attempt) is None  # the second hop found nothing: ask the question whole
    assert attempt == {"question": "Which company guarantees Yororia?", "answer": "Dunello Dynamics", "used": False,
                       "bridge": "Dunello Dynamics",
                       "second_question": "In which city is the office of Dunello Dynamics?",
                       "why": "the second hop found no answer"}
    answers["Which company guarantees Yororia?"] = "Not stated."
    attempt = {}
    assert ask_two_hops(one, "", h, attempt) is None
    assert attempt["used"] is False and attempt["why"] == "the first hop found no name to carry over"
