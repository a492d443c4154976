#!/usr/bin/env bash
# The four benches at GPU sizes, in device calls of at most 10 minutes:
#
#   bash bench/gpu_evals.sh OUT BUDGET_S STAGE...      STAGE: retrieval | niah | scale | qa
#
# Each stage is `msa bench <stage> --device cuda` with its output directory under $WORK
# (default /tmp/msa-evals, kept while the machine stays warm); a stage cut off by the budget
# resumes in the next call with the same settings (the benches keep their results and stores).
# The budget is shared: each stage gets what is left of BUDGET_S. Sizes and settings come from the
# environment (defaults below). At the end, the benches' tables, JSON and plots go to OUT/evals.tgz.
#
# Needs (see bench/NOTES.md): the carried wheels and backbone parts (.device/), and for the dense
# baseline the two halves of MiniLM (`python bench/device_minilm.py pack`, carry .device/minilm-N).
# DEVICE=cpu with small sizes runs the same flow here (used to check the script).
set -o pipefail
OUT=${1:?usage: bench/gpu_evals.sh OUT BUDGET_S STAGE...}
BUDGET=${2:?usage: bench/gpu_evals.sh OUT BUDGET_S STAGE...}
shift 2
DEVICE=${DEVICE:-cuda}
WORK=${WORK:-/tmp/msa-evals}
RET_SIZE=${RET_SIZE:-24}
RET_SYSTEMS=${RET_SYSTEMS:-msa,lexical,hybrid,bm25,dense}
NIAH_LENGTHS=${NIAH_LENGTHS:-128k,1M}
NIAH_TASKS=${NIAH_TASKS:-all}
NIAH_SAMPLES=${NIAH_SAMPLES:-2}
SCALE_SIZES=${SCALE_SIZES:-16k,128k,1M,10M}
SCALE_DOC_TOKENS=${SCALE_DOC_TOKENS:-8000}
SCALE_LIMIT=${SCALE_LIMIT:+--limit $SCALE_LIMIT}
QA_SIZE=${QA_SIZE:-24}
QA_SYSTEMS=${QA_SYSTEMS:-msa,bm25,dense}
QA_K=${QA_K:-1,5,10}
QA_LIMIT=${QA_LIMIT:+--limit $QA_LIMIT}

if [ "$DEVICE" != cpu ]; then
  source .device/meta/setup.sh || exit 1
  source bench/device_env.sh || exit 1
  [ -n "$MSA_MODEL" ] || { echo "MSA_MODEL is not set: carry the backbone parts (.device/backbone-N)" >&2; exit 1; }
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
fi
mkdir -p "$OUT" "$WORK"
DENSE=$(python3 bench/device_minilm.py assemble | tail -1)  # says on stderr which part is missing
if [ -z "$DENSE" ] || [ "$DEVICE" = cpu ]; then DENSE_OPT=(); else DENSE_OPT=(--dense-model "$DENSE"); fi
start=$(date +%s)
msa() { python3 -c "from msa_agent.cli.main import main; main()" "$@"; }

for stage in "$@"; do
  left=$(( BUDGET - ($(date +%s) - start) ))
  if [ "$left" -lt 30 ]; then echo "== $stage: no time left" >&2; break; fi
  echo "== $stage ($left s left)" >&2
  case $stage in
    retrieval) args=(retrieval --size "$RET_SIZE" --systems "$RET_SYSTEMS" "${DENSE_OPT[@]}") ;;
    niah) args=(niah --lengths "$NIAH_LENGTHS" --tasks "$NIAH_TASKS" --samples "$NIAH_SAMPLES") ;;
    scale) args=(scale --sizes "$SCALE_SIZES" --doc-tokens "$SCALE_DOC_TOKENS" $SCALE_LIMIT) ;;
    qa) args=(qa --size "$QA_SIZE" --systems "$QA_SYSTEMS" --k "$QA_K" $QA_LIMIT "${DENSE_OPT[@]}") ;;
    *) echo "unknown stage $stage" >&2; exit 2 ;;
  esac
  t0=$(date +%s)
  timeout --signal=TERM --kill-after=20 "$left" msa bench "${args[@]}" --device "$DEVICE" --out "$WORK/$stage" \
    > "$WORK/$stage.stdout" 2> >(grep -v "Loading weights" | tail -n 40 > "$WORK/$stage.stderr")
  rc=$?
  echo "== $stage: rc $rc in $(( $(date +%s) - t0 )) s" >&2
  tail -n 25 "$WORK/$stage.stderr" >&2
  [ -f "$WORK/$stage/$stage.md" ] && [ "$rc" = 0 ] && cat "$WORK/$stage/$stage.md"
done
(cd "$WORK" && tar czf "$OUT/evals.tgz" --exclude='*/store*' --exclude='*/corpus' --exclude='*/generated' \
  --exclude='*/haystack*' $(ls -d */ 2>/dev/null) *.stderr 2>/dev/null)
ls -la "$OUT"
df -h "$WORK" | tail -1
