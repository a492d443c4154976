"""The real-document dev set (bench/devset) verifies against its corpus, and its verifier catches
a wrong answer, a quote that is not verbatim and a changed corpus file."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

DEVSET = Path(__file__).resolve().parents[2] / "bench" / "devset"


def _verify():
    spec = importlib.util.spec_from_file_location("devset_verify", DEVSET / "verify.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_devset_verifies() -> None:
    problems, kinds = _verify().check(DEVSET / "questions.jsonl", DEVSET / "corpus")
    assert problems == []
    assert sum(kinds.values()) >= 150


@pytest.fixture()
def copy(tmp_path: Path) -> Path:
    shutil.copytree(DEVSET / "corpus", tmp_path / "corpus")
    shutil.copy(DEVSET / "corpus.sha256", tmp_path / "corpus.sha256")
    shutil.copy(DEVSET / "questions.jsonl", tmp_path / "questions.jsonl")
    return tmp_path


def _rewrite(path: Path, change) -> None:  # noqa: ANN001
    qs = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
    change(qs)
    path.write_text("".join(json.dumps(q) + "\n" for q in qs))


def test_verifier_catches_a_wrong_answer_a_bad_quote_and_a_changed_file(copy: Path) -> None:
    v = _verify()

    def spoil(qs: list[dict]) -> None:
        single = next(q for q in qs if q["kind"] == "single")
        single["answers"] = ["a value no document holds 31337"]
        quoted = next(q for q in qs if q["kind"] == "two-hop")
        quoted["quotes"][0]["text"] += " (not in the file)"

    _rewrite(copy / "questions.jsonl", spoil)
    victim = sorted((copy / "corpus").rglob("*.csv"))[0]
    victim.write_text(victim.read_text() + "1999-01-01,0\n")
    problems, _ = v.check(copy / "questions.jsonl", copy / "corpus")
    text = "\n".join(problems)
    assert "is in no evidence file" in text
    assert "quote not verbatim" in text
    assert f"corpus/{victim.relative_to(copy / 'corpus').as_posix()}: changed" in text
