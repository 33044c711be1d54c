"""`nlp-rnn train lm|mt`: flags → configs → `tasks.train_lm/train_mt` → a summary table or JSON."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..errors import UsageError
from .common import (DEVICE, JSON, SEED, THREADS, TrainingView, info, metrics_table, out_console, parse_duration,
                     print_json, setup, state)

train_app = typer.Typer(no_args_is_help=True, help="Train a character language model (lm) or a translator (mt).")

CELL = typer.Option("lstm", "--cell", help="Recurrent cell: rnn (tanh), lstm or gru.")
# GRU for the LM, measured: 0.062 nats/char below LSTM on Quijote in 15 CPU-minutes, a tie on tiny-shakespeare,
# and 10-20% faster (BENCHMARKS.md)
LM_CELL = typer.Option("gru", "--cell", help="Recurrent cell: rnn (tanh), lstm or gru.")
OVERWRITE = typer.Option(False, "--overwrite", help="Start over in an existing -o: replace nlp-rnn's own files "
                         "there (a directory nlp-rnn did not make keeps everything else).")
NEW_DATA = typer.Option(False, "--new-data", help="With --resume: continue even though the corpus has changed.")
PRECISION = typer.Option("auto", "--precision",
                         help="auto (bf16 where the hardware has it, else fp32), fp32, bf16 (autocast) or fp16 (GPU).")


def _train_config(lr, warmup, weight_decay, clip, max_time, max_steps, epochs, eval_every, save_every,
                  save_every_minutes, keep, patience, max_bad_steps, precision, seed):
    from ..training import TrainConfig

    return TrainConfig(lr=lr, warmup=warmup, weight_decay=weight_decay, clip=clip, max_time=parse_duration(max_time),
                       max_steps=max_steps, epochs=epochs, eval_every=eval_every, save_every=save_every,
                       save_every_minutes=save_every_minutes, keep=keep, patience=patience,
                       max_bad_steps=max_bad_steps, precision=precision, seed=seed).validate()


def _distributed(distributed: bool, nproc: int, dev):
    """(shard, ddp_wrap, is_main): under torchrun join the process group; with --distributed, start torchrun."""
    from .. import distributed as dist_mod

    if distributed and not dist_mod.launched_by_torchrun():
        import sys

        from torch.distributed.run import main as torchrun

        if nproc < 2:
            raise UsageError(f"--nproc must be at least 2 with --distributed, not {nproc}")
        argv = [a for a in sys.argv[1:] if a != "--distributed"]
        if "--nproc" in argv:
            i = argv.index("--nproc")
            del argv[i:i + 2]
        torchrun(["--standalone", f"--nproc-per-node={nproc}", "-m", "nlp_rnn", *argv])
        raise typer.Exit(0)
    d = dist_mod.init(dev)
    wrap = (lambda m: dist_mod.wrap(m, dev)) if d.enabled else None
    if not d.is_main:
        state.quiet = True
    return (d.rank, d.world), wrap, d.is_main


def _report(summary: dict, as_json: bool, title: str) -> None:
    if as_json:
        print_json(summary)
        return
    rows = {"steps": summary["steps"], "seconds": summary["seconds"], "tokens/s": summary["tokens_per_s"],
            "stopped by": summary["stop_reason"], "skipped steps": summary["skipped_steps"],
            "best step": summary["best_step"]}
    for k, v in (summary.get("best") or {}).items():
        if k != "step":
            rows[f"best {k}"] = v
    out_console.print(metrics_table(title, rows))
    out_console.print(f"model written to {summary['model']}")


@train_app.command("lm")
def train_lm(
    corpus: Optional[List[str]] = typer.Argument(None, help="Text files, directories or globs (.txt, .jsonl)."),
    out: Path = typer.Option(..., "-o", "--out", help="Run directory (checkpoints, log, final model)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="A `datasets` name (hub) or builder (text/json/csv)."),
    dataset_config: Optional[str] = typer.Option(None, "--dataset-config"),
    split: str = typer.Option("train", "--split"),
    data_files: Optional[List[str]] = typer.Option(None, "--data-files", help="Local files for a --dataset builder."),
    text_field: str = typer.Option("text", "--text-field", help="Field of .jsonl records / dataset rows."),
    val: Optional[List[str]] = typer.Option(None, "--val", help="Validation text (default: hold out the corpus's end)."),
    val_fraction: float = typer.Option(0.05, "--val-fraction"),
    encoding_errors: str = typer.Option("strict", "--encoding-errors", help="strict, or replace bad UTF-8 with U+FFFD."),
    min_freq: int = typer.Option(1, "--min-freq", help="Characters rarer than this become <unk>."),
    cell: str = LM_CELL,
    layers: int = typer.Option(1, "--layers"),
    hidden: int = typer.Option(512, "--hidden"),
    embed: int = typer.Option(64, "--embed"),
    dropout: float = typer.Option(0.1, "--dropout"),
    tie_weights: bool = typer.Option(False, "--tie-weights", help="Share embedding and output weights (embed == hidden)."),
    bptt: int = typer.Option(128, "--bptt", help="Truncated-BPTT window in characters."),
    batch_size: int = typer.Option(64, "--batch-size", "--global-batch-size",
                                   help="Parallel streams per optimizer step, across all processes."),
    lr: float = typer.Option(2e-3, "--lr"),
    warmup: int = typer.Option(0, "--warmup"),
    weight_decay: float = typer.Option(0.01, "--weight-decay"),
    clip: float = typer.Option(5.0, "--clip", help="Gradient-norm clipping (0: off)."),
    max_time: Optional[str] = typer.Option(None, "--max-time", help="Budget like 90s, 15m, 1h."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps"),
    epochs: Optional[float] = typer.Option(None, "--epochs"),
    eval_every: int = typer.Option(500, "--eval-every"),
    save_every: Optional[int] = typer.Option(None, "--save-every", help="Also checkpoint every N steps."),
    save_every_minutes: Optional[float] = typer.Option(None, "--save-every-minutes"),
    keep: int = typer.Option(2, "--keep", help="Resumable checkpoints kept besides the best."),
    patience: Optional[int] = typer.Option(None, "--patience", help="Stop after N evaluations without improvement."),
    max_bad_steps: int = typer.Option(20, "--max-bad-steps"),
    precision: str = PRECISION,
    resume: bool = typer.Option(False, "--resume", help="Continue the run in -o from its latest checkpoint."),
    overwrite: bool = OVERWRITE,
    new_data: bool = NEW_DATA,
    distributed: bool = typer.Option(False, "--distributed", help="Train on --nproc processes with torchrun (DDP)."),
    nproc: int = typer.Option(2, "--nproc", help="Processes for --distributed on this machine."),
    deterministic: bool = typer.Option(False, "--deterministic", help="Bit-for-bit repeatable CPU runs."),
    plot: bool = typer.Option(False, "--plot", help="Write loss curves to OUT/curves.png (needs matplotlib)."),
    as_json: bool = JSON,
    seed: Optional[int] = SEED,
    threads: Optional[int] = THREADS,
    device: str = DEVICE,
):
    """Train a character-level language model with truncated backpropagation through time."""
    from .. import corpora, runtime, tasks
    from ..training import Run

    dev = setup(threads, device)
    runtime.set_deterministic(deterministic)
    cfg = _train_config(lr, warmup, weight_decay, clip, max_time, max_steps, epochs, eval_every, save_every,
                        save_every_minutes, keep, patience, max_bad_steps, precision, 1234 if seed is None else seed)
    model_options = dict(cell=cell, layers=layers, hidden=hidden, embed=embed, dropout=dropout, tie_weights=tie_weights)
    data = tasks.LMData(batch_size=batch_size, bptt=bptt, min_freq=min_freq, val_fraction=val_fraction)
    tasks.check_lm_options(model_options, data)
    shard, ddp_wrap, is_main = _distributed(distributed, nproc, dev)
    source = corpora.open_text_source(corpus, dataset, dataset_config, split, data_files, text_field, encoding_errors)
    val_source = corpora.open_text_source(val, text_field=text_field, encoding_errors=encoding_errors) if val else None
    with TrainingView("chars", bits=True) as view:
        run = Run(out, dev, resume, overwrite, new_data, view, shard, ddp_wrap)
        summary = tasks.train_lm(source, val_source, run, model_options, cfg, data)
    if not is_main:
        return
    if plot:
        from ..plot import plot_run

        info(f"curves written to {plot_run(out)}")
    _report(summary, as_json, "language model training")


@train_app.command("mt")
def train_mt(
    out: Path = typer.Option(..., "-o", "--out", help="Run directory (checkpoints, log, final model)."),
    src: Optional[Path] = typer.Option(None, "--src", help="Source side, one sentence per line."),
    tgt: Optional[Path] = typer.Option(None, "--tgt", help="Target side, aligned with --src."),
    pairs: Optional[Path] = typer.Option(None, "--pairs", help="TSV/CSV (source, target columns) or JSONL pairs."),
    dataset: Optional[str] = typer.Option(None, "--dataset"),
    dataset_config: Optional[str] = typer.Option(None, "--dataset-config"),
    split: str = typer.Option("train", "--split"),
    data_files: Optional[List[str]] = typer.Option(None, "--data-files"),
    src_col: int = typer.Option(0, "--src-col", help="0-based source column of --pairs TSV/CSV."),
    tgt_col: int = typer.Option(1, "--tgt-col"),
    src_field: Optional[str] = typer.Option(None, "--src-field", help="JSONL/dataset field (default: src, or --src-lang)."),
    tgt_field: Optional[str] = typer.Option(None, "--tgt-field"),
    src_lang: Optional[str] = typer.Option(None, "--src-lang", help="Recorded in the checkpoint, e.g. de."),
    tgt_lang: Optional[str] = typer.Option(None, "--tgt-lang"),
    val_src: Optional[Path] = typer.Option(None, "--val-src"),
    val_tgt: Optional[Path] = typer.Option(None, "--val-tgt"),
    val_pairs: Optional[Path] = typer.Option(None, "--val-pairs"),
    val_fraction: float = typer.Option(0.05, "--val-fraction"),
    max_len: int = typer.Option(100, "--max-len", help="Drop pairs with a side longer than this many words."),
    encoding_errors: str = typer.Option("strict", "--encoding-errors"),
    src_tokenizer: Optional[Path] = typer.Option(None, "--src-tokenizer", help="Existing tokenizer directory."),
    tgt_tokenizer: Optional[Path] = typer.Option(None, "--tgt-tokenizer"),
    tokenizer_type: str = typer.Option("unigram", "--tokenizer-type", help="unigram, bpe or char."),
    vocab_size: int = typer.Option(8000, "--vocab-size"),
    joint_vocab: bool = typer.Option(False, "--joint-vocab", help="One vocabulary for both sides."),
    share_embeddings: bool = typer.Option(False, "--share-embeddings", help="Needs --joint-vocab."),
    tie_output: bool = typer.Option(False, "--tie-output", help="Output layer shares the target embedding."),
    cell: str = CELL,
    attention: str = typer.Option("luong", "--attention", help="none (context vector only), bahdanau or luong."),
    input_feed: bool = typer.Option(True, "--input-feed/--no-input-feed", help="Luong input feeding."),
    bidirectional: bool = typer.Option(True, "--bidirectional/--unidirectional"),
    layers: int = typer.Option(2, "--layers"),
    hidden: int = typer.Option(256, "--hidden"),
    embed: int = typer.Option(256, "--embed"),
    dropout: float = typer.Option(0.3, "--dropout"),
    label_smoothing: float = typer.Option(0.1, "--label-smoothing"),
    batch_tokens: int = typer.Option(2048, "--batch-tokens", "--global-batch-size",
                                     help="Padded target tokens per optimizer step, across all processes."),
    lr: float = typer.Option(2e-3, "--lr"),
    warmup: int = typer.Option(200, "--warmup"),
    weight_decay: float = typer.Option(0.01, "--weight-decay"),
    clip: float = typer.Option(1.0, "--clip"),
    max_time: Optional[str] = typer.Option(None, "--max-time"),
    max_steps: Optional[int] = typer.Option(None, "--max-steps"),
    epochs: Optional[float] = typer.Option(None, "--epochs"),
    eval_every: int = typer.Option(500, "--eval-every"),
    save_every: Optional[int] = typer.Option(None, "--save-every"),
    save_every_minutes: Optional[float] = typer.Option(None, "--save-every-minutes"),
    keep: int = typer.Option(2, "--keep"),
    patience: Optional[int] = typer.Option(None, "--patience"),
    max_bad_steps: int = typer.Option(20, "--max-bad-steps"),
    precision: str = PRECISION,
    resume: bool = typer.Option(False, "--resume", help="Continue the run in -o from its latest checkpoint."),
    overwrite: bool = OVERWRITE,
    new_data: bool = NEW_DATA,
    distributed: bool = typer.Option(False, "--distributed", help="Train on --nproc processes with torchrun (DDP)."),
    nproc: int = typer.Option(2, "--nproc", help="Processes for --distributed on this machine."),
    deterministic: bool = typer.Option(False, "--deterministic"),
    plot: bool = typer.Option(False, "--plot"),
    as_json: bool = JSON,
    seed: Optional[int] = SEED,
    threads: Optional[int] = THREADS,
    device: str = DEVICE,
):
    """Train an encoder-decoder translator (context vector, Bahdanau or Luong attention)."""
    from .. import corpora, runtime, tasks
    from ..training import Run

    dev = setup(threads, device)
    runtime.set_deterministic(deterministic)
    seed = 1234 if seed is None else seed
    cfg = _train_config(lr, warmup, weight_decay, clip, max_time, max_steps, epochs, eval_every, save_every,
                        save_every_minutes, keep, patience, max_bad_steps, precision, seed)
    if tokenizer_type not in ("unigram", "bpe", "char"):
        raise UsageError(f"--tokenizer-type must be unigram, bpe or char, not {tokenizer_type!r}")
    model_options = dict(cell=cell, attention=attention, input_feed=input_feed, bidirectional=bidirectional,
                         layers=layers, hidden=hidden, embed=embed, dropout=dropout, label_smoothing=label_smoothing,
                         share_embeddings=share_embeddings, tie_output=tie_output)
    tasks.check_mt_options(model_options, batch_tokens)
    shard, ddp_wrap, is_main = _distributed(distributed, nproc, dev)
    src_field = src_field or src_lang
    tgt_field = tgt_field or tgt_lang
    corpus = corpora.open_parallel(str(src) if src else None, str(tgt) if tgt else None, str(pairs) if pairs else None,
                                   dataset, dataset_config, split, data_files, src_col, tgt_col, src_field, tgt_field,
                                   max_len, encoding_errors)
    train_pairs = corpus.pairs
    if val_src or val_tgt or val_pairs:
        held = corpora.open_parallel(str(val_src) if val_src else None, str(val_tgt) if val_tgt else None,
                                     str(val_pairs) if val_pairs else None, src_col=src_col, tgt_col=tgt_col,
                                     src_field=src_field, tgt_field=tgt_field, encoding_errors=encoding_errors).pairs
    else:
        train_pairs, held = corpora.split_pairs(train_pairs, val_fraction, seed)
    dropped = ", ".join(f"{n} {why}" for why, n in corpus.stats.dropped.items())
    info(f"training on {len(train_pairs):,} pairs{f' ({dropped} dropped)' if dropped else ''}, "
         f"validating on {len(held):,} ({dev.type})")
    plan = tasks.TokenizerPlan(str(src_tokenizer) if src_tokenizer else None, str(tgt_tokenizer) if tgt_tokenizer else None,
                               tokenizer_type, vocab_size, joint_vocab)
    meta = {"src_lang": src_lang, "tgt_lang": tgt_lang}
    with TrainingView("tgt tokens") as view:
        run = Run(out, dev, resume, overwrite, new_data, view, shard, ddp_wrap)
        summary = tasks.train_mt(train_pairs, held, run, model_options, cfg, plan, max_tokens=batch_tokens, meta=meta)
    if not is_main:
        return
    if plot:
        from ..plot import plot_run

        info(f"curves written to {plot_run(out)}")
    _report(summary, as_json, "translator training")


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")
