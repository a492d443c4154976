"""What every bench shares: sizes, scoring, the resumable results file, engines, machine facts
and the outputs (JSON, Markdown, PNG)."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import string
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from msa_agent.errors import BadInput

# ---- sizes ---------------------------------------------------------------------------------------

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)\s*$")
_UNIT = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(text: str) -> int:
    """A token count: "4096", "16k" (16,384), "1M" (1,048,576); K and M are powers of two, as in RULER."""
    m = _SIZE.match(str(text))
    if not m:
        raise BadInput(f"not a size: {text!r} (e.g. 4096, 16k, 1M)")
    n = int(float(m.group(1)) * _UNIT[m.group(2).lower()])
    if n <= 0:
        raise BadInput(f"a size must be positive, got {text!r}")
    return n


def parse_sizes(text: str) -> list[int]:
    """A comma-separated list of sizes, sorted and without repeats."""
    sizes = sorted({parse_size(s) for s in str(text).split(",") if s.strip()})
    if not sizes:
        raise BadInput(f"no sizes in {text!r}")
    return sizes


def size_label(n: int) -> str:
    """16384 -> "16K", 1048576 -> "1M", 5000 -> "5000"."""
    for unit, mult in (("M", 1024**2), ("K", 1024)):
        if n >= mult and n % mult == 0:
            return f"{n // mult}{unit}"
        if n >= mult and (n * 10) % mult == 0:
            return f"{n / mult:.1f}{unit}"
    return str(n)


def check_mode(mode: str) -> None:
    from msa_agent.memory import MODES

    if mode not in MODES:
        raise BadInput(f"unknown routing mode {mode!r} (one of {', '.join(MODES)})")


# ---- scoring -------------------------------------------------------------------------------------


def ruler_match_all(prediction: str, references: list[str]) -> float:
    """RULER's `string_match_all`: the fraction of references that occur in the prediction,
    case-insensitively."""
    if not references:
        return 0.0
    p = prediction.lower()
    return sum(r.lower() in p for r in references) / len(references)


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(s: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    return " ".join(_ARTICLES.sub(" ", s.lower().translate(_PUNCT)).split())


def exact_match(prediction: str, gold: str) -> bool:
    """The normalised prediction equals the normalised gold answer."""
    return normalize_answer(prediction) == normalize_answer(gold)


def contains_answer(prediction: str, gold: str) -> bool:
    """The gold answer occurs in the prediction, case-insensitively and not inside a longer word
    or number ("59" does not match "159")."""
    g = gold.strip()
    if not g:
        return False
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(g)}(?![A-Za-z0-9])", prediction, re.IGNORECASE) is not None


def evidence_path(p: str) -> str:
    """An evidence path of a questions file as the benches compare it: POSIX, no leading ./"""
    return Path(p).as_posix().removeprefix("./")


def digest_dir(root: Path) -> str:
    """A digest of every file's relative path and bytes under root (a corpus's identity for resume)."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()[:16]


def bench_corpus(corpus: Path | None, questions: Path | None, generate: Callable[[], tuple[Path, Path]],
                 label: str) -> tuple[Path, Path, dict]:
    """The corpus and questions file a bench runs on: the user's (`--corpus`/`--questions`,
    checked) or those `generate()` writes (`label` describes them); plus their identity for the
    resumable results' config (`corpus`, `questions`, `corpus_digest`)."""
    from msa_agent.engine import check_input_dir

    if (corpus is None) != (questions is None):
        raise BadInput("--corpus and --questions go together")
    if corpus is None:
        corpus, questions = generate()
        source = label
    else:
        corpus = check_input_dir(Path(corpus))
        source = str(corpus)
    ident = {"corpus": source, "questions": hashlib.sha256(Path(questions).read_bytes()).hexdigest()[:16],
             "corpus_digest": digest_dir(corpus)}
    return corpus, Path(questions), ident


def question_lines(path: Path) -> list[tuple[int, dict]]:
    """(line number, object) of a JSON-lines questions file: every object a dict with a string
    "question"; blank lines skipped. Each bench checks its own further fields."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: no such questions file")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            q = json.loads(line)
        except json.JSONDecodeError as e:
            raise BadInput(f"{path}:{n}: not JSON ({e.msg})") from None
        if not isinstance(q, dict) or not isinstance(q.get("question"), str):
            raise BadInput(f"{path}:{n}: needs a string field \"question\"")
        out.append((n, q))
    if not out:
        raise BadInput(f"{path}: no questions")
    return out


def mean(xs: Iterable[float]) -> float | None:
    xs = list(xs)
    return sum(xs) / len(xs) if xs else None


# ---- progress ------------------------------------------------------------------------------------


@dataclass
class Hooks:
    """Callbacks a front end turns into a progress bar (all optional): `plan(total)` once the
    number of items is known, `advance(n, done_before)` per item (done_before: skipped on resume),
    `message(text)` for chatter."""

    plan: Callable[[int], None] = lambda total: None
    advance: Callable[[int, bool], None] = lambda n, resumed: None
    message: Callable[[str], None] = lambda text: None


# ---- the results file ----------------------------------------------------------------------------


def config_digest(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


class Results:
    """Per-item results of one run, appended to `<out>/<name>.jsonl` as each item finishes.

    The first line holds the run's settings; a rerun with the same settings skips the items
    already there, one with other settings is refused unless `fresh` (which starts over).
    Settings named in `extendable` (which items to run: lengths, tasks, samples...) are left out
    of the comparison: an item's result never depends on them, so a rerun may add items.
    """

    def __init__(self, out_dir: Path, name: str, config: dict, *, fresh: bool = False,
                 extendable: tuple[str, ...] = ()) -> None:
        self.path = Path(out_dir) / f"{name}.jsonl"
        self.config = config
        self.digest = config_digest({k: v for k, v in config.items() if k not in extendable})
        self.items: dict[str, dict] = {}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and not fresh:
            self._load()
        else:
            self._write_header()
        self.resumed = len(self.items)

    def _write_header(self) -> None:
        with open(self.path, "w", encoding="utf-8") as f:
            f.write(json.dumps({"config": self.config, "digest": self.digest}) + "\n")

    def _load(self) -> None:
        lines = self.path.read_text(encoding="utf-8").splitlines()
        if not lines:
            self._write_header()
            return
        try:
            head = json.loads(lines[0])
        except json.JSONDecodeError:
            raise BadInput(f"{self.path}: not a results file (pass --fresh to start over)") from None
        if head.get("digest") != self.digest:
            raise BadInput(f"{self.path} holds a run with other settings; pass --fresh to start over, "
                           "or --out another directory")
        good = 1
        for line in lines[1:]:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                break  # a line cut short by a crash: it and what follows are redone
            self.items[rec["key"]] = rec
            good += 1
        if good < len(lines):
            self.path.write_text("\n".join(lines[:good]) + "\n", encoding="utf-8")

    def __contains__(self, key: str) -> bool:
        return key in self.items

    def add(self, key: str, record: dict) -> dict:
        rec = {"key": key, **record}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.items[key] = rec
        return rec

    def records(self) -> list[dict]:
        return list(self.items.values())


# ---- engines -------------------------------------------------------------------------------------


@dataclass
class Engines:
    """The model as ingest loads it (encode) and as ask loads it (generate); one object when both
    purposes get the same dtype (GPU): the generate one, which encodes with the backbone alone and
    reads with the reader adapter (an encode-only engine has no reader: the base model would
    answer)."""

    encode: object
    generate: object

    @classmethod
    def load(cls, model: str | None = None, *, device: str = "cpu", dtype: str | None = None) -> Engines:
        from msa_agent.engine import Engine, default_dtype

        enc_dtype = dtype or default_dtype(device, "encode")
        gen_dtype = dtype or default_dtype(device, "generate")
        gen = Engine.load(model, dtype=gen_dtype, device=device, purpose="generate")
        enc = gen if gen_dtype == enc_dtype else Engine.load(model, dtype=enc_dtype, device=device, purpose="encode")
        return cls(enc, gen)


# ---- machine facts -------------------------------------------------------------------------------


def machine() -> dict:
    """Where the numbers came from: CPU, cores, load average, torch, accelerator."""
    import torch

    info: dict = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
                  "cpus": os.cpu_count(), "threads": torch.get_num_threads(), "processor": _cpu_name()}
    try:
        info["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    info["date"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


# ---- outputs -------------------------------------------------------------------------------------


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    def cell(v: object) -> str:
        if v is None:
            return "–"
        if isinstance(v, float):
            return f"{v:.1f}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


@dataclass
class Table:
    """One result table: a title, a header and rows (numbers already scaled for display)."""

    title: str
    header: list[str]
    rows: list[list[object]]

    def markdown(self) -> str:
        return f"### {self.title}\n\n{markdown_table(self.header, self.rows)}\n"

    def as_dict(self) -> dict:
        return {"title": self.title, "header": self.header, "rows": self.rows}


@dataclass
class Series:
    """One line of a plot: y per x (None where not measured)."""

    label: str
    xs: list[float]
    ys: list[float | None]
    bold: bool = False


def plot(path: Path, series: list[Series], *, title: str, xlabel: str, ylabel: str, log_x: bool = True,
         xticks: list[tuple[float, str]] | None = None, ylim: tuple[float, float] | None = (0, 100)) -> Path:
    """A PNG line plot of accuracy against length (Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=110)
    for s in series:
        pts = [(x, y) for x, y in zip(s.xs, s.ys) if y is not None]
        if not pts:
            continue
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=s.label,
                linewidth=2.8 if s.bold else 1.2, color="black" if s.bold else None, zorder=3 if s.bold else 2)
    if log_x:
        ax.set_xscale("log", base=2)
    if xticks:
        ax.set_xticks([t[0] for t in xticks], [t[1] for t in xticks])
        ax.minorticks_off()
    if ylim:
        ax.set_ylim(ylim[0] - 2, ylim[1] + 2)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize=7, loc="best", ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_outputs(out_dir: Path, name: str, summary: dict, tables: list[Table], series: list[Series], *,
                  plot_kw: dict, intro: str = "") -> dict[str, str]:
    """`<name>.json` (summary, tables, machine), `<name>.md` (the tables) and `<name>.png`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / f"{name}.json", "markdown": out_dir / f"{name}.md", "png": out_dir / f"{name}.png",
             "results": out_dir / f"{name}.jsonl"}
    summary = {**summary, "tables": [t.as_dict() for t in tables]}
    paths["json"].write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    md = f"# msa bench {name}\n\n" + (intro.strip() + "\n\n" if intro else "") + "\n".join(t.markdown() for t in tables)
    paths["markdown"].write_text(md, encoding="utf-8")
    plot(paths["png"], series, **plot_kw)
    return {k: str(v) for k, v in paths.items()}


def write_if_changed(path: Path, text: str) -> bool:
    """Write `text` unless the file already holds it (so ingest sees it unchanged)."""
    data = text.encode("utf-8")
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass
    path.write_bytes(data)
    return True
