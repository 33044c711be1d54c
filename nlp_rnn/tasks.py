"""What each model gives the training loop, and the three recipes the `train` commands run.

`train_lm`, `train_mt` and `train_clf` take corpora (strings) and plain option values, build or reload tokenizers
and the model, and hand a task to `training.Trainer`. The CLI turns flags into these calls and knows nothing more.
"""
from __future__ import annotations

import contextlib
import hashlib
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .checkpoint import load_checkpoint, read_pointer, save_checkpoint
from .corpora import LabelledCorpus, TextSource, split_labelled
from .data import LMStream, as_long, bucket_batches, collate, encode_pairs, split_ids, spread_holdout, write_ids
from .distributed import agree
from .errors import CheckpointError, CorpusError, NlpRnnError, TokenizerError, TrainingStopped, UsageError
from .evaluate import LN2, lm_nll, mt_scores, summed_nll
from .models import CharLM, LMConfig, Seq2Seq, Seq2SeqConfig
from .models.classifier import ClassifierConfig, ClfBatch, TextClassifier, load_encoder_from_lm
from .search import translate_all
from .tokenizers import EOS, PAD, CharTokenizer, Tokenizer, train_tokenizer
from .limits import check
from .rundir import RunDir
from .training import Notice, Run, TrainConfig, Trainer


def _model_config(cls, **kwargs):
    try:
        return cls(**kwargs).validate()
    except ValueError as e:
        raise UsageError(str(e)) from None


# ---------------------------------------------------------------------------------------------- language model

# Validation reads at most this many characters: a stable figure in seconds, never a pass that dwarfs training
VAL_CAP = 250_000


class LMTask:
    carries_state = True

    def __init__(self, train_ids: torch.Tensor, val_ids: torch.Tensor, batch_size: int, bptt: int,
                 eval_rows: int = 16, shard: tuple[int, int] = (0, 1)):
        rank, world = shard
        if world > 1:  # rank r takes rows r·B/N … (r+1)·B/N − 1 of the global (B, L) layout
            if batch_size % world:
                raise UsageError(f"--batch-size {batch_size} must be divisible by the {world} processes")
            batch_size //= world
            row_len = len(train_ids) // (batch_size * world)
            train_ids = train_ids[rank * batch_size * row_len:(rank + 1) * batch_size * row_len]
        try:
            self.stream = LMStream(train_ids, batch_size, bptt)
        except ValueError:
            raise CorpusError(None, f"training text of {len(train_ids)} characters is too short for "
                                    f"--batch-size {batch_size}; use a smaller batch or more text") from None
        self.val_ids, self.eval_rows = as_long(val_ids[:VAL_CAP]), eval_rows

    def steps_per_epoch(self, epoch: int = 0) -> int:
        return len(self.stream)

    def batch(self, epoch: int, i: int):
        return self.stream.window(i)

    def evaluate(self, model) -> dict:
        nll, count = lm_nll(model, self.val_ids, rows=self.eval_rows)
        nats = nll / max(1, count)
        return {"val_nats_per_char": round(nats, 4), "val_bits_per_char": round(nats / LN2, 4), "score": -nats}


@dataclass
class LMData:
    """How the language model's text is laid out for training (saved in the checkpoint's meta)."""

    batch_size: int = 64          # parallel streams per optimizer step, across all processes
    bptt: int = 128               # truncated-BPTT window in characters
    min_freq: int = 1             # rarer characters become <unk>
    val_fraction: float = 0.05    # held out when no validation text is given (up to VAL_CAP characters)
    val_blocks: int = 10          # ... in this many blocks spread over the corpus


def check_lm_options(model_options: dict, data: LMData) -> None:
    """Fail on bad flags before any corpus is read or any output printed."""
    for name in ("batch_size", "bptt", "min_freq", "val_fraction", "val_blocks"):
        check(name, getattr(data, name))
    _model_config(LMConfig, vocab_size=1, **model_options)


def train_lm(text: str | TextSource, val_text: str | TextSource | None, run: Run | str | Path, model_options: dict,
             train_config: TrainConfig, data: LMData = LMData(), meta: dict | None = None) -> dict:
    """Train a character language model; returns the run summary.

    The text is encoded chunk by chunk into a memory-mapped id file in the run directory, so corpora larger
    than memory train in bounded memory. Without validation text, the last `val_fraction` is held out.
    """
    run = run if isinstance(run, Run) else Run(run)
    check_lm_options(model_options, data)
    source = TextSource.from_text(text) if isinstance(text, str) else text
    val_source = TextSource.from_text(val_text) if isinstance(val_text, str) else val_text
    with _claim(run) as rundir:
        if run.resume:
            loaded = load_checkpoint(_latest_or_fail(run.dir), kind="lm")
            tokenizer, cfg = loaded.tokenizer, loaded.model.config
            _check_resume(run, loaded, model_options, {"batch_size": data.batch_size, "bptt": data.bptt})
        else:
            try:
                tokenizer = CharTokenizer.build(source.chunks(), min_freq=data.min_freq)
            except TokenizerError:
                raise CorpusError(source.description, "corpus is empty (no non-blank text)" if data.min_freq <= 1 else
                                  f"no character occurs at least --min-freq {data.min_freq} times") from None
            if all(ch.isspace() for ch in tokenizer.chars):
                raise CorpusError(source.description, "corpus is empty (no non-blank text)")
            cfg = _model_config(LMConfig, vocab_size=tokenizer.vocab_size, **model_options)
        (run.dir / "data").mkdir(exist_ok=True)
        rank = f".rank{run.shard[0]}" if run.shard[1] > 1 else ""  # each process writes its own copy
        ids = write_ids(source.chunks(), tokenizer, run.dir / "data" / f"train{rank}.ids")
        val_ids = (write_ids(val_source.chunks(), tokenizer, run.dir / "data" / f"val{rank}.ids")
                   if val_source is not None else None)
        fingerprint = file_sha256(run.dir / "data" / f"train{rank}.ids")
        if run.resume:
            _check_same_data(run, loaded.meta, fingerprint)
        where = ""
        if val_ids is None:  # hold out spread-out blocks: validation should look like unseen text, not one slice
            fraction = min(int(len(ids) * data.val_fraction), VAL_CAP) / max(1, len(ids))
            held = spread_holdout(len(ids), fraction, blocks=data.val_blocks)
            ids, val_ids = split_ids(ids, held, run.dir / "data" / f"train{rank}.fit.ids")
            where = f" held out in {len(held)} blocks spread over the corpus"
        if len(val_ids) < 2:
            raise CorpusError(None, "validation text is too short (fewer than 2 characters)")
        if run.on_event is not None:
            shown = f"{min(len(val_ids), VAL_CAP):,}" + (f" (of {len(val_ids):,})" if len(val_ids) > VAL_CAP else "")
            run.on_event(Notice(f"training on {len(ids):,} characters, validating on {shown}{where}"))
        torch.manual_seed(train_config.seed)
        model = CharLM(cfg).to(run.device)
        task = LMTask(ids, val_ids, data.batch_size, data.bptt, shard=run.shard)
        meta = {**(meta or {}), "task": "lm", "batch_size": data.batch_size, "bptt": data.bptt,
                "train_chars": len(ids), "val_chars": len(val_ids), "data_sha256": fingerprint}
        trainer = Trainer(model, task, train_config, run, saver(model, {"tokenizer": tokenizer}, meta), rundir)
        if run.resume:
            trainer.resume()
        return trainer.fit()


# ---------------------------------------------------------------------------------------------- translator

class MTTask:
    carries_state = False

    def __init__(self, src_ids, tgt_ids, val_pairs: Sequence[tuple[str, str]], src_tok, tgt_tok,
                 max_tokens: int, seed: int, bleu_beam: int = 1, device="cpu", shard: tuple[int, int] = (0, 1)):
        self.src_ids, self.tgt_ids = src_ids, tgt_ids
        self.val_pairs, self.src_tok, self.tgt_tok = list(val_pairs), src_tok, tgt_tok
        self.max_tokens, self.seed, self.bleu_beam, self.device = max_tokens, seed, bleu_beam, device
        self.shard = shard
        self._epoch, self._batches = None, []
        self.val_src, self.val_tgt = encode_pairs(self.val_pairs, src_tok, tgt_tok)
        self._val_batches = bucket_batches([len(s) for s in self.val_src], [len(t) for t in self.val_tgt],
                                           max_tokens, seed=None)

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        if self._epoch != epoch:
            batches = bucket_batches([len(s) for s in self.src_ids], [len(t) for t in self.tgt_ids],
                                     self.max_tokens, seed=self.seed + epoch)
            if self.shard[1] > 1:  # every rank takes a share of every global batch
                batches = [b for b in batches if len(b) >= self.shard[1]]
            self._epoch, self._batches = epoch, batches
        return self._batches

    def steps_per_epoch(self, epoch: int = 0) -> int:
        return len(self._epoch_batches(epoch))

    def batch(self, epoch: int, i: int):
        index = self._epoch_batches(epoch)[i]
        rank, world = self.shard
        if world == 1:
            return collate(self.src_ids, self.tgt_ids, index)
        # The loss is normalised by the global batch's tokens, so DDP's gradient average equals one process's.
        global_tokens = sum(len(self.tgt_ids[j]) + 1 for j in index)
        b = collate(self.src_ids, self.tgt_ids, index[rank::world])
        b.loss_tokens = global_tokens / world
        return b

    @torch.no_grad()
    def evaluate(self, model) -> dict:
        model.eval()
        total, count = 0.0, 0
        for idx in self._val_batches:
            b = collate(self.val_src, self.val_tgt, idx).to(self.device)
            logits = model(b.src, b.src_len, b.tgt_in)
            total += summed_nll(logits, b.tgt_out, ignore_index=PAD)
            count += b.n_tokens
        start = time.monotonic()
        hyps = [t.text for t in translate_all(model, self.src_tok, self.tgt_tok, [s for s, _ in self.val_pairs],
                                              beam=self.bleu_beam, batch_size=64, device=self.device)]
        scores = mt_scores(hyps, [t for _, t in self.val_pairs])
        nll = total / max(1, count)
        return {"val_loss": round(nll, 4), "val_ppl": round(float(torch.tensor(nll).exp()), 2),
                "val_bleu": scores["bleu"], "val_chrf": scores["chrf"],
                "translate_seconds": round(time.monotonic() - start, 2), "score": scores["bleu"]}


@dataclass
class TokenizerPlan:
    """How `train mt` gets its vocabularies: existing directories, or sentencepiece trained on the pairs."""

    src_dir: str | None = None
    tgt_dir: str | None = None
    kind: str = "unigram"
    vocab_size: int = 8000
    joint: bool = False


def build_mt_tokenizers(pairs: Sequence[tuple[str, str]], plan: TokenizerPlan) -> tuple[Tokenizer, Tokenizer]:
    from .tokenizers import load_tokenizer

    if plan.src_dir or plan.tgt_dir:
        if not (plan.src_dir and plan.tgt_dir):
            raise UsageError("give both --src-tokenizer and --tgt-tokenizer, or neither")
        return load_tokenizer(plan.src_dir), load_tokenizer(plan.tgt_dir)
    if plan.joint:
        tok = train_tokenizer([s for s, _ in pairs] + [t for _, t in pairs], plan.kind, plan.vocab_size)
        return tok, tok
    return (train_tokenizer([s for s, _ in pairs], plan.kind, plan.vocab_size),
            train_tokenizer([t for _, t in pairs], plan.kind, plan.vocab_size))


def check_mt_options(model_options: dict, max_tokens: int) -> None:
    """Fail on bad flags before any corpus is read or any output printed."""
    check("batch_tokens", max_tokens)
    _model_config(Seq2SeqConfig, src_vocab=8, tgt_vocab=8, **{k: v for k, v in model_options.items()
                                                            if k != "share_embeddings"})


def train_mt(pairs: Sequence[tuple[str, str]], val_pairs: Sequence[tuple[str, str]], run: Run | str | Path,
             model_options: dict, train_config: TrainConfig, tokenizers: TokenizerPlan = TokenizerPlan(),
             max_tokens: int = 2048, bleu_beam: int = 1, meta: dict | None = None) -> dict:
    """Train a translator on `pairs`, selecting by greedy BLEU on `val_pairs`; returns the run summary."""
    run = run if isinstance(run, Run) else Run(run)
    check_mt_options(model_options, max_tokens)
    fingerprint = pairs_sha256(pairs)
    with _claim(run) as rundir:
        if run.resume:
            loaded = load_checkpoint(_latest_or_fail(run.dir), kind="mt")
            src_tok, tgt_tok = loaded.tokenizers["src_tokenizer"], loaded.tokenizers["tgt_tokenizer"]
            cfg = loaded.model.config
            _check_resume(run, loaded, model_options, {"batch_tokens": max_tokens})
            _check_same_data(run, loaded.meta, fingerprint)
        else:
            src_tok, tgt_tok = build_mt_tokenizers(pairs, tokenizers)
            if model_options.get("share_embeddings") and src_tok is not tgt_tok:
                raise UsageError("--share-embeddings needs a joint vocabulary (--joint-vocab)")
            cfg = _model_config(Seq2SeqConfig, src_vocab=src_tok.vocab_size, tgt_vocab=tgt_tok.vocab_size,
                                **model_options)
        torch.manual_seed(train_config.seed)
        model = Seq2Seq(cfg).to(run.device)
        src_ids, tgt_ids = encode_pairs(pairs, src_tok, tgt_tok)
        task = MTTask(src_ids, tgt_ids, val_pairs, src_tok, tgt_tok, max_tokens, train_config.seed, bleu_beam,
                      run.device, run.shard)
        meta = {**(meta or {}), "task": "mt", "batch_tokens": max_tokens, "train_pairs": len(pairs),
                "val_pairs": len(val_pairs), "data_sha256": fingerprint}
        save = saver(model, {"src_tokenizer": src_tok, "tgt_tokenizer": tgt_tok}, meta)
        trainer = Trainer(model, task, train_config, run, save, rundir)
        if run.resume:
            trainer.resume()
        return trainer.fit()


# ---------------------------------------------------------------------------------------------- classifier

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
    _model_config(ClassifierConfig, vocab_size=8, num_classes=2,
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
    with _claim(run) as rundir:
        if run.resume:
            loaded = load_checkpoint(_latest_or_fail(run.dir), kind="clf")
            tok, cfg = loaded.tokenizer, loaded.model.config
            _check_resume(run, loaded, model_options, {"batch_size": data.batch_size, "max_tokens": data.max_tokens})
            _check_same_data(run, loaded.meta, fingerprint)
            if loaded.meta.get("labels") != labels:
                raise UsageError(f"--resume: the labels differ from those of the run in {run.dir} "
                                 f"({', '.join(loaded.meta.get('labels', []))}); start a new run with another -o")
        else:
            tok = lm.tokenizer if lm is not None else _clf_tokenizer(train.texts, tokenizer, where)
            cfg = _model_config(ClassifierConfig, vocab_size=tok.vocab_size, num_classes=len(labels), **model_options)
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


# ---------------------------------------------------------------------------------------------- shared by the recipes

def saver(model, tokenizers: dict, meta: dict):
    """The Trainer's save callable: a checkpoint of `model` with these tokenizers and this run's metadata."""
    def save(path: Path, step_meta: dict, trainer_tensors: dict, trainer_json: dict) -> None:
        save_checkpoint(path, model, tokenizers, {**meta, **step_meta}, trainer_tensors, trainer_json)
    return save


@contextlib.contextmanager
def _claim(run: Run):
    """The run directory under the output rule, locked for the run; removed again if the run never starts."""
    rundir = None
    failure = None
    if run.is_main:
        try:
            rundir = RunDir.claim(run.dir, run.resume, run.overwrite)
        except NlpRnnError as e:
            failure = e
    if run.shard[1] > 1 and not agree(failure is None, True, any_rank=False):  # every rank hears rank 0's verdict
        raise failure or TrainingStopped("the main process could not open the run directory")
    if failure is not None:
        raise failure
    started = False
    try:
        yield rundir
        started = True
    finally:
        if rundir is not None:
            if not started and not run.resume and not (run.dir / "latest").exists():
                rundir.abandon()
            rundir.close()


def _check_resume(run: Run, loaded, model_options: dict, layout: dict) -> None:
    """--resume continues the same model on the same batch layout; name every difference instead of training
    the old model on new settings (or crashing on a shape mismatch)."""
    saved = loaded.model.config.to_dict()
    diffs = [f"--{k.replace('_', '-')} {_show(v)} (the run has {_show(saved[k])})"
             for k, v in model_options.items() if k in saved and saved[k] != v]
    diffs += [f"--{k.replace('_', '-')} {v} (the run has {loaded.meta[k]})"
              for k, v in layout.items() if k in loaded.meta and loaded.meta[k] != v]
    if diffs:
        raise UsageError(f"--resume: this command differs from the run in {run.dir}: {'; '.join(diffs)}; "
                         f"resume with the run's settings, or start a new run with another -o")


def _show(v) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def _check_same_data(run: Run, meta: dict, fingerprint: str) -> None:
    if meta.get("data_sha256") not in (None, fingerprint) and not run.new_data:
        raise UsageError(f"--resume: the training corpus differs from the one the run in {run.dir} started with; "
                         f"pass --new-data to continue on the new corpus anyway")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pairs_sha256(pairs: Sequence[tuple[str, str]]) -> str:
    h = hashlib.sha256()
    for s, t in pairs:
        h.update(f"{s}\t{t}\n".encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def _latest_or_fail(run_dir: Path) -> Path:
    latest = read_pointer(run_dir, "latest") if run_dir.is_dir() else None
    if latest is None:
        raise CheckpointError(f"{run_dir}: nothing to resume (no checkpoint written there yet)")
    return latest
