"""The bundled corpus: each distinctive fact lands in the right document with the right anchor."""

import importlib.util
from pathlib import Path

import pytest

from msa_agent.ingest import parse_file, walk

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
CORPUS = SAMPLES / "corpus"


@pytest.fixture(scope="module")
def docs():
    return [d for p in walk(CORPUS) for d in parse_file(p, CORPUS)]


def _one(docs, needle, path):
    hits = [d for d in docs if needle in d.text and d.path == path]
    assert len(hits) == 1, (needle, [d.anchor for d in hits])
    return hits[0]


def test_corpus_files_and_kinds(docs):
    kinds = {d.path: d.kind for d in docs}
    assert kinds == {
        "code/pumpctl/__init__.py": "code",
        "code/pumpctl/config.py": "code",
        "code/pumpctl/controller.py": "code",
        "code/web/dashboard.js": "code",
        "contracts/supply_agreement.pdf": "contract",
        "logs/plant_sensors.csv": "log",
    }
    assert all(0 < len(d.text) <= 2400 for d in docs)


def test_contract_facts_on_their_pages(docs):
    pdf = "contracts/supply_agreement.pdf"
    assert [d.anchor for d in docs if d.path == pdf] == ["p. 1", "p. 2", "p. 3"]
    parties = _one(docs, "Blue Harbor Robotics Inc., a Delaware corporation", pdf)
    assert parties.anchor_data == {"page": 1} and "Northwind Components Ltd." in parties.text
    price = _one(docs, "EUR 48,500 per quarter", pdf)
    assert price.anchor == "p. 2" and price.anchor_data == {"page": 2}
    assert "forty-five (45) days" in price.text and "ninety (90) days" in price.text
    law = _one(docs, "laws of the State of Delaware", pdf)
    assert law.anchor_data == {"page": 3} and "EUR 194,000" in law.text


def test_emergency_stop_method_and_its_line_span(docs):
    src = (CORPUS / "code/pumpctl/controller.py").read_text().split("\n")
    start = next(i for i, ln in enumerate(src, 1) if "def emergency_stop(self, reason: str, timeout_s: float = 2.5)" in ln)
    end = next(i for i, ln in enumerate(src, 1) if i > start and ln.strip() == "return False")
    [d] = [d for d in docs if d.anchor_data.get("symbol") == "PumpController.emergency_stop"]
    assert (d.path, d.anchor, d.title) == ("code/pumpctl/controller.py", f"lines {start}-{end}", "PumpController.emergency_stop")
    assert d.text == "\n".join(src[start - 1 : end])
    config = _one(docs, "MAX_PRESSURE_BAR = 8.75", "code/pumpctl/config.py")
    assert config.anchor_data["symbol"] == "<module>"
    js = [d for d in docs if d.path == "code/web/dashboard.js"]
    assert {"pressureColour", "refreshPumps", "showAlarm", "PumpTable"} <= {d.anchor_data.get("symbol") for d in js}


def test_pump3_alarm_window(docs):
    log = "logs/plant_sensors.csv"
    row = "2024-03-14T02:17:00Z,pump-3,pressure_bar,9.41,ALARM"
    lines = (CORPUS / log).read_text().split("\n")
    line = lines.index(row) + 1
    d = _one(docs, row, log)
    a = d.anchor_data
    assert a["sensor"] == "pump-3" and d.title.split()[:2] == ["pump-3", "ALARM"]
    assert a["t_start"] <= "2024-03-14T02:17:00Z" <= a["t_end"]
    assert a["t_start"] >= "2024-03-14T02:00:00Z" and a["t_end"] < "2024-03-14T03:00:00Z"
    assert any(x <= line <= y for x, y in a["line_ranges"])
    assert d.anchor == f"{a['t_start']} – {a['t_end']}, lines {a['line_start']}-{a['line_end']}"
    head = d.text.split("\n")[:4]
    assert head[0] == f"sensor pump-3, {a['t_start']} – {a['t_end']}"
    assert "max 9.41 at 02:17:00Z" in head[1] and "1 ALARM (02:17:00Z)" in head[2]
    assert head[3] == "timestamp,sensor_id,metric,value,status"
    assert all(",pump-3," in r for r in d.text.split("\n")[4:])


def _load(name):
    spec = importlib.util.spec_from_file_location(name, SAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize(
    "script, committed",
    [("make_sample_pdf", "contracts/supply_agreement.pdf"), ("make_sample_logs", "logs/plant_sensors.csv")],
)
def test_committed_samples_match_their_generators(tmp_path, capsys, script, committed):
    out = tmp_path / Path(committed).name
    _load(script).main(["x", str(out)])
    assert out.read_bytes() == (CORPUS / committed).read_bytes(), f"regenerate with: python samples/{script}.py"
    assert (CORPUS / committed).stat().st_size < 20_000
