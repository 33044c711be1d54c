"""`nlp-rnn train clf`, `classify` and `eval clf`: the text classifier's commands (flags → library → render)."""
from __future__ import annotations

import contextlib
import itertools
import json
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..configs import DEFAULT_SEED, TrainConfig
from ..errors import UsageError
from ..model_configs import ClassifierConfig as CLF
from ..limits import describe
from .common import (DataFiles, Dataset, DatasetConfig, Device, EncodingErrors, Json, Model, Overwrite, Quantize, Seed,
                     Split, TextField, Threads, TrainingView, examples, info, metrics_table, out_console, print_json,
                     input_lines, setup, warn, write_out)
from .eval_cmd import eval_app
from .models_cmd import CHUNK_LINES, service_for
from .train import (Clip, Deterministic, Dropout, EvalEvery, Keep, Layers, Lr, MaxBadSteps, MaxSteps, MaxTime,
                    NewData, Out, Patience, Plot, Precision, Resume, SaveEvery, SaveEveryMinutes, Warmup, WeightDecay,
                    _finish, _opt, _train_config, train_app)

# The classifier's training recipe (the CLI's defaults); belongs beside LM_TRAINING and MT_TRAINING in configs.
CLF_TRAINING = TrainConfig(lr=2e-3, warmup=100, weight_decay=0.01, clip=1.0, eval_every=200)
DEFAULT_EPOCHS = 10  # the budget when none is given

# ---------------------------------------------------------------------------------------------- shared options

Data = Annotated[Optional[Path], typer.Argument(
    help="Labelled examples: a TSV/CSV file (text and label columns), a .jsonl file, or a folder with one "
         "subfolder of .txt files per class.")]
TextCol = Annotated[Optional[str], typer.Option(
    "--text-col", help="TSV/CSV column of the text: a 0-based number or a header name (default: a column named "
                       "text, sentence, review…, else 0).")]
LabelCol = Annotated[Optional[str], typer.Option(
    "--label-col", help="TSV/CSV column of the label: a 0-based number or a header name (default: a column named "
                        "label, class, sentiment…, else 1).")]
Header = Annotated[Optional[bool], typer.Option(
    "--header/--no-header", help="Whether the TSV/CSV starts with a header line (default: detected, from a column "
                                 "named label, class, sentiment…).", show_default=False)]
LabelField = Annotated[str, typer.Option("--label-field", help="Field of the label in .jsonl records / dataset rows.")]
Top = Annotated[int, typer.Option("--top", help="Show the N most likely labels of each text." + describe("top"))]
ClfBatch = Annotated[int, typer.Option("--batch-size", help="Texts classified together." + describe("batch_size_infer"))]


def _reader(path, dataset, dataset_config, split, data_files, text_col, label_col, header, text_field, label_field,
            encoding_errors) -> dict:
    return dict(path=path, dataset=dataset, dataset_config=dataset_config, split=split, data_files=data_files,
                text_col=text_col, label_col=label_col, header=header, text_field=text_field, label_field=label_field,
                encoding_errors=encoding_errors)


# ---------------------------------------------------------------------------------------------- train clf

def train_clf(
    data: Data = None,
    out: Out = ...,
    dataset: Dataset = None, dataset_config: DatasetConfig = None, split: Split = "train", data_files: DataFiles = None,
    text_col: TextCol = None, label_col: LabelCol = None, header: Header = None,
    text_field: TextField = "text", label_field: LabelField = "label",
    val: Annotated[Optional[Path], _opt("--val", help="Validation examples in the layout of DATA (default: held out "
                                                       "from DATA).")] = None,
    val_fraction: Annotated[float, _opt("--val-fraction", help="Share of each label's examples held out when no --val "
                                                               "is given.", limit="val_fraction")] = 0.1,
    encoding_errors: EncodingErrors = "strict",
    tokenizer_type: Annotated[str, _opt("--tokenizer-type", help="Tokens: char, or sentencepiece unigram or bpe "
                                                                 "subwords trained on DATA.")] = "char",
    vocab_size: Annotated[int, _opt("--vocab-size", help="Vocabulary size of a unigram/bpe tokenizer.",
                                    limit="vocab_size")] = 8000,
    tokenizer: Annotated[Optional[Path], _opt("--tokenizer", help="An existing tokenizer directory instead.")] = None,
    init_lm: Annotated[Optional[Path], _opt("--init-lm", help="Start the encoder (embedding, recurrent layers) from "
                                                              "this character language model; its tokenizer, cell "
                                                              "and sizes are used.")] = None,
    cell: Annotated[Optional[str], _opt("--cell", help=f"Recurrent cell: rnn (tanh), lstm or gru (default: {CLF.cell}; "
                                                       "with --init-lm, the LM's).")] = None,
    layers: Layers = CLF.layers,
    hidden: Annotated[Optional[int], _opt("--hidden", help=f"Units per recurrent layer and direction (default: "
                                                           f"{CLF.hidden}; with --init-lm, the LM's).",
                                          limit="hidden")] = None,
    embed: Annotated[Optional[int], _opt("--embed", help=f"Size of the token embeddings (default: {CLF.embed}; with "
                                                         "--init-lm, the LM's).", limit="embed")] = None,
    bidirectional: Annotated[bool, _opt("--bidirectional/--unidirectional",
                                        help="Encoder reads both ways.")] = CLF.bidirectional,
    pooling: Annotated[str, _opt("--pooling", help="How the encoder's states become one vector: last, mean, max or "
                                                   "attention.")] = CLF.pooling,
    dropout: Dropout = CLF.dropout,
    class_weights: Annotated[str, _opt("--class-weights", help="none, or auto: weigh each class's loss by "
                                                               "n / (classes x its count), for imbalanced data.")] = "none",
    batch_size: Annotated[int, _opt("--batch-size", help="Examples per optimizer step.", limit="batch_size")] = 32,
    max_tokens: Annotated[int, _opt("--max-tokens", help="A longer text keeps its first N tokens (classify cuts "
                                                         "the same way).", limit="max_tokens")] = 400,
    lr: Lr = CLF_TRAINING.lr, warmup: Warmup = CLF_TRAINING.warmup,
    weight_decay: WeightDecay = CLF_TRAINING.weight_decay, clip: Clip = CLF_TRAINING.clip,
    max_time: MaxTime = None, max_steps: MaxSteps = None,
    epochs: Annotated[Optional[float], _opt("--epochs", help=f"Budget in passes over the training data (default: "
                                                             f"{DEFAULT_EPOCHS} when no budget is given).",
                                            limit="epochs")] = None,
    eval_every: EvalEvery = CLF_TRAINING.eval_every, save_every: SaveEvery = None,
    save_every_minutes: SaveEveryMinutes = None, keep: Keep = CLF_TRAINING.keep, patience: Patience = None,
    max_bad_steps: MaxBadSteps = CLF_TRAINING.max_bad_steps, precision: Precision = "auto",
    resume: Resume = False, overwrite: Overwrite = False, new_data: NewData = False,
    deterministic: Deterministic = False, plot: Plot = False,
    as_json: Json = False, seed: Seed = None, threads: Threads = None, device: Device = "auto",
):
    """Train a text classifier: embedding, recurrent encoder, pooling, linear layer; the best by validation macro-F1."""
    from .. import corpora, runtime, tasks
    from ..training import Run

    dev = setup(threads, device)
    runtime.set_deterministic(deterministic)
    if max_time is None and max_steps is None and epochs is None:
        epochs = DEFAULT_EPOCHS
    seed = DEFAULT_SEED if seed is None else seed
    cfg = _train_config(CLF_TRAINING, lr=lr, warmup=warmup, weight_decay=weight_decay, clip=clip, max_time=max_time,
                        max_steps=max_steps, epochs=epochs, eval_every=eval_every, save_every=save_every,
                        save_every_minutes=save_every_minutes, keep=keep, patience=patience,
                        max_bad_steps=max_bad_steps, precision=precision, seed=seed)
    model_options = dict(cell=cell, layers=layers, hidden=hidden, embed=embed, bidirectional=bidirectional,
                         pooling=pooling, dropout=dropout)
    clf_data = tasks.ClfData(batch_size=batch_size, max_tokens=max_tokens, val_fraction=val_fraction,
                             class_weights=class_weights)
    tasks.check_clf_options(model_options, clf_data)
    if tokenizer_type not in ("char", "unigram", "bpe"):
        raise UsageError(f"--tokenizer-type must be char, unigram or bpe, not {tokenizer_type!r}")
    if init_lm is not None and (tokenizer is not None or tokenizer_type != "char"):
        raise UsageError("--init-lm reads text with the language model's own characters: leave out --tokenizer "
                         "and --tokenizer-type")
    if data is None and dataset is None:
        raise UsageError("no training data given: pass DATA (a file or folder) or --dataset NAME")
    reader = _reader(data, dataset, dataset_config, split, data_files, text_col, label_col, header, text_field,
                     label_field, encoding_errors)
    train = corpora.open_labelled(**reader)
    held = corpora.open_labelled(**{**reader, "path": val, "dataset": None}) if val is not None else None
    dropped = ", ".join(f"{n} {why}" for why, n in train.stats.dropped.items())
    if dropped:
        info(f"{train.stats.files[0]}: {dropped} dropped")
    plan = tasks.ClfTokenizerPlan(str(tokenizer) if tokenizer else None, tokenizer_type, vocab_size)
    with TrainingView("tokens") as view:
        run = Run(out, dev, resume, overwrite, new_data, view)
        summary = tasks.train_clf(train, held, run, model_options, cfg, clf_data, plan, init_lm)
    _finish(summary, out, plot, as_json, "classifier training")


# ---------------------------------------------------------------------------------------------- classify

def classify(
    text: Annotated[Optional[str], typer.Argument(help="A text (default: read stdin, or -i FILE).")] = None,
    model: Model = None,
    input_file: Annotated[Optional[Path], typer.Option("--input", "-i", help="Classify this file, line by line.")] = None,
    output_file: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="Write the labels here (created atomically: all lines or nothing).")] = None,
    overwrite: Overwrite = False,
    top: Top = 1,
    batch_size: ClfBatch = 64,
    encoding_errors: EncodingErrors = "strict",
    as_json: Json = False,
    threads: Threads = None,
    device: Device = "auto",
    quantize: Quantize = "none",
):
    """Label a text, standard input or a file: one line in, one line out ("label<TAB>probability", and with
    --top N the next labels and their probabilities on the same line).

    A blank input line gets the model's answer for an empty text, so output lines always match input lines."""
    from ..atomic import atomic_file
    from ..limits import check

    check("top", top)
    check("batch_size_infer", batch_size, "--batch-size")
    lines = input_lines(text, "a text", input_file, output_file, overwrite, encoding_errors)
    service = service_for(model, "clf", threads, device, quantize)
    start = time.perf_counter()
    count, results = 0, []
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(atomic_file(output_file)) if output_file is not None else None
        while chunk := list(itertools.islice(lines, CHUNK_LINES)):
            done = service.classify(chunk, top=top, batch_size=batch_size)
            count += len(done)
            if as_json:
                results.extend(done)
            else:
                (out.write if out is not None else write_out)("".join(_render(r) for r in done))
        if as_json:
            payload = {"results": results, "texts": count, "seconds": round(time.perf_counter() - start, 4)}
            if out is not None:
                out.write(json.dumps(payload, ensure_ascii=False) + "\n")
            else:
                print_json(payload)
    if output_file is not None:
        info(f"{count} lines classified in {time.perf_counter() - start:.1f}s → {output_file}")


def _render(result: dict) -> str:
    return "\t".join(f"{t['label']}\t{t['prob']:.4f}" for t in result["top"]) + "\n"


# ---------------------------------------------------------------------------------------------- eval clf

def eval_clf(
    data: Data = None,
    model: Model = None,
    dataset: Dataset = None, dataset_config: DatasetConfig = None, split: Annotated[str, typer.Option(
        "--split", help="The --dataset's split to evaluate on.")] = "test", data_files: DataFiles = None,
    text_col: TextCol = None, label_col: LabelCol = None, header: Header = None,
    text_field: TextField = "text", label_field: LabelField = "label",
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Also draw the confusion matrix to this PNG file "
                                                                "(needs matplotlib).")] = None,
    overwrite: Overwrite = False,
    batch_size: ClfBatch = 64,
    encoding_errors: EncodingErrors = "strict",
    as_json: Json = False,
    threads: Threads = None,
    device: Device = "auto",
    quantize: Quantize = "none",
):
    """Accuracy, macro-F1, per-label precision/recall/F1 and the confusion matrix of a classifier on labelled data.

    Every label in the data must be one the model knows: a label it never saw in training is an error naming the
    line, since no answer of the model could count as right or wrong for it."""
    from .. import corpora, tasks
    from ..atomic import check_output_file
    from ..errors import CorpusError

    if data is None and dataset is None:
        raise UsageError("no data given: pass DATA (a file or folder) or --dataset NAME")
    stream = corpora.LabelledStream(**_reader(data, dataset, dataset_config, split, data_files, text_col, label_col,
                                              header, text_field, label_field, encoding_errors))
    if plot is not None:
        check_output_file(plot, [data], overwrite)
    texts, given, places = [], [], []
    for text, label in stream:
        texts.append(text)
        given.append(label)
        places.append(stream.at)
    if not texts:
        raise CorpusError(stream.where, "no usable examples")
    service = service_for(model, "clf", threads, device, quantize)
    key, clf = service.classifier(text=texts[0])  # without -m, the shipped classifier of the data's language
    labels = clf.meta["labels"]
    known = {label: i for i, label in enumerate(labels)}
    unknown = next((i for i, label in enumerate(given) if label not in known), None)
    if unknown is not None:
        raise CorpusError(places[unknown][0], f"label {given[unknown]!r} is not one the model knows "
                                              f"({', '.join(labels[:20])}), so this example cannot be scored",
                          places[unknown][1])
    gold = [known[label] for label in given]
    start = time.perf_counter()
    done = service.classify(texts, model=key, batch_size=batch_size)
    seconds = time.perf_counter() - start
    scores = tasks.classification_scores(gold, [known[r["label"]] for r in done], labels)
    scores.update(model=str(clf.path), seconds=round(seconds, 3), texts_per_s=round(len(texts) / max(seconds, 1e-9), 1))
    if stream.stats.dropped:
        warn(f"{sum(stream.stats.dropped.values())} blank examples skipped")
    if plot is not None:
        _plot_confusion(scores["confusion"], labels, plot, f"{Path(stream.where).name}\naccuracy "
                        f"{scores['accuracy']:.3f}, macro-F1 {scores['macro_f1']:.3f}")
        info(f"confusion matrix drawn to {plot}")
    if as_json:
        print_json(scores)
        return
    out_console.print(metrics_table(f"{stream.where} ({clf.path})", {
        "accuracy": scores["accuracy"], "macro-F1": scores["macro_f1"], "examples": scores["examples"],
        "seconds": scores["seconds"], "texts/s": scores["texts_per_s"]}))
    out_console.print(_per_label_table(scores))
    out_console.print(_confusion_table(scores["confusion"], labels))


def _per_label_table(scores: dict):
    from rich.table import Table

    table = Table(title="per label", header_style="bold")
    for name in ("label", "precision", "recall", "F1", "support"):
        table.add_column(name, justify="left" if name == "label" else "right")
    for label, s in scores["per_label"].items():
        table.add_row(label, f"{s['precision']:.4f}", f"{s['recall']:.4f}", f"{s['f1']:.4f}", f"{s['support']:,}")
    return table


def _confusion_table(confusion: list[list[int]], labels: list[str]):
    from rich.table import Table

    table = Table(title="confusion matrix (rows: true label, columns: predicted)", header_style="bold")
    table.add_column("true \\ predicted")
    for label in labels:
        table.add_column(label, justify="right")
    for label, row in zip(labels, confusion):
        table.add_row(label, *(f"{n:,}" for n in row))
    return table


def _plot_confusion(confusion: list[list[int]], labels: list[str], path: Path, title: str) -> None:
    """The confusion matrix as a heat map with counts, written atomically to `path`."""
    from ..atomic import atomic_file

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'nlp-rnn[plot]'") from None
    n = len(labels)
    size = min(12.0, 3.0 + 0.6 * n)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(n), labels, rotation=45 if n > 3 else 0, ha="right" if n > 3 else "center")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    peak = max(1, max(max(row) for row in confusion))
    if n <= 30:
        for i, row in enumerate(confusion):
            for j, v in enumerate(row):
                ax.text(j, i, f"{v:,}", ha="center", va="center", color="white" if v > peak / 2 else "black")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    with atomic_file(path, "wb", encoding=None) as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)


def register(app: typer.Typer) -> None:
    train_app.command("clf", epilog=examples(
        "nlp-rnn train clf corpora/reviews-en/train.tsv --val corpora/reviews-en/dev.tsv -o runs/clf-en --epochs 20",
        "nlp-rnn train clf aclImdb/train -o runs/imdb --tokenizer-type unigram --vocab-size 16000 --max-time 30m"))(
        train_clf)
    app.command("classify", epilog=examples(
        'nlp-rnn classify -m runs/clf-en "The food was cold and the waiter rude."',
        "nlp-rnn classify -m runs/clf-en -i reviews.txt -o labels.tsv --top 2"))(classify)
    eval_app.command("clf", epilog=examples(
        "nlp-rnn eval clf -m runs/clf-en corpora/reviews-en/test.tsv",
        "nlp-rnn eval clf -m runs/imdb aclImdb/test --json --plot confusion.png"))(eval_clf)
