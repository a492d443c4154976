"""Retrieval bench: the generated corpus (paraphrased questions, evidence on disk), the question file
format, scoring, and a whole run of every system on the tiny model with resume."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from msa_agent.errors import BadInput
from msa_agent.evals.retrieval import (_PARA_KIND, _PARA_PLACE, _PARA_TRAIT, RetrievalConfig, content_overlap,
                                       load_questions, make_corpus, run_retrieval, score)


def test_generated_corpus_is_seeded_and_questions_are_not_verbatim(tmp_path: Path) -> None:
    root, qf = make_corpus(1, 1, tmp_path / "a")
    root2, qf2 = make_corpus(1, 1, tmp_path / "b")
    assert qf.read_text() == qf2.read_text()
    qs = load_questions(qf)
    cats = {q["category"] for q in qs}
    assert cats == {"code", "contract", "log", "needle", "two-hop", "paraphrase"}
    texts = {p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*") if p.is_file()}
    for q in qs:
        assert all(e in texts for e in q["evidence"]), q
        assert all(q["question"].lower().rstrip("?") not in t.lower() for t in texts.values()), q
        if q["category"] == "two-hop":
            assert len(q["evidence"]) == 2
        if q["category"] in ("needle", "two-hop"):
            assert q["answers"][0] in texts[q["evidence"][-1]]


def test_paraphrase_questions_share_no_content_word_with_their_evidence(tmp_path: Path) -> None:
    """Each paraphrase question describes one site profile (what it is, where, one more trait) in
    other words: no content word in common with the profile, the site's name never said, and no
    other profile holds all three traits."""
    root, qf = make_corpus(3, 2, tmp_path / "a")
    qs = [q for q in load_questions(qf) if q["category"] == "paraphrase"]
    profiles = {p.relative_to(root).as_posix(): p.read_text() for p in (root / "sites").iterdir()}
    assert len(qs) == 6 and len(profiles) >= 2 * len(qs) - 1
    slots = (_PARA_KIND, _PARA_PLACE, _PARA_TRAIT)
    for q in qs:
        [ev] = q["evidence"]
        text = profiles[ev]
        assert content_overlap(q["question"], text) == 0.0, q
        assert q["answers"][0] in text and q["answers"][0].lower() not in q["question"].lower()
        said = [next(j for j, (doc, asks) in enumerate(slot) if any(a in q["question"] for a in asks))
                for slot in slots]
        holders = [rel for rel, t in profiles.items()
                   if all(f" {slot[j][0]}" in t for slot, j in zip(slots, said))]
        assert holders == [ev], (q, holders)
    # Every question phrase differs in content words from its profile phrase.
    for slot in slots:
        for doc, asks in slot:
            assert all(content_overlap(a, doc) == 0.0 for a in asks), doc


def test_score_counts_evidence_files() -> None:
    s = score(["a", "b"], ["x", "a", "y", "y", "b"])
    assert s["r1"] == 0 and s["r5"] == 1.0 and s["rr"] == 0.5
    assert score(["a"], ["b"]) == {"r1": 0.0, "r5": 0.0, "r16": 0.0, "rr": 0.0}


@pytest.mark.parametrize("line,msg", [("{x", "not JSON"), ('{"question": "q"}', "evidence"),
                                      ('{"question": "q", "evidence": []}', "evidence")])
def test_bad_question_files_are_refused(tmp_path: Path, line: str, msg: str) -> None:
    f = tmp_path / "q.jsonl"
    f.write_text('{"question": "ok?", "evidence": ["a.md"]}\n' + line + "\n")
    with pytest.raises(BadInput, match=msg):
        load_questions(f)


def test_run_reports_every_system_side_by_side_and_resumes(engines, tiny_encoder_dir: Path, tmp_path: Path) -> None:
    t0 = time.perf_counter()
    cfg = RetrievalConfig(size=1, limit=10)
    out = tmp_path / "bench"
    s = run_retrieval(cfg, out, engines, dense_model=tiny_encoder_dir)
    assert set(s["systems"]) == {"msa", "lexical", "hybrid", "rrf", "bm25", "dense"}
    for r in s["systems"].values():
        assert r["n"] == 10 and 0 <= r["recall@1"] <= r["recall@5"] <= r["recall@16"] <= 100
        assert r["latency_ms"] > 0
    assert s["router"].startswith("untrained")
    for ext in ("json", "md", "png", "jsonl"):
        assert (out / f"retrieval.{ext}").is_file()
    md = (out / "retrieval.md").read_text()
    assert "| msa |" in md and "| hybrid |" in md and "| rrf |" in md
    # A rerun resumes every item.
    s2 = run_retrieval(cfg, out, engines, dense_model=tiny_encoder_dir)
    assert s2["resumed_items"] == 60 and json.loads((out / "retrieval.json").read_text())["questions"] == 10
    assert time.perf_counter() - t0 < 60


def test_users_corpus_and_cli_errors(engines, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from msa_agent.cli.main import app

    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "pump.md").write_text("# Pump 7\n\nThe pump-7 impeller was replaced in March.\n")
    (corpus / "fan.md").write_text("# Fan\n\nThe ventilation fan runs at night only.\n")
    qf = tmp_path / "q.jsonl"
    qf.write_text('{"question": "when did pump-7 get a new impeller?", "evidence": ["pump.md"]}\n')
    s = run_retrieval(RetrievalConfig(systems=["lexical", "bm25"]), tmp_path / "o", engines, corpus=corpus, questions=qf)
    assert s["systems"]["bm25"]["recall@1"] == 100.0 and s["categories"] == ["all"]
    s = run_retrieval(RetrievalConfig(systems=["msa", "hybrid"], attend_memory=False), tmp_path / "o2", engines,
                      corpus=corpus, questions=qf)
    assert s["systems"]["msa"]["recall@16"] == 100.0  # two documents: both are always returned
    r = CliRunner().invoke(app, ["bench", "retrieval", "--corpus", str(corpus)])
    assert r.exit_code == 1 and "go together" in r.output
    r = CliRunner().invoke(app, ["bench", "retrieval", "--systems", "msa,grep"])
    assert r.exit_code == 1 and "unknown system" in r.output
