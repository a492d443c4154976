# The dev set (bench/devset) on the GPU machine: reader v4 (carried to ~/.cache/msa-device) against the shipped v3,
# gold evidence and end to end, focused reading; each run capped at 140 s (a rerun resumes).
#   run: bash bench/devset_device.sh   (after the backbone parts; OUT set by the device tool)
source .device/meta/setup.sh || exit 1; source bench/device_env.sh || exit 1
A4=$HOME/.cache/msa-device/reader-v4.safetensors
for spec in "v4 gold $A4" "v3 gold model/trained/reader-smollm2-135m.safetensors" "v4 e2e $A4" "v3 e2e model/trained/reader-smollm2-135m.safetensors"; do
  set -- $spec
  timeout 140 python3 -c "from msa_agent.cli.main import main; main()" bench reader --corpus bench/devset/corpus --questions bench/devset/questions.jsonl --models tuned --adapter $3 --modes $2 --policies focused --device cuda --out $OUT/dev-$1-$2 --json > $OUT/dev-$1-$2.json 2> $OUT/dev-$1-$2.err
  echo "$1 $2 rc=$? $(wc -l < $OUT/dev-$1-$2/reader.jsonl)"
done
