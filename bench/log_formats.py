"""Log formats: per file, lines that carry a timestamp and how many of them ingest reads as timed events.

    .venv/bin/python bench/log_formats.py [--root DIR] [--ingest-from DIR] [--json]

Default root: tests/ingest/logsamples (real samples; `REPEAT=200 bash
tests/ingest/logsamples/make_samples.sh DIR` writes the same programs' logs 200 times longer).
`--ingest-from` loads the ingest package from another folder (an older commit's `ingest/`, from
`git archive COMMIT ingest | tar -x -C DIR`) to compare before and after on the same files.

A line "carries a timestamp" when its first 64 characters hold a clock (hh:mm:ss), a
yyMMdd HHmmss pair or a 10/13-digit epoch number (JSON lines: a __REALTIME_TIMESTAMP field):
a broad test that does not know the formats. "recognised" counts the events (rows) of the file's
log documents, so lines of an event that carries no time (a traceback, java.util.logging's level
line) are neither.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
import time
from pathlib import Path

_STAMP = re.compile(r"\d{1,2}:\d\d:\d\d|(?<!\d)\d{6} \d{6}(?!\d)|(?<![\d.])(?:\d{13}|\d{10})(?!\d)")


def _load_ingest(folder: Path) -> None:
    import msa_agent  # noqa: F401 - the parent package first

    spec = importlib.util.spec_from_file_location("msa_agent.ingest", folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    mod = importlib.util.module_from_spec(spec)
    sys.modules["msa_agent.ingest"] = mod
    spec.loader.exec_module(mod)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    here = Path(__file__).resolve().parents[1]
    ap.add_argument("--root", type=Path, default=here / "tests" / "ingest" / "logsamples")
    ap.add_argument("--ingest-from", type=Path, default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.ingest_from:
        _load_ingest(args.ingest_from.resolve())
    from msa_agent.ingest import SourceError, detect_kind, parse_file

    rows = []
    for p in sorted(args.root.rglob("*")):
        if not p.is_file() or p.suffix in (".sh", ".md", ".java", ".conf", ".html", ".pid") or "journal" in p.parts[-2:-1]:
            continue
        text = p.read_text(errors="replace")
        lines = [ln for ln in text.split("\n") if ln.strip()]
        if p.suffix == ".json":
            stamped = sum("__REALTIME_TIMESTAMP" in ln for ln in lines)
        else:
            stamped = sum(bool(_STAMP.search(ln[:64])) for ln in lines)
        if not stamped:
            continue
        t0 = time.perf_counter()
        try:
            docs = parse_file(p, args.root)
            err = None
        except SourceError as e:
            docs, err = [], e.reason
        dt = time.perf_counter() - t0
        logs = [d for d in docs if d.kind == "log"]
        events = sum(d.anchor_data.get("rows", 0) for d in logs)
        rows.append({
            "file": p.relative_to(args.root).as_posix(), "kind": detect_kind(p), "format": logs[0].anchor_data.get("format") if logs else None,
            "lines": len(lines), "stamped": stamped, "recognised": events, "documents": len(docs),
            "share": round(events / stamped, 4), "seconds": round(dt, 4), "error": err,
        })  # fmt: skip
    total_s = sum(r["stamped"] for r in rows)
    total_r = sum(min(r["recognised"], r["stamped"]) for r in rows)
    out = {"root": str(args.root), "ingest": str(args.ingest_from or "this tree"), "files": rows,
           "stamped": total_s, "recognised": total_r, "share": round(total_r / max(total_s, 1), 4)}
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{'file':28} {'kind':5} {'format':9} {'lines':>6} {'stamped':>7} {'recog.':>7} {'share':>7}")
    for r in rows:
        print(f"{r['file']:28} {r['kind'] or '-':5} {r['format'] or '-':9} {r['lines']:6} {r['stamped']:7} {r['recognised']:7} "
              f"{100 * r['share']:6.1f}%")
    print(f"{'all':44} {total_s:7} {total_r:7} {100 * out['share']:6.1f}%")


if __name__ == "__main__":
    main()
