"""Everything the translators' GPU training needs, made on this machine so the lent GPU only trains: the Tatoeba
split (`tatoeba.prepare`), the names dev set, and the sentencepiece vocabularies of the shipped recipe trained on
the augmented en→es pairs (separate en and es, and one joint vocabulary for the variant J), packed small enough to
travel (`.gpu/`, ignored by git).

    python -m benchmarks.gpu_prepare_mt TATOEBA_TSV OUT_DIR
"""
from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from nlp_rnn.augment import Augmentation, augment
from nlp_rnn.corpora import read_pairs
from nlp_rnn.defaults import CORPORA, MT_AUGMENTATION, MT_SEED
from nlp_rnn.spans import PLACEHOLDERS
from nlp_rnn.tatoeba import prepare
from nlp_rnn.tokenizers import train_tokenizer

from .names_dev import swap

JOINT_VOCAB = 12000


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.gpu_prepare_mt", description=__doc__.split("\n\n")[0])
    ap.add_argument("tsv", type=Path)
    ap.add_argument("out", type=Path)
    a = ap.parse_args(argv)
    work = a.out / "work"
    data = prepare(a.tsv, work, CORPORA)
    keep = a.out / "data"
    (keep / "tokenizers").mkdir(parents=True, exist_ok=True)
    for name in ("mt-train.tsv", "dev.tsv", "test.tsv"):
        shutil.copy(work / name, keep / name)
    dev = read_pairs(keep / "dev.tsv", 0, 1).pairs
    (keep / "names-dev.tsv").write_text("".join("\t".join(r) + "\n" for r in swap(dev, 999, 500)), encoding="utf-8")
    t = time.time()
    pairs = augment(read_pairs(data["mt_train"], 0, 1).pairs, Augmentation(**MT_AUGMENTATION, seed=MT_SEED))
    print(f"{len(pairs):,} augmented pairs in {time.time() - t:.0f} s", flush=True)
    options = dict(byte_fallback=True, symbols=PLACEHOLDERS)
    for lang, col in (("en", 0), ("es", 1)):
        tok = train_tokenizer([p[col] for p in pairs], "unigram", 8000, **options)
        (keep / "tokenizers" / lang).mkdir(exist_ok=True)
        tok.save(keep / "tokenizers" / lang)
    joint = train_tokenizer([p[0] for p in pairs] + [p[1] for p in pairs], "unigram", JOINT_VOCAB, **options)
    (keep / "tokenizers" / "joint").mkdir(exist_ok=True)
    joint.save(keep / "tokenizers" / "joint")
    print(f"tokenizers written to {keep / 'tokenizers'} ({time.time() - t:.0f} s)")


if __name__ == "__main__":
    main()
