#!/usr/bin/env bash
# Fine-tune the default backbone as a reader on one GPU (issue #9): data generated here by seed,
# LoRA training, validation base vs tuned on held-out synthetic sets (text and memory paths).
# Writes OUT/reader-smollm2-135m.safetensors (~9.8 MB), its JSON record, OUT/train.log and
# OUT/val_examples.jsonl. Copy the .safetensors and .json into model/trained/ to ship them.
#
#   run: bash bench/train_reader_device.sh "$OUT" [msa train reader options, e.g. --minutes 3.5]
#   carry: .device/meta, .device/whl (and .device/backbone-N on a fresh machine; see device-prep)
#
# Budget: data ≤ 40 s (code facts parsed on all cores), load/convert ~5-20 s, training --minutes,
# validation ≤ 100 s (merged adapters, fused projections). Defaults below; later options override.
set -uo pipefail
out=${1:?usage: train_reader_device.sh OUT [options]}; shift
source .device/meta/setup.sh || exit 1
source bench/device_env.sh || exit 1
[ -n "${MSA_MODEL:-}" ] || { echo "MSA_MODEL is not set: the backbone GGUF has not arrived" >&2; exit 1; }
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
t0=$(date +%s)
python3 -c "from msa_agent.cli.main import main; main()" train reader --out "$out" --device cuda --dtype bfloat16 \
  --examples 60000 --code-files 16000 "$@" 2>&1 | tee "$out/train.log"
echo "total $(( $(date +%s) - t0 )) s"
ls -la "$out"
