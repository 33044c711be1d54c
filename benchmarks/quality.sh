#!/usr/bin/env bash
# Quality benchmarks: fixed-budget single-core training runs, side by side with the peers, as recorded in
# BENCHMARKS.md. Usage: benchmarks/quality.sh STAGE   (stages below; each pins its jobs to one core each).
# Data: ../shared/data beside the checkout. Outputs: $OUT (default /tmp/nlp-rnn-bench).
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
DATA=${DATA:-$HERE/../shared/data}
PEERS=${PEERS:-$HERE/../shared/peers}
OUT=${OUT:-/tmp/nlp-rnn-bench}
NLP=${NLP:-nlp-rnn}
PY=${PY:-python}
mkdir -p "$OUT" && cd "$OUT"

split() {  # split FILE into train/val: the last ~10% of the characters (cut at a multiple of 1,000) is held out
  $PY - "$1" "$2" <<'PYEOF'
import sys
text = open(sys.argv[1], encoding="utf-8").read()
cut = int(len(text) * 0.9) // 1000 * 1000
open(sys.argv[2] + "_train.txt", "w", encoding="utf-8").write(text[:cut])
open(sys.argv[2] + "_val.txt", "w", encoding="utf-8").write(text[cut:])
PYEOF
}

lm() {  # lm CORE NAME CORPUS [flags...]: 15-minute single-thread run, then exact eval on the held-out part
  local core=$1 name=$2 corpus=$3; shift 3
  taskset -c "$core" $NLP --quiet train lm "${corpus}_train.txt" --val "${corpus}_val.txt" -o "lm_$name" \
    --max-time 15m --threads 1 --eval-every 1000 "$@" --json > "lm_$name.json"
  taskset -c "$core" $NLP eval lm -m "lm_$name" "${corpus}_val.txt" --threads 1 --json > "lm_$name.eval.json"
}

peer_lm() {  # peer_lm CORE NAME CORPUS: the plain PyTorch char-LSTM, same budget, core and split
  local core=$1 name=$2 corpus=$3
  taskset -c "$core" env OMP_NUM_THREADS=1 $PY "$PEERS/charlm/lstm_baseline.py" train --train "${corpus}_train.txt" \
    --out "peer_$name.pt" --budget 900 > "peer_$name.json"
  taskset -c "$core" env OMP_NUM_THREADS=1 $PY "$PEERS/charlm/lstm_baseline.py" score --ckpt "peer_$name.pt" \
    --test "$PWD/${corpus}_val.txt" >> "peer_$name.json"  # the peer names the test by its folder
}

mt() {  # mt CORE NAME [flags...]: 20-minute single-thread Multi30k de→en run, then sacrebleu on val (beam 5)
  local core=$1 name=$2; shift 2
  local M=$DATA/multi30k
  /usr/bin/time -v -o "mt_$name.time" taskset -c "$core" $NLP --quiet train mt --src "$M/train.de" --tgt "$M/train.en" --val-src "$M/val.de" \
    --val-tgt "$M/val.en" --src-lang de --tgt-lang en -o "mt_$name" --max-time 20m --threads 1 "$@" --json > "mt_$name.json"
  for beam in 1 5; do
    taskset -c "$core" $NLP eval mt -m "mt_$name" --src "$M/val.de" --ref "$M/val.en" --beam "$beam" --threads 1 \
      --batch-size 32 --json > "mt_$name.beam$beam.json"
  done
}

case "${1:-}" in
  split)          split "$2" "$3" ;;  # split FILE PREFIX: PREFIX_train.txt and PREFIX_val.txt in $OUT
  lm-size)        split "$DATA/tinyshakespeare/train.txt" ts  # choosing the default: one layer or the peer's two
                  lm 0 ts_1x512 ts --layers 1 --hidden 512 --embed 64 --dropout 0.1 &
                  lm 1 ts_2x512 ts --layers 2 --hidden 512 --embed 128 --dropout 0.2 & wait ;;
  lm-size2)       split "$DATA/tinyshakespeare/train.txt" ts  # the one-layer model overfits: wider, more dropout
                  lm 0 ts_1x768_d25 ts --layers 1 --hidden 768 --embed 64 --dropout 0.25 &
                  lm 1 ts_1x512_d25 ts --layers 1 --hidden 512 --embed 64 --dropout 0.25 & wait ;;
  lm-shakespeare) split "$DATA/tinyshakespeare/train.txt" ts
                  lm 0 ts_lstm ts --cell lstm & peer_lm 1 ts ts & wait ;;
  lm-cells)       split "$DATA/tinyshakespeare/train.txt" ts
                  lm 0 ts_gru ts --cell gru & lm 1 ts_rnn ts --cell rnn & wait ;;
  lm-seed2)       split "$DATA/tinyshakespeare/train.txt" ts  # run-to-run spread of the gru/lstm comparison
                  lm 0 ts_gru_s2 ts --cell gru --seed 2 & lm 1 ts_lstm_s2 ts --cell lstm --seed 2 & wait ;;
  lm-quijote)     split "$DATA/quijote/train.txt" q
                  lm 0 q_lstm q --cell lstm & peer_lm 1 q q & wait ;;
  lm-quijote-cells) split "$DATA/quijote/train.txt" q
                  lm 0 q_gru q --cell gru & lm 1 q_rnn q --cell rnn & wait ;;
  mt-peer)        # peak RSS of each training: "Maximum resident set size" in mt_luong.time / onmt.time
                  (cd "$PEERS/onmt" && ./run.sh 1200 "setup prep" > "$OUT/onmt.log" 2>&1)
                  mt 0 luong & (cd "$PEERS/onmt" && CORE=1 /usr/bin/time -v -o "$OUT/onmt.time" ./run.sh 1200 train \
                    >> "$OUT/onmt.log" 2>&1 && CORE=1 ./run.sh 1200 eval >> "$OUT/onmt.log" 2>&1) & wait ;;
  mt-attention)   mt 0 none --attention none & mt 1 bahdanau --attention bahdanau & wait ;;
  *) echo "usage: $0 split FILE PREFIX|lm-size|lm-size2|lm-shakespeare|lm-cells|lm-seed2|lm-quijote|lm-quijote-cells|mt-peer|mt-attention" >&2; exit 2 ;;
esac
