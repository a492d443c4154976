"""Quoted evidence and abstention in `ask`: the quote is located by the system in the stored text
(a verbatim substring, with its line range), and an abstention cites nothing."""

from __future__ import annotations

import pytest
import torch

from msa_agent.ask import ask
from msa_agent.reading import ABSTAIN, is_abstention, locate_quote

TEXT = "SUPPLY AGREEMENT\n\n1. The price is $48,500 per quarter.\n2. Notice: 30 days.\n3. Late fee 159 USD.\n"


def test_locate_quote_finds_the_line_holding_the_answer() -> None:
    q = locate_quote(TEXT, "$48,500", "How much per quarter?")
    assert q.text == "1. The price is $48,500 per quarter." and (q.first_line, q.last_line) == (3, 3) and q.exact
    assert q.text in TEXT


def test_locate_quote_respects_word_boundaries_and_falls_back_to_content_words() -> None:
    assert locate_quote(TEXT, "59") is None  # not inside "159"
    q = locate_quote(TEXT, "It is thirty days of notice", "What notice?")
    assert q is not None and q.first_line == 4 and not q.exact and q.text in TEXT
    assert locate_quote(TEXT, "unrelated words entirely") is None


def test_locate_quote_spans_lines_and_prefers_the_question_line() -> None:
    text = "a: 30 days\nnotice period\n30 days\ncure period: 30 days"
    q = locate_quote(text, "30 days", "What is the cure period?")
    assert (q.first_line, q.text) == (4, "cure period: 30 days")
    q = locate_quote("x\nNotice\nperiod 9\n", "Notice\nperiod 9")
    assert (q.first_line, q.last_line) == (2, 3) and q.text in "x\nNotice\nperiod 9\n"


def test_abstention_phrases() -> None:
    assert is_abstention(ABSTAIN) and is_abstention("Not stated in the documents.") and is_abstention("")
    assert is_abstention("The documents do not say.") and not is_abstention("30 days")
    assert locate_quote(TEXT, ABSTAIN) is None


def _answering(engine, monkeypatch, text: str) -> None:  # noqa: ANN001
    """The reader writes `text`, whatever it reads (its first-token logits are flat)."""
    ids = engine.tok.encode(text)

    def fake_prefill(prefix, prompt, memory=None):  # noqa: ANN001, ANN202, ARG001
        return torch.zeros(engine.cfg.vocab_size), None, 0

    def fake_decode(logits, cache, pos, **kw):  # noqa: ANN001, ANN202, ARG001
        yield from ids

    monkeypatch.setattr(engine.answerer, "prefill", fake_prefill)
    monkeypatch.setattr(engine.answerer, "decode", fake_decode)


def test_ask_cites_the_document_with_a_verbatim_quote(built, engine, monkeypatch: pytest.MonkeyPatch) -> None:
    _answering(engine, monkeypatch, "2.5")
    res = ask(built, engine, "What is the default timeout_s of PumpController.emergency_stop?", mode="lexical", rounds=1)
    top = res.citations[0]
    assert top["path"] == "code/pump.py"
    doc = {d.id: d for d in built.live_documents(None)}[top["doc_id"]]
    assert "2.5" in top["quote"] and top["quote"] in doc.text and top["quote_exact"]
    first, last = top["quote_lines"]
    assert "\n".join(doc.text.split("\n")[first - 1:last]).strip() == top["quote"]
    assert all("quote" in c for c in res.citations)


def test_ask_abstention_cites_nothing(built, engine, monkeypatch: pytest.MonkeyPatch) -> None:
    _answering(engine, monkeypatch, ABSTAIN)
    res = ask(built, engine, "What is the CEO's shoe size?", mode="lexical", rounds=1)
    assert res.answer == ABSTAIN and res.citations == []


def test_a_list_answer_is_quoted_by_the_lines_that_hold_its_items() -> None:
    """"72.6, 72.8" read off two rows: the quote covers both rows (before: one row, so no quote
    held the whole answer)."""
    from msa_agent.reading import locate_quote

    text = ("time,temp\n2010/07/11 14:00,71.0\n2010/07/11 15:00,72.6\n2010/07/11 16:00,72.8\n"
            "2010/07/11 17:00,70.1")
    q = locate_quote(text, "72.6, 72.8", "temperatures at 3 pm and 4 pm")
    assert q is not None and q.exact and (q.first_line, q.last_line) == (3, 4)
    assert q.text == "2010/07/11 15:00,72.6\n2010/07/11 16:00,72.8" and q.text in text
    # items too far apart: no covering quote claimed, the best single line instead
    far = "\n".join(["a 1"] + [f"filler {i}" for i in range(20)] + ["b 2"])
    q = locate_quote(far, "1, 2", "a and b")
    assert q is None or not (q.first_line == 1 and q.last_line == 22)
    # a thousands separator is not a list
    assert locate_quote("The fee is EUR 48,500 per quarter.\n", "EUR 48,500").exact


def test_list_items() -> None:
    from msa_agent.reading import list_items

    assert list_items("72.6, 72.8") == ["72.6", "72.8"]
    assert list_items("cmake and ninja-build") == ["cmake", "ninja-build"]
    assert list_items("- /usr/share/fonts\n- /usr/local/share/fonts") == ["/usr/share/fonts", "/usr/local/share/fonts"]
    assert list_items("EUR 48,500") == [] and list_items("1,234, 5,678") == ["1,234", "5,678"]
    assert list_items("2.5") == []
