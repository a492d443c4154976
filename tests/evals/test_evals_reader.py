"""Reader bench: the generated question sets, the question file format, scoring, base against
tuned in gold and e2e mode on the tiny model with resume, a user's corpus, and the missing adapter
reported (never a silent fallback)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from msa_agent.errors import BadInput
from msa_agent.evals import reader
from msa_agent.evals.reader import ReaderConfig, load_models, load_questions, make_question_set, run_reader, score


@pytest.fixture(scope="module")
def tiny_adapter(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random reader adapter for the tiny model (non-zero B: it changes the outputs)."""
    from msa_agent.model.lora import LoRALinear, add_lora, save_adapter
    from msa_agent.model.weights import load_model

    m = load_model(tiny_model_dir)
    add_lora(m, rank=2, alpha=4.0)
    torch.manual_seed(0)
    for mod in m.modules():
        if isinstance(mod, LoRALinear):
            torch.nn.init.normal_(mod.lora_b, std=0.05)
    return save_adapter(m, tmp_path_factory.mktemp("adapter") / "reader-tiny.safetensors")


def test_question_sets_are_seeded_scoped_and_answers_live_in_their_evidence(tmp_path: Path) -> None:
    a, b = make_question_set(0, 3, 2, ["contracts", "code", "logs"]), make_question_set(0, 3, 2, ["contracts", "code", "logs"])
    assert a.questions == b.questions and a.files == b.files
    assert make_question_set(1, 3, 2, ["contracts"]).questions != make_question_set(0, 3, 2, ["contracts"]).questions
    root, qf = a.write(tmp_path / "g")
    qs = load_questions(qf)
    for d in ("contracts", "logs"):  # code depends on the packages installed
        assert sum(q["answerable"] for q in qs if q["category"] == d) == 3
        assert sum(not q["answerable"] for q in qs if q["category"] == d) == 2
    for q in qs:
        text = (root / q["evidence"][0]).read_text()
        if q["answerable"]:
            assert q["answers"] and q["answers"][0] in text, q
        else:
            assert q["answers"] is None
        assert q["question"].startswith("In "), q
    # Rewriting keeps unchanged bytes and drops files no longer in the set.
    (root / "stale.txt").write_text("old")
    mtimes = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file() and p.name != "stale.txt"}
    a.write(tmp_path / "g")
    assert not (root / "stale.txt").exists()
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())


def test_question_file_format(tmp_path: Path) -> None:
    f = tmp_path / "q.jsonl"
    f.write_text("\n".join(json.dumps(x) for x in [
        {"question": "a?", "evidence": ["./x.md"], "answers": ["7"], "category": "mine"},
        {"question": "b?", "evidence": ["x.md"], "answers": []},
        {"question": "c?", "evidence": ["x.md"], "answerable": False},
        {"question": "d?", "evidence": ["x.md"]},
        {"question": "e?", "evidence": ["x.md"], "answer": "yes", "hops": 1},
    ]) + "\n")
    qs = load_questions(f)
    assert [(q["answerable"], q["answers"], q["category"]) for q in qs] == [
        (True, ["7"], "mine"), (False, None, "general"), (False, None, "general"), (True, None, "general"),
        (True, ["yes"], "general")]
    assert qs[0]["evidence"] == ["x.md"]
    for line, msg in [("{x", "not JSON"), ('{"question": "q", "evidence": []}', "evidence"),
                      ('{"question": "q", "evidence": ["a"], "answers": "7"}', "answers"),
                      ('{"question": "q", "evidence": ["a"], "answerable": "no"}', "answerable")]:
        f.write_text(line + "\n")
        with pytest.raises(BadInput, match=msg):
            load_questions(f)


def test_score_quotes_must_hold_the_answer_and_lie_in_the_evidence() -> None:
    q = {"answerable": True, "answers": ["30 days"]}
    ev = ["Invoices are due within 30 days of receipt.\nGoverning law: Ireland."]
    good = score(q, "30 days", ["Invoices are due within 30 days of receipt."], ev)
    assert good == {"abstained": False, "grounded": True, "contains": True, "quote_ok": True}
    # A quote that is not verbatim in the evidence, or without the answer, is no quote accuracy.
    assert score(q, "30 days", ["Invoices are due within 30 days."], ev)["quote_ok"] is False
    assert score(q, "30 days", ["Governing law: Ireland."], ev) | {} == {"abstained": False, "grounded": True,
                                                                       "contains": True, "quote_ok": False}
    assert score(q, "Not stated.", [], ev) == {"abstained": True, "grounded": False, "contains": False, "quote_ok": False}
    assert score({"answerable": False, "answers": None}, "Not stated.", [], ev) == {"abstained": True}
    unknown = score({"answerable": True, "answers": None}, "Ireland", ["Governing law: Ireland."], ev)
    assert unknown == {"abstained": False, "grounded": True, "contains": None, "quote_ok": None}


def test_base_against_tuned_in_both_modes_writes_outputs_and_resumes(tiny_model_dir: Path, tiny_adapter: Path,
                                                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    t0 = time.perf_counter()
    models = load_models(str(tiny_model_dir), dtype="float32", adapter=tiny_adapter)
    assert list(models.engines) == ["base", "tuned"] and not models.notes
    assert models.fingerprint("base") == models.fingerprint("tuned")  # the memory does not depend on the reader
    assert models.engines["tuned"].generate.adapter == tiny_adapter.name and models.engines["base"].generate.adapter is None
    # Code questions go through the same paths (the question-set test covers their generation).
    cfg = ReaderConfig(domains=["contracts", "logs"], n=1, unanswerable=1, max_new_tokens=4)
    out = tmp_path / "reader"
    s = run_reader(cfg, out, models)
    assert s["questions"] == 4 and s["answerable"] == 2 and s["domains"] == ["contracts", "logs"]
    labels = s["models"]
    assert labels[0] == "base+focused" and labels[1].startswith("tuned@") and labels[1].endswith("+focused")
    for m in labels:
        for mode in ("gold", "e2e"):
            for d in ("contracts", "logs", "all"):
                c = s["cells"][f"{m}/{mode}/{d}"]
                assert c["n_answerable"] == (2 if d == "all" else 1) and c["n_unanswerable"] == (2 if d == "all" else 1)
                for k in ("contains", "quote", "abstention", "wrong_abstention"):
                    assert 0 <= c[k] <= 100
                assert c["seconds_per_question"] > 0
            assert (s["cells"][f"{m}/e2e/all"]["evidence_recall"] is not None) and s["cells"][f"{m}/gold/all"]["evidence_recall"] is None
    # One store serves both readers: the memory is the backbone's.
    fp = models.fingerprint("base")
    assert set(s["memory"]) == {fp} and (out / f"store-{fp}").is_dir() and len(list(out.glob("store-*"))) == 1
    recs = [json.loads(x) for x in (out / "reader.jsonl").read_text().splitlines()[1:]]
    assert len(recs) == 16 and {(r["model"], r["mode"]) for r in recs} == {(m, x) for m in labels for x in ("gold", "e2e")}
    for key in ("json", "markdown", "png"):
        assert Path(s["outputs"][key]).is_file()
    md = (out / "reader.md").read_text()
    assert f"| {labels[1]} | e2e | logs |" in md and "Targets (issue #14)" in md
    assert json.loads((out / "reader.json").read_text())["cells"] == s["cells"]
    # Resume: nothing is read or asked again.
    from msa_agent import ask as ask_mod

    monkeypatch.setattr(reader, "read_documents", lambda *a, **k: pytest.fail("read again"))
    monkeypatch.setattr(ask_mod, "ask", lambda *a, **k: pytest.fail("asked again"))
    again = run_reader(cfg, out, models)
    assert again["resumed_items"] == 16 and again["cells"] == s["cells"]
    # Another setting is refused, not mixed in.
    with pytest.raises(BadInput, match="other settings"):
        run_reader(ReaderConfig(domains=["contracts", "logs"], n=1, unanswerable=1, max_new_tokens=5), out, models)
    assert time.perf_counter() - t0 < 60


def test_missing_adapter_is_reported_not_silent(tiny_model_dir: Path, tmp_path: Path) -> None:
    models = load_models(str(tiny_model_dir), dtype="float32", encoder=False)
    assert list(models.engines) == ["base"]
    assert len(models.notes) == 1 and "tuned model NOT run" in models.notes[0] and "adapter" in models.notes[0]
    s = run_reader(ReaderConfig(modes=["gold"], domains=["contracts"], n=1, unanswerable=1, max_new_tokens=3),
                   tmp_path / "r", models)
    assert s["models"] == ["base+focused"] and s["notes"] == models.notes
    assert not any(k.startswith("tuned/") for k in s["cells"])
    md = (tmp_path / "r" / "reader.md").read_text()
    assert "**Note: tuned model NOT run" in md and "(tuned NOT run: no adapter)" in md
    with pytest.raises(BadInput, match="cannot run the tuned model"):
        load_models(str(tiny_model_dir), names=["tuned"], dtype="float32")
    with pytest.raises(BadInput, match="no such adapter"):
        load_models(str(tiny_model_dir), names=["tuned"], dtype="float32", adapter=tmp_path / "none.safetensors")


def test_a_users_corpus(engines, tmp_path: Path) -> None:
    corpus = tmp_path / "mine"
    (corpus / "c").mkdir(parents=True)
    (corpus / "c" / "lease.md").write_text("# Lease\n\nThe rent is 1,250 EUR per month.\nThe tenant is Ada Vell.\n")
    (corpus / "notes.txt").write_text("The office plant is watered on Fridays.\n")
    qf = tmp_path / "q.jsonl"
    qf.write_text("\n".join(json.dumps(x) for x in [
        {"question": "What is the monthly rent?", "evidence": ["c/lease.md"], "answers": ["1,250 EUR"], "category": "lease"},
        {"question": "Who is the landlord?", "evidence": ["c/lease.md"], "answers": [], "category": "lease"},
        {"question": "When is the plant watered?", "evidence": ["notes.txt"]},
    ]) + "\n")
    models = reader.ReaderModels({"base": engines})
    s = run_reader(ReaderConfig(models=["base"], max_new_tokens=4), tmp_path / "out", models, corpus=corpus, questions=qf)
    assert s["domains"] == ["general", "lease"]
    assert s["cells"]["base+focused/gold/lease"]["n_answerable"] == 1 and s["cells"]["base+focused/gold/lease"]["n_unanswerable"] == 1
    assert s["cells"]["base+focused/e2e/all"]["n_answerable"] == 2 and s["cells"]["base+focused/e2e/all"]["n_unanswerable"] == 1
    # Unknown answers: no contains score, still grounded and wrong-abstention rates.
    general = s["cells"]["base+focused/e2e/general"]
    assert general["contains"] is None and general["quote"] is None and general["grounded"] is not None
    assert general["wrong_abstention"] is not None
    assert not (tmp_path / "out" / "generated").exists()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "x?", "evidence": ["missing.md"], "answers": ["y"]}) + "\n")
    with pytest.raises(BadInput, match="missing.md"):
        run_reader(ReaderConfig(models=["base"], modes=["gold"], max_new_tokens=2), tmp_path / "out2", models,
                   corpus=corpus, questions=bad)


def test_reader_command(tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from msa_agent.cli.bench_cmd import bench_app

    monkeypatch.setenv("MSA_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("MSA_DTYPE", "float32")
    runner = CliRunner()
    res = runner.invoke(bench_app, ["reader", "--modes", "gold", "--domains", "logs", "--n", "1", "--unanswerable", "1",
                                    "--max-new-tokens", "3", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, (res.stdout, res.stderr, res.exception)
    assert "Reader: base against tuned" in res.stdout and "logs" in res.stdout
    assert "tuned model NOT run" in res.stderr
    assert (tmp_path / "o" / "reader.png").is_file()
    for args, needle in [(["--modes", "oracle"], "unknown mode"), (["--models", "big"], "unknown model"),
                         (["--corpus", str(tmp_path)], "go together"), (["--n", "0"], "--n")]:
        res = runner.invoke(bench_app, ["reader", *args, "--out", str(tmp_path / "x")])
        assert res.exit_code == 1 and "Traceback" not in res.output and res.stderr.strip().startswith("error: ")
        assert needle in res.stderr
