"""`nlp-rnn train lm|mt`: flags → configs → `tasks.train_lm/train_mt` → a summary table or JSON.

The options both commands share are declared once below; each command picks its defaults from `configs`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from ..configs import DEFAULT_SEED, LM_TRAINING, MT_TRAINING, TrainConfig
from ..errors import UsageError
from ..limits import describe
from ..model_configs import LMConfig as LM, Seq2SeqConfig as MT
from ..model_configs import SMALL_CORPUS_CHARS_PER_WEIGHT as SMALL_CHARS, SMALL_CORPUS_REGULARISATION as SMALL
from .common import (DataFiles, Dataset, DatasetConfig, Device, EncodingErrors, Files, Json, MaxLen, Overwrite,
                     PairsFile, Seed, Split, SrcCol, SrcField, SrcFile, TextField, TgtCol, TgtField, TgtFile, Threads,
                     TrainingView, examples, info, metrics_table, out_console, parse_duration, print_json, setup,
                     state)

train_app = typer.Typer(no_args_is_help=True, help="Train a character language model (lm) or a translator (mt).")


def _opt(*names: str, help: str, limit: str | None = None):
    return typer.Option(*names, help=help + (describe(limit) if limit else ""))


# ---------------------------------------------------------------------------------------------- shared options

_BY_CORPUS = (f" Unless either is set: --dropout {SMALL['dropout']} --weight-drop {SMALL['weight_drop']} on fewer than "
              f"{SMALL_CHARS} training characters per weight (a small corpus overfits), else --dropout {LM.dropout} "
              f"--weight-drop {LM.weight_drop}; setting one leaves the other at the second pair's value.")

Out = Annotated[Path, _opt("-o", "--out", help="Run directory (checkpoints, log, final model); created with its "
                                              "parents. Must be new, or a run of nlp-rnn's (see --resume, --overwrite).")]
Cell = Annotated[str, _opt("--cell", help="Recurrent cell: rnn (tanh), lstm or gru.")]
Layers = Annotated[int, _opt("--layers", help="Stacked recurrent layers.", limit="layers")]
Hidden = Annotated[int, _opt("--hidden", help="Units per recurrent layer.", limit="hidden")]
Embed = Annotated[int, _opt("--embed", help="Size of the token embeddings.", limit="embed")]
Dropout = Annotated[float, _opt("--dropout", help="Dropout between layers and before the output.", limit="dropout")]
Lr = Annotated[float, _opt("--lr", help="Peak learning rate (AdamW).", limit="lr")]
Warmup = Annotated[int, _opt("--warmup", help="Steps of linear warmup before the cosine decay.", limit="warmup")]
WeightDecay = Annotated[float, _opt("--weight-decay", help="AdamW weight decay (not on embeddings, biases).",
                                    limit="weight_decay")]
Clip = Annotated[float, _opt("--clip", help="Gradient-norm clipping (0: off).", limit="clip")]
MaxTime = Annotated[Optional[str], _opt("--max-time", help="Time budget like 90s, 15m, 1h30m.")]
MaxSteps = Annotated[Optional[int], _opt("--max-steps", help="Step budget.", limit="max_steps")]
Epochs = Annotated[Optional[float], _opt("--epochs", help="Budget in passes over the training data.", limit="epochs")]
EvalEvery = Annotated[int, _opt("--eval-every", help="Validate (and checkpoint) every N steps.", limit="eval_every")]
SaveEvery = Annotated[Optional[int], _opt("--save-every", help="Also checkpoint every N steps.", limit="save_every")]
SaveEveryMinutes = Annotated[Optional[float], _opt("--save-every-minutes", help="Also checkpoint every M minutes.",
                                                   limit="save_every_minutes")]
Keep = Annotated[int, _opt("--keep", help="Resumable checkpoints kept besides the best.", limit="keep")]
Patience = Annotated[Optional[int], _opt("--patience", help="Stop after N evaluations without improvement.",
                                         limit="patience")]
MaxBadSteps = Annotated[int, _opt("--max-bad-steps", help="Stop after N non-finite steps in a row (each is skipped).",
                                  limit="max_bad_steps")]
Precision = Annotated[str, _opt("--precision", help="auto (bf16 where the CPU has it, TF32 on CUDA), fp32, bf16 "
                                                    "(autocast) or fp16 (GPU).")]
Resume = Annotated[bool, _opt("--resume", help="Continue the run in -o from its latest checkpoint (same command).")]
NewData = Annotated[bool, _opt("--new-data", help="With --resume: continue although the corpus has changed.")]
Distributed = Annotated[bool, _opt("--distributed", help="Train on --nproc processes with torchrun (DDP).")]
Nproc = Annotated[int, _opt("--nproc", help="Processes for --distributed on this machine.", limit="nproc")]
Deterministic = Annotated[bool, _opt("--deterministic", help="Bit-for-bit repeatable CPU runs (slower).")]
Plot = Annotated[bool, _opt("--plot", help="Draw the loss curves to OUT/curves.png (needs matplotlib).")]


def _train_config(base: TrainConfig, **values) -> TrainConfig:
    from ..configs import recipe

    values["max_time"] = parse_duration(values["max_time"])
    return recipe(base, **values)


def _distributed(distributed: bool, nproc: int, dev):
    """(shard, ddp_wrap, is_main): under torchrun join the process group; with --distributed, start torchrun."""
    from .. import distributed as dist_mod

    if distributed and not dist_mod.launched_by_torchrun():
        import sys

        from torch.distributed.run import main as torchrun

        from ..limits import check

        check("nproc", nproc)
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


def _finish(summary: dict, out: Path, plot: bool, as_json: bool, title: str) -> None:
    if plot:
        from ..plot import plot_run

        info(f"curves written to {plot_run(out)}")
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


# ---------------------------------------------------------------------------------------------- train lm

@train_app.command("lm", epilog=examples(
    "nlp-rnn train lm corpus/*.txt -o runs/shakespeare --max-time 15m --threads 1",
    "nlp-rnn train lm --dataset text --data-files big.txt -o runs/big --epochs 1 --cell lstm --layers 2"))
def train_lm(
    corpus: Files = None,
    out: Out = ...,
    dataset: Dataset = None, dataset_config: DatasetConfig = None, split: Split = "train", data_files: DataFiles = None,
    text_field: TextField = "text",
    val: Annotated[Optional[List[str]], _opt("--val", help="Validation text (default: held out from the corpus).")] = None,
    val_fraction: Annotated[float, _opt("--val-fraction", help="Share of the corpus held out when no --val is given "
                                        "(up to 250,000 characters).", limit="val_fraction")] = 0.05,
    val_blocks: Annotated[int, _opt("--val-blocks", help="The held-out share comes from this many blocks spread over "
                                    "the corpus.", limit="val_blocks")] = 10,
    encoding_errors: EncodingErrors = "strict",
    min_freq: Annotated[int, _opt("--min-freq", help="Characters rarer than this become <unk>.", limit="min_freq")] = 1,
    cell: Cell = LM.cell, layers: Layers = LM.layers, hidden: Hidden = LM.hidden, embed: Embed = LM.embed,
    dropout: Annotated[Optional[float], _opt("--dropout", help="Locked dropout on the last layer's output (one mask "
                                                              "per sequence)." + _BY_CORPUS, limit="dropout")] = None,
    input_dropout: Annotated[float, _opt("--input-dropout", help="Locked dropout on the embeddings (AWD-LSTM).",
                                         limit="dropout")] = LM.input_dropout,
    layer_dropout: Annotated[float, _opt("--layer-dropout", help="Locked dropout between recurrent layers.",
                                         limit="dropout")] = LM.layer_dropout,
    weight_drop: Annotated[Optional[float], _opt("--weight-drop", help="DropConnect on the hidden-to-hidden weights, "
                                                 "one mask per batch (AWD-LSTM). Default: see --dropout.", limit="dropout")] = None,
    embed_dropout: Annotated[float, _opt("--embed-dropout", help="Share of characters whose embedding is dropped "
                                                                 "for a batch.", limit="dropout")] = LM.embed_dropout,
    tie_weights: Annotated[bool, _opt("--tie-weights", help="Share embedding and output weights "
                                                             "(embed == hidden).")] = LM.tie_weights,
    bptt: Annotated[int, _opt("--bptt", help="Truncated-BPTT window in characters.", limit="bptt")] = 128,
    batch_size: Annotated[int, typer.Option("--batch-size", "--global-batch-size", help="Parallel streams per "
                                            "optimizer step, across all processes." + describe("batch_size"))] = 64,
    lr: Lr = LM_TRAINING.lr, warmup: Warmup = LM_TRAINING.warmup, weight_decay: WeightDecay = LM_TRAINING.weight_decay,
    clip: Clip = LM_TRAINING.clip, max_time: MaxTime = None, max_steps: MaxSteps = None, epochs: Epochs = None,
    eval_every: EvalEvery = LM_TRAINING.eval_every, save_every: SaveEvery = None,
    save_every_minutes: SaveEveryMinutes = None, keep: Keep = LM_TRAINING.keep, patience: Patience = None,
    max_bad_steps: MaxBadSteps = LM_TRAINING.max_bad_steps, precision: Precision = "auto",
    resume: Resume = False, overwrite: Overwrite = False, new_data: NewData = False,
    distributed: Distributed = False, nproc: Nproc = 2, deterministic: Deterministic = False, plot: Plot = False,
    as_json: Json = False, seed: Seed = None, threads: Threads = None, device: Device = "auto",
):
    """Train a character-level language model with truncated backpropagation through time."""
    from .. import corpora, runtime, tasks
    from ..training import Run

    dev = setup(threads, device)
    runtime.set_deterministic(deterministic)
    cfg = _train_config(LM_TRAINING, lr=lr, warmup=warmup, weight_decay=weight_decay, clip=clip, max_time=max_time,
                        max_steps=max_steps, epochs=epochs, eval_every=eval_every, save_every=save_every,
                        save_every_minutes=save_every_minutes, keep=keep, patience=patience,
                        max_bad_steps=max_bad_steps, precision=precision, seed=DEFAULT_SEED if seed is None else seed)
    model_options = dict(cell=cell, layers=layers, hidden=hidden, embed=embed, dropout=dropout, tie_weights=tie_weights,
                         input_dropout=input_dropout, layer_dropout=layer_dropout, weight_drop=weight_drop,
                         embed_dropout=embed_dropout)
    data = tasks.LMData(batch_size=batch_size, bptt=bptt, min_freq=min_freq, val_fraction=val_fraction,
                        val_blocks=val_blocks)
    tasks.check_lm_options(model_options, data)
    shard, ddp_wrap, is_main = _distributed(distributed, nproc, dev)
    source = corpora.open_text_source(corpus, dataset, dataset_config, split, data_files, text_field, encoding_errors)
    val_source = corpora.open_text_source(val, text_field=text_field, encoding_errors=encoding_errors) if val else None
    with TrainingView("chars", bits=True) as view:
        run = Run(out, dev, resume, overwrite, new_data, view, shard, ddp_wrap)
        summary = tasks.train_lm(source, val_source, run, model_options, cfg, data)
    if is_main:
        _finish(summary, out, plot, as_json, "language model training")


# ---------------------------------------------------------------------------------------------- train mt

@train_app.command("mt", epilog=examples(
    "nlp-rnn train mt --src train.de --tgt train.en --src-lang de --tgt-lang en -o runs/de-en --max-time 20m",
    "nlp-rnn train mt --pairs spa.txt --src-lang en --tgt-lang es -o runs/anki --epochs 10"))
def train_mt(
    out: Out = ...,
    src: SrcFile = None, tgt: TgtFile = None, pairs: PairsFile = None,
    dataset: Dataset = None, dataset_config: DatasetConfig = None, split: Split = "train", data_files: DataFiles = None,
    src_col: SrcCol = 0, tgt_col: TgtCol = 1, src_field: SrcField = None, tgt_field: TgtField = None,
    src_lang: Annotated[Optional[str], _opt("--src-lang", help="Source language code, recorded in the checkpoint.")] = None,
    tgt_lang: Annotated[Optional[str], _opt("--tgt-lang", help="Target language code, recorded in the checkpoint.")] = None,
    val_src: Annotated[Optional[Path], _opt("--val-src", help="Validation sources (with --val-tgt).")] = None,
    val_tgt: Annotated[Optional[Path], _opt("--val-tgt", help="Validation references, aligned with --val-src.")] = None,
    val_pairs: Annotated[Optional[Path], _opt("--val-pairs", help="Validation pairs in the layout of --pairs.")] = None,
    val_fraction: Annotated[float, _opt("--val-fraction", help="Share of pairs held out when no validation set is "
                                                               "given.", limit="val_fraction")] = 0.05,
    max_len: MaxLen = 100,
    encoding_errors: EncodingErrors = "strict",
    src_tokenizer: Annotated[Optional[Path], _opt("--src-tokenizer", help="An existing source tokenizer directory.")] = None,
    tgt_tokenizer: Annotated[Optional[Path], _opt("--tgt-tokenizer", help="An existing target tokenizer directory.")] = None,
    tokenizer_type: Annotated[str, _opt("--tokenizer-type", help="unigram, bpe (sentencepiece) or char.")] = "unigram",
    vocab_size: Annotated[int, _opt("--vocab-size", help="Vocabulary size of each trained tokenizer.",
                                    limit="vocab_size")] = 8000,
    joint_vocab: Annotated[bool, _opt("--joint-vocab", help="One vocabulary for both sides.")] = False,
    byte_fallback: Annotated[Optional[bool], _opt("--byte-fallback/--no-byte-fallback", help="Characters outside a "
                             "trained sentencepiece vocabulary become their UTF-8 bytes instead of <unk>, so any name "
                             "can be copied (default: on from 2,000 pieces).")] = None,
    init_from: Annotated[Optional[Path], _opt("--init-from", help="Start from this translator (a model or run "
                         "directory): its architecture, weights and vocabularies, grown by --placeholders and "
                         "--byte-fallback when asked; the model-shape flags are then not used.")] = None,
    placeholders: Annotated[bool, _opt("--placeholders", help="Protected spans (numbers, URLs, e-mails, codes…) "
                            "are copied as placeholders ⟦1⟧…⟦24⟧: the vocabularies get them as pieces and pairs "
                            "sharing a span train with one (translation puts the spans back exactly).")] = False,
    augment_names: Annotated[float, _opt("--augment-names", help="Share of the pairs sharing a name (Tom…Tom) that "
                             "get names drawn from many languages instead.", limit="augment_share")] = 0.0,
    augment_case: Annotated[float, _opt("--augment-case", help="Share of pairs turned lower case, ALL CAPS or "
                            "lower-first on both sides.", limit="augment_share")] = 0.0,
    augment_concat: Annotated[float, _opt("--augment-concat", help="Extra examples, as a share of the pairs, of 2-4 "
                              "pairs joined into one line (long and multi-sentence input).",
                              limit="augment_share")] = 0.0,
    share_embeddings: Annotated[bool, _opt("--share-embeddings", help="One embedding table for both sides "
                                                                      "(needs --joint-vocab).")] = MT.share_embeddings,
    tie_output: Annotated[bool, _opt("--tie-output", help="The output layer shares the target embedding "
                                                          "(needs --embed == --hidden).")] = MT.tie_output,
    cell: Cell = MT.cell,
    attention: Annotated[str, _opt("--attention", help="none (context vector only), bahdanau or luong.")] = MT.attention,
    input_feed: Annotated[bool, _opt("--input-feed/--no-input-feed", help="Luong input feeding.")] = MT.input_feed,
    bidirectional: Annotated[bool, _opt("--bidirectional/--unidirectional",
                                        help="Encoder reads both ways.")] = MT.bidirectional,
    layers: Layers = MT.layers, hidden: Hidden = MT.hidden, embed: Embed = MT.embed, dropout: Dropout = MT.dropout,
    label_smoothing: Annotated[float, _opt("--label-smoothing", help="Share of the target probability spread over "
                                                                     "the vocabulary.",
                                            limit="label_smoothing")] = MT.label_smoothing,
    batch_tokens: Annotated[int, typer.Option("--batch-tokens", "--global-batch-size", help="Padded target tokens per "
                                              "optimizer step, across all processes." + describe("batch_tokens"))] = 2048,
    lr: Lr = MT_TRAINING.lr, warmup: Warmup = MT_TRAINING.warmup, weight_decay: WeightDecay = MT_TRAINING.weight_decay,
    clip: Clip = MT_TRAINING.clip, max_time: MaxTime = None, max_steps: MaxSteps = None, epochs: Epochs = None,
    eval_every: EvalEvery = MT_TRAINING.eval_every, save_every: SaveEvery = None,
    save_every_minutes: SaveEveryMinutes = None, keep: Keep = MT_TRAINING.keep, patience: Patience = None,
    max_bad_steps: MaxBadSteps = MT_TRAINING.max_bad_steps, precision: Precision = "auto",
    resume: Resume = False, overwrite: Overwrite = False, new_data: NewData = False,
    distributed: Distributed = False, nproc: Nproc = 2, deterministic: Deterministic = False, plot: Plot = False,
    as_json: Json = False, seed: Seed = None, threads: Threads = None, device: Device = "auto",
):
    """Train an encoder-decoder translator (context vector, Bahdanau or Luong attention)."""
    from .. import corpora, runtime, tasks
    from ..training import Run

    dev = setup(threads, device)
    runtime.set_deterministic(deterministic)
    seed = DEFAULT_SEED if seed is None else seed
    cfg = _train_config(MT_TRAINING, lr=lr, warmup=warmup, weight_decay=weight_decay, clip=clip, max_time=max_time,
                        max_steps=max_steps, epochs=epochs, eval_every=eval_every, save_every=save_every,
                        save_every_minutes=save_every_minutes, keep=keep, patience=patience,
                        max_bad_steps=max_bad_steps, precision=precision, seed=seed)
    if tokenizer_type not in ("unigram", "bpe", "char"):
        raise UsageError(f"--tokenizer-type must be unigram, bpe or char, not {tokenizer_type!r}")
    model_options = dict(cell=cell, attention=attention, input_feed=input_feed, bidirectional=bidirectional,
                         layers=layers, hidden=hidden, embed=embed, dropout=dropout, label_smoothing=label_smoothing,
                         share_embeddings=share_embeddings, tie_output=tie_output)
    tasks.check_mt_options(model_options, batch_tokens)
    from ..augment import Augmentation

    augmentation = Augmentation(augment_names, placeholders, augment_case, augment_concat, seed=seed).check()
    shard, ddp_wrap, is_main = _distributed(distributed, nproc, dev)
    src_field, tgt_field = src_field or src_lang, tgt_field or tgt_lang
    path = lambda p: str(p) if p else None  # noqa: E731
    corpus = corpora.open_parallel(path(src), path(tgt), path(pairs), dataset, dataset_config, split, data_files,
                                   src_col, tgt_col, src_field, tgt_field, max_len, encoding_errors)
    train_pairs = corpus.pairs
    if val_src or val_tgt or val_pairs:
        held = corpora.open_parallel(path(val_src), path(val_tgt), path(val_pairs), src_col=src_col, tgt_col=tgt_col,
                                     src_field=src_field, tgt_field=tgt_field, encoding_errors=encoding_errors).pairs
    else:
        train_pairs, held = corpora.split_pairs(train_pairs, val_fraction, seed)
    dropped = ", ".join(f"{n} {why}" for why, n in corpus.stats.dropped.items())
    info(f"training on {len(train_pairs):,} pairs{f' ({dropped} dropped)' if dropped else ''}, "
         f"validating on {len(held):,} ({dev.type})")
    plan = tasks.TokenizerPlan(path(src_tokenizer), path(tgt_tokenizer), tokenizer_type, vocab_size, joint_vocab,
                               byte_fallback, placeholders)
    with TrainingView("tgt tokens") as view:
        run = Run(out, dev, resume, overwrite, new_data, view, shard, ddp_wrap)
        summary = tasks.train_mt(train_pairs, held, run, model_options, cfg, plan, max_tokens=batch_tokens,
                                 meta={"src_lang": src_lang, "tgt_lang": tgt_lang}, augmentation=augmentation,
                                 init=path(init_from))
    if is_main:
        _finish(summary, out, plot, as_json, "translator training")


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")
