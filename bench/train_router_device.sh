#!/usr/bin/env bash
# Train the MSA router for the default backbone on one GPU, in one device call of at most ~7.5 minutes:
# data made from the machine's own site-packages plus synthetic contracts and logs (seeded), one
# bf16 pass of the frozen backbone, about 4 minutes of projector training, validation, export.
#
#   bash bench/train_router_device.sh "$OUT" [more `msa train router` options]
#
# Writes $OUT/router.safetensors (fp16, ~13 MB), $OUT/router.json (the record: data, steps, time,
# card, loss, validation recall), $OUT/train.log, and $OUT/checkpoint/ (15 files of ~3.5 MB and
# state.json). To go on training in a later call, carry that checkpoint back and pass
# `--checkpoint DIR` (same options; the data is remade identically from the seed).
# Needs: the carried wheels (.device/whl: tree-sitter + tree-sitter-python for msa's code parser,
# sqlalchemy, platformdirs, pathspec, pypdf, python-docx, lxml, gguf) and the backbone parts.
set -o pipefail
OUT=${1:?usage: bench/train_router_device.sh OUT_DIR [options]}
shift
source .device/meta/setup.sh || exit 1
source bench/device_env.sh || exit 1
[ -n "$MSA_MODEL" ] || { echo "MSA_MODEL is not set: carry the backbone parts (.device/backbone-N)" >&2; exit 1; }
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/card.txt"
python3 -c "from msa_agent.cli.main import main; main()" train router --device cuda --out "$OUT" \
  --minutes "${MINUTES:-4}" --total-minutes "${TOTAL_MINUTES:-7}" --json "$@" 2> >(tee "$OUT/train.log" >&2) > "$OUT/record.json"
rc=$?
python3 - "$OUT/record.json" <<'PY' || true
import json, sys
r = json.load(open(sys.argv[1]))
t, v = r["training"], r["validation"]
print(json.dumps({"card": t["card"], "steps": t["steps"], "exported_step": t["exported_step"],
                  "final_loss": t["final_loss"], "piece": t["this_piece"], "data": t["data"],
                  "val_before": v["before"], "val_after": v["after"], "val_history": v["history"]}, indent=1))
PY
ls -la "$OUT" "$OUT/checkpoint"
exit $rc
