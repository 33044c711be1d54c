"""The training loop: schedule, non-finite steps, early stopping, checkpoint pruning."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from nlp_rnn.checkpoint import read_pointer
from nlp_rnn.data import LMStream, encode_text
from nlp_rnn.errors import TrainingStopped
from nlp_rnn.models import CharLM, LMConfig
from nlp_rnn.tasks import LMTask, saver
from nlp_rnn.tokenizers import CharTokenizer
from nlp_rnn.training import EvalEvent, Notice, Run, TrainConfig, Trainer, lr_at

from helpers import LM_TEXT


def _trainer(tmp_path, **cfg):
    tok = CharTokenizer.build([LM_TEXT])
    torch.manual_seed(0)
    model = CharLM(LMConfig(vocab_size=tok.vocab_size, hidden=32, embed=8))
    ids = encode_text(LM_TEXT, tok)
    task = LMTask(ids, ids[:300], batch_size=4, bptt=16)
    events = []
    config = TrainConfig(**{"lr": 1e-2, "warmup": 5, "max_steps": 20, "eval_every": 10, **cfg})
    run = Run(tmp_path / "run", on_event=events.append)
    return Trainer(model, task, config, run, saver(model, {"tokenizer": tok}, {})), events


def test_lr_warms_up_then_decays_to_the_floor():
    cfg = TrainConfig(lr=1.0, warmup=10, min_lr_ratio=0.1, max_steps=100)
    lrs = [lr_at(s, cfg, 100) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lr_at(100, cfg, 100) == pytest.approx(0.1)


def _poison(trainer, bad_steps):
    """Make the loss non-finite on the given (1-based) steps."""
    real, calls = trainer.model.loss, [0]

    def loss(batch, state=None):
        calls[0] += 1
        value, state = real(batch, state)
        return (value * float("nan") if calls[0] in bad_steps else value), state

    trainer.model.loss = loss


def test_non_finite_steps_are_skipped_counted_and_reported(tmp_path):
    trainer, events = _trainer(tmp_path)
    _poison(trainer, {3, 4, 11})
    summary = trainer.fit()
    assert summary["skipped_steps"] == 3 and summary["steps"] == 20
    notices = [e.text for e in events if isinstance(e, Notice)]
    assert len(notices) == 3 and "non-finite" in notices[0]
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert math.isfinite(summary["final"]["val_nats_per_char"])


def test_too_many_bad_steps_in_a_row_stop_with_a_checkpoint(tmp_path):
    trainer, _ = _trainer(tmp_path, max_bad_steps=3)
    _poison(trainer, set(range(5, 100)))
    with pytest.raises(TrainingStopped, match="3 non-finite steps in a row"):
        trainer.fit()
    latest = read_pointer(tmp_path / "run", "latest")
    assert latest is not None and latest.name == "step-0000007"
    from nlp_rnn.checkpoint import load_checkpoint

    assert all(torch.isfinite(p).all() for p in load_checkpoint(latest).model.parameters())


def test_patience_stops_early_and_keeps_the_best(tmp_path):
    trainer, events = _trainer(tmp_path, max_steps=200, eval_every=5, patience=2)
    scores = iter([1.0, 2.0, 1.5, 1.9, 3.0])
    trainer.task.evaluate = lambda model: {"score": next(scores)}
    summary = trainer.fit()
    assert summary["stop_reason"] == "patience" and summary["steps"] == 20
    evals = [e for e in events if isinstance(e, EvalEvent)]
    assert [e.best for e in evals] == [True, True, False, False]
    assert read_pointer(tmp_path / "run", "best").name == "step-0000010"


def test_only_the_last_checkpoints_and_the_best_are_kept(tmp_path):
    trainer, _ = _trainer(tmp_path, max_steps=40, eval_every=10, keep=2)
    trainer.fit()
    kept = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    best = read_pointer(tmp_path / "run", "best").name
    assert set(kept) == {"step-0000030", "step-0000040", best}


def test_lm_stream_windows_continue_each_row():
    ids = torch.arange(40)
    stream = LMStream(ids, batch_size=2, bptt=4)
    w0, w1 = stream.window(0), stream.window(1)
    assert w0.x.tolist() == [[0, 1, 2, 3], [20, 21, 22, 23]]
    assert w0.y.tolist() == [[1, 2, 3, 4], [21, 22, 23, 24]]
    assert w1.x[:, 0].tolist() == [4, 24]
    assert len(stream) == 5 and stream.window(4).x.size(1) == 3


def test_epochs_with_different_batch_counts(tmp_path):
    """Reshuffled length buckets give each epoch its own number of batches; the loop must ask every epoch."""
    trainer, _ = _trainer(tmp_path, max_steps=12, eval_every=100)
    task, counts, seen = trainer.task, {0: 5, 1: 3}, []
    real_batch = task.batch

    def batch(epoch, i):
        assert i < counts.get(epoch, 4), (epoch, i)
        seen.append((epoch, i))
        return real_batch(epoch, i)

    task.steps_per_epoch = lambda epoch=0: counts.get(epoch, 4)
    task.batch = batch
    trainer.fit()
    assert [e for e, _ in seen] == [0] * 5 + [1] * 3 + [2] * 4


def test_kernels_built_for_new_shapes_do_not_grow_memory_without_bound():
    """A translator's batches come in a new shape almost every step; the CPU kernel caches must stay bounded
    (unbounded, a 20-minute run grew to 4.5 GB). bf16 products of 300 shapes, in a fresh process."""
    import subprocess
    import sys

    code = """
import nlp_rnn.runtime, torch
torch.set_num_threads(1)
def rss():
    return int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0]) // 1024
w = torch.randn(4000, 256).bfloat16()
torch.randn(900, 256).bfloat16() @ w.t()
base = rss()
for m in range(1000, 1300):
    torch.randn(m, 256).bfloat16() @ w.t()
print(rss() - base)
"""
    if not Path("/proc/self/status").exists():
        pytest.skip("reads resident memory from /proc")
    grown = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert grown < 100, f"{grown} MB for 300 shapes"
