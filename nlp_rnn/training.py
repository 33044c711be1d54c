"""One training loop for both models: AdamW, warmup + cosine decay, clipping, evaluation, checkpoints, resume.

A *task* supplies what differs between the language model and the translator:

    task.steps_per_epoch(epoch)   batches in that pass over the training data
    task.batch(epoch, i)          the i-th batch of an epoch, the same every time it is asked for (resume)
    task.evaluate(model)          validation metrics; "score" (higher is better) picks the best checkpoint
    task.carries_state            True when recurrent state flows from one batch to the next (LM, truncated BPTT)

The loop emits events (`StepEvent`, `EvalEvent`, `Notice`) to a callback; the CLI renders them, tests collect them.
"""
from __future__ import annotations

import json
import math
import random
import shutil
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import torch

from .checkpoint import (copy_model, flatten_optimizer, load_trainer_state, read_pointer, save_checkpoint,
                         unflatten_optimizer, write_pointer)
from .errors import CheckpointError, TrainingStopped, UsageError
from .models.rnn import detach_state
from .distributed import agree
from .runtime import autocast, resolve_precision


@dataclass
class TrainConfig:
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup: int = 100
    min_lr_ratio: float = 0.1     # cosine decay ends at lr * min_lr_ratio
    clip: float = 1.0             # gradient-norm clipping (0 turns it off)
    max_steps: int | None = None
    max_time: float | None = None  # seconds
    epochs: float | None = None
    eval_every: int = 500
    save_every: int | None = None         # steps; checkpoints are also written at every evaluation
    save_every_minutes: float | None = None
    keep: int = 2                 # resumable checkpoints kept besides the best
    patience: int | None = None   # evaluations without improvement before stopping
    max_bad_steps: int = 20       # consecutive non-finite steps before giving up
    precision: str = "auto"
    seed: int = 1234

    def validate(self) -> "TrainConfig":
        if self.lr <= 0:
            raise UsageError(f"--lr must be positive, not {self.lr}")
        if self.clip < 0:
            raise UsageError(f"--clip must be 0 (off) or positive, not {self.clip}")
        for name in ("max_steps", "eval_every", "save_every", "patience", "max_bad_steps"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1, not {v}")
        for name in ("max_time", "epochs", "save_every_minutes"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise UsageError(f"--{name.replace('_', '-')} must be positive, not {v}")
        if self.keep < 1:
            raise UsageError(f"--keep must be at least 1, not {self.keep}")
        if self.max_steps is None and self.max_time is None and self.epochs is None:
            raise UsageError("give a budget: --max-steps, --max-time or --epochs")
        return self


@dataclass
class StepEvent:
    step: int
    epoch: int
    loss: float
    lr: float
    tokens_per_s: float
    elapsed: float
    planned_steps: int


@dataclass
class EvalEvent:
    step: int
    metrics: dict
    best: bool


@dataclass
class Notice:
    text: str


class Task(Protocol):
    carries_state: bool

    def steps_per_epoch(self, epoch: int = 0) -> int: ...
    def batch(self, epoch: int, i: int): ...
    def evaluate(self, model) -> dict: ...


@dataclass
class Progress:
    """Everything besides weights and optimizer that a resumed run needs to continue on the same trajectory."""

    step: int = 0
    epoch: int = 0
    position: int = 0            # next batch index within the epoch
    elapsed: float = 0.0
    planned_steps: int = 0       # schedule length, fixed once known
    best_score: float = -math.inf
    best_step: int = 0
    evals_since_best: int = 0
    bad_steps: int = 0
    skipped_steps: int = 0
    tokens: int = 0
    history: list = field(default_factory=list)


def lr_at(step: int, cfg: TrainConfig, planned: int) -> float:
    """Linear warmup, then cosine decay to `lr * min_lr_ratio` at `planned` steps."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = min(1.0, (step - cfg.warmup) / max(1, planned - cfg.warmup))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))


class _Signals:
    """SIGINT/SIGTERM set a flag; the loop finishes its step, saves, and stops."""

    def __init__(self):
        self.received: int | None = None
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.received is not None:  # a second Ctrl-C means now
            raise KeyboardInterrupt
        self.received = signum

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


class Trainer:
    def __init__(self, model: torch.nn.Module, task: Task, config: TrainConfig, run_dir: str | Path,
                 tokenizers: dict, meta: dict | None = None, device: torch.device | str = "cpu",
                 on_event: Callable | None = None, ddp=None):
        self.model, self.task, self.cfg = model, task, config.validate()
        self.run_dir = Path(run_dir)
        self.tokenizers, self.meta = tokenizers, dict(meta or {})
        self.device = torch.device(device)
        self.on_event = on_event or (lambda e: None)
        self.ddp = ddp  # a DistributedDataParallel wrapper around `model`, when distributed
        self.is_main = ddp is None or torch.distributed.get_rank() == 0
        self.world = 1 if ddp is None else torch.distributed.get_world_size()
        self.precision = resolve_precision(config.precision, self.device)
        self.meta["precision"] = self.precision
        decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embedding" not in n]
        no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embedding" not in n)]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                      {"params": no_decay, "weight_decay": 0.0}], lr=config.lr)
        self.progress = Progress()
        self.state = None  # carried recurrent state (LM)
        self.log_path = self.run_dir / "log.jsonl"

    # ------------------------------------------------------------------ events and logging
    def _emit(self, event) -> None:
        if not self.is_main:
            return
        self.on_event(event)
        rec = {"event": type(event).__name__, **asdict(event)}
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")

    # ------------------------------------------------------------------ checkpoints
    def _save(self, tag: str | None = None) -> Path:
        p = self.progress
        name = f"step-{p.step:07d}"
        path = self.run_dir / "checkpoints" / name
        tensors, info = flatten_optimizer(self.opt.state_dict())
        tensors["rng.torch"] = torch.get_rng_state()
        if self.state is not None:
            st = self.state if isinstance(self.state, tuple) else (self.state,)
            for i, s in enumerate(st):
                tensors[f"state.{i}"] = s
        info.update(progress=asdict(p), python_random=_jsonable_random_state(), train_config=asdict(self.cfg),
                    carried_state=None if self.state is None else (2 if isinstance(self.state, tuple) else 1))
        meta = {**self.meta, "step": p.step, "epoch": p.epoch, "best_score": p.best_score}
        save_checkpoint(path, self.model, self.tokenizers, meta, tensors, info)
        write_pointer(self.run_dir, "latest", path, step=p.step)
        self._prune()
        return path

    def _prune(self) -> None:
        ckdir = self.run_dir / "checkpoints"
        best = read_pointer(self.run_dir, "best")
        steps = sorted(d for d in ckdir.iterdir() if d.is_dir() and d.name.startswith("step-"))
        for d in steps[: -self.cfg.keep]:
            if best is None or d.resolve() != best.resolve():
                shutil.rmtree(d, ignore_errors=True)

    def resume(self) -> None:
        """Load the latest checkpoint of `run_dir`: weights, optimizer, RNG, carried state, data position."""
        latest = read_pointer(self.run_dir, "latest")
        if latest is None:
            raise CheckpointError(f"{self.run_dir}: nothing to resume (no latest checkpoint)")
        from .checkpoint import load_checkpoint

        loaded = load_checkpoint(latest, kind=self.model.kind)
        self.model.load_state_dict(loaded.model.state_dict())
        tensors, info = load_trainer_state(latest)
        self.opt.load_state_dict(unflatten_optimizer(tensors, info))
        torch.set_rng_state(tensors["rng.torch"])
        if info.get("python_random"):
            random.setstate(_random_state_from_json(info["python_random"]))
        n = info.get("carried_state")
        if n:
            st = tuple(tensors[f"state.{i}"].to(self.device) for i in range(n))
            self.state = st if n == 2 else st[0]
        self.progress = Progress(**info["progress"])
        self._emit(Notice(f"resumed from {latest} at step {self.progress.step}"))

    # ------------------------------------------------------------------ the loop
    def fit(self) -> dict:
        cfg, p, task = self.cfg, self.progress, self.task
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "checkpoints").mkdir(exist_ok=True)
        per_epoch = task.steps_per_epoch()
        limits = [s for s in (cfg.max_steps, None if cfg.epochs is None else math.ceil(cfg.epochs * per_epoch)) if s]
        if not p.planned_steps and limits:
            p.planned_steps = min(limits)
        net = self.ddp or self.model
        last_save_time = time.monotonic()
        window_tokens, window_start = 0, time.monotonic()
        started = time.monotonic() - p.elapsed
        stop_reason = None
        try:
            with _Signals() as signals:
                while True:
                    p.elapsed = time.monotonic() - started
                    if cfg.max_steps is not None and p.step >= cfg.max_steps:
                        stop_reason = "max_steps"
                    elif limits and p.step >= min(limits):
                        stop_reason = "epochs"
                    elif cfg.max_time is not None and agree(p.elapsed >= cfg.max_time, self.ddp is not None):
                        stop_reason = "max_time"  # ranks agree, so none waits forever for the others
                    if stop_reason:
                        break
                    if p.position >= task.steps_per_epoch(p.epoch):  # epochs may differ in batch count
                        p.epoch, p.position = p.epoch + 1, 0
                        self.state = None
                    batch = task.batch(p.epoch, p.position).to(self.device)
                    p.position += 1
                    self.model.train()
                    lr = lr_at(p.step, cfg, p.planned_steps or 10 ** 9)
                    for group in self.opt.param_groups:
                        group["lr"] = lr
                    with autocast(self.device, self.precision):
                        loss, state = net.loss(batch, self.state) if self.ddp is None else net(batch, self.state)
                    if task.carries_state:
                        self.state = detach_state(state)
                    ok = agree(bool(torch.isfinite(loss).item()), self.ddp is not None, any_rank=False)
                    if ok:
                        self.opt.zero_grad(set_to_none=True)
                        loss.backward()
                        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip if cfg.clip else float("inf"))
                        ok = bool(torch.isfinite(norm))
                    if ok:
                        self.opt.step()
                        p.bad_steps = 0
                    else:
                        self.opt.zero_grad(set_to_none=True)
                        p.bad_steps += 1
                        p.skipped_steps += 1
                        if task.carries_state:
                            self.state = None
                        self._emit(Notice(f"step {p.step + 1}: non-finite loss or gradient, step skipped "
                                          f"({p.bad_steps} in a row)"))
                    p.step += 1
                    n_tok = batch.n_tokens * self.world  # every rank trains an equal share of the batch
                    p.tokens += n_tok
                    window_tokens += n_tok
                    if p.step == 20 and cfg.max_time is not None:
                        # A time budget: fix the schedule length from the measured speed, once, so resume agrees.
                        per_step = (time.monotonic() - started) / p.step
                        by_time = int(cfg.max_time / max(per_step, 1e-6))
                        p.planned_steps = min([by_time] + limits) if limits else by_time
                        if self.ddp is not None:  # one schedule for all ranks: rank 0's estimate
                            t = torch.tensor([p.planned_steps], device=self.device if self.device.type == "cuda" else "cpu")
                            torch.distributed.broadcast(t, 0)
                            p.planned_steps = int(t.item())
                    if p.bad_steps >= cfg.max_bad_steps:
                        path = self._save() if self.is_main else None
                        raise TrainingStopped(f"stopped after {p.bad_steps} non-finite steps in a row at step {p.step} "
                                              f"(try a lower --lr or --clip); last checkpoint: {path}")
                    now = time.monotonic()
                    if now - window_start >= 1.0 or p.step % 50 == 0:
                        self._emit(StepEvent(p.step, p.epoch, float(loss.detach()), lr, window_tokens / max(1e-9, now - window_start),
                                             now - started, p.planned_steps))
                        window_tokens, window_start = 0, now
                    if p.step % cfg.eval_every == 0:
                        if agree(self._evaluate_and_save(), self.ddp is not None):
                            stop_reason = "patience"
                            break
                        last_save_time = time.monotonic()
                    elif (cfg.save_every and p.step % cfg.save_every == 0) or (
                            cfg.save_every_minutes and now - last_save_time >= 60 * cfg.save_every_minutes):
                        if self.is_main:
                            self._save()
                        last_save_time = time.monotonic()
                    if agree(signals.received is not None, self.ddp is not None):
                        p.elapsed = time.monotonic() - started
                        path = self._save() if self.is_main else None
                        code = 143 if signals.received == signal.SIGTERM else 130
                        raise TrainingStopped(f"interrupted at step {p.step}; checkpoint saved to {path}; "
                                              f"resume by running the same command with --resume", exit_code=code)
        except RuntimeError as e:
            if self.ddp is None or not _is_distributed_failure(e):
                raise
            latest = read_pointer(self.run_dir, "latest")
            raise TrainingStopped(f"another training process stopped or lost contact at step {p.step} "
                                  f"({str(e).splitlines()[0][:120]}); last checkpoint: {latest}; "
                                  f"rerun with --resume") from None
        p.elapsed = time.monotonic() - started
        if p.step % cfg.eval_every != 0 or stop_reason != "patience" and not p.history:
            self._evaluate_and_save()
        best = read_pointer(self.run_dir, "best") or read_pointer(self.run_dir, "latest")
        if self.is_main and best is not None:
            copy_model(best, self.run_dir / "model")
        summary = {"stop_reason": stop_reason, "steps": p.step, "epochs": p.epoch + p.position / max(1, per_epoch),
                   "seconds": round(p.elapsed, 2), "tokens": p.tokens, "tokens_per_s": round(p.tokens / max(p.elapsed, 1e-9), 1),
                   "skipped_steps": p.skipped_steps, "precision": self.precision, "best_step": p.best_step,
                   "best": next((h for h in p.history if h["step"] == p.best_step), None),
                   "final": p.history[-1] if p.history else None, "model": str(self.run_dir / "model")}
        if self.is_main:
            (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
        return summary

    def _evaluate_and_save(self) -> bool:
        """Evaluate, checkpoint, update `best`; True when patience has run out."""
        p = self.progress
        if not self.is_main:
            return False
        metrics = self.task.evaluate(self.model)
        improved = metrics["score"] > p.best_score
        if improved:
            p.best_score, p.best_step, p.evals_since_best = metrics["score"], p.step, 0
        else:
            p.evals_since_best += 1
        p.history.append({"step": p.step, **{k: v for k, v in metrics.items() if k != "score"}})
        path = self._save()
        if improved:
            write_pointer(self.run_dir, "best", path, step=p.step, score=metrics["score"])
        self._emit(EvalEvent(p.step, metrics, improved))
        return self.cfg.patience is not None and p.evals_since_best >= self.cfg.patience


def _is_distributed_failure(e: Exception) -> bool:
    dist_error = getattr(torch.distributed, "DistError", ())
    text = str(e).lower()
    return isinstance(e, dist_error) or any(w in text for w in ("gloo", "nccl", "connection", "peer", "timed out"))


def _jsonable_random_state():
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _random_state_from_json(s):
    return (s[0], tuple(s[1]), s[2])


__all__ = ["TrainConfig", "Trainer", "StepEvent", "EvalEvent", "Notice", "lr_at"]
