"""`ask`'s interleave with and without the bridge, on the same memory, in one run (NOTES
experiment 13): the scale bench (16K and 128K, 8,000-token prose distractors) and the qa bench
(msa only), once as shipped (`bridge`) and once with later rounds routing on the whole newest
evidence, as before the bridge (`whole`: no sentence ever counts as a bridge).

    python bench/interleave_compare.py --out bench/out/interleave [--variants whole,bridge]

Each variant has its own output directory; the scale store is built by the first variant and
copied for the next (ingest does not depend on the variant). Prints contains and evidence recall.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("bench/out/interleave"))
    ap.add_argument("--variants", default="whole,bridge")
    ap.add_argument("--sizes", default="16k,128k")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    import msa_agent.ask as ask_mod
    from msa_agent.evals.common import Engines, Hooks, parse_sizes
    from msa_agent.evals.qa import QAConfig, run_qa
    from msa_agent.evals.scale import ScaleConfig, run_scale

    engines = Engines.load(None, device="cpu")
    torch.set_num_threads(args.threads)
    shipped = ask_mod.MIN_BRIDGE_WORDS
    first: Path | None = None
    rows = {}
    for variant in args.variants.split(","):
        ask_mod.MIN_BRIDGE_WORDS = {"bridge": shipped, "whole": 10**9}[variant]
        out = args.out / variant
        if first is not None and not (out / "scale" / "store").exists():
            for sub in ("store", "corpus"):
                shutil.copytree(first / "scale" / sub, out / "scale" / sub)
        s = run_scale(ScaleConfig(sizes=parse_sizes(args.sizes), doc_tokens=8000), out / "scale", engines, hooks=Hooks())
        q = run_qa(QAConfig(size=6, systems=["msa"]), out / "qa", engines, hooks=Hooks())
        rows[variant] = {"scale": {k: {m: round(v[m], 1) for m in ("contains", "evidence_recall", "latency_s")}
                                   for k, v in s["by_size"].items()},
                         "qa": q["systems"]["msa"]}
        first = first or out
        print(variant, json.dumps(rows[variant], default=str), flush=True)
    ask_mod.MIN_BRIDGE_WORDS = shipped
    (args.out / "interleave.json").write_text(json.dumps(rows, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
