"""The dense baseline's encoder (all-MiniLM-L6-v2, 91 MB in fp32) for the GPU machine, whose
calls carry at most 64 MiB with the repository: a half-precision copy in two parts.

Here:      python bench/device_minilm.py pack            -> .device/minilm-1, .device/minilm-2
Device:    python3 bench/device_minilm.py assemble       (in each call that carries a part)
           prints the model directory once both parts have arrived (kept in ~/.cache/msa-device
           while the machine stays warm); pass it to the benches as --dense-model.

`Dense` loads the weights back in fp32; fp16 keeps MiniLM's weights to about 3 significant
digits, so its rankings can differ from the fp32 file's only between near-ties.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STASH = Path.home() / ".cache" / "msa-device" / "minilm"
SMALL = ["config.json", "sentence_bert_config.json", "special_tokens_map.json", "tokenizer.json",
         "tokenizer_config.json", "vocab.txt", "modules.json"]


def pack() -> None:
    import torch
    from safetensors.torch import load_file, save_file

    sys.path.insert(0, str(ROOT))
    from msa_agent.evals.rag import dense_model_dir

    src = dense_model_dir()
    state = {k: v.to(torch.float16) if v.is_floating_point() else v for k, v in load_file(str(src / "model.safetensors")).items()}
    tmp = ROOT / ".device" / "minilm.safetensors"
    save_file(state, str(tmp))
    blob = tmp.read_bytes()
    tmp.unlink()
    half = len(blob) // 2
    for i, part in enumerate((blob[:half], blob[half:]), 1):
        d = ROOT / ".device" / f"minilm-{i}"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        (d / f"part{i}").write_bytes(part)
        if i == 1:
            for name in SMALL:
                if (src / name).is_file():
                    shutil.copyfile(src / name, d / name)
            (d / "sha256").write_text(hashlib.sha256(blob).hexdigest())
    print(f"{src} -> .device/minilm-1, .device/minilm-2 ({len(blob) / 1e6:.1f} MB in fp16)")


def assemble() -> None:
    STASH.mkdir(parents=True, exist_ok=True)
    for i in (1, 2):
        d = ROOT / ".device" / f"minilm-{i}"
        if d.is_dir():
            for f in d.iterdir():
                shutil.copyfile(f, STASH / f.name)
    out = STASH / "model.safetensors"
    if not out.is_file():
        missing = [i for i in (1, 2) if not (STASH / f"part{i}").is_file()]
        if missing:
            print(f"device_minilm: parts still missing: {missing}", file=sys.stderr)
            return
        blob = (STASH / "part1").read_bytes() + (STASH / "part2").read_bytes()
        if hashlib.sha256(blob).hexdigest() != (STASH / "sha256").read_text().strip():
            raise SystemExit("device_minilm: the assembled file's sha256 does not match")
        out.write_bytes(blob)
    print(STASH)


if __name__ == "__main__":
    {"pack": pack, "assemble": assemble}[sys.argv[1]]()
