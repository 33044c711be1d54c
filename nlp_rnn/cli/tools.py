"""Commands around the models: tokenizer train, corpus check, info."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import UsageError
from .common import JSON, info, metrics_table, out_console, print_json

tokenizer_app = typer.Typer(no_args_is_help=True, help="Train and inspect tokenizers.")
corpus_app = typer.Typer(no_args_is_help=True, help="Inspect corpora the way training reads them.")


@tokenizer_app.command("train")
def tokenizer_train(
    files: List[str] = typer.Argument(..., help="Text files, directories or globs."),
    out: Path = typer.Option(..., "-o", "--out", help="Directory to write the tokenizer into."),
    kind: str = typer.Option("unigram", "--type", help="unigram, bpe (sentencepiece) or char."),
    vocab_size: int = typer.Option(8000, "--vocab-size"),
    character_coverage: float = typer.Option(1.0, "--character-coverage"),
    min_freq: int = typer.Option(1, "--min-freq", help="char only: rarer characters become <unk>."),
    text_field: str = typer.Option("text", "--text-field"),
    encoding_errors: str = typer.Option("strict", "--encoding-errors"),
    as_json: bool = JSON,
):
    """Train a tokenizer on corpus files and save it to a directory."""
    import itertools

    from ..atomic import atomic_dir, check_output_dir
    from ..corpora import CorpusStats, iter_text_lines
    from ..tokenizers import train_tokenizer

    if kind not in ("unigram", "bpe", "char"):
        raise UsageError(f"--type must be unigram, bpe or char, not {kind!r}")
    if not 0 < character_coverage <= 1:
        raise UsageError(f"--character-coverage must be in (0, 1], not {character_coverage}")
    check_output_dir(out)  # a bad -o fails before the corpus is read
    stats = CorpusStats()  # lines are streamed; sentencepiece keeps a bounded sample of them
    lines = iter_text_lines(files, text_field=text_field, encoding_errors=encoding_errors, stats=stats)
    first = next(lines)
    tok = train_tokenizer(itertools.chain([first], lines), kind, vocab_size, min_freq, character_coverage)
    with atomic_dir(out) as tmp:
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
        out_console.print(f"{sample!r} → {' '.join(result['sample_pieces'])}")


@corpus_app.command("check")
def corpus_check(
    files: Optional[List[str]] = typer.Argument(None, help="Monolingual text files (as `train lm` takes them)."),
    src: Optional[str] = typer.Option(None, "--src"),
    tgt: Optional[str] = typer.Option(None, "--tgt"),
    pairs: Optional[str] = typer.Option(None, "--pairs"),
    dataset: Optional[str] = typer.Option(None, "--dataset"),
    dataset_config: Optional[str] = typer.Option(None, "--dataset-config"),
    split: str = typer.Option("train", "--split"),
    data_files: Optional[List[str]] = typer.Option(None, "--data-files"),
    parallel: bool = typer.Option(False, "--parallel", help="Read --dataset as pairs (--src-field/--tgt-field)."),
    src_col: int = typer.Option(0, "--src-col"),
    tgt_col: int = typer.Option(1, "--tgt-col"),
    src_field: Optional[str] = typer.Option(None, "--src-field"),
    tgt_field: Optional[str] = typer.Option(None, "--tgt-field"),
    text_field: str = typer.Option("text", "--text-field"),
    max_len: int = typer.Option(100, "--max-len", help="Pairs with a side longer than this many words are dropped."),
    encoding_errors: str = typer.Option("strict", "--encoding-errors"),
    samples: int = typer.Option(3, "--samples"),
    as_json: bool = JSON,
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


MAX_SAMPLES = 100
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if c != 0x09}


def _printable(text: str) -> str:
    """Control characters shown as escapes, so a corpus line cannot drive the terminal."""
    return text.translate(_CONTROLS)


def info_cmd(
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Describe this checkpoint or run directory."),
    as_json: bool = JSON,
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
    app.command("info")(info_cmd)
