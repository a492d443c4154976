"""Does chunk pooling blur what pure MSA routing needs? The retrieval bench's msa system, run
through the product's own path (ingest, `msa route`), with the shipped router and reader, at
several pooling sizes P (the routing keys and K̄/V̄ are means over P tokens; P = 64 is the
default and what the router was trained with: its projectors are linear, so the same projector
gives the mean routing key at any P).

    python bench/route_pooling.py --sizes 64,16 --size 2 --out bench/out/route_pooling

Each P gets its own store (the fingerprint names P). Prints R@1/5/16 per category and P; writes
<out>/route_pooling.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="64,16", help="pooling sizes P to compare")
    ap.add_argument("--size", type=int, default=2, help="generated retrieval corpus size")
    ap.add_argument("--out", type=Path, default=Path("bench/out/route_pooling"))
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()

    import torch

    from msa_agent.evals.common import Engines, Hooks
    from msa_agent.evals.retrieval import RetrievalConfig, run_retrieval

    engines = Engines.load(None, device="cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    enc = engines.encode
    base_fp = enc.fingerprint
    rows = {}
    for P in [int(x) for x in args.sizes.split(",")]:
        for e in {id(engines.encode): engines.encode, id(engines.generate): engines.generate}.values():
            e.cfg.msa.pooling_kernel_size = P
            e.fingerprint = f"{base_fp[:16]}-P{P}"
        s = run_retrieval(RetrievalConfig(systems=["msa"], size=args.size), args.out / f"P{P}", engines,
                          hooks=Hooks(message=print))
        rows[P] = {k: round(v, 1) if isinstance(v, float) else v for k, v in s["systems"]["msa"].items()}
        print(f"P={P}: {json.dumps(rows[P])}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "route_pooling.json").write_text(json.dumps(rows, indent=2, default=str) + "\n")
    print(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
