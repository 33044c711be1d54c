"""The A/B behind the LM initialisation fix (BENCHMARKS.md, "The training recipe"): 150 steps at the peer's size
(LSTM 2×512, embed 128, dropout 0.2, batch 64 × 128, bf16 autocast) with one initialisation/recipe variant.

    taskset -c 0 python -m benchmarks.lm_init_ab VARIANT TRAIN.txt VAL.txt OUT_DIR

VARIANT: torch (the current init), old (embeddings N(0, 0.1²), zero biases, forget-gate bias 1),
old-emb1 (the old init with N(0, 1) embeddings), torch-oldsched (current init, the old schedule).
Prints the run summary; the per-step losses are in OUT_DIR/log.jsonl.
"""
from __future__ import annotations

import json
import sys

import torch
from torch import nn

from nlp_rnn.models.lm import CharLM
from nlp_rnn.tasks import train_lm
from nlp_rnn.training import TrainConfig


def old_init(model: CharLM, embed_std: float) -> None:
    nn.init.normal_(model.embedding.weight, std=embed_std)
    h = model.config.hidden
    for name, p in model.rnn.named_parameters():
        if "bias" in name:
            nn.init.zeros_(p)
            with torch.no_grad():
                p[h:2 * h].fill_(0.5)  # ih + hh biases: forget gate 1
    nn.init.zeros_(model.head.bias)


def main() -> None:
    variant, train, val, out = sys.argv[1:5]
    torch.set_num_threads(1)
    if variant in ("old", "old-emb1"):
        std = 0.1 if variant == "old" else 1.0
        CharLM.reset_parameters = lambda self: old_init(self, std)
    elif variant not in ("torch", "torch-oldsched"):
        sys.exit(f"unknown variant {variant!r}")
    if variant == "torch-oldsched":
        cfg = TrainConfig(lr=3e-3, warmup=20, weight_decay=0.01, clip=1.0, min_lr_ratio=0.1)
    else:
        cfg = TrainConfig(lr=2e-3, warmup=0, weight_decay=0.0, clip=5.0, min_lr_ratio=1.0)
    cfg.max_steps, cfg.eval_every = 150, 10 ** 6
    model = dict(cell="lstm", layers=2, hidden=512, embed=128, dropout=0.2)
    text = open(train, encoding="utf-8").read()
    held = open(val, encoding="utf-8").read()
    print(json.dumps(train_lm(text, held, out, model, cfg)))


if __name__ == "__main__":
    main()
