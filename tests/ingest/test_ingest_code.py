"""Python and JavaScript by definition (tree-sitter); other languages by marked line windows."""

from msa_agent.ingest import detect_kind, parse_file

PY = '''"""Valve helpers."""

import math
from dataclasses import dataclass

LIMIT = 4.5


# Opening is clamped: the actuator stalls below 5%.
@dataclass
class Valve:
    """One valve."""

    name: str
    opening: float = 0.0

    def open_to(self, pct: float) -> None:
        self.opening = max(5.0, min(100.0, pct))

    @property
    def closed(self) -> bool:
        return self.opening <= 5.0


def flow(k: float, dp: float) -> float:
    """Flow through a valve."""
    return k * math.sqrt(dp)  # trailing comment


if __name__ == "__main__":
    print(flow(1.0, LIMIT))
'''


def _by_symbol(docs):
    return {d.anchor_data.get("symbol"): d for d in docs}


def _lines_of(src: str, d) -> str:
    lines = src.split("\n")
    return "\n".join(lines[d.anchor_data["line_start"] - 1 : d.anchor_data["line_end"]])


def _first_line(src: str, needle: str) -> int:
    return next(i for i, ln in enumerate(src.split("\n"), 1) if needle in ln)


def test_python_one_document_per_definition_plus_module(tmp_path):
    (tmp_path / "pkg").mkdir()
    p = tmp_path / "pkg" / "valve.py"
    p.write_text(PY)
    assert detect_kind(p) == "code"
    docs = parse_file(p, tmp_path)
    by = _by_symbol(docs)
    assert set(by) == {"<module>", "Valve", "flow"}
    assert all(d.kind == "code" and d.path == "pkg/valve.py" for d in docs)

    valve = by["Valve"]  # the comment above the decorator and the decorator belong to it
    assert valve.anchor_data["line_start"] == _first_line(PY, "# Opening is clamped")
    assert valve.anchor_data["line_end"] == _first_line(PY, "return self.opening <= 5.0")
    assert valve.text == _lines_of(PY, valve) and valve.title == "Valve"
    assert valve.anchor == f"lines {valve.anchor_data['line_start']}-{valve.anchor_data['line_end']}"

    f = by["flow"]
    assert f.text.startswith("def flow(") and f.text.endswith("# trailing comment")
    assert f.text == _lines_of(PY, f)

    mod = by["<module>"]
    assert "import math" in mod.text and "LIMIT = 4.5" in mod.text and '__name__ == "__main__"' in mod.text
    assert "def " not in mod.text and "class " not in mod.text and "sqrt" not in mod.text
    ranges = mod.anchor_data["line_ranges"]
    assert ranges[0][0] == 1 and ranges[-1][1] == _first_line(PY, "print(flow")
    assert mod.anchor == "lines " + ", ".join(f"{a}-{b}" if b > a else str(a) for a, b in ranges)
    lines = PY.split("\n")
    assert mod.text == "\n".join(lines[n - 1] for a, b in ranges for n in range(a, b + 1))


def test_big_class_is_split_into_its_methods(tmp_path):
    methods = "\n".join(
        f"    def step_{i}(self, x):\n        \"\"\"Step {i}.\"\"\"\n" + "".join(f"        x = x * {i} + {j}\n" for j in range(8)) + "        return x\n"
        for i in range(12)
    )
    src = f"import os\n\n\nclass Pump:\n    \"\"\"A pump.\"\"\"\n\n    RATED = 3\n\n{methods}\n\ndef helper():\n    return 1\n"
    p = tmp_path / "pump.py"
    p.write_text(src)
    docs = parse_file(p, tmp_path, max_chars=800)
    assert all(0 < len(d.text) <= 800 for d in docs)
    by = _by_symbol(docs)
    assert {f"Pump.step_{i}" for i in range(12)} | {"Pump", "helper", "<module>"} == set(by)
    s7 = by["Pump.step_7"]
    assert s7.anchor_data["line_start"] == _first_line(src, "def step_7(")
    assert s7.text == _lines_of(src, s7) and s7.text.rstrip().endswith("return x")
    own = by["Pump"]  # the class minus its methods
    assert "class Pump:" in own.text and "RATED = 3" in own.text and "def step" not in own.text


def test_huge_function_is_cut_into_parts(tmp_path):
    src = "def big():\n" + "".join(f"    v{i} = {i} * 2  # step {i}\n" for i in range(200)) + "    return v0\n"
    p = tmp_path / "big.py"
    p.write_text(src)
    docs = parse_file(p, tmp_path, max_chars=500)
    assert all(d.anchor_data["symbol"] == "big" for d in docs) and len(docs) > 5
    assert all(len(d.text) <= 500 for d in docs)
    assert [d.anchor_data["part"] for d in docs] == list(range(1, len(docs) + 1))
    assert "\n".join(d.text for d in docs) == src.rstrip("\n")


JS = """// Dashboard helpers.
import { api } from "./api.js";

const REFRESH_MS = 1000;

/**
 * Average of readings.
 */
function mean(xs) {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

export const fmt = (x) => x.toFixed(2);

export class Gauge {
  constructor(el) {
    this.el = el;
  }

  render(v) {
    this.el.textContent = fmt(v);
  }
}

export default function main() {
  return api.get("/x").then(mean);
}

module.exports = { mean };
"""


def test_javascript_functions_arrows_and_classes(tmp_path):
    p = tmp_path / "dash.js"
    p.write_text(JS)
    assert detect_kind(p) == "code"
    docs = parse_file(p, tmp_path)
    by = _by_symbol(docs)
    assert set(by) == {"<module>", "mean", "fmt", "Gauge", "main"}
    assert by["mean"].anchor_data["line_start"] == _first_line(JS, "/**")  # JSDoc travels with it
    assert by["mean"].anchor_data["line_end"] == _first_line(JS, "return xs.reduce") + 1
    assert by["fmt"].anchor == f"line {_first_line(JS, 'export const fmt')}"
    for d in docs:
        if d.anchor_data["symbol"] != "<module>":
            assert d.text == _lines_of(JS, d)
    assert "REFRESH_MS" in by["<module>"].text and "module.exports" in by["<module>"].text
    assert "function" not in by["<module>"].text

    small = parse_file(p, tmp_path, max_chars=100)
    assert {"Gauge.constructor", "Gauge.render"} <= set(_by_symbol(small))
    assert all(len(d.text) <= 100 for d in small)


def test_other_languages_fall_back_to_marked_line_windows(tmp_path):
    src = "package main\n\n" + "".join(f"func f{i}() int {{\n\treturn {i}\n}}\n\n" for i in range(40))
    p = tmp_path / "main.kt"
    p.write_text(src)
    assert detect_kind(p) == "code"
    docs = parse_file(p, tmp_path)
    assert len(docs) > 1
    lines = src.split("\n")
    covered = []
    for d in docs:
        assert d.anchor_data["fallback"] == "line-windows" and "symbol" not in d.anchor_data
        a, b = d.anchor_data["line_start"], d.anchor_data["line_end"]
        assert b - a + 1 <= 60 and d.text == "\n".join(lines[a - 1 : b]) and len(d.text) <= 2400
        covered += range(a, b + 1)
    assert {i for i, ln in enumerate(lines, 1) if ln.strip()} <= set(covered)


def test_syntax_errors_still_give_documents_and_a_warning(tmp_path):
    p = tmp_path / "broken.py"
    p.write_text("def ok():\n    return 1\n\ndef broken(:\n    pass\n")
    warnings: list[str] = []
    docs = parse_file(p, tmp_path, warnings=warnings)
    assert "ok" in _by_symbol(docs) and any("broken.py: syntax errors" in w for w in warnings)
    assert "\n".join(d.text for d in docs).count("def ") == 2
