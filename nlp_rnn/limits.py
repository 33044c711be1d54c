"""The range of every number a user or a file can set, in one table, checked before anything is allocated.

Each face (CLI, REPL, HTTP) reads its bounds and help text from here, so a limit is written once. The bounds are
generous for real use and small enough that no value can exhaust the machine (a beam of 100,000 took 4.9 GB).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import UsageError


@dataclass(frozen=True)
class Range:
    lo: float
    hi: float
    integer: bool = True
    lo_open: bool = False   # lo itself is not allowed
    example: str = ""

    def contains(self, v) -> bool:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return False
        if self.integer and not isinstance(v, int):
            return False
        if isinstance(v, float) and not math.isfinite(v):
            return False
        return (v > self.lo if self.lo_open else v >= self.lo) and v <= self.hi

    def text(self) -> str:
        kind = "a whole number" if self.integer else "a number"
        if self.lo_open and self.lo == 0:
            return f"a positive number up to {_num(self.hi)}"
        lo = f"above {_num(self.lo)}" if self.lo_open else f"from {_num(self.lo)}"
        return f"{kind} {lo} to {_num(self.hi)}"


def _num(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


def _int(lo, hi, example=""):
    return Range(lo, hi, True, False, example)


def _real(lo, hi, lo_open=False, example=""):
    return Range(lo, hi, False, lo_open, example)


LIMITS: dict[str, Range] = {
    # inference
    "beam": _int(1, 64, "5"),
    "n_best": _int(1, 64, "3"),
    "length": _int(1, 100_000, "300"),
    "samples": _int(1, 1_000, "3"),
    "temperature": _real(0, 100, lo_open=True, example="0.8"),
    "top_k": _int(1, 1_000_000, "40"),
    "top_p": _real(0, 1, lo_open=True, example="0.9"),
    "seed": _int(0, 2 ** 32 - 1, "42"),
    "k": _int(1, 50, "3"),
    "complete_beam": _int(1, 64, "8"),
    "length_penalty": _real(0, 10, example="0.6"),
    "max_len_ratio": _real(0, 10, lo_open=True, example="2"),
    "batch_size_infer": _int(1, 4096, "32"),
    "threads": _int(1, 1024, "1"),
    "nproc": _int(2, 1024, "2"),
    "top": _int(1, 1_000, "3"),
    "confidence": _real(0, 1, example="0.5"),
    # training
    "lr": _real(0, 10, lo_open=True, example="2e-3"),
    "weight_decay": _real(0, 10, example="0.01"),
    "warmup": _int(0, 10 ** 7, "200"),
    "min_lr_ratio": _real(0, 1, example="0.1"),
    "clip": _real(0, 10 ** 6, example="1"),
    "max_steps": _int(1, 10 ** 9, "1000"),
    "max_time": _real(0, 10 ** 7, lo_open=True, example="15m"),
    "epochs": _real(0, 10 ** 5, lo_open=True, example="10"),
    "eval_every": _int(1, 10 ** 9, "500"),
    "save_every": _int(1, 10 ** 9, "1000"),
    "save_every_minutes": _real(0, 10 ** 6, lo_open=True, example="10"),
    "keep": _int(1, 1_000, "2"),
    "patience": _int(1, 10 ** 6, "5"),
    "max_bad_steps": _int(1, 10 ** 6, "20"),
    "bptt": _int(1, 10_000, "128"),
    "batch_size": _int(1, 65_536, "64"),
    "batch_tokens": _int(16, 10 ** 8, "2048"),
    "val_fraction": _real(0, 0.5, lo_open=True, example="0.05"),
    "val_blocks": _int(1, 1_000, "10"),
    "min_freq": _int(1, 10 ** 9, "1"),
    "max_len": _int(1, 10_000, "100"),
    "vocab_size": _int(1, 1_000_000, "8000"),
    "character_coverage": _real(0, 1, lo_open=True, example="1.0"),
    "augment_share": _real(0, 1, example="0.1"),
    "max_tokens": _int(2, 100_000, "400"),
    # model sizes (also the bounds a checkpoint's config.json is held to)
    "hidden": _int(1, 16_384, "512"),
    "embed": _int(1, 16_384, "64"),
    "layers": _int(1, 64, "2"),
    "dropout": _real(0, 0.95, example="0.1"),
    "label_smoothing": _real(0, 0.95, example="0.1"),
    "num_classes": _int(2, 10_000, "2"),
}


def check(name: str, value, flag: str | None = None):
    """`value` when it lies in LIMITS[name] (None passes: an unset option), else a UsageError with a hint."""
    if value is None:
        return value
    r = LIMITS[name]
    if not r.contains(value):
        shown = flag or f"--{name.replace('_', '-')}"
        hint = f", e.g. {shown} {r.example}" if r.example else ""
        raise UsageError(f"{shown} must be {r.text()}, not {value!r}{hint}")
    return value


def describe(name: str) -> str:
    """The range as help text: ' (1–64)'."""
    r = LIMITS[name]
    lo = f">{_num(r.lo)}" if r.lo_open else _num(r.lo)
    return f" [{lo}–{_num(r.hi)}]"
