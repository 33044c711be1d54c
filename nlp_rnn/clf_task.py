"""The text classifier's recipe: `train_clf` and what it gives the training loop, plus the scoring helpers that
`classify` and `eval clf` share (`Encoded`, `classify_encoded`, `classification_scores`)."""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .checkpoint import load_checkpoint
from .corpora import LabelledCorpus, split_labelled
from .errors import CorpusError, TokenizerError, UsageError
from .limits import check
from .models.classifier import ClassifierConfig, ClfBatch, TextClassifier, load_encoder_from_lm
from .task_runs import check_resume, check_same_data, claim, latest_or_fail, model_config, pairs_sha256, saver
from .tokenizers import EOS, Tokenizer, train_tokenizer
from .training import Notice, Run, TrainConfig, Trainer


class Encoded:
    """The token ids of many texts in one flat array plus offsets (a list of lists of Python ints would take ten
    times the memory). Each text is cut to its first `max_tokens - 1` tokens and ends with EOS, so an empty
    text is one token long and a unidirectional encoder's last step always reads the same marker."""

    def __init__(self, texts: Sequence[str], tokenizer: Tokenizer, max_tokens: int):
        pieces = [np.asarray(tokenizer.encode(t)[:max_tokens - 1] + [EOS], dtype=np.int32) for t in texts]
        self.lengths = np.fromiter((len(p) for p in pieces), dtype=np.int64, count=len(pieces))
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)])
        self.ids = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int32)

    def __len__(self) -> int:
        return len(self.lengths)

    def batch(self, index: Sequence[int], labels: Sequence[int] | None = None,
              weights: torch.Tensor | None = None) -> ClfBatch:
        """The texts at `index`, right-padded with 0, as a ClfBatch (labels -1 when none are given)."""
        lengths = torch.from_numpy(self.lengths[list(index)])
        ids = torch.zeros(len(index), int(lengths.max()) if len(index) else 1, dtype=torch.long)
        for row, i in enumerate(index):
            ids[row, :self.lengths[i]] = torch.from_numpy(self.ids[self.offsets[i]:self.offsets[i + 1]])
        y = torch.tensor([labels[i] for i in index] if labels is not None else [-1] * len(index), dtype=torch.long)
        return ClfBatch(ids, lengths, y, weights)


def length_batches(lengths: Sequence[int], batch_size: int, seed: int | None) -> list[list[int]]:
    """Batches of `batch_size` indices of similar length (little padding). With a seed: shuffled, sorted by length
    inside pools of 50 batches, cut, and the batches shuffled again — the same seed, the same batches (resume).
    Without: sorted by length (for inference, where the order is restored afterwards)."""
    order = list(range(len(lengths)))
    if seed is None:
        order.sort(key=lambda i: lengths[i])
        pools = [order]
    else:
        rng = random.Random(seed)
        rng.shuffle(order)
        pool = 50 * batch_size
        pools = [sorted(order[i:i + pool], key=lambda i: lengths[i]) for i in range(0, len(order), pool)]
    batches = [p[i:i + batch_size] for p in pools for i in range(0, len(p), batch_size)]
    if seed is not None:
        random.Random(seed + 1).shuffle(batches)
    return batches


@torch.no_grad()
def classify_encoded(model: TextClassifier, encoded: Encoded, batch_size: int = 64, device="cpu") -> torch.Tensor:
    """Class probabilities (N, C) of every encoded text, in order; batches of similar length."""
    model.eval()
    out = torch.empty(len(encoded), model.config.num_classes)
    for index in length_batches(encoded.lengths, batch_size, seed=None):
        b = encoded.batch(index).to(device)
        out[index] = model.predict_proba(b.ids, b.lengths).float().cpu()
    return out


def classification_scores(gold: Sequence[int], pred: Sequence[int], labels: Sequence[str]) -> dict:
    """Accuracy, macro-F1, per-label precision/recall/F1/support and the confusion matrix (rows: the true label,
    columns: the predicted one, in the order of `labels`). Macro-F1 averages the labels that occur among the true
    or the predicted ones; a precision or recall with nothing to divide by is 0."""
    n = len(labels)
    confusion = [[0] * n for _ in range(n)]
    for g, p in zip(gold, pred):
        confusion[g][p] += 1
    per_label, f1s = {}, []
    for c, label in enumerate(labels):
        tp = confusion[c][c]
        support, predicted = sum(confusion[c]), sum(row[c] for row in confusion)
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label[label] = {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
                            "support": support}
        if support or predicted:
            f1s.append(f1)
    total = len(gold)
    return {"accuracy": round(sum(confusion[c][c] for c in range(n)) / max(1, total), 4),
            "macro_f1": round(sum(f1s) / max(1, len(f1s)), 4), "examples": total, "per_label": per_label,
            "labels": list(labels), "confusion": confusion}


def label_order(labels) -> list[str]:
    """The distinct labels, sorted: numbers by value ("2" before "10"), then the rest alphabetically."""
    return sorted(set(labels), key=lambda s: (0, int(s), "") if s.isdigit() else (1, 0, s))


class ClfTask:
    carries_state = False

    def __init__(self, train: Encoded, train_labels: Sequence[int], val: Encoded, val_labels: Sequence[int],
                 labels: Sequence[str], batch_size: int, seed: int, weights: torch.Tensor | None = None,
                 device="cpu"):
        self.train, self.train_labels, self.val, self.val_labels = train, list(train_labels), val, list(val_labels)
        self.labels, self.batch_size, self.seed, self.weights, self.device = labels, batch_size, seed, weights, device
        self._epoch, self._batches = None, []

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        if self._epoch != epoch:
            self._epoch, self._batches = epoch, length_batches(self.train.lengths, self.batch_size, self.seed + epoch)
        return self._batches

    def steps_per_epoch(self, epoch: int = 0) -> int:
        return len(self._epoch_batches(epoch))

    def batch(self, epoch: int, i: int) -> ClfBatch:
        return self.train.batch(self._epoch_batches(epoch)[i], self.train_labels, self.weights)

    def evaluate(self, model) -> dict:
        proba = classify_encoded(model, self.val, device=self.device)
        gold = torch.tensor(self.val_labels)
        loss = float(torch.nn.functional.nll_loss(proba.clamp_min(1e-12).log(), gold))
        scores = classification_scores(self.val_labels, proba.argmax(-1).tolist(), self.labels)
        return {"val_loss": round(loss, 4), "val_accuracy": scores["accuracy"], "val_macro_f1": scores["macro_f1"],
                "score": scores["macro_f1"]}


@dataclass
class ClfData:
    """How a classifier's examples are read, batched and weighed (saved in the checkpoint's meta)."""

    batch_size: int = 32          # examples per optimizer step
    max_tokens: int = 400         # a longer text keeps its first tokens
    val_fraction: float = 0.1     # held out, stratified by label, when no validation set is given
    class_weights: str = "none"   # "auto": class c weighs n / (classes · n_c) in the loss, so each class counts alike


@dataclass
class ClfTokenizerPlan:
    """Where `train clf` gets its tokenizer: an existing directory, or one trained on the training texts."""

    directory: str | None = None
    kind: str = "char"            # char, or sentencepiece unigram or bpe subwords
    vocab_size: int = 8000
    min_freq: int = 1             # char: rarer characters become <unk>


def check_clf_options(model_options: dict, data: ClfData) -> None:
    """Fail on bad flags before any corpus is read or any output printed."""
    for name in ("batch_size", "max_tokens", "val_fraction"):
        check(name, getattr(data, name))
    if data.class_weights not in ("none", "auto"):
        raise UsageError(f"--class-weights must be none or auto, not {data.class_weights!r}")
    model_config(ClassifierConfig, vocab_size=8, num_classes=2,
                  **{k: v for k, v in model_options.items() if v is not None})


def balanced_weights(label_ids: Sequence[int], num_classes: int) -> list[float]:
    """n / (classes · n_c) for each class c (King & Zeng 2001; scikit-learn's "balanced"): the weighted loss
    counts every class as much as it would in a balanced sample."""
    counts = np.bincount(np.asarray(label_ids, dtype=np.int64), minlength=num_classes)
    return [round(len(label_ids) / (num_classes * max(1, int(c))), 6) for c in counts]


def _clf_tokenizer(texts: Sequence[str], plan: ClfTokenizerPlan, where: str) -> Tokenizer:
    from .tokenizers import load_tokenizer

    if plan.directory:
        return load_tokenizer(plan.directory)
    if plan.kind not in ("char", "unigram", "bpe"):
        raise UsageError(f"--tokenizer-type must be char, unigram or bpe, not {plan.kind!r}")
    try:
        return train_tokenizer(texts, plan.kind, plan.vocab_size, plan.min_freq)
    except TokenizerError as e:
        raise CorpusError(where, str(e)) from None


def train_clf(train: LabelledCorpus, val: LabelledCorpus | None, run: Run | str | Path, model_options: dict,
              train_config: TrainConfig, data: ClfData = ClfData(), tokenizer: ClfTokenizerPlan = ClfTokenizerPlan(),
              init_lm: str | Path | None = None, meta: dict | None = None) -> dict:
    """Train a text classifier on labelled examples, selecting by validation macro-F1; returns the run summary.

    Without `val`, `data.val_fraction` of each label's examples is held out (seeded by the training seed).
    `init_lm` starts the encoder from a character language model's embedding and recurrent layers (its
    tokenizer too; the cell, embed and hidden sizes default to the LM's). Model options left None take the
    `ClassifierConfig` defaults.
    """
    run = run if isinstance(run, Run) else Run(run)
    check_clf_options(model_options, data)
    where = train.stats.files[0] if train.stats.files else "training data"
    if val is None:
        train, val = split_labelled(train, data.val_fraction, train_config.seed)
    labels = label_order(train.labels)
    if len(labels) < 2:
        raise CorpusError(where, f"only one label ({labels[0]!r}) in the training data: a classifier needs examples "
                                 f"of at least two")
    unseen = label_order(set(val.labels) - set(labels))
    if unseen:
        raise CorpusError(val.stats.files[0] if val.stats.files else None,
                          f"validation label {unseen[0]!r} never occurs in the training data "
                          f"(training labels: {', '.join(labels[:20])})")
    lm = load_checkpoint(init_lm, kind="lm") if init_lm is not None and not run.resume else None
    if lm is not None:
        if tokenizer.directory or tokenizer.kind != "char":
            raise UsageError("--init-lm reads text with the language model's own characters: leave out "
                             "--tokenizer and --tokenizer-type")
        lm_cfg = lm.model.config
        model_options = {**{"cell": lm_cfg.cell, "embed": lm_cfg.embed, "hidden": lm_cfg.hidden}, **{
            k: v for k, v in model_options.items() if v is not None}}
    model_options = {k: v for k, v in model_options.items() if v is not None}
    fingerprint = pairs_sha256(list(zip(train.texts, train.labels)))
    with claim(run) as rundir:
        if run.resume:
            loaded = load_checkpoint(latest_or_fail(run.dir), kind="clf")
            tok, cfg = loaded.tokenizer, loaded.model.config
            check_resume(run, loaded, model_options, {"batch_size": data.batch_size, "max_tokens": data.max_tokens})
            check_same_data(run, loaded.meta, fingerprint)
            if loaded.meta.get("labels") != labels:
                raise UsageError(f"--resume: the labels differ from those of the run in {run.dir} "
                                 f"({', '.join(loaded.meta.get('labels', []))}); start a new run with another -o")
        else:
            tok = lm.tokenizer if lm is not None else _clf_tokenizer(train.texts, tokenizer, where)
            cfg = model_config(ClassifierConfig, vocab_size=tok.vocab_size, num_classes=len(labels), **model_options)
        ids = {label: i for i, label in enumerate(labels)}
        train_y, val_y = [ids[x] for x in train.labels], [ids[x] for x in val.labels]
        weights = balanced_weights(train_y, len(labels)) if data.class_weights == "auto" else None
        torch.manual_seed(train_config.seed)
        model = TextClassifier(cfg).to(run.device)
        if lm is not None:
            try:
                load_encoder_from_lm(model, {k: v.to(run.device) for k, v in lm.model.state_dict().items()})
            except ValueError as e:
                raise UsageError(f"--init-lm {init_lm}: {e}") from None
        if run.on_event is not None:
            counts = ", ".join(f"{label} {n:,}" for label, n in train.counts().items())
            run.on_event(Notice(f"training on {len(train.texts):,} examples ({counts}), validating on "
                                f"{len(val.texts):,}; {tok.vocab_size:,} {tok.kind} tokens"
                                + (f"; encoder from {init_lm}" if lm is not None else "")))
        task = ClfTask(Encoded(train.texts, tok, data.max_tokens), train_y, Encoded(val.texts, tok, data.max_tokens),
                       val_y, labels, data.batch_size, train_config.seed,
                       None if weights is None else torch.tensor(weights), run.device)
        meta = {**(meta or {}), "task": "clf", "labels": labels, "class_weights": weights,
                "label_counts": train.counts(), "batch_size": data.batch_size, "max_tokens": data.max_tokens,
                "train_examples": len(train.texts), "val_examples": len(val.texts), "data_sha256": fingerprint,
                **({"init_lm": str(init_lm)} if init_lm is not None else {})}
        trainer = Trainer(model, task, train_config, run, saver(model, {"tokenizer": tok}, meta), rundir)
        if run.resume:
            trainer.resume()
        return trainer.fit()


