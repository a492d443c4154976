"""Does the router-driven memory interleave help multi-hop questions? One routing round against
several, on the default model, over an invented enterprise corpus with two-hop chains.

    .venv/bin/python bench/multihop.py [--size 4] [--seed 0] [--rounds 1,3] [--modes auto[,msa,hybrid]]
                                       [--corpus DIR --questions FILE] [--max-tokens 48] [--limit N]
                                       [--out bench/out/multihop.json]

Generates the corpus of bench/multihop_corpus.py into a temporary directory (or reads `--corpus`
and `--questions`), ingests it once with the default model (bf16), then asks every question with
each routing mode and round bound (fp32, `ask(..., rounds=R, mode=M, max_new_tokens=48)`, the
library's other defaults unless `--evidence-budget`, `--first-round-docs`, `--per-round-docs` or
`--margin` are given). Questions run in the outer loop and settings in the inner one, so the
machine's load hits every setting alike.

Per setting and hop count it reports:
- evidence recall: the fraction of gold evidence files found in the injected documents over all
  rounds. A file counts as found when an injected document of it contains the file's key fact (the
  bridging entity for a first-hop file, the answer for the last one; questions.jsonl's `bridge`
  and `answer`) in the text injected: when the evidence budget is nearly spent, `ask` injects an
  excerpt of a document (the lines that match the question best), which may leave the fact out.
  Without a `bridge` field any injected document of a first-hop file counts. A Python file is
  several documents (one per definition), so this is stricter than "a document of the file".
- both hops: two-hop questions with both files found; hop 1 / hop 2: each file separately.
- accuracy: the answer string occurs in the generated answer, case-insensitively and not inside a
  longer word or number ("59" does not match "159").
- accuracy, both found: accuracy over the two-hop questions whose both files were found (the
  reader's share of the errors).
- rounds run / injecting: routing rounds run (the loop stops after a round that injects nothing)
  and those that injected something; docs: documents injected (of them excerpts); prompt tokens:
  the final prompt; latency: the whole `ask` call, mean seconds.

MSA_HOME is a temporary directory unless set (the default model is then converted into it once).
The work directory (generated corpus, store, that MSA_HOME) is removed at the end unless `--keep`.
Progress goes to stderr; the table to stdout; everything, per question and round, to `--out`.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _load_generator():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location("multihop_corpus", _HERE / "multihop_corpus.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["multihop_corpus"] = mod
    spec.loader.exec_module(mod)
    return mod


def contains(answer: str, gold: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(gold)}(?![A-Za-z0-9])", answer, re.IGNORECASE) is not None


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


class BlockRecorder:
    """What `ask` actually injected for each document: wraps `msa_agent.ask._evidence_block`,
    which builds every evidence block (a whole document, or an excerpt of one when the evidence
    budget is nearly spent). A document chosen in a round is never built again, so the last block
    built for it is the one injected. Without that function (the library changed) the documents'
    whole texts stand in."""

    def __init__(self) -> None:
        import msa_agent.ask as ask_mod

        self.blocks: dict[int, str] = {}
        self.active = callable(getattr(ask_mod, "_evidence_block", None))
        if self.active:
            orig = ask_mod._evidence_block

            def record(n, doc, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
                out = orig(n, doc, *args, **kwargs)
                self.blocks[doc.id] = out
                return out

            ask_mod._evidence_block = record


def evidence_found(q: dict, injected: list[int], docs: dict[int, tuple[str, str]], texts: dict[int, str]) -> list[bool]:
    """Per gold evidence file: whether an injected document of it holds its key fact in the text
    that was injected."""
    keys = [q.get("bridge"), q["answer"]] if q["hops"] == 2 else [q["answer"]]
    out = []
    for rel, key in zip(q["evidence"], keys):
        hit = False
        for d in injected:
            path, text = docs.get(d, ("", ""))
            text = texts.get(d, text)
            if path == rel and (key is None or contains(text, key)):
                hit = True
                break
        out.append(hit)
    return out


def summarize(records: list[dict]) -> list[dict]:
    rows = []
    settings = list(dict.fromkeys((r["mode"], r["rounds_max"]) for r in records))
    for mode, rmax in settings:
        for hops in (2, 1):
            rs = [r for r in records if r["mode"] == mode and r["rounds_max"] == rmax and r["hops"] == hops]
            if not rs:
                continue
            n = len(rs)
            row = {
                "mode": mode, "resolved_mode": rs[0]["resolved_mode"], "rounds": rmax, "hops": hops, "n": n,
                "evidence_recall": sum(sum(r["found"]) / len(r["found"]) for r in rs) / n,
                "accuracy": sum(r["correct"] for r in rs) / n,
                "mean_rounds": sum(r["rounds_run"] for r in rs) / n,
                "mean_rounds_injecting": sum(r["rounds_injecting"] for r in rs) / n,
                "mean_docs_injected": sum(r["docs_injected"] for r in rs) / n,
                "mean_docs_excerpted": sum(r.get("docs_excerpted", 0) for r in rs) / n,
                "mean_latency_s": sum(r["timing"].get("total_ms", 0.0) for r in rs) / n / 1000,
                "mean_prompt_tokens": sum(r["timing"].get("prompt_tokens", 0) for r in rs) / n,
            }
            if hops == 2:
                row["both_hops"] = sum(all(r["found"]) for r in rs) / n
                row["hop1_found"] = sum(r["found"][0] for r in rs) / n
                row["hop2_found"] = sum(r["found"][1] for r in rs) / n
                both = [r for r in rs if all(r["found"])]
                row["accuracy_when_both_found"] = sum(r["correct"] for r in both) / len(both) if both else None
            rows.append(row)
    return rows


def paired(records: list[dict], base: tuple[str, int], other: tuple[str, int]) -> dict:
    """Two-hop questions where `other` differs from `base`: second hop found / answer correct."""
    by = {}
    for r in records:
        by[(r["mode"], r["rounds_max"], r["qid"])] = r
    out = {"hop2_gained": [], "hop2_lost": [], "correct_gained": [], "correct_lost": []}
    for (m, rm, qid), r in by.items():
        if (m, rm) != base or r["hops"] != 2:
            continue
        o = by.get((*other, qid))
        if o is None:
            continue
        if o["found"][1] and not r["found"][1]:
            out["hop2_gained"].append(qid)
        if r["found"][1] and not o["found"][1]:
            out["hop2_lost"].append(qid)
        if o["correct"] and not r["correct"]:
            out["correct_gained"].append(qid)
        if r["correct"] and not o["correct"]:
            out["correct_lost"].append(qid)
    return out


def table(rows: list[dict]) -> str:
    def pct(x: float | None) -> str:
        return "" if x is None else f"{100 * x:.0f}%"

    head = ("| mode | rounds | hops | n | evidence recall | both hops | hop 1 | hop 2 | accuracy "
            "| accuracy, both found | rounds run / injecting | docs injected (excerpts) | prompt tokens | latency s |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for r in rows:
        mode = r["mode"] if r["mode"] == r["resolved_mode"] else f"{r['mode']} ({r['resolved_mode']})"
        lines.append(
            f"| {mode} | {r['rounds']} | {r['hops']} | {r['n']} | {pct(r['evidence_recall'])} | {pct(r.get('both_hops'))} "
            f"| {pct(r.get('hop1_found'))} | {pct(r.get('hop2_found'))} | {pct(r['accuracy'])} "
            f"| {pct(r.get('accuracy_when_both_found'))} | {r['mean_rounds']:.2f} / {r['mean_rounds_injecting']:.2f} "
            f"| {r['mean_docs_injected']:.2f} ({r['mean_docs_excerpted']:.2f}) | {r['mean_prompt_tokens']:.0f} | {r['mean_latency_s']:.2f} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, help="an existing corpus directory (with --questions)")
    ap.add_argument("--questions", type=Path, help="questions.jsonl for --corpus")
    ap.add_argument("--size", type=int, default=4, help="two-hop chains per kind of the generated corpus (5 kinds)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", default="1,3", help="round bounds to compare, comma-separated")
    ap.add_argument("--modes", default="auto", help="routing modes, comma-separated: auto, lexical, msa, hybrid")
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--limit", type=int, default=0, help="ask only the first N questions (0: all)")
    ap.add_argument("--evidence-budget", type=int, help="ask(evidence_budget=...) (library default if unset)")
    ap.add_argument("--first-round-docs", type=int, help="ask(first_round_docs=...)")
    ap.add_argument("--per-round-docs", type=int, help="ask(per_round_docs=...)")
    ap.add_argument("--margin", type=float, help="ask(margin=...)")
    ap.add_argument("--out", type=Path, default=_HERE / "out" / "multihop.json")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (corpus, store, model cache)")
    a = ap.parse_args()
    if (a.corpus is None) != (a.questions is None):
        ap.error("--corpus and --questions go together")

    t_start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="msa-multihop-"))
    if not os.environ.get("MSA_HOME"):
        os.environ["MSA_HOME"] = str(work / "home")
    os.environ.pop("MSA_STORE", None)
    log(f"MSA_HOME={os.environ['MSA_HOME']}; work dir {work}")

    if a.corpus is None:
        corpus, qpath = _load_generator().write(work / "data", seed=a.seed, size=a.size)
        log(f"generated corpus (seed {a.seed}, size {a.size}) in {corpus}")
    else:
        corpus, qpath = a.corpus.resolve(), a.questions
    questions = [json.loads(line) for line in qpath.read_text(encoding="utf-8").splitlines() if line.strip()]
    for i, q in enumerate(questions):
        q.setdefault("hops", len(q["evidence"]))
        q["qid"] = i
    if a.limit:
        questions = questions[: a.limit]

    import torch

    from msa_agent.ask import ask
    from msa_agent.engine import Engine
    from msa_agent.pipeline import ingest_dir
    from msa_agent.store import Store

    t0 = time.perf_counter()
    enc = Engine.load(purpose="encode")
    load_encode_s = time.perf_counter() - t0
    store = Store.open(work / "store", create=True)
    log(f"ingesting {corpus} ({enc.name}, {enc.dtype}) ...")
    rep = ingest_dir(corpus, store, enc)
    log(f"ingested {rep.added} files, {rep.documents} documents, {rep.tokens} tokens in {rep.seconds:.1f} s "
        f"({rep.tokens_per_s:.0f} tok/s); failed {rep.failed}")
    if rep.failed:
        for f in rep.failures:
            log(f"  failed: {f}")
    del enc
    gc.collect()
    t0 = time.perf_counter()
    gen = Engine.load(purpose="generate")
    load_generate_s = time.perf_counter() - t0
    docs = {d.id: (d.path, d.text) for d in store.live_documents(None)}

    extra = {k: v for k, v in (("evidence_budget", a.evidence_budget), ("first_round_docs", a.first_round_docs),
                               ("per_round_docs", a.per_round_docs), ("margin", a.margin)) if v is not None}
    modes = [m.strip() for m in a.modes.split(",") if m.strip()]
    bounds = [int(r) for r in a.rounds.split(",") if r.strip()]
    settings = [(m, r) for m in modes for r in bounds]

    recorder = BlockRecorder()
    if not recorder.active:
        log("msa_agent.ask._evidence_block is gone: evidence is judged on whole documents, not on excerpts")
    # One warm-up call (first-call kernel set-up), not counted.
    ask(store, gen, "What is this about?", rounds=1, mode=modes[0], max_new_tokens=4, **extra)

    records: list[dict] = []
    loads: list[list[float]] = []
    t_ask = time.perf_counter()
    total = len(questions) * len(settings)
    done = 0
    for q in questions:
        for mode, rmax in settings:
            recorder.blocks.clear()
            res = ask(store, gen, q["question"], rounds=rmax, mode=mode, max_new_tokens=a.max_tokens, **extra)
            injected = [d for r in res.rounds for d in r["injected"]]
            texts = {d: recorder.blocks[d] for d in injected if d in recorder.blocks}
            excerpted = [d for d in injected if d in texts and docs[d][1].strip() not in texts[d]]
            found = evidence_found(q, injected, docs, texts)
            rec = {
                "qid": q["qid"], "question": q["question"], "gold": q["answer"], "evidence": q["evidence"],
                "hops": q["hops"], "type": q.get("type"), "mode": mode, "resolved_mode": res.mode, "rounds_max": rmax,
                "answer": res.answer, "correct": contains(res.answer, q["answer"]), "found": found,
                "rounds_run": len(res.rounds), "rounds_injecting": sum(1 for r in res.rounds if r["injected"]),
                "docs_injected": len(injected), "docs_excerpted": len(excerpted),
                "rounds": [{"round": r["round"], "ms": r.get("ms"),
                            "injected": [docs.get(d, ("?", ""))[0] + (" (excerpt)" if d in excerpted else "")
                                         for d in r["injected"]],
                            "routed": [(h["path"], h.get("anchor"), h["score"]) for h in r["routed"][:8]]}
                           for r in res.rounds],
                "timing": res.timing,
            }
            records.append(rec)
            done += 1
            la = _loadavg()
            if la:
                loads.append(la)
            el = time.perf_counter() - t_ask
            log(f"[{done}/{total}] {mode} r{rmax} q{q['qid']} ({q['hops']}-hop) found={found} "
                f"correct={rec['correct']} {res.timing.get('total_ms', 0) / 1000:.1f}s "
                f"(eta {el / done * (total - done):.0f}s, load {la[0] if la else '?'}) answer={res.answer[:60]!r}")

    rows = summarize(records)
    comparisons = {}
    for mode in modes:
        if len(bounds) >= 2:
            base, other = (mode, bounds[0]), (mode, bounds[-1])
            comparisons[f"{mode}: rounds {bounds[0]} -> {bounds[-1]}"] = paired(records, base, other)
    wall = time.perf_counter() - t_start
    print(table(rows))
    for k, c in comparisons.items():
        print(f"\n{k} (two-hop question ids): second hop gained {c['hop2_gained']}, lost {c['hop2_lost']}; "
              f"correct gained {c['correct_gained']}, lost {c['correct_lost']}")
    load_1m = [x[0] for x in loads]
    meta = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "torch": torch.__version__, "threads": torch.get_num_threads()},
        "load_avg_1m": {"min": min(load_1m), "max": max(load_1m), "mean": round(sum(load_1m) / len(load_1m), 2)}
        if load_1m else None,
        "corpus": str(corpus), "questions_file": str(qpath), "seed": a.seed, "size": a.size,
        "ask_kwargs": {"max_new_tokens": a.max_tokens, **extra},
        "ingest": rep.as_dict(), "load_encode_s": round(load_encode_s, 1), "load_generate_s": round(load_generate_s, 1),
        "ask_s": round(time.perf_counter() - t_ask, 1), "wall_s": round(wall, 1),
    }
    print(f"\nwall {wall:.0f} s (ingest {rep.seconds:.0f} s, asking {meta['ask_s']:.0f} s); load avg (1 min) during "
          f"asking: {meta['load_avg_1m']}")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"meta": meta, "summary": rows, "comparisons": comparisons, "records": records},
                                indent=1, default=str), encoding="utf-8")
    log(f"wrote {a.out}")
    store.close()
    if a.keep:
        log(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
