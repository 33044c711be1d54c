"""Give the shipped translators (trained before `train mt` kept a shortlist) the shortlist of their own training
pairs, and measure what it changes on the held-out Tatoeba test split: BLEU and chrF with and without it (beam 5),
and one sentence's beam-5 latency through the application layer.

    python -m benchmarks.shipped_shortlist ../shared/data/tatoeba-eng-spa/train.tsv WORK [--write]

Without --write it only measures (the shortlist is built in memory); with it, the file is added to
checkpoints/mt-*/ (the same counts `train mt` makes: Dice over the training pairs, 64 per source word + 256).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from nlp_rnn.checkpoint import SHORTLIST_FILE, load_checkpoint
from nlp_rnn.corpora import read_pairs
from nlp_rnn.data import encode_pairs
from nlp_rnn.defaults import CORPORA, MT_DIRECTIONS, checkpoints_dir
from nlp_rnn.evaluate import mt_scores
from nlp_rnn.models.fast_decode import FastDecoder
from nlp_rnn.models.shortlist import Shortlist
from nlp_rnn.search import translate_all
from nlp_rnn.tatoeba import prepare


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.shipped_shortlist", description=__doc__.split("\n\n")[0])
    ap.add_argument("tsv", type=Path)
    ap.add_argument("work", type=Path)
    ap.add_argument("--write", action="store_true", help="add shortlist.safetensors to checkpoints/mt-*/")
    ap.add_argument("--latency-sentences", type=int, default=100)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    data = prepare(a.tsv, a.work, CORPORA)
    train = read_pairs(data["mt_train"], 0, 1).pairs
    test = read_pairs(data["mt_test"], 0, 1).pairs
    for src, tgt in MT_DIRECTIONS:
        path = checkpoints_dir() / f"mt-{src}-{tgt}"
        loaded = load_checkpoint(path, kind="mt")
        st, tt = loaded.tokenizers["src_tokenizer"], loaded.tokenizers["tgt_tokenizer"]
        flip = (lambda p: p) if src == "en" else (lambda p: (p[1], p[0]))  # noqa: E731
        s_ids, t_ids = encode_pairs([flip(p) for p in train], st, tt)
        shortlist = Shortlist.build(s_ids, t_ids, st.vocab_size, tt.vocab_size)
        sources, refs = zip(*[flip(p) for p in test])
        fd = FastDecoder(loaded.model)
        out = {"model": path.name, "train_pairs": len(train), "test_pairs": len(test)}
        for name, sl in (("full", None), ("shortlist", shortlist)):
            t0 = time.thread_time()
            hyps = translate_all(loaded.model, st, tt, list(sources), beam=5, fast_decoder=fd, shortlist=sl)
            seconds = time.thread_time() - t0
            scores = mt_scores([h.text for h in hyps], list(refs))
            lat = []
            for line in sources[:a.latency_sentences]:
                t1 = time.thread_time()
                translate_all(loaded.model, st, tt, [line], beam=5, batch_size=1, fast_decoder=fd, shortlist=sl)
                lat.append(time.thread_time() - t1)
            out.update({f"{name}_bleu": scores["bleu"], f"{name}_chrf": scores["chrf"],
                        f"{name}_sent_per_cpu_s": round(len(sources) / seconds, 1),
                        f"{name}_batch1_beam5_ms": round(1000 * statistics.median(lat), 2)})
        if a.write:
            save_file(shortlist.tensors(), str(path / SHORTLIST_FILE))
            out["written"] = str(path / SHORTLIST_FILE)
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
