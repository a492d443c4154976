"""Sizes, scoring, the resumable results file and the outputs every bench writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from msa_agent.errors import BadInput
from msa_agent.evals.common import (Results, Series, Table, contains_answer, exact_match, parse_size, parse_sizes,
                                    ruler_match_all, size_label, write_outputs)


def test_sizes() -> None:
    assert parse_size("4096") == 4096 and parse_size("16k") == 16384 and parse_size("1M") == 1048576
    assert parse_sizes("64k, 4k,16K,4k") == [4096, 16384, 65536]
    assert [size_label(n) for n in (512, 4096, 131072, 1048576, 104857600, 1536)] == ["512", "4K", "128K", "1M", "100M", "1.5K"]
    for bad in ("", "lots", "-4k", "0"):
        with pytest.raises(BadInput):
            parse_sizes(bad)


def test_ruler_scoring_is_the_fraction_of_values_present() -> None:
    assert ruler_match_all("The numbers are 1234567 and 7654321.", ["1234567", "7654321"]) == 1.0
    assert ruler_match_all("Only 1234567 here", ["1234567", "7654321", "1111111", "2222222"]) == 0.25
    assert ruler_match_all("UUID: ABCDEF01-...", ["abcdef01-..."]) == 1.0
    assert ruler_match_all("nothing", []) == 0.0


def test_answer_matching() -> None:
    assert exact_match("The Velmouth.", "velmouth") and not exact_match("In Velmouth", "Velmouth")
    assert contains_answer("It is in Velmouth, I think", "velmouth")
    assert not contains_answer("page 159", "59") and contains_answer("page 59.", "59")
    assert not contains_answer("anything", "  ")


def test_results_resume_and_refuse_other_settings(tmp_path: Path) -> None:
    r = Results(tmp_path, "b", {"seed": 0, "lengths": [1]}, extendable=("lengths",))
    r.add("a", {"score": 1.0})
    r.add("b", {"score": 0.0})
    again = Results(tmp_path, "b", {"seed": 0, "lengths": [1, 2]}, extendable=("lengths",))
    assert again.resumed == 2 and "a" in again and again.items["b"]["score"] == 0.0
    with pytest.raises(BadInput, match="other settings"):
        Results(tmp_path, "b", {"seed": 1, "lengths": [1]}, extendable=("lengths",))
    # A line cut short by a crash is dropped, and the file is whole again.
    with open(tmp_path / "b.jsonl", "a") as f:
        f.write('{"key": "c", "sco')
    cut = Results(tmp_path, "b", {"seed": 0, "lengths": [1]}, extendable=("lengths",))
    assert cut.resumed == 2 and "c" not in cut
    cut.add("c", {"score": 1.0})
    assert Results(tmp_path, "b", {"seed": 0, "lengths": [1]}, extendable=("lengths",)).resumed == 3
    assert Results(tmp_path, "b", {"seed": 5}, fresh=True).resumed == 0


def test_outputs(tmp_path: Path) -> None:
    t = Table("Accuracy", ["task", "4K"], [["single_1", 50.0], ["multi", None]])
    paths = write_outputs(tmp_path, "x", {"a": 1}, [t], [Series("single_1", [4096.0, 8192.0], [50.0, None], bold=True)],
                          plot_kw={"title": "t", "xlabel": "x", "ylabel": "y"}, intro="Intro.")
    md = Path(paths["markdown"]).read_text()
    assert "Intro." in md and "| single_1 | 50.0 |" in md and "| multi | – |" in md
    assert Path(paths["png"]).read_bytes()[:4] == b"\x89PNG"
    assert '"tables"' in Path(paths["json"]).read_text()
