"""Commands around the models: tokenizer train, corpus check, info."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from ..errors import UsageError
from ..limits import describe
from .common import (DataFiles, Dataset, DatasetConfig, EncodingErrors, Json, MaxLen, Overwrite, PairsFile,
                     Split, SrcCol, SrcField, SrcFile, TextField, TgtCol, TgtField, TgtFile, examples, info,
                     metrics_table, out_console, print_json)

MAX_SAMPLES = 100
tokenizer_app = typer.Typer(no_args_is_help=True, help="Train and inspect tokenizers.")
corpus_app = typer.Typer(no_args_is_help=True, help="Inspect corpora the way training reads them.")


@tokenizer_app.command("train", epilog=examples(
    "nlp-rnn tokenizer train corpus/*.txt --type unigram --vocab-size 8000 -o tok/unigram-8k",
    "nlp-rnn tokenizer train notes.jsonl --text-field body --type char -o tok/chars"))
def tokenizer_train(
    files: Annotated[List[str], typer.Argument(help="Text files, directories or globs (.txt, .jsonl).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Directory to write the tokenizer into (new, or a "
                                                          "tokenizer nlp-rnn wrote; created with its parents).")],
    kind: Annotated[str, typer.Option("--type", help="unigram, bpe (sentencepiece) or char.")] = "unigram",
    vocab_size: Annotated[int, typer.Option("--vocab-size", help="Pieces in the vocabulary (sentencepiece)."
                                            + describe("vocab_size"))] = 8000,
    character_coverage: Annotated[float, typer.Option(
        "--character-coverage", help="Share of characters sentencepiece must cover; the rest become <unk>."
        + describe("character_coverage"))] = 1.0,
    min_freq: Annotated[int, typer.Option("--min-freq", help="char only: rarer characters become <unk>."
                                          + describe("min_freq"))] = 1,
    text_field: TextField = "text",
    encoding_errors: EncodingErrors = "strict",
    overwrite: Overwrite = False,
    as_json: Json = False,
):
    """Train a tokenizer on corpus files and save it to a directory."""
    import itertools

    from ..atomic import atomic_dir, check_output_dir
    from ..corpora import CorpusStats, iter_text_lines
    from ..limits import check
    from ..tokenizers import train_tokenizer

    if kind not in ("unigram", "bpe", "char"):
        raise UsageError(f"--type must be unigram, bpe or char, not {kind!r}")
    check("vocab_size", vocab_size)
    check("character_coverage", character_coverage)
    check("min_freq", min_freq)
    check_output_dir(out, overwrite)  # a bad -o fails before the corpus is read
    stats = CorpusStats()  # lines are streamed; sentencepiece keeps a bounded sample of them
    lines = iter_text_lines(files, text_field=text_field, encoding_errors=encoding_errors, stats=stats)
    first = next(lines)
    tok = train_tokenizer(itertools.chain([first], lines), kind, vocab_size, min_freq, character_coverage)
    with atomic_dir(out, overwrite) as tmp:
        tok.save(tmp)
    sample = first[:80]
    ids = tok.encode(sample)
    result = {"type": kind, "vocab_size": tok.vocab_size, "lines": stats.kept, "out": str(out),
              "sample": sample, "sample_tokens": len(ids),
              "sample_pieces": [tok.id_to_piece(i) for i in ids][:40]}
    if as_json:
        print_json(result)
    else:
        out_console.print(f"{kind} tokenizer with {tok.vocab_size} tokens written to {out}")
        out_console.print(_printable(f"{sample!r} → {' '.join(result['sample_pieces'])}"))


@corpus_app.command("check", epilog=examples(
    "nlp-rnn corpus check corpus/*.txt", "nlp-rnn corpus check --pairs spa.txt --json",
    "nlp-rnn corpus check --src train.de --tgt train.en --samples 10"))
def corpus_check(
    files: Annotated[Optional[List[str]], typer.Argument(
        help="Monolingual text files, directories or globs (as `train lm` takes them).")] = None,
    src: SrcFile = None, tgt: TgtFile = None, pairs: PairsFile = None,
    dataset: Dataset = None, dataset_config: DatasetConfig = None, split: Split = "train",
    data_files: DataFiles = None,
    parallel: Annotated[bool, typer.Option("--parallel", help="Read --dataset as pairs (--src-field/--tgt-field).")] = False,
    src_col: SrcCol = 0, tgt_col: TgtCol = 1, src_field: SrcField = None, tgt_field: TgtField = None,
    text_field: TextField = "text",
    max_len: MaxLen = 100,
    encoding_errors: EncodingErrors = "strict",
    samples: Annotated[int, typer.Option("--samples", help=f"Random lines to show (0-{MAX_SAMPLES}), each "
                                                           f"shortened to a few hundred characters.")] = 3,
    as_json: Json = False,
):
    """Show what training would see: lines kept and dropped (and why), lengths, character set, samples."""
    from rich.text import Text

    from .. import corpora

    if not 0 <= samples <= MAX_SAMPLES:
        raise UsageError(f"--samples must be between 0 and {MAX_SAMPLES}, not {samples}")
    # one streaming pass in bounded memory; samples come back cut to corpora.SAMPLE_CHARS characters
    if src or tgt or pairs or (dataset and parallel):
        if files:
            raise UsageError("give FILES (monolingual) or --src/--tgt/--pairs (parallel), not both")
        report = corpora.summarize_parallel(src, tgt, pairs, dataset, dataset_config, split, data_files, src_col,
                                            tgt_col, src_field, tgt_field, max_len, encoding_errors, samples)
    else:
        report = corpora.summarize_text(files, dataset, dataset_config, split, data_files, text_field,
                                        encoding_errors, samples)
    if as_json:
        print_json(report)
        return
    rows = {k: v for k, v in report.items() if k not in ("samples", "files", "file_count", "dropped", "kind")}
    for why, n in report["dropped"].items():
        rows[f"dropped ({why})"] = n
    rows = {k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in rows.items()}
    shown = report["files"][:3]
    more = report["file_count"] - len(shown)
    title = f"{report['kind']} corpus: {', '.join(shown)}" + (f" and {more:,} more files" if more else "")
    out_console.print(metrics_table(Text(_printable(title)), rows))
    for s in report["samples"]:
        out_console.print("  " + _printable(" ⟶ ".join(s) if isinstance(s, list) else s), markup=False)


_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if c != 0x09}


def _printable(text: str) -> str:
    """Control characters shown as escapes, so a corpus line cannot drive the terminal."""
    return text.translate(_CONTROLS)


def info_cmd(
    model: Annotated[Optional[Path], typer.Option(
        "--model", "-m", help="Describe this checkpoint or run directory (default: the shipped models).")] = None,
    as_json: Json = False,
):
    """Versions, the machine, and the shipped (or given) models."""
    import platform

    import torch

    from .. import __version__
    from ..checkpoint import load_checkpoint
    from ..defaults import checkpoints_dir

    def describe(path: Path) -> dict:
        loaded = load_checkpoint(path)
        n = sum(p.numel() for p in loaded.model.parameters())
        return {"path": str(loaded.path), "kind": loaded.kind, "parameters": n, "config": loaded.model.config.to_dict(),
                "meta": loaded.meta}

    result = {"version": __version__, "python": platform.python_version(), "torch": torch.__version__,
              "cuda": torch.cuda.is_available(), "threads": torch.get_num_threads()}
    if model is not None:
        result["model"] = describe(model)
    else:
        root = checkpoints_dir()
        result["checkpoints_dir"] = str(root)
        result["shipped"] = [describe(d) for d in sorted(root.glob("*")) if (d / "config.json").is_file()] if root.is_dir() else []
    if as_json:
        print_json(result)
        return
    out_console.print(f"nlp-rnn {result['version']}  python {result['python']}  torch {result['torch']}  "
                      f"cuda {'yes' if result['cuda'] else 'no'}  threads {result['threads']}")
    for m in ([result["model"]] if model is not None else result["shipped"]):
        c = m["config"]
        arch = (f"{c['cell']} {c['layers']}x{c['hidden']}" +
                (f", attention {c['attention']}" if m["kind"] == "mt" else ""))
        metric = m["meta"].get("test_metrics") or {}
        out_console.print(f"  {m['path']}: {m['kind']} ({arch}), {m['parameters']:,} parameters"
                          + (f", {metric}" if metric else ""))
    if model is None and not result["shipped"]:
        info(f"no shipped models found in {result['checkpoints_dir']}")


def register(app: typer.Typer) -> None:
    app.add_typer(tokenizer_app, name="tokenizer")
    app.add_typer(corpus_app, name="corpus")
    app.command("info", epilog=examples("nlp-rnn info", "nlp-rnn info -m runs/lm --json"))(info_cmd)
