#!/usr/bin/env bash
# The shipped translators' training on one lent GPU: both directions, two variants each (A: separate 8k
# vocabularies; J: one joint 12k vocabulary with shared embeddings), four processes side by side for SECONDS,
# then benchmarks/mt_gpu_select.py picks one run per direction and packs it (fp16) into OUT.
#
#   python -m benchmarks.gpu_prepare_mt TATOEBA_TSV /tmp/gprep     # here: split, names dev set, vocabularies
#   tar -cJf .gpu/data.tar.xz -C /tmp/gprep data; pip download --no-deps -d .gpu faker
#   benchmarks/gpu_translators.sh OUT [SECONDS] [DEVICE]           # on the GPU machine, from the repo root
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=$1
SECS=${2:-360}
DEVICE=${3:-cuda}
PY=${PY:-python3}
W=${WORK:-/tmp/gpumt}
rm -rf "$W" && mkdir -p "$W/runs" "$OUT"
$PY -c "import faker" 2>/dev/null || $PY -m pip install -q --no-index --no-deps --target "$W/site" .gpu/*.whl || exit 3
export PYTHONPATH="$W/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
tar -xJf .gpu/data.tar.xz -C "$W" || exit 3
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  $PY -c "import sys, torch; print(sys.version.split()[0], torch.__version__, torch.cuda.is_available())"; } > "$W/env.log" 2>&1
finish() { cat "$W/env.log" "$W"/*.log > "$OUT/all.log" 2>/dev/null; }
trap finish EXIT
pids=()
for d in en-es es-en; do
  for v in A J; do
    $PY -m benchmarks.gpu_train_mt "$d" "$v" "$W/data" "$W/runs/$d-$v" --max-time "$SECS" --device "$DEVICE" \
      > "$W/train-$d-$v.log" 2>&1 &
    pids+=($!)
  done
done
sleep "${EARLY_CHECK:-75}"
alive=0
for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
if [ "$alive" -lt 2 ]; then echo "only $alive of 4 trainings alive after the early check; stopping"; kill "${pids[@]}" 2>/dev/null; exit 4; fi
wait
$PY -m benchmarks.mt_gpu_select "$W/runs" "$W/data" "$OUT" > "$W/select.log" 2>&1
echo "select exit $?"
ls -la "$OUT"
