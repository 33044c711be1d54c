"""One translator training of the shipped recipe, through the library rather than the CLI, for the GPU machine
(its Python has torch, sentencepiece and safetensors but not this project's CLI stack). What it runs is what

    nlp-rnn train mt --pairs DATA/mt-train.tsv --val-pairs DATA/dev.tsv [--src-col 1 --tgt-col 0] \
        --src-lang SRC --tgt-lang TGT $(defaults.MT_ARGS) --device cuda -o RUN

runs, with tokenizers given (trained beforehand on the same augmented pairs, `--tokenizers DIR`) and, for the
variant J, one joint vocabulary with shared embeddings.

    python -m benchmarks.gpu_train_mt en-es A DATA RUN --max-time 380 [--device cuda]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from nlp_rnn import runtime, tasks
from nlp_rnn.augment import Augmentation
from nlp_rnn.configs import MT_TRAINING, recipe
from nlp_rnn.corpora import read_pairs
from nlp_rnn.defaults import MT_AUGMENTATION, MT_MODEL, MT_SEED
from nlp_rnn.training import EvalEvent, Notice, Run


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.gpu_train_mt", description=__doc__.split("\n\n")[0])
    ap.add_argument("direction", choices=["en-es", "es-en"])
    ap.add_argument("variant", choices=["A", "J"])
    ap.add_argument("data", type=Path)
    ap.add_argument("run", type=Path)
    ap.add_argument("--max-time", type=float, default=380)
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--batch-tokens", type=int, default=8192)
    ap.add_argument("--device", default="cuda")
    a = ap.parse_args(argv)
    src, tgt = a.direction.split("-")
    cols = (0, 1) if src == "en" else (1, 0)
    pairs = read_pairs(a.data / "mt-train.tsv", *cols).pairs
    val = read_pairs(a.data / "dev.tsv", *cols).pairs
    joint = a.variant == "J"
    tok = a.data / "tokenizers"
    plan = tasks.TokenizerPlan(str(tok / ("joint" if joint else src)), str(tok / ("joint" if joint else tgt)),
                               placeholders=True)
    model = {**MT_MODEL, **({"share_embeddings": True} if joint else {})}
    cfg = recipe(MT_TRAINING, max_time=a.max_time, max_steps=a.max_steps, eval_every=500, keep=2, seed=MT_SEED)
    device = runtime.pick_device(a.device)
    start = time.time()

    def show(event):
        if isinstance(event, (EvalEvent, Notice)):
            print(json.dumps({"t": round(time.time() - start, 1), "run": a.run.name,
                              **({"text": event.text} if isinstance(event, Notice) else
                                 {"step": event.step, **event.metrics})}), flush=True)

    run = Run(a.run, device, on_event=show)
    summary = tasks.train_mt(pairs, val, run, model, cfg, plan, max_tokens=a.batch_tokens,
                             meta={"src_lang": src, "tgt_lang": tgt, "variant": a.variant},
                             augmentation=Augmentation(**MT_AUGMENTATION, seed=MT_SEED))
    print(json.dumps({"done": a.run.name, **{k: summary[k] for k in ("steps", "epochs", "seconds", "tokens_per_s")},
                      "best": summary["best"]}), flush=True)


if __name__ == "__main__":
    main()
