"""What every recipe does around the training loop: validate its model config, claim and lock the run directory,
check a resume against what the run was started with, and give the Trainer its save callable."""
from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from typing import Sequence

from .checkpoint import read_pointer, save_checkpoint
from .distributed import agree
from .errors import CheckpointError, NlpRnnError, TrainingStopped, UsageError
from .rundir import RunDir
from .training import Run


def model_config(cls, **kwargs):
    try:
        return cls(**kwargs).validate()
    except ValueError as e:
        raise UsageError(str(e)) from None


def saver(model, tokenizers: dict, meta: dict, shortlist=None):
    """The Trainer's save callable: a checkpoint of `model` with these tokenizers, this run's metadata and, for a
    translator, its shortlist."""
    def save(path: Path, step_meta: dict, trainer_tensors: dict, trainer_json: dict) -> None:
        save_checkpoint(path, model, tokenizers, {**meta, **step_meta}, trainer_tensors, trainer_json, shortlist)
    return save


@contextlib.contextmanager
def claim(run: Run):
    """The run directory under the output rule, locked for the run; removed again if the run never starts."""
    rundir = None
    failure = None
    if run.is_main:
        try:
            rundir = RunDir.claim(run.dir, run.resume, run.overwrite)
        except NlpRnnError as e:
            failure = e
    if run.shard[1] > 1 and not agree(failure is None, True, any_rank=False):  # every rank hears rank 0's verdict
        raise failure or TrainingStopped("the main process could not open the run directory")
    if failure is not None:
        raise failure
    started = False
    try:
        yield rundir
        started = True
    finally:
        if rundir is not None:
            if not started and not run.resume and not (run.dir / "latest").exists():
                rundir.abandon()
            rundir.close()


def check_resume(run: Run, loaded, model_options: dict, layout: dict) -> None:
    """--resume continues the same model on the same batch layout; name every difference instead of training
    the old model on new settings (or crashing on a shape mismatch)."""
    saved = loaded.model.config.to_dict()
    diffs = [f"--{k.replace('_', '-')} {_show(v)} (the run has {_show(saved[k])})"
             for k, v in model_options.items() if k in saved and v is not None and saved[k] != v]
    diffs += [f"--{k.replace('_', '-')} {v} (the run has {loaded.meta[k]})"
              for k, v in layout.items() if k in loaded.meta and loaded.meta[k] != v]
    if diffs:
        raise UsageError(f"--resume: this command differs from the run in {run.dir}: {'; '.join(diffs)}; "
                         f"resume with the run's settings, or start a new run with another -o")


def _show(v) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def check_same_data(run: Run, meta: dict, fingerprint: str) -> None:
    if meta.get("data_sha256") not in (None, fingerprint) and not run.new_data:
        raise UsageError(f"--resume: the training corpus differs from the one the run in {run.dir} started with; "
                         f"pass --new-data to continue on the new corpus anyway")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pairs_sha256(pairs: Sequence[tuple[str, str]]) -> str:
    h = hashlib.sha256()
    for s, t in pairs:
        h.update(f"{s}\t{t}\n".encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def latest_or_fail(run_dir: Path) -> Path:
    latest = read_pointer(run_dir, "latest") if run_dir.is_dir() else None
    if latest is None:
        raise CheckpointError(f"{run_dir}: nothing to resume (no checkpoint written there yet)")
    return latest
