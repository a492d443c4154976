"""`msa bench niah`: RULER's eight needle-in-a-haystack subtasks over msa's memory.

Each (task, length, sample) is a memory of `length` tokens of haystack cut into documents of
about `doc_tokens` tokens, written as text files and ingested with `ingest_dir` (so msa's real
path runs), with the sample's needles at controlled depths; `ask` answers the RULER question and
the score is RULER's: the fraction of expected values present in the answer.

Depth is a needle's position in the haystack as written (0 = first line of the first document,
1 = last line of the last); sample i of task t puts its (first) queried needle at
`depths[(i + t) % len(depths)]`, so every depth gets samples across tasks. Further needles of the
multi-needle tasks go at evenly spread depths after it (multivalue, multiquery) or at random ones
(multikey 1's distractor keys). In the needle haystacks (multikey 2 and 3) every line is a needle
and the queried one is the line at the depth.

The haystack documents of a length are shared by all samples at that length, and the lengths
grow by appending documents: each sample re-encodes only the documents its needles change (and
restores the last sample's), so a run encodes about one haystack per kind.
"""

from __future__ import annotations

import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from msa_agent.errors import BadInput

from .common import (Engines, Hooks, Results, Series, Table, check_mode, machine, mean, ruler_match_all,
                     size_label, write_if_changed, write_outputs)
from .haystack import PROSE_PACKAGES, Haystack, Unit, distinct, doc_text, needle_sentence


@dataclass(frozen=True)
class Task:
    name: str
    haystack: str  # noise | essay | needle
    key_kind: str  # words | uuids
    value_kind: str  # numbers | uuids
    keys: int = 1  # needles with distinct keys (queried and distractors)
    values: int = 1  # values per queried key
    queries: int = 1  # keys asked for

    @property
    def haystack_kind(self) -> str:
        return f"needle-{self.key_kind}-{self.value_kind}" if self.haystack == "needle" else self.haystack


# RULER's synthetic.yaml, niah_* tasks.
TASKS = {t.name: t for t in (
    Task("single_1", "noise", "words", "numbers"),
    Task("single_2", "essay", "words", "numbers"),
    Task("single_3", "essay", "words", "uuids"),
    Task("multikey_1", "essay", "words", "numbers", keys=4),
    Task("multikey_2", "needle", "words", "numbers"),
    Task("multikey_3", "needle", "uuids", "uuids"),
    Task("multivalue", "essay", "words", "numbers", values=4),
    Task("multiquery", "essay", "words", "numbers", keys=4, queries=4),
)}


@dataclass
class NiahConfig:
    lengths: list[int] = field(default_factory=lambda: [4096, 8192, 16384])
    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    samples: int = 2
    depths: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.0])
    doc_tokens: int = 512
    seed: int = 0
    mode: str = "auto"
    max_new_tokens: int = 64  # RULER's answers here are at most 4 numbers or one UUID
    prose: tuple[str, ...] = PROSE_PACKAGES

    def check(self) -> None:
        check_mode(self.mode)
        bad = [t for t in self.tasks if t not in TASKS]
        if bad:
            raise BadInput(f"unknown NIAH task {bad[0]!r} (one of {', '.join(TASKS)})")
        if not self.tasks:
            raise BadInput("no NIAH tasks to run")
        if self.samples < 1:
            raise BadInput(f"--samples must be at least 1, got {self.samples}")
        if not self.depths or any(not 0.0 <= d <= 1.0 for d in self.depths):
            raise BadInput(f"depths must lie in [0, 1], got {self.depths}")
        if self.doc_tokens < 64:
            raise BadInput(f"--doc-tokens must be at least 64, got {self.doc_tokens}")
        if not self.lengths or min(self.lengths) < self.doc_tokens:
            raise BadInput(f"every length must be at least one document ({self.doc_tokens} tokens)")


@dataclass
class Needle:
    depth: float
    key: str
    value: str
    queried: bool
    doc: int = -1  # where it went: document index and line index within it
    line: int = -1


@dataclass
class Sample:
    task: str
    length: int
    index: int
    depth: float
    question: str
    answers: list[str]
    needles: list[Needle]
    inserted: bool  # needles written into the haystack (False: they are haystack lines)


def question_for(task: Task, keys: list[str]) -> str:
    query = keys[0] if len(keys) == 1 else ", ".join(keys[:-1]) + ", and " + keys[-1]
    return f"What are all the special magic {task.value_kind} for {query} mentioned in the provided text?"


def make_sample(task: Task, length: int, index: int, cfg: NiahConfig, docs: list[list[Unit]]) -> Sample:
    """The sample's question, answers and needles (placed against `docs`), from the seed alone."""
    rng = random.Random(f"niah/{cfg.seed}/{task.name}/{length}/{index}")
    order = list(TASKS).index(task.name)
    depth = cfg.depths[(index + order) % len(cfg.depths)]
    if task.haystack == "needle":
        lines = [(j, i) for j, d in enumerate(docs) for i in range(len(d))]
        j, i = lines[round(depth * (len(lines) - 1))]
        u = docs[j][i]
        n = Needle(depth, u.key, u.value, True, j, i)
        return Sample(task.name, length, index, depth, question_for(task, [u.key]), [u.value], [n], False)
    keys = distinct(task.key_kind, rng, task.keys)
    needles: list[Needle] = []
    if task.values > 1:  # multivalue: one key, several values at spread depths
        vals = distinct(task.value_kind, rng, task.values)
        needles = [Needle((depth + v / task.values) % 1.0 if v else depth, keys[0], val, True) for v, val in enumerate(vals)]
    else:
        vals = distinct(task.value_kind, rng, task.keys)
        for q, (k, val) in enumerate(zip(keys, vals)):
            queried = q < task.queries
            if q == 0:
                d = depth
            elif queried:
                d = (depth + q / task.queries) % 1.0
            else:
                d = rng.random()
            needles.append(Needle(d, k, val, queried))
    place(needles, docs)
    asked = list(dict.fromkeys(n.key for n in needles if n.queried))
    answers = [n.value for n in needles if n.queried]
    return Sample(task.name, length, index, depth, question_for(task, asked), answers, needles, True)


def place(needles: list[Needle], docs: list[list[Unit]]) -> None:
    """Set each needle's document and line: the line boundary nearest its depth, measured in
    tokens over the whole haystack."""
    bounds: list[tuple[int, int, int]] = []  # (cumulative tokens, doc, line index to insert before)
    cum = 0
    for j, d in enumerate(docs):
        bounds.append((cum, j, 0))
        for i, u in enumerate(d):
            cum += u.tokens
            bounds.append((cum, j, i + 1))
    for n in needles:
        target = n.depth * cum
        _, n.doc, n.line = min(bounds, key=lambda b: abs(b[0] - target))


def sample_docs(sample: Sample, docs: list[list[Unit]], value_kind: str) -> dict[int, str]:
    """Text of the documents the sample's needles change, by document index."""
    if not sample.inserted:
        return {}
    out: dict[int, str] = {}
    for j in sorted({n.doc for n in sample.needles}):
        lines = [u.text for u in docs[j]]
        # Insert from the bottom so earlier insertions keep their line numbers.
        for n in sorted((n for n in sample.needles if n.doc == j), key=lambda n: -n.line):
            lines.insert(n.line, needle_sentence(n.key, n.value, value_kind))
        out[j] = "\n".join(lines) + "\n"
    return out


def doc_name(j: int) -> str:
    return f"h{j:07d}.txt"


class _Corpus:
    """One haystack kind's corpus directory, kept in step with the documents memory should hold."""

    def __init__(self, root: Path, hay: Haystack) -> None:
        self.root, self.hay = root, hay
        root.mkdir(parents=True, exist_ok=True)

    def write(self, docs: list[list[Unit]], changed: dict[int, str]) -> None:
        for j, d in enumerate(docs):
            write_if_changed(self.root / doc_name(j), changed.get(j) or doc_text(d))
        for p in self.root.glob("h*.txt"):
            if int(p.stem[1:]) >= len(docs):
                p.unlink()

    @property
    def max_chars(self) -> int:
        """Large enough that the parser keeps each file one document."""
        return max(2400, 8 * self.hay.doc_tokens + 4000)


def run_niah(cfg: NiahConfig, out_dir: Path, engines: Engines, *, hooks: Hooks | None = None, fresh: bool = False,
             device_note: str = "") -> dict:
    """Run (or resume) the bench; returns the summary that `<out>/niah.json` holds."""
    from msa_agent.ask import ask
    from msa_agent.pipeline import ingest_dir
    from msa_agent.store import Store

    cfg.check()
    hooks = hooks or Hooks()
    out_dir = Path(out_dir)
    enc, gen = engines.encode, engines.generate
    config = {"bench": "niah", **asdict(cfg), "prose": list(cfg.prose), "model": enc.fingerprint}
    if fresh:
        for sub in ("store", "corpus"):
            shutil.rmtree(out_dir / sub, ignore_errors=True)
    results = Results(out_dir, "niah", config, fresh=fresh, extendable=("lengths", "tasks", "samples"))
    tasks = [TASKS[t] for t in cfg.tasks]
    items = [(L, t, s) for L in cfg.lengths for t in tasks for s in range(cfg.samples)]
    hooks.plan(len(items))
    if results.resumed:
        hooks.advance(sum(_key(t, L, s) in results for L, t, s in items), True)

    count = lambda texts: [len(x) for x in enc.tok.encode_batch(texts)]  # noqa: E731
    hays = {k: Haystack(k, cfg.seed, cfg.doc_tokens, count, cfg.prose) for k in dict.fromkeys(t.haystack_kind for t in tasks)}
    t_run = time.perf_counter()
    store = None
    try:
        for L in cfg.lengths:
            for kind, hay in hays.items():
                todo = [(t, s) for t in tasks if t.haystack_kind == kind for s in range(cfg.samples)
                        if _key(t, L, s) not in results]
                if not todo:
                    continue
                if store is None:
                    store = Store.open(out_dir / "store", create=True)
                docs = hay.docs_for(L)
                corpus = _Corpus(out_dir / "corpus" / kind, hay)
                collection = f"niah-{kind}"
                hooks.message(f"{size_label(L)} {kind}: {len(docs)} documents")
                for t, s in todo:
                    sample = make_sample(t, L, s, cfg, docs)
                    corpus.write(docs, sample_docs(sample, docs, t.value_kind))
                    t0 = time.perf_counter()
                    rep = ingest_dir(corpus.root, store, enc, collection=collection, max_chars=corpus.max_chars)
                    ingest_s = time.perf_counter() - t0
                    if rep.failed:
                        raise BadInput(f"ingest of the NIAH corpus failed: {rep.failures[0]}")
                    res = ask(store, gen, sample.question, collection=collection, mode=cfg.mode,
                              max_new_tokens=cfg.max_new_tokens)
                    results.add(_key(t, L, s), _record(sample, res, store, collection, docs, rep.tokens, ingest_s))
                    hooks.advance(1, False)
    finally:
        if store is not None:
            store.close()
    summary = summarize(results.records(), cfg)
    summary.update(config=config, machine=machine(), device=device_note or enc.device,
                   run_seconds=round(time.perf_counter() - t_run, 1), resumed_items=results.resumed)
    tables = niah_tables(summary, cfg)
    xs = [float(L) for L in cfg.lengths]
    series = [Series(t, xs, [summary["by_task_length"].get(t, {}).get(str(L)) for L in cfg.lengths]) for t in cfg.tasks]
    series.append(Series("average", xs, [summary["by_length"].get(str(L)) for L in cfg.lengths], bold=True))
    summary["outputs"] = write_outputs(
        out_dir, "niah", summary, tables, series,
        plot_kw={"title": f"RULER NIAH on msa ({summary['config']['mode']} routing)", "xlabel": "memory (tokens)",
                 "ylabel": "accuracy (%)", "xticks": [(float(L), size_label(L)) for L in cfg.lengths]},
        intro=_intro(summary))
    summary["tables"] = [t.as_dict() for t in tables]
    return summary


def _key(t: Task, L: int, s: int) -> str:
    return f"{t.name}/{L}/{s}"


def _record(sample: Sample, res, store, collection: str, docs: list[list[Unit]], encoded: int,  # noqa: ANN001
            ingest_s: float) -> dict:
    live = store.live_documents(collection)
    path_of = {d.id: d.path for d in live}
    injected = {path_of.get(i) for r in res.rounds for i in r.get("injected", [])}
    needle_docs = {doc_name(n.doc) for n in sample.needles if n.queried}
    return {
        "task": sample.task, "length": sample.length, "sample": sample.index, "depth": sample.depth,
        "question": sample.question, "answers": sample.answers, "prediction": res.answer,
        "score": ruler_match_all(res.answer, sample.answers),
        "needles": [{"depth": round(n.depth, 4), "doc": n.doc, "line": n.line, "queried": n.queried} for n in sample.needles],
        "needle_docs_injected": len(needle_docs & injected) / len(needle_docs),
        "memory_docs": len(live), "memory_tokens": sum(d.n_tokens for d in live),
        "haystack_tokens": sum(sum(u.tokens for u in d) for d in docs), "encoded_tokens": encoded,
        "ingest_s": round(ingest_s, 2), "mode": res.mode, "timing": res.timing,
    }


def summarize(records: list[dict], cfg: NiahConfig) -> dict:
    """Accuracy (%) per task and length, per depth and length, per length; retrieval and latency."""
    by_tl: dict[str, dict[str, float]] = {}
    inj_tl: dict[str, dict[str, float]] = {}
    by_dl: dict[str, dict[str, float]] = {}
    by_l: dict[str, float] = {}
    injected: dict[str, float] = {}
    latency: dict[str, float] = {}
    mem: dict[str, int] = {}
    for L in cfg.lengths:
        at = [r for r in records if r["length"] == L and r["task"] in cfg.tasks and r["sample"] < cfg.samples]
        for t in cfg.tasks:
            v = mean(r["score"] for r in at if r["task"] == t)
            if v is not None:
                by_tl.setdefault(t, {})[str(L)] = 100 * v
                inj_tl.setdefault(t, {})[str(L)] = 100 * mean(r["needle_docs_injected"] for r in at if r["task"] == t)
        for d in cfg.depths:
            v = mean(r["score"] for r in at if r["depth"] == d)
            if v is not None:
                by_dl.setdefault(str(d), {})[str(L)] = 100 * v
        # The length's average is over tasks (RULER's), each task weighted alike.
        task_means = [by_tl[t][str(L)] for t in cfg.tasks if str(L) in by_tl.get(t, {})]
        if task_means:
            by_l[str(L)] = sum(task_means) / len(task_means)
            injected[str(L)] = 100 * mean(r["needle_docs_injected"] for r in at)
            latency[str(L)] = mean(r["timing"].get("total_ms", 0.0) for r in at) / 1000
            mem[str(L)] = max(r["memory_tokens"] for r in at)
    done = len([r for r in records if r["task"] in cfg.tasks and r["length"] in cfg.lengths and r["sample"] < cfg.samples])
    return {"by_task_length": by_tl, "injected_by_task_length": inj_tl, "by_depth_length": by_dl, "by_length": by_l, "needle_docs_injected": injected,
            "latency_s": latency, "memory_tokens": mem, "items": done,
            "items_planned": len(cfg.lengths) * len(cfg.tasks) * cfg.samples}


def niah_tables(summary: dict, cfg: NiahConfig) -> list[Table]:
    Ls = [str(L) for L in cfg.lengths]
    head = [size_label(L) for L in cfg.lengths]
    t1 = Table("Accuracy (%) by task and memory length", ["task", *head],
               [[t, *[summary["by_task_length"].get(t, {}).get(L) for L in Ls]] for t in cfg.tasks]
               + [["**average**", *[summary["by_length"].get(L) for L in Ls]]])
    t2 = Table("Accuracy (%) by needle depth and memory length", ["depth", *head],
               [[f"{float(d):.2f}", *[summary["by_depth_length"].get(str(d), {}).get(L) for L in Ls]] for d in cfg.depths])
    t4 = Table("Queried needles' documents injected by ask (%): retrieval, apart from the reader", ["task", *head],
               [[t, *[summary["injected_by_task_length"].get(t, {}).get(L) for L in Ls]] for t in cfg.tasks])
    t3 = Table("Memory, retrieval and latency by length", ["", *head], [
        ["memory tokens (encoded)", *[summary["memory_tokens"].get(L) for L in Ls]],
        ["queried needles' documents injected (%)", *[summary["needle_docs_injected"].get(L) for L in Ls]],
        ["ask latency (s, mean)", *[_round(summary["latency_s"].get(L), 2) for L in Ls]],
    ])
    return [t1, t2, t4, t3]


def _round(v: float | None, nd: int) -> float | None:
    return None if v is None else round(v, nd)


def _intro(summary: dict) -> str:
    c, m = summary["config"], summary["machine"]
    return (f"Model `{c['model'][:12]}`, routing mode `{c['mode']}`, {c['samples']} samples per task and length, "
            f"depths {c['depths']}, documents of about {c['doc_tokens']} tokens, seed {c['seed']}. "
            f"{summary['items']}/{summary['items_planned']} items; device {summary['device']}; "
            f"{m.get('processor', '')}, {m.get('cpus')} CPUs, load {m.get('loadavg')}; run {summary['run_seconds']} s "
            f"({summary['resumed_items']} items resumed). Scores are RULER's string_match_all.")
