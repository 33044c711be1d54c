"""The baseline a text classifier is measured against: TF-IDF features and logistic regression on SST-2.

Word 1-2 grams (the data is already tokenized, so tokens are split on whitespace and keep `n't`) and character
2-5 grams within word boundaries, both with sublinear tf, feed one LogisticRegression. With several `--C` values
the regularization is chosen on a validation slice carved from train, never on dev: `--val-fraction` of the train
rows of at least `--val-min-words` words (sentence-like, as dev is), and because SST-2's train rows are phrases of
the same sentences, every train row that lies inside a validation row or contains one is left out of that fit.
The chosen C is then refitted on all of train and scored once on dev.

scikit-learn is not a dependency of nlp-rnn; this script runs from a separate venv:

    python3 -m venv /work/peers-venv && /work/peers-venv/bin/pip install scikit-learn
    OMP_NUM_THREADS=1 taskset -c 0 /work/peers-venv/bin/python benchmarks/sst2_tfidf.py \
        --train /work/shared/data/sst2/train.tsv --dev /work/shared/data/sst2/dev.tsv

Prints `RESULT {json}`: dev accuracy and macro-F1, wall and CPU seconds (all of it: selection, final fit and
scoring; `seconds_final_fit` is the last two), the chosen C and every setting. With scikit-learn 1.9.1 this gave
dev accuracy 0.8268, macro-F1 0.8262 (C = 4) in 38 CPU-seconds.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time

import numpy as np
import sklearn
from scipy.sparse import hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

WINDOW = 10  # validation rows are matched inside longer train rows by their first WINDOW words


def read_tsv(path: str) -> tuple[list[str], list[int]]:
    """`sentence<TAB>label` rows after a header line."""
    texts, labels = [], []
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        if header[:2] != ["sentence", "label"]:
            sys.exit(f"{path}:1: expected the header 'sentence<TAB>label', got {header!r}")
        for n, line in enumerate(f, start=2):
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 2 or not parts[1].strip().lstrip("-").isdigit():
                sys.exit(f"{path}:{n}: expected 'sentence<TAB>label' with an integer label, got {line.strip()!r}")
            texts.append(parts[0])
            labels.append(int(parts[1]))
    if not texts:
        sys.exit(f"{path}: no rows after the header")
    return texts, labels


def carve_validation(texts: list[str], fraction: float, min_words: int, seed: int) -> tuple[list[int], list[int]]:
    """Indices (fit, val): val is a random `fraction` of the rows of ≥ `min_words` words; fit leaves out every row
    that is a word span of a val row or has one as a word span, so no phrase of a val sentence is fitted."""
    words = [t.split() for t in texts]
    candidates = [i for i, w in enumerate(words) if len(w) >= max(min_words, WINDOW)]
    val = sorted(random.Random(seed).sample(candidates, max(1, int(fraction * len(candidates)))))
    spans = {" ".join(words[i][a:b]) for i in val
             for a in range(len(words[i])) for b in range(a + 1, len(words[i]) + 1)}
    starts: dict[tuple, list[list[str]]] = {}  # a val row's first WINDOW words → the val rows starting so
    for i in val:
        starts.setdefault(tuple(words[i][:WINDOW]), []).append(words[i])
    val_set = set(val)

    def related(i: int) -> bool:
        if " ".join(words[i]) in spans:
            return True
        w = words[i]
        for a in range(len(w) - WINDOW + 1):
            if any(w[a:a + len(v)] == v for v in starts.get(tuple(w[a:a + WINDOW]), ())):
                return True
        return False

    fit = [i for i in range(len(texts)) if i not in val_set and not related(i)]
    return fit, val


class Features:
    """Word 1-2 gram and char 2-5 gram TF-IDF, side by side."""

    def __init__(self, min_df: int):
        common = dict(sublinear_tf=True, min_df=min_df, dtype=np.float32)
        self.word = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), token_pattern=r"\S+", lowercase=False,
                                    **common)
        self.char = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), lowercase=False, **common)

    def fit_transform(self, texts):
        return hstack([self.word.fit_transform(texts), self.char.fit_transform(texts)]).tocsr()

    def transform(self, texts):
        return hstack([self.word.transform(texts), self.char.transform(texts)]).tocsr()


def fit(X, y, C: float, seed: int) -> LogisticRegression:
    return LogisticRegression(C=C, solver="liblinear", max_iter=1000, random_state=seed).fit(X, y)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", required=True)
    ap.add_argument("--dev", required=True)
    ap.add_argument("--C", default="1,2,4,8,16",
                    help="one value, or a comma-separated grid chosen on the validation slice")
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--val-min-words", type=int, default=10)
    ap.add_argument("--min-df", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    grid = [float(c) for c in args.C.split(",")]
    started, cpu_started = time.monotonic(), time.process_time()
    texts, labels = read_tsv(args.train)
    dev_texts, dev_labels = read_tsv(args.dev)

    selection = {}
    if len(grid) > 1:
        fit_idx, val_idx = carve_validation(texts, args.val_fraction, args.val_min_words, args.seed)
        feats = Features(args.min_df)
        X_fit = feats.fit_transform([texts[i] for i in fit_idx])
        X_val = feats.transform([texts[i] for i in val_idx])
        y_fit, y_val = [labels[i] for i in fit_idx], [labels[i] for i in val_idx]
        val_acc = {c: accuracy_score(y_val, fit(X_fit, y_fit, c, args.seed).predict(X_val)) for c in grid}
        best = max(grid, key=lambda c: (val_acc[c], -c))  # ties go to the stronger regularization
        selection = {"val_rows": len(val_idx), "fit_rows": len(fit_idx),
                     "left_out_related": len(texts) - len(fit_idx) - len(val_idx),
                     "val_accuracy": {str(c): round(a, 4) for c, a in val_acc.items()}}
    else:
        best = grid[0]
    selected_at = time.monotonic()

    feats = Features(args.min_df)
    X = feats.fit_transform(texts)
    model = fit(X, labels, best, args.seed)
    pred = model.predict(feats.transform(dev_texts))
    done, cpu = time.monotonic(), time.process_time() - cpu_started

    result = {
        "model": "tfidf-logreg", "accuracy": round(accuracy_score(dev_labels, pred), 4),
        "macro_f1": round(f1_score(dev_labels, pred, average="macro"), 4),
        "seconds": round(done - started, 1), "cpu_seconds": round(cpu, 1),
        "seconds_final_fit": round(done - selected_at, 1),
        "C": best, "grid": grid, "selection": selection, "train_rows": len(texts), "dev_rows": len(dev_texts),
        "features": X.shape[1],
        "settings": {"word_ngrams": [1, 2], "word_tokens": "whitespace", "char_ngrams": [2, 5],
                     "char_analyzer": "char_wb", "sublinear_tf": True, "min_df": args.min_df, "solver": "liblinear",
                     "val_fraction": args.val_fraction, "val_min_words": args.val_min_words, "seed": args.seed},
        "versions": {"sklearn": sklearn.__version__}, "threads": os.environ.get("OMP_NUM_THREADS"),
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
