"""Small data and tiny models shared by the tests (everything is written into tmp paths)."""
from __future__ import annotations

from pathlib import Path

from nlp_rnn import tasks
from nlp_rnn.training import TrainConfig

LM_TEXT = "the quick brown fox jumps over the lazy dog. " * 30

PAIRS = [("the cat sleeps", "el gato duerme"), ("the dog runs", "el perro corre"), ("a red house", "una casa roja"),
         ("i like green apples", "me gustan las manzanas verdes"), ("where is the station?", "¿dónde está la estación?"),
         ("good morning", "buenos días"), ("we eat bread", "comemos pan"), ("the sun is hot", "el sol está caliente")]


def train_tiny_lm(run_dir: Path, cell: str = "lstm", steps: int = 150, text: str = LM_TEXT) -> dict:
    return tasks.train_lm(text, text[:200], run_dir, dict(cell=cell, hidden=64, embed=16, layers=1, dropout=0.0),
                          TrainConfig(lr=1e-2, warmup=10, max_steps=steps, eval_every=1000, precision="fp32"),
                          tasks.LMData(batch_size=4, bptt=32))


def train_tiny_mt(run_dir: Path, attention: str = "luong", cell: str = "lstm", steps: int = 200, **options) -> dict:
    model = dict(cell=cell, attention=attention, hidden=64, embed=32, layers=1, dropout=0.0, label_smoothing=0.0)
    model.update(options)
    config = TrainConfig(lr=1e-2, warmup=10, max_steps=steps, eval_every=1000, precision="fp32")
    return tasks.train_mt(PAIRS, PAIRS, run_dir, model, config, tasks.TokenizerPlan(kind="char"), max_tokens=512)


def write_pairs_tsv(path: Path, pairs=PAIRS) -> Path:
    path.write_text("".join(f"{a}\t{b}\n" for a, b in pairs), encoding="utf-8")
    return path
