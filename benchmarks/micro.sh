#!/usr/bin/env bash
# Throughput micro-benchmarks (recorded in BENCHMARKS.md). Run from the repository root.
set -euo pipefail
OUT=${OUT:-/tmp/nlp-rnn-bench}
PY=${PY:-python}
B="$PY -m benchmarks"
{
taskset -c 0 $B gemm --seconds 8 --json
for t in 1 2; do
  $B lm-train --seconds 30 --threads $t --json
  $B lm-train --seconds 30 --threads $t --arch peer --precision bf16 --json
  $B mt-train --seconds 40 --threads $t --precision bf16 --json
done
taskset -c 0 $B lm-train --seconds 30 --arch peer --precision fp32 --json
taskset -c 0 $B lm-generate --seconds 10 --json
taskset -c 0 $B autocomplete --seconds 10 --json
taskset -c 0 $B mt-translate --model "$OUT/mt_luong" --json
} | tee "$OUT/micro.jsonl"
