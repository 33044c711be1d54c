"""A training run directory: claimed under the output rule (see `atomic`), marked as ours, locked while a
training uses it, and cleaned only of what this program wrote there.

    run_dir/
      .nlp-rnn            marker: this directory was made by nlp-rnn
      .lock               held (flock) by the one training that uses the directory
      checkpoints.json    the checkpoints this run wrote: the only ones pruning may delete
      checkpoints/step-NNNNNNN/   latest  best  model/  data/  log.jsonl  summary.json  curves.png
"""
from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from . import __version__
from .atomic import MARKER, atomic_write_text, check_output_dir, remove_ours, sweep_leftovers
from .errors import CheckpointError, NlpRnnError, UsageError

RECORD = "checkpoints.json"
LOCK = ".lock"
OUR_FILES = ("latest", "best", "log.jsonl", "summary.json", "curves.png", RECORD)
OUR_DIRS = ("model", "data")


class RunBusy(NlpRnnError):
    """Another training holds the run directory's lock."""


def holds_run(path: Path) -> bool:
    return (path / "latest").exists() or (path / "model").exists()


def _is_marked(path: Path) -> bool:
    """Marked by this version, or a run directory of an earlier one (a `latest` pointer and checkpoints)."""
    return (path / MARKER).is_file() or ((path / "latest").is_file() and (path / "checkpoints").is_dir())


class RunDir:
    """An open run directory. `claim` applies the rules; `close` releases the lock."""

    def __init__(self, path: Path, marked: bool):
        self.path, self.marked = path, marked
        self.created = False  # made by this claim: removed whole if the run fails before it starts
        self._lock_fd: int | None = None

    # ------------------------------------------------------------------ opening
    @classmethod
    def claim(cls, path: str | Path, resume: bool = False, overwrite: bool = False) -> "RunDir":
        """Open `path` for a fresh run (new, empty, or ours with --overwrite; someone else's only with
        --overwrite, and then unmarked) or, with `resume`, an existing run of ours. Takes the lock."""
        path = Path(path)
        if resume:
            if not (path.is_dir() and _is_marked(path) and (path / "latest").is_file()):
                raise CheckpointError(f"{path}: nothing to resume (no training run with a checkpoint there)")
            run = cls(path, True)
            run._lock()
            run.sweep()
            return run
        if path.is_dir() and not _is_marked(path) and any((path / n).exists() for n in ("config.json", "tokenizer.json")):
            raise UsageError(f"{path} holds a model or tokenizer, not a training run; choose another -o")
        how = check_output_dir(path, overwrite=overwrite)
        marked = how in ("new", "replace") or _is_marked(path)
        if marked and path.is_dir() and holds_run(path) and not overwrite:
            raise UsageError(f"{path} already holds a training run; use --resume to continue it, --overwrite to "
                             f"start it over, or another -o")
        path.mkdir(exist_ok=True)
        run = cls(path, marked)
        run.created = how == "new"
        run._lock()
        if marked:
            run.clear()
            atomic_write_text(path / MARKER, json.dumps({"made_by": "nlp-rnn", "version": __version__,
                                                         "kind": "training run"}) + "\n")
        return run

    def _lock(self) -> None:
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RunBusy(f"{self.path} is in use by another training (pid {pid}); wait for it to finish, "
                          f"or choose another -o") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def close(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ what we wrote
    def recorded(self) -> list[str]:
        """Names of the checkpoints this run wrote (under checkpoints/), oldest first."""
        from .schema import Fields, ListOf, Str, read_json

        p = self.path / RECORD
        if not p.is_file():
            return []
        names = read_json(p, self.path, Fields({"checkpoints": ListOf(Str(64))}), "record of checkpoints")["checkpoints"]
        if not all(n.startswith("step-") and "/" not in n for n in names):
            raise CheckpointError(f"{p}: corrupt record of checkpoints (not checkpoint names)")
        return names

    def record(self, names: list[str]) -> None:
        atomic_write_text(self.path / RECORD, json.dumps({"checkpoints": names}) + "\n")

    def remove_checkpoint(self, name: str) -> None:
        d = self.path / "checkpoints" / name
        if d.is_dir() and not d.is_symlink():
            remove_ours(d)

    def clear(self) -> None:
        """Start over: delete the checkpoints this run recorded and our own files, nothing else."""
        for name in self.recorded():
            self.remove_checkpoint(name)
        for name in OUR_DIRS:
            d = self.path / name
            if d.is_dir() and not d.is_symlink():
                remove_ours(d)
        for name in OUR_FILES:
            f = self.path / name
            if f.is_file() or f.is_symlink():
                f.unlink()
        self.sweep()

    def abandon(self) -> None:
        """A run that failed before its first step (e.g. a corpus error): leave no trace of it."""
        self.close()
        if self.created:
            remove_ours(self.path)
        elif self.marked:
            self.clear()

    def sweep(self) -> None:
        """Remove temporaries a kill left behind (half-written checkpoints, pointer files, swapped-out copies)."""
        sweep_leftovers(self.path)
        sweep_leftovers(self.path / "checkpoints")
