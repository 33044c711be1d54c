#!/usr/bin/env bash
# GPU figures of BENCHMARKS.md ("On a GPU"): speed benchmarks on CUDA, then short quality runs of the LM and the
# translator side by side on the one GPU. Usage: benchmarks/gpu.sh [OUT]  (data: ../shared/data, or $DATA).
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
DATA=${DATA:-$HERE/../shared/data}
OUT=${1:-/tmp/nlp-rnn-gpu}
PY=${PY:-python3}
mkdir -p "$OUT"
cd "$HERE"
B="$PY -m benchmarks --data $DATA --device cuda --json"
N="$PY -m nlp_rnn"
M=$DATA/multi30k

# the held-out split of quality.sh: last ~10% of tiny-shakespeare
OUT="$OUT" PY="$PY" "$HERE/benchmarks/quality.sh" split "$DATA/tinyshakespeare/train.txt" ts

{
  for p in fp32 bf16; do $B lm-train --precision $p --seconds 12; done
  for p in fp32 bf16; do $B lm-train --precision $p --seconds 12 --streams 512; done
  for p in fp32 bf16; do $B lm-train --arch peer --precision $p --seconds 12; done
  $B lm-train --arch peer --precision bf16 --seconds 12 --streams 512
  for p in fp32 bf16; do $B mt-train --precision $p --seconds 15; done
  for p in fp32 bf16; do $B mt-train --precision $p --seconds 15 --batch-tokens 8192; done
} > "$OUT/speed.jsonl"

# quality: the translator (peer architecture) and the peer-size LM, 210 s each, at the same time on one GPU
$N --quiet train mt --src $M/train.de --tgt $M/train.en --val-src $M/val.de --val-tgt $M/val.en --src-lang de \
  --tgt-lang en -o "$OUT/mt" --max-time 210s --device cuda --batch-tokens 8192 --lr 2e-3 --json > "$OUT/mt.json" &
$N --quiet train lm "$OUT/ts_train.txt" --val "$OUT/ts_val.txt" -o "$OUT/lm" --max-time 210s --device cuda \
  --layers 2 --hidden 512 --embed 128 --dropout 0.2 --batch-size 128 --eval-every 500 --json > "$OUT/lm.json" &
wait
$N eval lm -m "$OUT/lm" "$OUT/ts_val.txt" --device cuda --json > "$OUT/lm.eval.json"
for b in 1 5; do
  $N eval mt -m "$OUT/mt" --src $M/val.de --ref $M/val.en --beam $b --batch-size 32 --device cuda --json > "$OUT/mt.beam$b.json"
done
for p in fp32 bf16; do $B mt-translate --model "$OUT/mt" --precision $p > "$OUT/mt-translate.$p.json"; done
# a bigger LM with early stopping: how fast a GPU reaches the CPU's 15-minute quality
$N --quiet train lm "$OUT/ts_train.txt" --val "$OUT/ts_val.txt" -o "$OUT/lm_big" --max-time 120s --device cuda \
  --layers 2 --hidden 1024 --embed 128 --dropout 0.3 --batch-size 128 --eval-every 200 --patience 4 --json > "$OUT/lm_big.json"
$N eval lm -m "$OUT/lm_big" "$OUT/ts_val.txt" --device cuda --json > "$OUT/lm_big.eval.json"
