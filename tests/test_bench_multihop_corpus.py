"""The multi-hop benchmark's corpus generator (bench/multihop_corpus.py): deterministic, and every
question is answerable only by following its chain."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parent.parent / "bench" / "multihop_corpus.py"


@pytest.fixture(scope="module")
def gen():  # noqa: ANN201
    spec = importlib.util.spec_from_file_location("multihop_corpus", _PATH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["multihop_corpus"] = mod
    spec.loader.exec_module(mod)
    return mod


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def _has(text: str, s: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(s)}(?!\w)", text, re.IGNORECASE) is not None


def test_same_seed_same_bytes(gen, tmp_path: Path) -> None:  # noqa: ANN001
    gen.write(tmp_path / "a", seed=3, size=2)
    gen.write(tmp_path / "b", seed=3, size=2)
    gen.write(tmp_path / "c", seed=4, size=2)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_default_corpus_questions_follow_their_chains(gen, tmp_path: Path) -> None:  # noqa: ANN001
    corpus, qpath = gen.write(tmp_path, seed=0, size=4)
    files = {p.relative_to(corpus).as_posix(): p.read_text(encoding="utf-8") for p in corpus.rglob("*") if p.is_file()}
    questions = [json.loads(line) for line in qpath.read_text(encoding="utf-8").splitlines()]
    assert 60 <= len(files) <= 100
    assert sum(q["hops"] == 2 for q in questions) == 20 and sum(q["hops"] == 1 for q in questions) == 10
    assert len({q["question"] for q in questions}) == len(questions)
    for q in questions:
        assert len(q["evidence"]) == q["hops"]
        for rel in q["evidence"]:
            assert rel in files, rel
        last = files[q["evidence"][-1]]
        assert _has(last, q["answer"]), q
        # the answer is in its evidence file and nowhere else
        assert [p for p, t in files.items() if _has(t, q["answer"])] == [q["evidence"][-1]], q
        if q["hops"] == 2:
            first, bridge = files[q["evidence"][0]], q["bridge"]
            assert _has(first, bridge) and _has(last, bridge), q
            assert bridge.lower() not in q["question"].lower(), q
            assert not _has(first, q["answer"]), q
            # the question names its subject; only the first file does
            assert q["subject"] in q["question"] and _has(first, q["subject"]), q
            assert not _has(last, q["subject"]), q


def test_files_are_a_few_hundred_words(gen) -> None:  # noqa: ANN001
    files, _ = gen.build(seed=0, size=4)
    words = [len(t.split()) for t in files.values()]
    assert min(words) >= 120 and max(words) <= 400
