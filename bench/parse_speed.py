"""Ingest parsing speed: walk + parse_file over a large real tree, no model and no store.

    .venv/bin/python bench/parse_speed.py [--root DIR] [--limit N] [--max-chars 2400] [--json]

Default tree: this virtualenv's site-packages (real third-party code: Python, C/C++ headers,
JavaScript, type stubs, licences and metadata). Never point it at the Python standard library:
it is held out for evaluation (DESIGN.md).

Reports files/s, documents/s, chars/s and estimated tokens/s (chars / 4) over walk + parse, the
walk alone, the skip counts by reason, failures, and the split by kind and by code language.
One process, like `msa ingest`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import sysconfig
import time
from collections import Counter
from pathlib import Path

from msa_agent.ingest import SourceError, parse_file, walk
from msa_agent.ingest.code import language_of


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path(sysconfig.get_paths()["purelib"]))
    ap.add_argument("--limit", type=int, default=0, help="stop after this many files (0: all)")
    ap.add_argument("--max-chars", type=int, default=2400)
    ap.add_argument("--max-bytes", type=int, default=2_000_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    root = args.root.resolve()
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    if root == stdlib or stdlib in root.parents:
        sys.exit(f"{root} is in the Python standard library, which is held out for evaluation")

    skipped: Counter = Counter()
    t0 = time.perf_counter()
    files = []
    for p in walk(root, skipped, max_bytes=args.max_bytes):
        files.append(p)
        if args.limit and len(files) >= args.limit:
            break
    t_walk = time.perf_counter() - t0

    by_kind: Counter = Counter()
    by_lang: Counter = Counter()
    docs_by_kind: Counter = Counter()
    failures: Counter = Counter()
    n_docs = n_chars = n_bytes = n_warn = n_fallback = 0
    slowest: list[tuple[float, str]] = []
    t_parse = 0.0  # parse_file alone; the bookkeeping below is not timed
    for p in files:
        warnings: list[str] = []
        s = time.perf_counter()
        try:
            docs = parse_file(p, root, max_chars=args.max_chars, warnings=warnings)
        except SourceError as e:
            t_parse += time.perf_counter() - s
            failures[e.reason.split(":")[0][:60]] += 1
            continue
        dt = time.perf_counter() - s
        t_parse += dt
        slowest = sorted(slowest + [(dt, p.relative_to(root).as_posix())], reverse=True)[:5]
        n_warn += len(warnings)
        n_bytes += p.stat().st_size
        kind = docs[0].kind if docs else "empty"
        by_kind[kind] += 1
        if kind == "code":
            lang = language_of(p, p.read_text(errors="replace")) or "line-windows"
            by_lang[lang] += 1
            n_fallback += lang == "line-windows"
        for d in docs:
            docs_by_kind[d.kind] += 1
            n_chars += len(d.text)
        n_docs += len(docs)
    total = t_walk + t_parse

    out = {
        "root": str(root),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "files": len(files),
        "parsed": len(files) - sum(failures.values()),
        "bytes": n_bytes,
        "documents": n_docs,
        "chars": n_chars,
        "est_tokens": n_chars // 4,
        "seconds": {"walk": round(t_walk, 2), "parse": round(t_parse, 2), "total": round(total, 2)},
        "rate_walk_plus_parse": {
            "files_per_s": round(len(files) / total, 1),
            "documents_per_s": round(n_docs / total, 1),
            "chars_per_s": round(n_chars / total),
            "est_tokens_per_s": round(n_chars / 4 / total),
            "MB_per_s": round(n_bytes / total / 1e6, 2),
        },
        "walk_files_per_s": round(len(files) / t_walk, 1) if t_walk else None,
        "skipped": dict(skipped.most_common()),
        "failed": dict(failures.most_common()),
        "warnings": n_warn,
        "files_by_kind": dict(by_kind.most_common()),
        "documents_by_kind": dict(docs_by_kind.most_common()),
        "code_files_by_language": dict(by_lang.most_common()),
        "slowest_files_s": [[round(t, 3), name] for t, name in slowest],
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    r = out["rate_walk_plus_parse"]
    print(f"root      {out['root']}\nmachine   {out['machine']}")
    print(f"files     {out['files']} ({out['parsed']} parsed, {n_bytes / 1e6:.1f} MB), documents {n_docs}, chars {n_chars} (~{n_chars // 4} tokens)")
    print(f"time      walk {t_walk:.2f} s + parse {t_parse:.2f} s = {total:.2f} s")
    print(
        f"rate      {r['files_per_s']} files/s, {r['documents_per_s']} documents/s, {r['chars_per_s']} chars/s, "
        f"~{r['est_tokens_per_s']} tokens/s, {r['MB_per_s']} MB/s (walk alone: {out['walk_files_per_s']} files/s)"
    )
    print(f"skipped   {out['skipped']}")
    print(f"failed    {out['failed']}  warnings {n_warn}")
    print(f"kinds     files {out['files_by_kind']}  documents {out['documents_by_kind']}")
    print(f"code      {out['code_files_by_language']}")
    print(f"slowest   {out['slowest_files_s']}")


if __name__ == "__main__":
    main()
