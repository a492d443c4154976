"""`msa bench qa`: questions with known answers over a corpus msa ingests, answered by msa (`ask`,
default routing mode) and, in the same run with the same backbone as reader, by BM25 + reader and
dense MiniLM + reader at k = 1, 5, 10 (the paper's Table 2 shape).

Scores per system: contains-answer (the answer string occurs in the reply, not inside a longer
word or number), exact match (SQuAD normalisation), evidence recall (the share of a question's
evidence files among the documents put in the prompt: retrieved top-k for the baselines, injected
over all rounds for msa), and, with a judge model, the judge's 0/1 grade. Per hop count too.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from msa_agent.errors import BadInput

from .common import (Engines, Hooks, Results, Series, Table, check_mode, contains_answer, exact_match, machine, mean,
                     bench_corpus, evidence_path, question_lines, write_outputs)
from .qa_corpus import make_corpus

SYSTEMS = ("msa", "bm25", "dense")


@dataclass
class QAConfig:
    ks: list[int] = field(default_factory=lambda: [1, 5, 10])
    systems: list[str] = field(default_factory=lambda: list(SYSTEMS))
    mode: str = "auto"
    max_new_tokens: int = 96  # ask's default
    seed: int = 0
    size: int = 6  # generated corpus: agreements (2 questions each)
    limit: int | None = None  # at most this many questions

    def check(self) -> None:
        check_mode(self.mode)
        bad = [s for s in self.systems if s not in SYSTEMS]
        if bad or not self.systems:
            raise BadInput(f"unknown system {bad[0] if bad else ''!r} (any of {', '.join(SYSTEMS)})")
        if not self.ks or min(self.ks) < 1:
            raise BadInput(f"k must be at least 1, got {self.ks}")
        if self.size < 1:
            raise BadInput(f"--size must be at least 1, got {self.size}")


def load_questions(path: Path) -> list[dict]:
    """Questions from a JSON-lines file: {"question", "answer", "evidence": [paths], "hops"} per line."""
    out = []
    for n, q in question_lines(path):
        if not isinstance(q.get("answer"), str):
            raise BadInput(f"{path}:{n}: needs string fields \"question\" and \"answer\"")
        ev = q.get("evidence", [])
        if not isinstance(ev, list) or not all(isinstance(e, str) for e in ev):
            raise BadInput(f"{path}:{n}: \"evidence\" must be a list of paths")
        out.append({"question": q["question"], "answer": q["answer"], "evidence": [evidence_path(e) for e in ev],
                    "hops": int(q.get("hops", max(1, len(ev))))})
    return out


def systems_list(cfg: QAConfig) -> list[tuple[str, int | None]]:
    out: list[tuple[str, int | None]] = []
    for s in cfg.systems:
        out += [(s, None)] if s == "msa" else [(s, k) for k in cfg.ks]
    return out


def label(system: str, k: int | None) -> str:
    return system if k is None else f"{system}@{k}"


def run_qa(cfg: QAConfig, out_dir: Path, engines: Engines, *, corpus: Path | None = None,
           questions: Path | None = None, judge=None, dense_model: Path | None = None,  # noqa: ANN001
           hooks: Hooks | None = None, fresh: bool = False, device_note: str = "") -> dict:
    """Run (or resume) the bench; returns the summary that `<out>/qa.json` holds. `judge`: an
    Engine that grades answers 0/1 (none: no judge score)."""
    from msa_agent.ask import ask
    from msa_agent.pipeline import ingest_dir
    from msa_agent.store import Store

    from . import rag

    cfg.check()
    hooks = hooks or Hooks()
    out_dir = Path(out_dir)
    corpus, questions, ident = bench_corpus(
        corpus, questions, lambda: make_corpus(cfg.seed, cfg.size).write(out_dir / "generated"),
        f"generated (seed {cfg.seed}, size {cfg.size})")
    if fresh:
        shutil.rmtree(out_dir / "store", ignore_errors=True)
    qs = load_questions(questions)[: cfg.limit]
    enc, gen = engines.encode, engines.generate
    config = {"bench": "qa", **asdict(cfg), "model": enc.fingerprint, **ident,
              "judge": getattr(judge, "fingerprint", None), "dense_model": str(dense_model) if dense_model else "all-MiniLM-L6-v2"}
    results = Results(out_dir, "qa", config, fresh=fresh, extendable=("ks", "systems", "limit"))
    plan = [(s, k, i) for i in range(len(qs)) for s, k in systems_list(cfg)]
    hooks.plan(len(plan))
    if results.resumed:
        hooks.advance(sum(_key(s, k, i) in results for s, k, i in plan), True)
    t_run = time.perf_counter()
    store = Store.open(out_dir / "store", create=True)
    try:
        hooks.message(f"ingesting {corpus}")
        rep = ingest_dir(corpus, store, enc, collection="qa")
        if rep.failed:
            hooks.message(f"{rep.failed} files failed to ingest, first: {rep.failures[0]}")
        docs = rag.passages(store, "qa")
        if not docs:
            raise BadInput(f"{corpus}: nothing to ingest")
        path_of = {d.doc_id: d.path for d in docs}
        retrievers: dict[str, object] = {}
        grader = rag.Judge(judge) if judge is not None else None
        for s, k, i in plan:
            key = _key(s, k, i)
            if key in results:
                continue
            q = qs[i]
            if s == "msa":
                res = ask(store, gen, q["question"], collection="qa", mode=cfg.mode, max_new_tokens=cfg.max_new_tokens)
                answer, timing = res.answer, res.timing
                seen = [path_of.get(d) for r in res.rounds for d in r.get("injected", [])]
                extra = {"mode": res.mode, "prompt_tokens": res.timing.get("prompt_tokens")}
            else:
                if s not in retrievers:
                    hooks.message(f"indexing {len(docs)} documents for {s}")
                    retrievers[s] = rag.BM25(docs) if s == "bm25" else rag.Dense(docs, dense_model, device=str(enc.device))
                t0 = time.perf_counter()
                top = retrievers[s].search(q["question"], k)
                retrieve_ms = (time.perf_counter() - t0) * 1000
                out = rag.read(gen, q["question"], [docs[j] for j in top], max_new_tokens=cfg.max_new_tokens)
                answer, timing = out["answer"], {**out["timing"], "retrieve_ms": round(retrieve_ms, 1)}
                timing["total_ms"] = round(timing["total_ms"] + retrieve_ms, 1)
                seen = [docs[j].path for j in top]
                extra = {"prompt_tokens": out["prompt_tokens"], "truncated_docs": out["truncated_docs"]}
            rec = {"system": s, "k": k, "qid": i, "hops": q["hops"], "question": q["question"], "answer": q["answer"],
                   "prediction": answer, "contains": contains_answer(answer, q["answer"]),
                   "em": exact_match(answer, q["answer"]),
                   "evidence_recall": _recall(q["evidence"], seen), "timing": timing, **extra}
            if grader is not None:
                rec["judge"], rec["judge_raw"] = grader.grade(q["question"], q["answer"], answer)
            results.add(key, rec)
            hooks.advance(1, False)
        memory_tokens = sum(d.n_tokens for d in store.live_documents("qa"))
    finally:
        store.close()
    summary = summarize(results.records(), cfg, judged=grader is not None)
    summary.update(config=config, machine=machine(), device=device_note or enc.device, questions=len(qs),
                   documents=len(docs), memory_tokens=memory_tokens,
                   run_seconds=round(time.perf_counter() - t_run, 1), resumed_items=results.resumed)
    tables = qa_tables(summary, cfg)
    series = [Series(label(s, None) if s == "msa" else s, [float(k) for k in cfg.ks],
                     [summary["systems"].get(label(s, None if s == "msa" else k), {}).get("contains") for k in cfg.ks],
                     bold=s == "msa") for s in cfg.systems]
    summary["outputs"] = write_outputs(
        out_dir, "qa", summary, tables, series,
        plot_kw={"title": "QA: msa against RAG with the same reader", "xlabel": "k (documents given to the RAG reader)",
                 "ylabel": "contains-answer (%)", "log_x": False,
                 "xticks": [(float(k), str(k)) for k in cfg.ks]},
        intro=_intro(summary))
    summary["tables"] = [t.as_dict() for t in tables]
    return summary


def _key(s: str, k: int | None, i: int) -> str:
    return f"{label(s, k)}/{i}"


def _recall(evidence: list[str], seen: list[str | None]) -> float | None:
    if not evidence:
        return None
    got = {p for p in seen if p}
    return sum(e in got for e in evidence) / len(evidence)


def summarize(records: list[dict], cfg: QAConfig, *, judged: bool = False) -> dict:
    """Per system (msa, bm25@k, dense@k): contains, EM, judge, evidence recall (%), by hops, latency."""
    out: dict[str, dict] = {}
    for s, k in systems_list(cfg):
        rs = [r for r in records if r["system"] == s and r["k"] == k]
        if not rs:
            continue
        row = {"n": len(rs), "contains": 100 * mean(r["contains"] for r in rs), "em": 100 * mean(r["em"] for r in rs),
               "latency_s": mean(r["timing"].get("total_ms", 0) for r in rs) / 1000}
        rec = [r["evidence_recall"] for r in rs if r["evidence_recall"] is not None]
        row["evidence_recall"] = 100 * mean(rec) if rec else None
        if judged and all("judge" in r for r in rs):
            row["judge"] = 100 * mean(r["judge"] for r in rs)
        for h in sorted({r["hops"] for r in rs}):
            row[f"contains_{h}hop"] = 100 * mean(r["contains"] for r in rs if r["hops"] == h)
        out[label(s, k)] = row
    hops = sorted({r["hops"] for r in records})
    return {"systems": out, "hops": hops, "judged": judged}


def qa_tables(summary: dict, cfg: QAConfig) -> list[Table]:
    hops = summary["hops"]
    head = ["system", "contains (%)", "EM (%)", *([f"judge (%)"] if summary["judged"] else []),
            *[f"contains, {h}-hop (%)" for h in hops], "evidence recall (%)", "latency (s)", "n"]
    rows = []
    for name, r in summary["systems"].items():
        rows.append([name, r["contains"], r["em"], *([r.get("judge")] if summary["judged"] else []),
                     *[r.get(f"contains_{h}hop") for h in hops], r["evidence_recall"], round(r["latency_s"], 2), r["n"]])
    return [Table("Answers by system (RAG rows: retriever@k + the same reader)", head, rows)]


def _intro(summary: dict) -> str:
    c, m = summary["config"], summary["machine"]
    return (f"Corpus: {c['corpus']}, {summary['documents']} memory documents, {summary['memory_tokens']:,} tokens; "
            f"{summary['questions']} questions. msa: `ask` with routing mode `{c['mode']}`; baselines: BM25 (bm25s) "
            f"and dense {c['dense_model']} retrieval over the same memory documents, read by the same backbone "
            f"(model `{c['model'][:12]}`), max {c['max_new_tokens']} new tokens. Device {summary['device']}; "
            f"{m.get('processor', '')}, {m.get('cpus')} CPUs, load {m.get('loadavg')}; run {summary['run_seconds']} s "
            f"({summary['resumed_items']} items resumed).")
