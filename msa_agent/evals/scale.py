"""`msa bench scale`: one question set answered over memories of growing size (16K, 128K, 1M,
10M, 100M tokens): the evidence corpus is kept and distractor documents are added; accuracy and
latency at each size, and the change relative to the smallest.

The questions and their evidence are `qa_corpus.make_corpus`'s; distractors alternate between
profiles and agreements of other invented companies (same templates, other names, while names
last) and prose documents (the essay haystack), so the memory at a larger size is the one at the
smaller size plus documents: each size encodes only what it adds.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from msa_agent.errors import BadInput

from .common import (Engines, Hooks, Results, Series, Table, check_mode, contains_answer, exact_match, machine, mean,
                     size_label, write_if_changed, write_outputs)
from .haystack import PROSE_PACKAGES, Haystack, doc_text
from .qa_corpus import distractor_files, make_corpus


@dataclass
class ScaleConfig:
    sizes: list[int] = field(default_factory=lambda: [16384, 131072])
    size: int = 6  # evidence corpus: agreements (2 questions each)
    seed: int = 0
    mode: str = "auto"
    max_new_tokens: int = 96
    doc_tokens: int = 512  # prose distractor documents
    limit: int | None = None
    prose: tuple[str, ...] = PROSE_PACKAGES

    def check(self) -> None:
        check_mode(self.mode)
        if not self.sizes:
            raise BadInput("no sizes")
        if self.size < 1:
            raise BadInput(f"--size must be at least 1, got {self.size}")
        if self.doc_tokens < 64:
            raise BadInput(f"--doc-tokens must be at least 64, got {self.doc_tokens}")


class _Distractors:
    """The distractor stream: (relative path, text, tokens), grown on demand; deterministic."""

    def __init__(self, cfg: ScaleConfig, world, count) -> None:  # noqa: ANN001
        self.entities: Iterator[tuple[str, str]] | None = distractor_files(world)
        self.prose = Haystack("essay", cfg.seed + 1, cfg.doc_tokens, count, cfg.prose)
        self.count = count
        self.items: list[tuple[str, str, int]] = []
        self._prose_i = 0

    def _next(self) -> tuple[str, str, int]:
        if self.entities is not None and len(self.items) % 2 == 0:
            try:
                rel, text = next(self.entities)
                return rel, text, self.count([text])[0]
            except StopIteration:
                self.entities = None
        j = self._prose_i
        self._prose_i += 1
        while len(self.prose.docs) <= j:
            self.prose._grow()
        return f"distractors/prose/p{j:07d}.txt", doc_text(self.prose.docs[j]), self.prose.doc_token_counts[j]

    def upto(self, tokens: int) -> list[tuple[str, str, int]]:
        total, i = 0, 0
        while total < tokens:
            if i >= len(self.items):
                self.items.append(self._next())
            total += self.items[i][2]
            i += 1
        return self.items[:i]


def run_scale(cfg: ScaleConfig, out_dir: Path, engines: Engines, *, hooks: Hooks | None = None, fresh: bool = False,
              device_note: str = "") -> dict:
    """Run (or resume) the bench; returns the summary that `<out>/scale.json` holds."""
    from msa_agent.ask import ask
    from msa_agent.pipeline import ingest_dir
    from msa_agent.store import Store

    cfg.check()
    hooks = hooks or Hooks()
    out_dir = Path(out_dir)
    enc, gen = engines.encode, engines.generate
    config = {"bench": "scale", **asdict(cfg), "prose": list(cfg.prose), "model": enc.fingerprint}
    if fresh:
        for sub in ("store", "corpus"):
            shutil.rmtree(out_dir / sub, ignore_errors=True)
    results = Results(out_dir, "scale", config, fresh=fresh, extendable=("sizes", "limit"))
    base = make_corpus(cfg.seed, cfg.size)
    qs = base.questions[: cfg.limit]
    count = lambda texts: [len(x) for x in enc.tok.encode_batch(texts)]  # noqa: E731
    base_tokens = sum(count(list(base.files.values())))
    if base_tokens > cfg.sizes[0]:
        raise BadInput(f"the smallest size ({size_label(cfg.sizes[0])}) must hold the evidence corpus "
                       f"({base_tokens:,} tokens): pass a larger size or a smaller --size")
    items = [(S, i) for S in cfg.sizes for i in range(len(qs))]
    hooks.plan(len(items))
    if results.resumed:
        hooks.advance(sum(_key(S, i) in results for S, i in items), True)
    distract = _Distractors(cfg, base.world, count)
    root = out_dir / "corpus"
    max_chars = max(2400, 8 * cfg.doc_tokens + 4000)
    t_run = time.perf_counter()
    store = None
    try:
        for S in cfg.sizes:
            todo = [i for i in range(len(qs)) if _key(S, i) not in results]
            if not todo:
                continue
            if store is None:
                store = Store.open(out_dir / "store", create=True)
            extra = distract.upto(S - base_tokens)
            files = {**base.files, **{rel: text for rel, text, _ in extra}}
            _sync(root, files)
            hooks.message(f"{size_label(S)}: {len(files)} files, ingesting")
            t0 = time.perf_counter()
            rep = ingest_dir(root, store, enc, collection="scale", max_chars=max_chars)
            ingest_s = time.perf_counter() - t0
            if rep.failed:
                raise BadInput(f"ingest of the scale corpus failed: {rep.failures[0]}")
            live = store.live_documents("scale")
            path_of = {d.id: d.path for d in live}
            mem = {"memory_docs": len(live), "memory_tokens": sum(d.n_tokens for d in live),
                   "text_tokens": base_tokens + sum(t for _, _, t in extra)}
            for i in todo:
                q = qs[i]
                res = ask(store, gen, q["question"], collection="scale", mode=cfg.mode, max_new_tokens=cfg.max_new_tokens)
                seen = {path_of.get(d) for r in res.rounds for d in r.get("injected", [])}
                results.add(_key(S, i), {
                    "size": S, "qid": i, "hops": q["hops"], "question": q["question"], "answer": q["answer"],
                    "prediction": res.answer, "contains": contains_answer(res.answer, q["answer"]),
                    "em": exact_match(res.answer, q["answer"]),
                    "evidence_recall": sum(e in seen for e in q["evidence"]) / len(q["evidence"]),
                    "mode": res.mode, "timing": res.timing, "ingest_s": round(ingest_s, 1), **mem})
                hooks.advance(1, False)
    finally:
        if store is not None:
            store.close()
    summary = summarize(results.records(), cfg)
    summary.update(config=config, machine=machine(), device=device_note or enc.device, questions=len(qs),
                   evidence_tokens=base_tokens, run_seconds=round(time.perf_counter() - t_run, 1),
                   resumed_items=results.resumed)
    tables = scale_tables(summary, cfg)
    xs = [float(S) for S in cfg.sizes]
    by = summary["by_size"]
    series = [Series("contains-answer", xs, [by.get(str(S), {}).get("contains") for S in cfg.sizes], bold=True),
              Series("evidence recall", xs, [by.get(str(S), {}).get("evidence_recall") for S in cfg.sizes])]
    summary["outputs"] = write_outputs(
        out_dir, "scale", summary, tables, series,
        plot_kw={"title": f"msa accuracy against memory size ({summary['config']['mode']} routing)",
                 "xlabel": "memory (tokens)", "ylabel": "%", "xticks": [(float(S), size_label(S)) for S in cfg.sizes]},
        intro=_intro(summary))
    summary["tables"] = [t.as_dict() for t in tables]
    return summary


def _sync(root: Path, files: dict[str, str]) -> None:
    """Make `root` hold exactly `files` (unchanged files are left alone)."""
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        write_if_changed(p, text)
    want = {root / rel for rel in files}
    for p in root.rglob("*"):
        if p.is_file() and p not in want:
            p.unlink()


def _key(S: int, i: int) -> str:
    return f"{S}/{i}"


def summarize(records: list[dict], cfg: ScaleConfig) -> dict:
    by: dict[str, dict] = {}
    for S in cfg.sizes:
        rs = [r for r in records if r["size"] == S]
        if not rs:
            continue
        by[str(S)] = {
            "n": len(rs), "contains": 100 * mean(r["contains"] for r in rs), "em": 100 * mean(r["em"] for r in rs),
            "evidence_recall": 100 * mean(r["evidence_recall"] for r in rs),
            "latency_s": mean(r["timing"].get("total_ms", 0) for r in rs) / 1000,
            "route_ms": mean(r["timing"].get("route_ms", 0) for r in rs),
            "memory_tokens": max(r["memory_tokens"] for r in rs), "memory_docs": max(r["memory_docs"] for r in rs),
        }
    first = by.get(str(cfg.sizes[0]))
    for row in by.values():
        row["delta_points"] = None if first is None else row["contains"] - first["contains"]
        row["degradation_pct"] = (None if not first or not first["contains"]
                                  else 100 * (row["contains"] - first["contains"]) / first["contains"])
    return {"by_size": by}


def scale_tables(summary: dict, cfg: ScaleConfig) -> list[Table]:
    rows = []
    for S in cfg.sizes:
        r = summary["by_size"].get(str(S))
        if r is None:
            rows.append([size_label(S)] + [None] * 9)
            continue
        rows.append([size_label(S), f"{r['memory_tokens']:,}", r["memory_docs"], r["contains"], r["em"],
                     r["evidence_recall"], r["delta_points"], r["degradation_pct"], round(r["latency_s"], 2),
                     round(r["route_ms"], 1)])
    return [Table(f"Accuracy and latency against memory size (relative to {size_label(cfg.sizes[0])})",
                  ["size", "memory tokens", "documents", "contains (%)", "EM (%)", "evidence recall (%)",
                   "Δ (points)", "Δ (relative %)", "ask latency (s)", "route (ms)"], rows)]


def _intro(summary: dict) -> str:
    c, m = summary["config"], summary["machine"]
    return (f"{summary['questions']} questions (single- and two-hop) over an evidence corpus of "
            f"{summary['evidence_tokens']:,} tokens (seed {c['seed']}, size {c['size']}), distractor documents added "
            f"up to each size; `ask` with routing mode `{c['mode']}`, model `{c['model'][:12]}`. Device "
            f"{summary['device']}; {m.get('processor', '')}, {m.get('cpus')} CPUs, load {m.get('loadavg')}; run "
            f"{summary['run_seconds']} s ({summary['resumed_items']} items resumed).")
