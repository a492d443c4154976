"""Re-ingest speed: a tree of many small text and code files, ingested once with a tiny random
model, then ingested again unchanged (the target: < 10 s for 10,000 files on a 2-core machine).

    .venv/bin/python bench/reingest.py [--files 10000] [--workdir DIR] [--keep]

Prints one JSON object: the first ingest, the unchanged re-ingest in-process (`ingest_dir`) and
through the `msa ingest` command in a fresh process (imports and model load included), a re-ingest
after every file was touched (same bytes, new mtime: every file hashed, none re-parsed), and one
after a single file changed. The files' mtimes are set an hour back, as in a real tree: a file
modified within the last two seconds is hashed on every run (see pipeline._RACY_NS).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent

WORDS = ("pump valve sensor pressure flow contract supplier customer quarter invoice delivery warranty "
         "bearing motor shaft seal gasket firmware controller alarm threshold reading maintenance").split()


def write_tiny_model(out: Path) -> Path:
    """A 4-layer random Llama with the default tokenizer, router layers 2-3 (as tests/conftest.py)."""
    from safetensors.torch import save_file

    from msa_agent.model.config import Config, MSAConfig
    from msa_agent.model.model import MSAModel
    from msa_agent.model.weights import _convert_tokenizer, default_model_file

    torch.manual_seed(0)
    cfg = Config(arch="llama", vocab_size=49152, n_layer=4, n_embd=64, n_head=4, n_kv_head=2, intermediate_size=128,
                 rope_theta=10000.0, max_position_embeddings=8192, bos_token_id=1, eos_token_id=2,
                 msa=MSAConfig(router_layer_idx=[2, 3], pooling_kernel_size=4, top_k_docs=4))
    model = MSAModel(cfg)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    out.mkdir(parents=True, exist_ok=True)
    state = {f"model.{k}" if not k.startswith("lm_head") else k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps(cfg.to_hf(), indent=2))
    _convert_tokenizer(default_model_file(), out)
    return out


def build_tree(root: Path, n: int) -> int:
    """n small files in 100 folders: a third Python, a third Markdown, a third plain text."""
    total = 0
    for i in range(n):
        d = root / f"dir{i % 100:03d}"
        d.mkdir(parents=True, exist_ok=True)
        w = [WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(24)]
        if i % 3 == 0:
            p = d / f"mod_{i}.py"
            body = (f'"""Module {i}: {" ".join(w[:8])}."""\n\n\ndef {w[0]}_{i}(x):\n'
                    f'    """{" ".join(w[8:16])}."""\n    return x * {i}\n\n\nclass {w[1].title()}{i}:\n'
                    f"    limit = {i % 97}\n\n    def check(self, v):\n        return v < self.limit\n")
        elif i % 3 == 1:
            p = d / f"note_{i}.md"
            body = f"# Note {i}\n\n{' '.join(w)}.\n\n## Details\n\n{' '.join(reversed(w))} {i}.\n"
        else:
            p = d / f"memo_{i}.txt"
            body = f"Memo {i}: {' '.join(w)}.\nReference {i * 31 % 10007}.\n"
        p.write_text(body)
        total += len(body)
    hour_ago = time.time_ns() - 3600 * 10**9
    for p in root.rglob("*"):
        if p.is_file():
            os.utime(p, ns=(hour_ago, hour_ago))
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="Keep the work directory.")
    args = ap.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="msa-reingest-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["MSA_HOME"] = str(work / "home")
    from msa_agent.engine import Engine
    from msa_agent.pipeline import ingest_dir
    from msa_agent.store import Store

    model_dir = write_tiny_model(work / "tiny-model")
    tree = work / "tree"
    shutil.rmtree(tree, ignore_errors=True)
    t = time.perf_counter()
    n_bytes = build_tree(tree, args.files)
    build_s = time.perf_counter() - t

    engine = Engine.load(str(model_dir), dtype="float32")
    store = Store.open(work / "store", create=True)
    t = time.perf_counter()
    first = ingest_dir(tree, store, engine)
    first_s = time.perf_counter() - t

    t = time.perf_counter()
    again = ingest_dir(tree, store, engine)
    again_s = time.perf_counter() - t
    assert again.unchanged == args.files and again.tokens == 0, again.as_dict()

    env = {**os.environ, "MSA_MODEL": str(model_dir), "MSA_DTYPE": "float32"}
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "msa_agent.cli.main", "ingest", str(tree), "--store",
                           str(work / "store"), "--json"], env=env, capture_output=True, text=True)
    cli_s = time.perf_counter() - t
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["unchanged"] == args.files

    later = time.time_ns() - 1800 * 10**9  # touched: same bytes, new mtime
    for p in tree.rglob("*"):
        if p.is_file():
            os.utime(p, ns=(later, later))
    t = time.perf_counter()
    touched = ingest_dir(tree, store, engine)
    touched_s = time.perf_counter() - t
    assert touched.unchanged == args.files and touched.tokens == 0

    one = next(tree.rglob("*.md"))
    one.write_text(one.read_text() + "\nOne more line.\n")
    os.utime(one, ns=(later + 10**9, later + 10**9))
    t = time.perf_counter()
    changed = ingest_dir(tree, store, engine)
    changed_s = time.perf_counter() - t
    store.close()

    print(json.dumps({
        "files": args.files, "bytes": n_bytes, "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "build_tree_s": round(build_s, 2),
        "first_ingest": {"seconds": round(first_s, 2), "documents": first.documents, "tokens": first.tokens,
                         "tokens_per_s": first.tokens_per_s, "failed": first.failed},
        "unchanged_reingest_s": round(again_s, 3),
        "unchanged_reingest_cli_s": round(cli_s, 3),
        "touched_reingest_s": round(touched_s, 3),
        "one_changed_reingest": {"seconds": round(changed_s, 3), "updated": changed.updated,
                                 "reused_documents": changed.reused_documents, "tokens": changed.tokens},
        "target_s": 10.0,
        "met": again_s < 10.0 and cli_s < 10.0,
    }, indent=2))
    if not args.keep and args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
