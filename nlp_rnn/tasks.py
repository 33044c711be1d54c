"""What each model gives the training loop, and the three recipes the `train` commands run.

`train_lm`, `train_mt` and `train_clf` take corpora (strings) and plain option values, build or reload tokenizers
and the model, and hand a task to `training.Trainer`. The CLI turns flags into these calls and knows nothing more.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from .augment import Augmentation, augment
from .checkpoint import load_checkpoint
from .corpora import TextSource
from .data import LMStream, as_long, bucket_batches, collate, encode_pairs, split_ids, spread_holdout, write_ids
from .errors import CorpusError, TokenizerError, UsageError
from .evaluate import LN2, lm_nll, mt_scores, summed_nll
from .limits import check
from .model_configs import SMALL_CORPUS_REGULARISATION, lm_parameters, lm_regularisation
from .models import CharLM, LMConfig, Seq2Seq, Seq2SeqConfig
from .models.shortlist import Shortlist
from .search import translate_all
from .task_runs import (check_resume, check_same_data, claim, file_sha256, latest_or_fail, model_config,
                        pairs_sha256, saver)
from .tokenizers import PAD, CharTokenizer, Tokenizer, train_tokenizer
from .training import Notice, Run, TrainConfig, Trainer
# the classifier's recipe lives in clf_task.py; its names are part of this module's interface too
from .clf_task import (ClfData, ClfTask, ClfTokenizerPlan, Encoded, balanced_weights,  # noqa: F401
                       check_clf_options, classification_scores, classify_encoded, label_order, length_batches,
                       train_clf)


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
    model_config(LMConfig, vocab_size=1, **_set(model_options))


def _set(options: dict) -> dict:
    """The options the user set (None: left to `train_lm`, which sizes regularisation by the corpus)."""
    return {k: v for k, v in options.items() if v is not None}


def _regularise_by_corpus(cfg: LMConfig, model_options: dict, train_chars: int, run: Run) -> LMConfig:
    """`cfg` with the dropout and DropConnect the corpus size calls for, unless the user set either of them."""
    if any(model_options.get(k) is not None for k in SMALL_CORPUS_REGULARISATION):
        return cfg
    weights = lm_parameters(cfg)
    chosen = lm_regularisation(train_chars, weights)
    if run.on_event is not None:
        shown = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in chosen.items())
        run.on_event(Notice(f"regularisation for {train_chars / weights:.2f} training characters per weight: {shown}"))
    return dataclasses.replace(cfg, **chosen)


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
    with claim(run) as rundir:
        if run.resume:
            loaded = load_checkpoint(latest_or_fail(run.dir), kind="lm")
            tokenizer, cfg = loaded.tokenizer, loaded.model.config
            check_resume(run, loaded, model_options, {"batch_size": data.batch_size, "bptt": data.bptt})
        else:
            try:
                tokenizer = CharTokenizer.build(source.chunks(), min_freq=data.min_freq)
            except TokenizerError:
                raise CorpusError(source.description, "corpus is empty (no non-blank text)" if data.min_freq <= 1 else
                                  f"no character occurs at least --min-freq {data.min_freq} times") from None
            if all(ch.isspace() for ch in tokenizer.chars):
                raise CorpusError(source.description, "corpus is empty (no non-blank text)")
            cfg = model_config(LMConfig, vocab_size=tokenizer.vocab_size, **_set(model_options))
        (run.dir / "data").mkdir(exist_ok=True)
        rank = f".rank{run.shard[0]}" if run.shard[1] > 1 else ""  # each process writes its own copy
        ids = write_ids(source.chunks(), tokenizer, run.dir / "data" / f"train{rank}.ids")
        val_ids = (write_ids(val_source.chunks(), tokenizer, run.dir / "data" / f"val{rank}.ids")
                   if val_source is not None else None)
        fingerprint = file_sha256(run.dir / "data" / f"train{rank}.ids")
        if run.resume:
            check_same_data(run, loaded.meta, fingerprint)
        where = ""
        if val_ids is None:  # hold out spread-out blocks: validation should look like unseen text, not one slice
            fraction = min(int(len(ids) * data.val_fraction), VAL_CAP) / max(1, len(ids))
            held = spread_holdout(len(ids), fraction, blocks=data.val_blocks)
            ids, val_ids = split_ids(ids, held, run.dir / "data" / f"train{rank}.fit.ids")
            where = f" held out in {len(held)} block{'s' if len(held) > 1 else ''} spread over the corpus"
        if len(val_ids) < 2:
            raise CorpusError(None, "validation text is too short (fewer than 2 characters)")
        if run.on_event is not None:
            shown = f"{min(len(val_ids), VAL_CAP):,}" + (f" (of {len(val_ids):,})" if len(val_ids) > VAL_CAP else "")
            run.on_event(Notice(f"training on {len(ids):,} characters, validating on {shown}{where}"))
        if not run.resume:
            cfg = _regularise_by_corpus(cfg, model_options, len(ids), run)
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

SHORTLIST_PAIRS = 200_000  # a translator's shortlist is counted over at most this many training pairs, spread


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
    byte_fallback: bool | None = None  # None: on for sentencepiece vocabularies of BYTE_FALLBACK_FROM pieces or more
    placeholders: bool = False         # ⟦1⟧ … ⟦24⟧ as pieces of their own (see spans.py)

    def fallback(self) -> bool:
        on = self.vocab_size >= BYTE_FALLBACK_FROM if self.byte_fallback is None else self.byte_fallback
        return on and self.kind != "char"


BYTE_FALLBACK_FROM = 2000  # below this, 256 byte pieces would take too large a share of the vocabulary


def build_mt_tokenizers(pairs: Sequence[tuple[str, str]], plan: TokenizerPlan) -> tuple[Tokenizer, Tokenizer]:
    from .spans import PLACEHOLDERS
    from .tokenizers import load_tokenizer

    if plan.src_dir or plan.tgt_dir:
        if not (plan.src_dir and plan.tgt_dir):
            raise UsageError("give both --src-tokenizer and --tgt-tokenizer, or neither")
        src = load_tokenizer(plan.src_dir)
        same = Path(plan.src_dir).resolve() == Path(plan.tgt_dir).resolve()
        return src, (src if same else load_tokenizer(plan.tgt_dir))  # one directory: a joint vocabulary
    options = dict(byte_fallback=plan.fallback(), symbols=PLACEHOLDERS if plan.placeholders else ())
    if plan.joint:
        tok = train_tokenizer([s for s, _ in pairs] + [t for _, t in pairs], plan.kind, plan.vocab_size, **options)
        return tok, tok
    return (train_tokenizer([s for s, _ in pairs], plan.kind, plan.vocab_size, **options),
            train_tokenizer([t for _, t in pairs], plan.kind, plan.vocab_size, **options))


def _start_from(init, plan: TokenizerPlan):
    """(model, src tokenizer, tgt tokenizer) of the translator in `init`, its vocabularies grown as `plan` asks."""
    from .spans import PLACEHOLDERS

    loaded = load_checkpoint(init, kind="mt")
    toks = [loaded.tokenizers["src_tokenizer"], loaded.tokenizers["tgt_tokenizer"]]
    if plan.placeholders or plan.byte_fallback:
        if any(t.kind != "sentencepiece" for t in toks):
            raise UsageError(f"--init-from {init}: placeholders and byte fallback need sentencepiece vocabularies")
        grown = {id(t): t.extended(PLACEHOLDERS if plan.placeholders else (), bool(plan.byte_fallback)) for t in toks}
        toks = [grown[id(t)] for t in toks]  # a joint vocabulary stays one
    return loaded.model.grown(toks[0].vocab_size, toks[1].vocab_size), toks[0], toks[1]


def knows_placeholders(tokenizer: Tokenizer) -> bool:
    """Whether every placeholder is one piece of `tokenizer` (a translator trained with --placeholders)."""
    from .spans import PLACEHOLDERS

    return all(len(tokenizer.encode(ph)) <= 2 and tokenizer.unk not in tokenizer.encode(ph) for ph in PLACEHOLDERS)


def check_mt_options(model_options: dict, max_tokens: int) -> None:
    """Fail on bad flags before any corpus is read or any output printed."""
    check("batch_tokens", max_tokens)
    model_config(Seq2SeqConfig, src_vocab=8, tgt_vocab=8, **{k: v for k, v in model_options.items()
                                                            if k != "share_embeddings"})


def train_mt(pairs: Sequence[tuple[str, str]], val_pairs: Sequence[tuple[str, str]], run: Run | str | Path,
             model_options: dict, train_config: TrainConfig, tokenizers: TokenizerPlan = TokenizerPlan(),
             max_tokens: int = 2048, bleu_beam: int = 1, meta: dict | None = None,
             augmentation: Augmentation = Augmentation(), init: str | Path | None = None) -> dict:
    """Train a translator on `pairs` (transformed by `augmentation`), selecting by greedy BLEU on `val_pairs`;
    returns the run summary. With `init`, training starts from that translator: its architecture, weights and
    vocabularies (grown by the placeholders and byte pieces `tokenizers` asks for); `model_options` are not
    used."""
    run = run if isinstance(run, Run) else Run(run)
    check_mt_options(model_options, max_tokens)
    if augmentation.spans and not tokenizers.placeholders:
        raise UsageError("placeholder augmentation needs a vocabulary with placeholders (--placeholders)")
    fingerprint = pairs_sha256(pairs)
    if augmentation.active:
        pairs = augment(pairs, augmentation)
        meta = {**(meta or {}), "augmentation": augmentation.to_dict()}
    if tokenizers.placeholders:
        meta = {**(meta or {}), "placeholders": True}
    with claim(run) as rundir:
        if run.resume:
            loaded = load_checkpoint(latest_or_fail(run.dir), kind="mt")
            src_tok, tgt_tok = loaded.tokenizers["src_tokenizer"], loaded.tokenizers["tgt_tokenizer"]
            cfg = loaded.model.config
            check_resume(run, loaded, model_options, {"batch_tokens": max_tokens})
            check_same_data(run, loaded.meta, fingerprint)
        elif init is not None:
            start, src_tok, tgt_tok = _start_from(init, tokenizers)
            cfg = start.config
            meta = {**(meta or {}), "init_from": str(init)}
        else:
            src_tok, tgt_tok = build_mt_tokenizers(pairs, tokenizers)
            if tokenizers.placeholders and not (knows_placeholders(src_tok) and knows_placeholders(tgt_tok)):
                raise UsageError("--placeholders: the given tokenizers do not hold the placeholders ⟦1⟧ … ⟦24⟧ as "
                                 "pieces; train them with `nlp-rnn tokenizer train --placeholders` or let train mt "
                                 "train them")
            if model_options.get("share_embeddings") and src_tok is not tgt_tok:
                raise UsageError("--share-embeddings needs a joint vocabulary (--joint-vocab)")
            cfg = model_config(Seq2SeqConfig, src_vocab=src_tok.vocab_size, tgt_vocab=tgt_tok.vocab_size,
                                **model_options)
        torch.manual_seed(train_config.seed)
        model = start.to(run.device) if init is not None and not run.resume else Seq2Seq(cfg).to(run.device)
        src_ids, tgt_ids = encode_pairs(pairs, src_tok, tgt_tok)
        task = MTTask(src_ids, tgt_ids, val_pairs, src_tok, tgt_tok, max_tokens, train_config.seed, bleu_beam,
                      run.device, run.shard)
        meta = {**(meta or {}), "task": "mt", "batch_tokens": max_tokens, "train_pairs": len(pairs),
                "val_pairs": len(val_pairs), "data_sha256": fingerprint}
        step = -(-len(src_ids) // SHORTLIST_PAIRS)  # bounded work and memory on any corpus
        shortlist = Shortlist.build(src_ids[::step], tgt_ids[::step], src_tok.vocab_size, tgt_tok.vocab_size)
        save = saver(model, {"src_tokenizer": src_tok, "tgt_tokenizer": tgt_tok}, meta, shortlist)
        trainer = Trainer(model, task, train_config, run, save, rundir)
        if run.resume:
            trainer.resume()
        return trainer.fit()
