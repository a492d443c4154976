"""Run msa's evaluation benches (NIAH, scale, QA) at a preset's sizes and record the machine.

    .venv/bin/python bench/eval_run.py [niah|scale|qa|all] [--preset cpu|gpu] [--out bench/out/eval]
                                       [--device cpu|cuda] [--model M] [-- extra bench overrides as key=value]

Presets (sizes in tokens):
- cpu: NIAH 4K, 8K, 16K × 8 tasks × 2 samples; scale 16K and 128K; QA on the generated corpus (size 6:
  12 questions) with msa, BM25 and dense MiniLM at k = 1, 5, 10. Minutes on a 2-core machine.
- gpu: NIAH 4K to 1M × 8 tasks × 2 samples; scale 16K, 128K, 1M, 10M (100M with scale.sizes=...);
  QA size 20. For the device machine (`--device cuda`).

Each bench resumes from `<out>/<bench>/<bench>.jsonl`; results, tables and plots land beside it,
and `<out>/runs.jsonl` gets one line per bench run: command, load average before and after, seconds.
Overrides: `niah.lengths=4k,64k`, `niah.samples=1`, `scale.sizes=16k,1M`, `qa.size=4` ...
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from rich.console import Console

from msa_agent.evals.common import Engines, Hooks, parse_sizes
from msa_agent.evals.niah import NiahConfig, run_niah
from msa_agent.evals.qa import QAConfig, run_qa
from msa_agent.evals.scale import ScaleConfig, run_scale

PRESETS = {
    "cpu": {"niah": {"lengths": "4k,8k,16k", "samples": 2}, "scale": {"sizes": "16k,128k"}, "qa": {"size": 6}},
    "gpu": {"niah": {"lengths": "4k,16k,64k,128k,256k,1M", "samples": 2}, "scale": {"sizes": "16k,128k,1M,10M"},
            "qa": {"size": 20}},
}
err = Console(stderr=True)


def _settings(preset: str, bench: str, overrides: list[str]) -> dict:
    s = dict(PRESETS[preset][bench])
    for o in overrides:
        k, _, v = o.partition("=")
        b, _, name = k.partition(".")
        if b == bench:
            s[name] = v
    for key in ("lengths", "sizes"):
        if key in s:
            s[key] = parse_sizes(s[key])
    for key in ("samples", "size", "doc_tokens", "limit", "max_new_tokens"):
        if key in s:
            s[key] = int(s[key])
    for key in ("tasks", "systems"):
        if isinstance(s.get(key), str):
            s[key] = s[key].split(",")
    if isinstance(s.get("ks"), str):
        s["ks"] = [int(x) for x in s["ks"].split(",")]
    return s


def _hooks(name: str) -> Hooks:
    state = {"n": 0, "total": 0, "t0": time.perf_counter(), "fresh": 0}

    def plan(n: int) -> None:
        state["total"] = n

    def advance(n: int, resumed: bool) -> None:
        state["n"] += n
        if not resumed:
            state["fresh"] += n
        el = time.perf_counter() - state["t0"]
        left = state["total"] - state["n"]
        eta = el / state["fresh"] * left if state["fresh"] else float("nan")
        err.print(f"[{name}] {state['n']}/{state['total']} items, {el:.0f} s, ETA {eta:.0f} s", highlight=False)

    return Hooks(plan, advance, lambda m: err.print(f"[{name}] {m}", highlight=False, markup=False))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bench", nargs="?", default="all", choices=["niah", "scale", "qa", "all"])
    ap.add_argument("--preset", default="cpu", choices=list(PRESETS))
    ap.add_argument("--out", type=Path, default=Path("bench/out/eval"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: all cores; 1 is faster on a machine shared with other work)")
    ap.add_argument("overrides", nargs="*", help="bench.key=value")
    a = ap.parse_intermixed_args()
    t = time.perf_counter()
    engines = Engines.load(a.model, device=a.device)
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    err.print(f"model loaded in {time.perf_counter() - t:.1f} s")
    for bench in (["niah", "scale", "qa"] if a.bench == "all" else [a.bench]):
        s = _settings(a.preset, bench, a.overrides)
        out = a.out / bench
        load0, t0 = os.getloadavg(), time.perf_counter()
        if bench == "niah":
            summary = run_niah(NiahConfig(**s), out, engines, hooks=_hooks(bench))
        elif bench == "scale":
            summary = run_scale(ScaleConfig(**s), out, engines, hooks=_hooks(bench))
        else:
            summary = run_qa(QAConfig(**s), out, engines, hooks=_hooks(bench))
        line = {"bench": bench, "preset": a.preset, "settings": {k: v for k, v in s.items()}, "argv": sys.argv,
                "loadavg_before": [round(x, 2) for x in load0], "loadavg_after": [round(x, 2) for x in os.getloadavg()],
                "seconds": round(time.perf_counter() - t0, 1), "resumed_items": summary["resumed_items"],
                "device": a.device, "machine": summary["machine"]}
        with open(a.out / "runs.jsonl", "a") as f:
            f.write(json.dumps(line) + "\n")
        print(Path(summary["outputs"]["markdown"]).read_text())


if __name__ == "__main__":
    main()
