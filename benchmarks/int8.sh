#!/usr/bin/env bash
# --quantize int8 against fp32, each pair run at the same time on the two cores (same conditions for both).
# Usage: benchmarks/int8.sh LM_DIR MT_DIR VAL_TXT   (a trained tiny-shakespeare LM, a Multi30k de→en translator,
# the LM's held-out text). Results: $OUT/int8.jsonl.
set -euo pipefail
LM=$1 MT=$2 VAL=$3
OUT=${OUT:-/tmp/nlp-rnn-bench}
B="${PY:-python} -m benchmarks"
NLP=${NLP:-nlp-rnn}
pair() {  # pair CMD...: the command fp32 on core 0 and int8 on core 1, together
  taskset -c 0 "$@" --quantize none > "$OUT/int8.a" & taskset -c 1 "$@" --quantize int8 > "$OUT/int8.b" & wait
  cat "$OUT/int8.a" "$OUT/int8.b"
}
{
pair $B mt-translate --model "$MT" --json
pair $B lm-generate --model "$LM" --seconds 15 --json
pair $B autocomplete --model "$LM" --seconds 10 --json
pair $NLP eval lm -m "$LM" "$VAL" --threads 1 --json
} | tee "$OUT/int8.jsonl"
