"""`msa bench niah|scale|qa` through typer: one command each, tables on stdout, outputs on disk,
bad input exits 1 in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from msa_agent.cli.bench_cmd import bench_app


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path):  # noqa: ANN201
    monkeypatch.setenv("MSA_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("MSA_DTYPE", "float32")
    # The essay haystack from a small package's docstrings, not SQLAlchemy's and NumPy's (seconds to parse).
    from msa_agent.evals import haystack

    monkeypatch.setitem(haystack._PROSE_MEMO, haystack.PROSE_PACKAGES, haystack.prose_paragraphs(("click",)))
    runner = CliRunner()

    def invoke(*args: object, code: int = 0):  # noqa: ANN202
        res = runner.invoke(bench_app, [str(a) for a in args])
        assert res.exit_code == code, (res.exit_code, res.stdout, res.stderr, res.exception)
        assert "Traceback" not in res.output
        if code == 1:
            assert res.stdout == "" and res.stderr.strip().startswith("error: ") and len(res.stderr.strip().splitlines()) == 1
        return res

    return invoke


def test_niah_command(bench, tmp_path: Path) -> None:
    out = tmp_path / "n"
    res = bench("niah", "--lengths", "512,1k", "--tasks", "single_1,multiquery", "--samples", "1", "--doc-tokens", "128",
                "--max-new-tokens", "4", "--threads", "1", "--out", out)
    assert "single_1" in res.stdout and "average" in res.stdout and "1K" in res.stdout
    assert {p.name for p in out.iterdir()} >= {"niah.json", "niah.md", "niah.png", "niah.jsonl", "store", "corpus"}
    again = bench("niah", "--lengths", "512,1k", "--tasks", "single_1,multiquery", "--samples", "1", "--doc-tokens",
                  "128", "--max-new-tokens", "4", "--out", out, "--json")
    s = json.loads(again.stdout)
    assert s["resumed_items"] == 4 and s["items"] == 4


def test_scale_and_qa_commands(bench, tmp_path: Path) -> None:
    res = bench("scale", "--sizes", "2k,3k", "--size", "1", "--doc-tokens", "256", "--max-new-tokens", "4",
                "--out", tmp_path / "s")
    assert "Accuracy and latency" in res.stdout and "3K" in res.stdout and (tmp_path / "s" / "scale.png").is_file()
    res = bench("qa", "--size", "1", "--k", "1,2", "--systems", "msa,bm25", "--max-new-tokens", "4",
                "--out", tmp_path / "q", "--json")
    s = json.loads(res.stdout)
    assert list(s["systems"]) == ["msa", "bm25@1", "bm25@2"] and Path(s["outputs"]["png"]).is_file()


@pytest.mark.parametrize("args,needle", [
    (["niah", "--lengths", "lots"], "not a size"),
    (["niah", "--tasks", "single_9"], "unknown NIAH task"),
    (["niah", "--depths", "0,2"], "depths"),
    (["niah", "--mode", "psychic"], "routing mode"),
    (["scale", "--sizes", ""], "no sizes"),
    (["qa", "--corpus", "."], "go together"),
    (["qa", "--systems", "msa,magic"], "unknown system"),
    (["qa", "--corpus", "/nonexistent-dir", "--questions", "q.jsonl"], "no such directory"),
    (["niah", "--device", "tpu"], "unknown device"),
])
def test_bad_input_exits_1_in_one_line(bench, tmp_path: Path, args: list[str], needle: str) -> None:
    res = bench(*args, "--out", tmp_path / "o", code=1)
    assert needle in res.stderr


def test_registered_under_msa(tiny_model_dir: Path) -> None:
    from msa_agent.cli.main import app

    res = CliRunner().invoke(app, ["bench", "--help"])
    assert res.exit_code == 0 and "niah" in res.stdout and "scale" in res.stdout and "qa" in res.stdout
