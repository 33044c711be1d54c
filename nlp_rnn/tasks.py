"""What each model gives the training loop, and the two recipes the `train` commands run.

`train_lm` and `train_mt` take corpora (strings) and plain option values, build or reload tokenizers and the
model, and hand a task to `training.Trainer`. The CLI turns flags into these calls and knows nothing more.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from .checkpoint import load_checkpoint, read_pointer
from .corpora import TextSource
from .data import LMStream, as_long, bucket_batches, collate, encode_pairs, write_ids
from .errors import CheckpointError, CorpusError, TokenizerError, UsageError
from .evaluate import LN2, lm_nll, mt_scores
from .models import CharLM, LMConfig, Seq2Seq, Seq2SeqConfig
from .search import translate_all
from .tokenizers import CharTokenizer, Tokenizer, train_tokenizer
from .training import TrainConfig, Trainer


def _model_config(cls, **kwargs):
    try:
        return cls(**kwargs).validate()
    except ValueError as e:
        raise UsageError(str(e)) from None


# ---------------------------------------------------------------------------------------------- language model

VAL_CAP = 2_000_000


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
        # periodic validation reads at most VAL_CAP tokens: enough for a stable figure, bounded in time and memory
        self.val_ids, self.eval_rows = as_long(val_ids[:VAL_CAP]), eval_rows

    def steps_per_epoch(self, epoch: int = 0) -> int:
        return len(self.stream)

    def batch(self, epoch: int, i: int):
        return self.stream.window(i)

    def evaluate(self, model) -> dict:
        nll, count = lm_nll(model, self.val_ids, rows=self.eval_rows)
        nats = nll / max(1, count)
        return {"val_nats_per_char": round(nats, 4), "val_bits_per_char": round(nats / LN2, 4), "score": -nats}


def check_lm_options(model_options: dict, batch_size: int, bptt: int, run_dir: str | Path, resume: bool,
                     val_fraction: float = 0.05) -> None:
    """Fail on bad flags before any corpus is read or any output printed."""
    if batch_size < 1 or bptt < 1:
        raise UsageError(f"--batch-size and --bptt must be at least 1 (got {batch_size} and {bptt})")
    if not 0 < val_fraction < 1:
        raise UsageError(f"--val-fraction must be between 0 and 1, not {val_fraction}")
    _model_config(LMConfig, vocab_size=1, **model_options)
    if not resume:
        _refuse_existing_run(Path(run_dir))


def train_lm(text: str | TextSource, val_text: str | TextSource | None, run_dir: str | Path, model_options: dict,
             train_config: TrainConfig, batch_size: int = 64, bptt: int = 128, min_freq: int = 1,
             val_fraction: float = 0.05, resume: bool = False, device: torch.device | str = "cpu",
             on_event: Callable | None = None, meta: dict | None = None, shard: tuple[int, int] = (0, 1),
             ddp_wrap: Callable | None = None) -> dict:
    """Train a character language model; returns the run summary.

    The text is encoded chunk by chunk into a memory-mapped id file in the run directory, so corpora larger
    than memory train in bounded memory. Without validation text, the last `val_fraction` is held out.
    """
    check_lm_options(model_options, batch_size, bptt, run_dir, resume, val_fraction)
    run_dir = Path(run_dir)
    source = TextSource.from_text(text) if isinstance(text, str) else text
    val_source = TextSource.from_text(val_text) if isinstance(val_text, str) else val_text
    if resume:
        loaded = load_checkpoint(_latest_or_fail(run_dir), kind="lm")
        tokenizer, cfg = loaded.tokenizer, loaded.model.config
    else:
        try:
            tokenizer = CharTokenizer.build(source.chunks(), min_freq=min_freq)
        except TokenizerError:
            raise CorpusError(source.description, f"corpus is empty, or no character occurs {min_freq} times") from None
        if all(ch.isspace() for ch in tokenizer.chars):
            raise CorpusError(source.description, "corpus is empty (no non-blank text)")
        cfg = _model_config(LMConfig, vocab_size=tokenizer.vocab_size, **model_options)
    fresh = not run_dir.exists()
    (run_dir / "data").mkdir(parents=True, exist_ok=True)
    rank = f".rank{shard[0]}" if shard[1] > 1 else ""  # each process writes its own copy
    try:
        ids = write_ids(source.chunks(), tokenizer, run_dir / "data" / f"train{rank}.ids")
        val_ids = (write_ids(val_source.chunks(), tokenizer, run_dir / "data" / f"val{rank}.ids")
                   if val_source is not None else None)
    except BaseException:
        if fresh:  # a corpus error found while encoding leaves no half-made run directory behind
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    if val_ids is None:  # hold out the end of the corpus (val_fraction was checked above)
        cut = int(len(ids) * (1 - val_fraction))
        ids, val_ids = ids[:cut], ids[cut:]
    if len(val_ids) < 2:
        raise CorpusError(None, "validation text is too short (fewer than 2 characters)")
    if on_event is not None:
        from .training import Notice

        on_event(Notice(f"training on {len(ids):,} characters, validating on {len(val_ids):,}"))
    torch.manual_seed(train_config.seed)
    model = CharLM(cfg).to(device)
    task = LMTask(ids, val_ids, batch_size, bptt, shard=shard)
    meta = {**(meta or {}), "task": "lm", "batch_size": batch_size, "bptt": bptt,
            "train_chars": len(ids), "val_chars": len(val_ids)}
    trainer = Trainer(model, task, train_config, run_dir, {"tokenizer": tokenizer}, meta, device, on_event,
                      ddp=ddp_wrap(model) if ddp_wrap else None)
    if resume:
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
            total += float(torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.size(-1)).float(), b.tgt_out.reshape(-1), ignore_index=0, reduction="sum"))
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


def check_mt_options(model_options: dict, max_tokens: int, run_dir: str | Path, resume: bool) -> None:
    """Fail on bad flags before any corpus is read or any output printed."""
    if max_tokens < 16:
        raise UsageError(f"--batch-tokens must be at least 16, not {max_tokens}")
    _model_config(Seq2SeqConfig, src_vocab=8, tgt_vocab=8, **{k: v for k, v in model_options.items()
                                                            if k != "share_embeddings"})
    if not resume:
        _refuse_existing_run(Path(run_dir))


def train_mt(pairs: Sequence[tuple[str, str]], val_pairs: Sequence[tuple[str, str]], run_dir: str | Path,
             model_options: dict, train_config: TrainConfig, tokenizers: TokenizerPlan = TokenizerPlan(),
             max_tokens: int = 4096, bleu_beam: int = 1, resume: bool = False, device: torch.device | str = "cpu",
             on_event: Callable | None = None, meta: dict | None = None, shard: tuple[int, int] = (0, 1),
             ddp_wrap: Callable | None = None) -> dict:
    """Train a translator on `pairs`, selecting by greedy BLEU on `val_pairs`; returns the run summary."""
    check_mt_options(model_options, max_tokens, run_dir, resume)
    run_dir = Path(run_dir)
    if resume:
        loaded = load_checkpoint(_latest_or_fail(run_dir), kind="mt")
        src_tok, tgt_tok = loaded.tokenizers["src_tokenizer"], loaded.tokenizers["tgt_tokenizer"]
        cfg = loaded.model.config
    else:
        src_tok, tgt_tok = build_mt_tokenizers(pairs, tokenizers)
        if model_options.get("share_embeddings") and src_tok is not tgt_tok:
            raise UsageError("--share-embeddings needs a joint vocabulary (--joint-vocab)")
        cfg = _model_config(Seq2SeqConfig, src_vocab=src_tok.vocab_size, tgt_vocab=tgt_tok.vocab_size, **model_options)
    torch.manual_seed(train_config.seed)
    model = Seq2Seq(cfg).to(device)
    for p in model.parameters():  # uniform init as in Luong et al. 2015; keeps all cells comparable
        torch.nn.init.uniform_(p, -0.1, 0.1)
    src_ids, tgt_ids = encode_pairs(pairs, src_tok, tgt_tok)
    task = MTTask(src_ids, tgt_ids, val_pairs, src_tok, tgt_tok, max_tokens, train_config.seed, bleu_beam, device, shard)
    meta = {**(meta or {}), "task": "mt", "batch_tokens": max_tokens, "train_pairs": len(pairs),
            "val_pairs": len(val_pairs)}
    trainer = Trainer(model, task, train_config, run_dir, {"src_tokenizer": src_tok, "tgt_tokenizer": tgt_tok},
                      meta, device, on_event, ddp=ddp_wrap(model) if ddp_wrap else None)
    if resume:
        trainer.resume()
    return trainer.fit()


def _latest_or_fail(run_dir: Path) -> Path:
    latest = read_pointer(run_dir, "latest") if run_dir.is_dir() else None
    if latest is None:
        raise CheckpointError(f"{run_dir}: nothing to resume (no checkpoint written there yet)")
    return latest


def _refuse_existing_run(run_dir: Path) -> None:
    if (run_dir / "latest").exists() or (run_dir / "model").exists():
        raise UsageError(f"{run_dir} already holds a training run; use --resume to continue it, or another -o")
    if not run_dir.parent.exists():
        raise UsageError(f"-o {run_dir}: parent directory {run_dir.parent} does not exist")
