"""What every command shares: consoles, global flags, durations, runtime setup, progress rendering, output."""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from ..errors import UsageError

# markup=False: user text (paths, corpora, model output) is never read as rich markup; styles come from `styled`
out_console = Console(highlight=False, soft_wrap=True, markup=False)
err_console = Console(stderr=True, highlight=False, markup=False)


def styled(label: str, style: str, text: str) -> Text:
    """`label` in `style`, then `text` exactly as it is."""
    return Text.assemble((label, style), " ", text)


@dataclass
class _State:
    debug: bool = False
    quiet: bool = False


state = _State()

# Options shared by many commands (Typer reads the defaults from these objects).
JSON = typer.Option(False, "--json", help="Print results as one JSON object on stdout.")
SEED = typer.Option(None, "--seed", help="Random seed (same seed, same result).")
THREADS = typer.Option(None, "--threads", help="CPU threads for tensor work (default: torch's choice).")
DEVICE = typer.Option("auto", "--device", help="auto, cpu, cuda or mps.")
MODEL = typer.Option(..., "--model", "-m", help="Checkpoint or training run directory.")


def setup(threads: int | None, device: str, seed: int | None = None):
    """Apply --threads/--device/--seed; returns the torch device (the only place the CLI sees one)."""
    from .. import runtime

    runtime.set_threads(threads)
    if seed is not None:
        runtime.seed_everything(seed)
    dev = runtime.pick_device(device)
    return dev


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


def print_json(obj) -> None:
    """One JSON object on stdout; always valid JSON (a non-finite number becomes null)."""
    out_console.file.write(json.dumps(_finite(obj), ensure_ascii=False, default=str, allow_nan=False) + "\n")
    out_console.file.flush()


def _finite(x):
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


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
        err_console.print(text, markup=False, highlight=False, soft_wrap=True)


class TrainingView:
    """Renders training events as a Rich progress bar with live figures (stderr), or nothing with --quiet."""

    def __init__(self, unit: str, quiet: bool = False, bits: bool = False):
        self.unit, self.quiet, self.bits = unit, quiet or state.quiet, bits
        self.progress = None
        self.task = None

    def __enter__(self):
        return self

    def _start(self):
        """The bar appears with the first step, so errors found while reading the corpus stand alone."""
        if self.progress is None and not self.quiet:
            self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
                                     TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                     TextColumn("{task.fields[figures]}"), console=err_console, transient=False)
            self.progress.__enter__()
            self.task = self.progress.add_task("training", total=None, figures="")

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def __call__(self, event) -> None:
        from ..training import EvalEvent, Notice, StepEvent

        if self.quiet:
            return
        if isinstance(event, Notice) and self.progress is None:
            err_console.print(event.text, highlight=False, soft_wrap=True)
            return
        self._start()
        if isinstance(event, StepEvent):
            fig = f"loss {event.loss:.3f}"
            if self.bits:
                fig += f" ({event.loss / math.log(2):.3f} bits/char)"
            fig += f"  {event.tokens_per_s:,.0f} {self.unit}/s  lr {event.lr:.2e}"
            self.progress.update(self.task, completed=event.step, total=event.planned_steps or None, figures=fig)
        elif isinstance(event, EvalEvent):
            shown = "  ".join(f"{k} {v}" for k, v in event.metrics.items() if k != "score")
            self.progress.console.print(f"step {event.step}: {shown}{'  (best)' if event.best else ''}", highlight=False)
        elif isinstance(event, Notice):
            self.progress.console.print(event.text, highlight=False)
