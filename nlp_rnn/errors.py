"""Typed errors: the library raises these, the CLI turns each into one line and an exit code."""
from __future__ import annotations

from pathlib import Path


class NlpRnnError(Exception):
    """An error a user can act on. `exit_code` is 1 for runtime problems, 2 for usage problems."""

    exit_code = 1


class UsageError(NlpRnnError):
    """A bad flag value or a combination of flags that makes no sense."""

    exit_code = 2


class CorpusError(NlpRnnError):
    """A problem in a corpus file, located by file and (when known) line."""

    def __init__(self, path: str | Path | None, problem: str, line: int | None = None):
        self.path, self.line, self.problem = path, line, problem
        where = "" if path is None else f"{path}:{line}: " if line else f"{path}: "
        super().__init__(where + problem)


class MissingInput(CorpusError):
    """An input file named on the command line does not exist: a usage error (exit 2), like a bad flag."""

    exit_code = 2


class TokenizerError(NlpRnnError):
    """A tokenizer could not be trained, saved or loaded."""


class CheckpointError(NlpRnnError):
    """A checkpoint is missing, corrupt, foreign, of a newer format, or of the wrong kind."""


class TrainingStopped(NlpRnnError):
    """Training ended early on purpose (signal, too many bad steps); a checkpoint was written."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code
