"""One training loop for every model: AdamW, warmup + cosine decay, clipping, evaluation, checkpoints, resume.

A *task* supplies what differs between the models:

    task.steps_per_epoch(epoch)   batches in that pass over the training data
    task.batch(epoch, i)          the i-th batch of an epoch, the same every time it is asked for (resume)
    task.evaluate(model)          validation metrics; "score" (higher is better) picks the best checkpoint
    task.carries_state            True when recurrent state flows from one batch to the next (LM, truncated BPTT)

A *save* callable writes a checkpoint (the trainer knows nothing of tokenizers or files beyond its run
directory). The loop emits events (`StepEvent`, `EvalEvent`, `Notice`) through `Run.on_event`; the CLI renders
them, tests collect them.
"""
from __future__ import annotations

import json
import math
import random
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import torch

from .configs import TrainConfig
from .checkpoint import flatten_optimizer, load_trainer_state, read_pointer, unflatten_optimizer, write_pointer
from .distributed import agree
from .errors import CheckpointError, TrainingStopped
from .models.rnn import detach_state
from .rundir import RunDir
from .runtime import autocast, resolve_precision


@dataclass
class Run:
    """Where and how a training run executes; built once by the CLI and passed down whole."""

    dir: Path
    device: torch.device | str = "cpu"
    resume: bool = False
    overwrite: bool = False
    new_data: bool = False                # with resume: accept a corpus that differs from the run's
    on_event: Callable | None = None
    shard: tuple[int, int] = (0, 1)       # (rank, world size) of data-parallel training
    ddp_wrap: Callable | None = None      # model → DistributedDataParallel wrapper, when world size > 1

    def __post_init__(self):
        self.dir = Path(self.dir)
        self.device = torch.device(self.device)

    @property
    def is_main(self) -> bool:
        return self.shard[0] == 0


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


# save(path, meta, trainer_tensors, trainer_json): write one checkpoint directory of the model being trained
SaveFn = Callable[[Path, dict, dict, dict], None]


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
    """SIGINT/SIGTERM set a flag; the loop finishes its step, saves, and stops. A second signal stops at once,
    except inside `critical()` (writing a checkpoint), which it waits for, so no checkpoint is left half-made."""

    def __init__(self):
        self.received: int | None = None
        self.second: int | None = None
        self._depth = 0
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def _handle(self, signum, frame):
        if self.received is None:
            self.received = signum
            return
        self.second = signum
        if self._depth == 0:
            self._stop_now()

    def _stop_now(self):
        raise TrainingStopped("stopped by a second signal; the last complete checkpoint is kept (resume with "
                              "the same command and --resume)", exit_code=_exit_code(self.second))

    def critical(self):
        signals = self

        class _Section:
            def __enter__(self):
                signals._depth += 1

            def __exit__(self, *exc):
                signals._depth -= 1
                if signals._depth == 0 and signals.second is not None and exc[0] is None:
                    signals._stop_now()

        return _Section()


def _exit_code(signum: int | None) -> int:
    return 143 if signum == signal.SIGTERM else 130


class Trainer:
    """Runs a task's batches through a model until a budget ends, checkpointing into a run directory."""

    def __init__(self, model: torch.nn.Module, task: Task, config: TrainConfig, run: Run, save: SaveFn,
                 rundir: RunDir | None = None):
        self.model, self.task, self.cfg, self.run, self.save = model, task, config.validate(), run, save
        self.rundir = rundir  # claimed by the caller when it writes into the run directory first
        self.ddp = run.ddp_wrap(model) if run.ddp_wrap else None
        self.world = run.shard[1]
        self.precision = resolve_precision(config.precision, run.device)
        decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embedding" not in n]
        no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embedding" not in n)]
        # fused: one kernel over all parameters instead of ~10 ops per tensor (translator, one core: 51 → 11 ms a step)
        fused = run.device.type in ("cpu", "cuda") or None
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                      {"params": no_decay, "weight_decay": 0.0}], lr=config.lr, fused=fused)
        self.progress = Progress()
        self.state = None  # carried recurrent state (LM)
        self.saved: list[str] = []  # checkpoints this run wrote, oldest first (the only ones pruning deletes)
        self.log_path = run.dir / "log.jsonl"
        self.eval_seconds = 0.0  # how long the last validation took

    @property
    def dist(self) -> bool:
        return self.ddp is not None

    # ------------------------------------------------------------------ events and logging
    def _emit(self, event) -> None:
        if not self.run.is_main:
            return
        if self.run.on_event is not None:
            self.run.on_event(event)
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"event": type(event).__name__, **asdict(event)}) + "\n")

    # ------------------------------------------------------------------ checkpoints
    def _save(self) -> Path:
        """Write a resumable checkpoint, point `latest` at it, and prune what this run wrote before."""
        p = self.progress
        name = f"step-{p.step:07d}"
        path = self.run.dir / "checkpoints" / name
        tensors, info = flatten_optimizer(self.opt.state_dict())
        tensors["rng.torch"] = torch.get_rng_state()
        st = () if self.state is None else self.state if isinstance(self.state, tuple) else (self.state,)
        tensors.update({f"state.{i}": s for i, s in enumerate(st)})
        info.update(progress=asdict(p), python_random=_jsonable_random_state(), train_config=asdict(self.cfg),
                    carried_state=None if self.state is None else len(st))
        meta = {"precision": self.precision, "step": p.step, "epoch": p.epoch, "best_score": p.best_score}
        with self.signals.critical():
            self.save(path, meta, tensors, info)
            if name not in self.saved:
                self.saved.append(name)
            self.rundir.record(self.saved)
            write_pointer(self.run.dir, "latest", path, step=p.step)
            self._prune()
        return path

    def _prune(self) -> None:
        best = read_pointer(self.run.dir, "best")
        old = [n for n in self.saved[: -self.cfg.keep] if best is None or n != best.name]
        for name in old:
            self.rundir.remove_checkpoint(name)
            self.saved.remove(name)
        if old:
            self.rundir.record(self.saved)

    def resume(self) -> None:
        """Load the latest checkpoint of the run: weights, optimizer, RNG, carried state, data position."""
        from .checkpoint import load_checkpoint, validate_progress

        latest = read_pointer(self.run.dir, "latest")
        if latest is None:
            raise CheckpointError(f"{self.run.dir}: nothing to resume (no latest checkpoint)")
        loaded = load_checkpoint(latest, kind=self.model.kind)
        self.model.load_state_dict(loaded.model.state_dict())
        tensors, info = load_trainer_state(latest, optimizer=self.opt)
        try:
            self.opt.load_state_dict(unflatten_optimizer(tensors, info))
            torch.set_rng_state(tensors["rng.torch"])
            if info.get("python_random"):
                random.setstate(_random_state_from_json(info["python_random"]))
            n = info.get("carried_state")
            if n:
                st = tuple(tensors[f"state.{i}"].to(self.run.device) for i in range(n))
                self.state = st if n == 2 else st[0]
        except (KeyError, ValueError, TypeError, RuntimeError) as e:
            raise CheckpointError(f"{latest}: trainer state does not fit this model or optimizer ({e})") from None
        self.progress = Progress(**validate_progress(info["progress"], latest / "trainer.json"))
        self.saved = self.rundir.recorded() if self.rundir else []
        self._emit(Notice(f"resumed from {latest} at step {self.progress.step}"))

    # ------------------------------------------------------------------ the loop
    def fit(self) -> dict:
        """Train until the first budget ends (steps, epochs, time, patience), then evaluate, save and summarise."""
        own = self.rundir is None
        if own and self.run.is_main:
            self.rundir = RunDir.claim(self.run.dir, self.run.resume, self.run.overwrite)
        try:
            with _Signals() as self.signals:
                self._start()
                try:
                    while not self._should_stop():
                        loss = self._train_step()
                        self._after_step(loss)
                        if self._maybe_evaluate():
                            self.stop_reason = "patience"
                            break
                        self._maybe_save()
                        self._check_signals()
                except RuntimeError as e:
                    self._distributed_failure(e)
                return self._finish()
        finally:
            if own and self.rundir is not None:
                self.rundir.close()

    def _start(self) -> None:
        p, cfg = self.progress, self.cfg
        if self.run.is_main:
            (self.run.dir / "checkpoints").mkdir(exist_ok=True)
            if not self.run.resume:
                self.log_path.write_text("", encoding="utf-8")  # a fresh run starts a fresh log
        self.per_epoch = self.task.steps_per_epoch()
        self.limits = [s for s in (cfg.max_steps, None if cfg.epochs is None else math.ceil(cfg.epochs * self.per_epoch))
                       if s]
        if not p.planned_steps and self.limits:
            p.planned_steps = min(self.limits)
        self.stop_reason = None
        self.started = time.monotonic() - p.elapsed
        self.last_save = time.monotonic()
        self.window_tokens, self.window_start = 0, time.monotonic()

    def _should_stop(self) -> bool:
        p, cfg = self.progress, self.cfg
        p.elapsed = time.monotonic() - self.started
        if cfg.max_steps is not None and p.step >= cfg.max_steps:
            self.stop_reason = "max_steps"
        elif self.limits and p.step >= min(self.limits):
            self.stop_reason = "epochs"
        elif cfg.max_time is not None and agree(p.elapsed >= cfg.max_time, self.dist):
            self.stop_reason = "max_time"  # ranks agree, so none waits forever for the others
        return self.stop_reason is not None

    def _train_step(self) -> torch.Tensor:
        """One optimizer step on the next batch; a non-finite loss or gradient skips the update."""
        p, cfg = self.progress, self.cfg
        if p.position >= self.task.steps_per_epoch(p.epoch):  # epochs may differ in batch count
            p.epoch, p.position = p.epoch + 1, 0
            self.state = None
        batch = self.task.batch(p.epoch, p.position).to(self.run.device)
        p.position += 1
        self.model.train()
        self.lr = lr_at(p.step, cfg, p.planned_steps or 10 ** 9)
        for group in self.opt.param_groups:
            group["lr"] = self.lr
        with autocast(self.run.device, self.precision):
            loss, state = self.model.loss(batch, self.state) if self.ddp is None else self.ddp(batch, self.state)
        if self.task.carries_state:
            self.state = detach_state(state)
        ok = agree(bool(torch.isfinite(loss).item()), self.dist, any_rank=False)
        if ok:
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip or float("inf"))
            ok = bool(torch.isfinite(norm))
        if ok:
            self.opt.step()
            p.bad_steps = 0
        else:
            self._skip_step()
        p.step += 1
        n_tok = batch.n_tokens * self.world  # every rank trains an equal share of the batch
        p.tokens += n_tok
        self.window_tokens += n_tok
        return loss

    def _skip_step(self) -> None:
        p = self.progress
        self.opt.zero_grad(set_to_none=True)
        p.bad_steps += 1
        p.skipped_steps += 1
        if self.task.carries_state:
            self.state = None
        self._emit(Notice(f"step {p.step + 1}: non-finite loss or gradient, step skipped ({p.bad_steps} in a row)"))

    def _after_step(self, loss: torch.Tensor) -> None:
        """Fix a time budget's schedule once the speed is known, give up after too many bad steps, report."""
        p, cfg = self.progress, self.cfg
        if p.step == 20 and cfg.max_time is not None:
            # The schedule's length is fixed once, from the measured speed, so a resumed run follows the same one.
            by_time = int(cfg.max_time / max((time.monotonic() - self.started) / p.step, 1e-6))
            p.planned_steps = min([by_time, *self.limits])
            if self.dist:  # one schedule for all ranks: rank 0's estimate
                t = torch.tensor([p.planned_steps], device=self.run.device if self.run.device.type == "cuda" else "cpu")
                torch.distributed.broadcast(t, 0)
                p.planned_steps = int(t.item())
        if p.bad_steps >= cfg.max_bad_steps:
            path = self._save() if self.run.is_main else None
            raise TrainingStopped(f"stopped after {p.bad_steps} non-finite steps in a row at step {p.step} "
                                  f"(try a lower --lr or --clip); last checkpoint: {path}")
        now = time.monotonic()
        if now - self.window_start >= 1.0 or p.step % 50 == 0:
            self._emit(StepEvent(p.step, p.epoch, float(loss.detach()), self.lr,
                                 self.window_tokens / max(1e-9, now - self.window_start), now - self.started,
                                 p.planned_steps))
            self.window_tokens, self.window_start = 0, now

    def _maybe_evaluate(self) -> bool:
        """Evaluate and checkpoint every `eval_every` steps; True when patience has run out."""
        if self.progress.step % self.cfg.eval_every:
            return False
        out_of_patience = agree(self._evaluate_and_save(), self.dist)
        self.last_save = time.monotonic()
        return out_of_patience

    def _maybe_save(self) -> None:
        cfg, p = self.cfg, self.progress
        if p.step % cfg.eval_every == 0:
            return  # just saved with the evaluation
        by_steps = cfg.save_every is not None and p.step % cfg.save_every == 0
        by_time = cfg.save_every_minutes is not None and time.monotonic() - self.last_save >= 60 * cfg.save_every_minutes
        if by_steps or by_time:
            if self.run.is_main:
                self._save()
            self.last_save = time.monotonic()

    def _check_signals(self) -> None:
        if agree(self.signals.received is not None, self.dist):
            self.progress.elapsed = time.monotonic() - self.started
            path = self._save() if self.run.is_main else None
            raise TrainingStopped(f"interrupted at step {self.progress.step}; checkpoint saved to {path}; "
                                  f"resume by running the same command with --resume",
                                  exit_code=_exit_code(self.signals.received))

    def _distributed_failure(self, e: RuntimeError):
        if self.ddp is None or not _is_distributed_failure(e):
            raise e
        latest = read_pointer(self.run.dir, "latest")
        raise TrainingStopped(f"another training process stopped or lost contact at step {self.progress.step} "
                              f"({str(e).splitlines()[0][:120]}); last checkpoint: {latest}; "
                              f"rerun with --resume") from None

    def _finish(self) -> dict:
        """Evaluate the final weights (unless just done), publish the best checkpoint as `model/`, summarise."""
        from .checkpoint import copy_model

        p = self.progress
        p.elapsed = time.monotonic() - self.started
        # the last step was evaluated when it fell on `eval_every`; a run that never evaluated must still do it once
        if p.step % self.cfg.eval_every != 0 or (self.stop_reason != "patience" and not p.history):
            self._evaluate_and_save()
        best = read_pointer(self.run.dir, "best") or read_pointer(self.run.dir, "latest")
        if self.run.is_main and best is not None:
            with self.signals.critical():
                copy_model(best, self.run.dir / "model")
        summary = {"stop_reason": self.stop_reason, "steps": p.step,
                   "epochs": p.epoch + p.position / max(1, self.per_epoch), "seconds": round(p.elapsed, 2),
                   "tokens": p.tokens, "tokens_per_s": round(p.tokens / max(p.elapsed, 1e-9), 1),
                   "skipped_steps": p.skipped_steps, "precision": self.precision, "best_step": p.best_step,
                   "best": next((h for h in p.history if h["step"] == p.best_step), None),
                   "final": p.history[-1] if p.history else None, "model": str(self.run.dir / "model")}
        if self.run.is_main:
            (self.run.dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
        return summary

    def _evaluate_and_save(self) -> bool:
        """Evaluate, checkpoint, update `best`; True when patience has run out."""
        p = self.progress
        if not self.run.is_main:
            return False
        if self.eval_seconds > 5:  # a long validation says so instead of looking stuck
            self._emit(Notice(f"step {p.step}: validating (about {self.eval_seconds:.0f}s)"))
        start = time.monotonic()
        metrics = self.task.evaluate(self.model)
        self.eval_seconds = time.monotonic() - start
        improved = metrics["score"] > p.best_score
        if improved:
            p.best_score, p.best_step, p.evals_since_best = metrics["score"], p.step, 0
        else:
            p.evals_since_best += 1
        p.history.append({"step": p.step, **{k: v for k, v in metrics.items() if k != "score"}})
        path = self._save()
        if improved:
            write_pointer(self.run.dir, "best", path, step=p.step, score=metrics["score"])
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


__all__ = ["TrainConfig", "Run", "Trainer", "StepEvent", "EvalEvent", "Notice", "lr_at"]
