#!/usr/bin/env bash
# SST-2 dev accuracy of `train clf` beside TF-IDF + logistic regression, each pinned to one core (see sst2.py).
#   CORE=1 BUDGET=900 OUT=/tmp/sst2 benchmarks/sst2.sh
# Needs ../shared/data/sst2 (or SST2_DIR) and, for the peer, scikit-learn in /work/peers-venv (or PEER_PYTHON).
set -euo pipefail
cd "$(dirname "$0")/.."
CORE=${CORE:-1}
BUDGET=${BUDGET:-900}
OUT=${OUT:-/tmp/sst2}
PY=${PY:-.venv/bin/python}
mkdir -p "$OUT"
run() { taskset -c "$CORE" "$PY" -m benchmarks.sst2 "$@" | grep '^RESULT ' | tee -a "$OUT/results.jsonl"; }

run peer
for recipe in articles best; do
    run run "$recipe" --budget "$BUDGET" --out "$OUT"
    run latency "$OUT/$recipe/model"
done
