"""Does averaging a translator run's last checkpoints pay? Dev BLEU of the best checkpoint against the mean of
the last 2 and 3 saved ones, greedy and beam 5, with the weights rounded to fp16 as they ship.

    python -m benchmarks.average_check RUN_DIR DEV.tsv --src-col 0 --tgt-col 1

RUN_DIR is a `train mt` run directory (it keeps its last `--keep` checkpoints); DEV.tsv holds source<TAB>target
pairs the run did not train on. Prints one JSON line per (checkpoints averaged, beam).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from nlp_rnn.checkpoint import load_checkpoint, resolve_model_dir
from nlp_rnn.corpora import read_pairs
from nlp_rnn.evaluate import mt_scores
from nlp_rnn.publish import averaged
from nlp_rnn.search import translate_all


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("dev", type=Path)
    ap.add_argument("--src-col", type=int, default=0)
    ap.add_argument("--tgt-col", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pairs = read_pairs(args.dev, args.src_col, args.tgt_col).pairs
    for n in (1, 2, 3):
        loaded = averaged(args.run, n) if n > 1 else load_checkpoint(resolve_model_dir(args.run))
        model = loaded.model.half().float()  # what shipping as fp16 keeps
        for beam in (1, 5):
            hyps = translate_all(model, loaded.tokenizers["src_tokenizer"], loaded.tokenizers["tgt_tokenizer"],
                                 [s for s, _ in pairs], beam=beam)
            scores = mt_scores([h.text for h in hyps], [t for _, t in pairs])
            print(json.dumps({"average_last": n, "beam": beam, "dev_bleu": scores["bleu"],
                              "dev_chrf": scores["chrf"]}), flush=True)


if __name__ == "__main__":
    main()
