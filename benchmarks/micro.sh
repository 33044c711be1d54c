#!/usr/bin/env bash
# The speed benchmarks of BENCHMARKS.md in one go. Run from the repository root with the project installed;
# mt-translate needs a trained de→en model (benchmarks/quality.sh mt-peer writes $OUT/mt_luong).
set -euo pipefail
OUT=${OUT:-/tmp/nlp-rnn-bench}
B="${PY:-python} -m benchmarks"
ONE="taskset -c 1"
{
$ONE $B gemm --seconds 8 --json
for p in fp32 bf16; do
  $ONE $B lm-train --seconds 30 --precision $p --json
  $ONE $B lm-train --seconds 30 --arch peer --precision $p --json
  $B mt-train --seconds 40 --threads 1 --precision $p --json
done
$B lm-train --seconds 30 --threads 2 --precision bf16 --json
$B mt-train --seconds 40 --threads 2 --precision bf16 --json
$ONE $B lm-generate --seconds 10 --json
$ONE $B lm-generate --seconds 10 --arch peer --json
$ONE $B autocomplete --seconds 10 --json
$ONE $B mt-translate --model "$OUT/mt_luong" --json
$ONE $B mt-translate --model "$OUT/mt_luong" --precision bf16 --json
} | tee "$OUT/micro.jsonl"
