"""What every command shares: consoles, global flags, the options declared once, runtime setup, rendering.

Options used by more than one command are typed `Annotated` aliases here, each with its help line and, for
numbers, the range from `limits`; a command only picks its default.
"""
from __future__ import annotations

import json
import math
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, List, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..errors import UsageError
from ..jsonsafe import finite
from ..limits import describe

# markup=False: user text (paths, corpora, model output) is never read as rich markup; styles come from `styled`
out_console = Console(highlight=False, soft_wrap=True, markup=False)
err_console = Console(stderr=True, highlight=False, markup=False)


@dataclass
class _State:
    debug: bool = False
    quiet: bool = False


state = _State()


def examples(*lines: str) -> str:
    """A command's epilog: its examples, kept on their own lines by click (the \\b marker)."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


# ---------------------------------------------------------------------------------------------- shared options

Json = Annotated[bool, typer.Option("--json", help="Print results as one JSON object on stdout.")]
Seed = Annotated[Optional[int], typer.Option("--seed", help="Random seed (same seed, same result)." + describe("seed"))]
Threads = Annotated[Optional[int], typer.Option(
    "--threads", help="CPU threads for tensor work (default: torch's choice)." + describe("threads"))]
Device = Annotated[str, typer.Option("--device", help="auto (CUDA, then MPS, then CPU), cpu, cuda or mps.")]
Model = Annotated[Optional[Path], typer.Option(
    "--model", "-m", help="Checkpoint or training run directory (default: the shipped model).")]
Lang = Annotated[Optional[str], typer.Option(
    "--lang", help="Language of the shipped model to use: en or es (default: guessed from the text).")]
Quantize = Annotated[str, typer.Option(
    "--quantize", help="none, or int8: int8 weights for the recurrent and linear layers (CPU inference).")]
Overwrite = Annotated[bool, typer.Option(
    "--overwrite", help="Replace an existing output that nlp-rnn did not make (never an input; inside a "
                        "directory only nlp-rnn's own files are replaced).")]
EncodingErrors = Annotated[str, typer.Option(
    "--encoding-errors", help="strict (invalid UTF-8 is an error naming the line) or replace (with U+FFFD).")]
Beam = Annotated[int, typer.Option("--beam", "-b", help="Beam size (1: greedy search)." + describe("beam"))]
LengthPenalty = Annotated[float, typer.Option(
    "--length-penalty", help="Beam search ranks score / ((5 + len) / 6) ** alpha; 0 ranks by raw log-probability."
    + describe("length_penalty"))]
MaxLenRatio = Annotated[float, typer.Option(
    "--max-len-ratio", help="Longest output, relative to the source length (plus 5 tokens)." + describe("max_len_ratio"))]
InferBatch = Annotated[int, typer.Option(
    "--batch-size", help="Sentences translated together." + describe("batch_size_infer"))]
UseShortlist = Annotated[bool, typer.Option(
    "--shortlist/--full-vocab", help="With a translator saved with a lexical shortlist (trained by this version), "
    "search only the target words likely for each sentence's source words: faster, BLEU within 0.3 in our benchmarks; "
    "--full-vocab searches the whole vocabulary.")]
SearchPrecision = Annotated[str, typer.Option(
    "--precision", help="fp32, or bf16 autocast (measured 2-3x slower than fp32 for CPU search).")]
Dataset = Annotated[Optional[str], typer.Option("--dataset", help="A `datasets` name on the hub, or a builder (text, json, "
                                                          "csv) for local --data-files.")]
DatasetConfig = Annotated[Optional[str], typer.Option("--dataset-config", help="The --dataset's configuration name.")]
Split = Annotated[str, typer.Option("--split", help="The --dataset's split to train on.")]
DataFiles = Annotated[Optional[List[str]], typer.Option("--data-files", help="Local files for a --dataset builder.")]
SrcFile = Annotated[Optional[Path], typer.Option("--src", help="Source side, one sentence per line.")]
TgtFile = Annotated[Optional[Path], typer.Option("--tgt", help="Target side, aligned with --src line by line.")]
PairsFile = Annotated[Optional[Path], typer.Option("--pairs", help="TSV/CSV (source, target columns) or JSONL pairs.")]
SrcCol = Annotated[int, typer.Option("--src-col", help="0-based source column of --pairs TSV/CSV.")]
TgtCol = Annotated[int, typer.Option("--tgt-col", help="0-based target column of --pairs TSV/CSV.")]
SrcField = Annotated[Optional[str], typer.Option("--src-field", help="JSONL/dataset field of the source "
                                                                     "(default: src, or --src-lang).")]
TgtField = Annotated[Optional[str], typer.Option("--tgt-field", help="JSONL/dataset field of the target "
                                                                     "(default: tgt, or --tgt-lang).")]
TextField = Annotated[str, typer.Option("--text-field", help="Field of .jsonl records / dataset rows.")]
MaxLen = Annotated[int, typer.Option("--max-len", help="Drop pairs with a side longer than this many words."
                                     + describe("max_len"))]
Files = Annotated[Optional[List[str]], typer.Argument(help="Text files, directories or globs (.txt, .jsonl).")]


def setup(threads: int | None, device: str, seed: int | None = None):
    """Apply --threads/--device/--seed; returns the torch device (the only place the CLI sees one)."""
    from .. import runtime
    from ..limits import check

    check("threads", threads)
    check("seed", seed)
    runtime.set_threads(threads)
    if seed is not None:
        runtime.seed_everything(seed)
    return runtime.pick_device(device)


def parse_duration(text: str | None) -> float | None:
    """'90s', '15m', '1h30m', '2.5h' or a plain number of seconds."""
    if text is None:
        return None
    t = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", t):
        return float(t)
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([hms])", t)
    if not parts or "".join(a + b for a, b in parts) != t.replace(" ", ""):
        raise UsageError(f"--max-time {text!r}: use a duration like 90s, 15m, 1h30m")
    return sum(float(v) * {"h": 3600, "m": 60, "s": 1}[u] for v, u in parts)


# ---------------------------------------------------------------------------------------------- output

def styled(label: str, style: str, text: str) -> Text:
    """`label` in `style`, then `text` exactly as it is."""
    return Text.assemble((label, style), " ", text)


def print_json(obj) -> None:
    """One JSON object on stdout; always valid JSON (a non-finite number becomes null)."""
    out_console.file.write(json.dumps(finite(obj), ensure_ascii=False, default=str, allow_nan=False) + "\n")
    out_console.file.flush()


def write_out(text: str) -> None:
    """Results (translations, generated text) as they are, on stdout."""
    out_console.file.write(text)
    out_console.file.flush()


def metrics_table(title: str, rows: dict) -> Table:
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in rows.items():
        table.add_row(k, _fmt(v))
    return table


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:,.1f}" if abs(v) >= 100 else f"{v:.4f}".rstrip("0").rstrip(".")
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)


def warn(text: str) -> None:
    if not state.quiet:
        err_console.print(styled("warning:", "yellow", text), highlight=False, soft_wrap=True)


def info(text: str) -> None:
    if not state.quiet:
        err_console.print(text, highlight=False, soft_wrap=True)


class TrainingView:
    """Training events on stderr: a live Rich progress bar on a terminal, plain periodic lines otherwise (a bar
    cut to the width of a log file looks broken), nothing with --quiet."""

    def __init__(self, unit: str, quiet: bool = False, bits: bool = False, every: float = 10.0):
        self.unit, self.quiet, self.bits, self.every = unit, quiet or state.quiet, bits, every
        self.live = err_console.is_terminal
        self.progress = None
        self.task = None
        self._last_line = 0.0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def _bar(self):
        """The bar appears with the first step, so errors found while reading the corpus stand alone."""
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        if self.progress is None:
            self.progress = Progress(TextColumn("training"), BarColumn(), TextColumn("{task.fields[steps]}"),
                                     TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                     TextColumn("{task.fields[figures]}"), console=err_console, transient=False)
            self.progress.__enter__()
            self.task = self.progress.add_task("training", total=None, figures="", steps="")
        return self.progress

    def _say(self, text: str) -> None:
        (self.progress.console if self.progress is not None else err_console).print(text, highlight=False,
                                                                                   soft_wrap=True)

    def __call__(self, event) -> None:
        from ..training import EvalEvent, Notice, StepEvent

        if self.quiet:
            return
        if isinstance(event, StepEvent):
            fig = f"loss {event.loss:.3f}" + (f" ({event.loss / math.log(2):.3f} bits/char)" if self.bits else "")
            fig += f"  {event.tokens_per_s:,.0f} {self.unit}/s  lr {event.lr:.2e}"
            steps = f"step {event.step:,}" + (f"/{event.planned_steps:,}" if event.planned_steps else "")
            if self.live:
                self._bar().update(self.task, completed=event.step, total=event.planned_steps or None,
                                   figures=fig, steps=steps)
            elif time.monotonic() - self._last_line >= self.every:
                self._last_line = time.monotonic()
                self._say(f"{steps}  {fig}  {event.elapsed:,.0f}s")
        elif isinstance(event, EvalEvent):
            shown = "  ".join(f"{k} {v}" for k, v in event.metrics.items() if k != "score")
            self._say(f"step {event.step}: {shown}{'  (best)' if event.best else ''}")
        elif isinstance(event, Notice):
            self._say(event.text)


def input_lines(given: str | None, what: str, input_file: Path | None, output_file: Path | None, overwrite: bool,
                encoding_errors: str):
    """The lines a one-line-in, one-line-out command reads: the argument, -i FILE or standard input; the input and
    the output are checked first (an output may never replace the input)."""
    from ..atomic import check_output_file
    from ..corpora import check_input_file, decode_line, iter_lines

    if given is not None and input_file is not None:
        raise UsageError(f"give {what} or -i FILE, not both")
    if input_file is not None:
        check_input_file(input_file, encoding_errors)
    if output_file is not None:
        check_output_file(output_file, [input_file], overwrite)
    if input_file is not None:
        return (line for _, line in iter_lines(input_file, encoding_errors))
    if given is not None:
        return iter([decode_line(given, f"the {what.split()[-1]} argument", 1, encoding_errors)])
    return stdin_lines(encoding_errors)


def stdin_lines(encoding_errors: str = "strict"):
    """Lines of standard input, read in bounded blocks and decoded at the edge (an invalid line names its number)."""
    from ..corpora import iter_lines

    if sys.stdin.isatty():
        info("reading from standard input (Ctrl-D to end)")
    for _, line in iter_lines(sys.stdin.buffer, encoding_errors, name="standard input"):
        yield line

