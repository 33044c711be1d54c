"""Writes that never leave a half-written file behind and never replace what this program did not make.

The output rule, in one place: an output path is either new, or something nlp-rnn made (a directory it marked,
or a model or tokenizer directory, recognisable by its files). Anything else is refused with a one-line error
unless the caller passes `overwrite=True` (the `--overwrite` flag), and even then only our own files are
replaced: a directory that holds other files gets ours written into it, and nothing else in it is touched.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

from .errors import NlpRnnError, UsageError

MARKER = ".nlp-rnn"  # the file that marks a directory as made by nlp-rnn (a training run)
# What a model or tokenizer directory holds; a directory of nothing else, with one of these files, is ours.
OWN_NAMES = {MARKER, "config.json", "model.safetensors", "README.md", "tokenizer", "src_tokenizer",
             "tgt_tokenizer", "trainer.safetensors", "trainer.json", "tokenizer.json", "spm.model",
             "shortlist.safetensors"}


class OutputError(NlpRnnError):
    """An output cannot be written (not writable, disk full, a file in the way)."""


# ---------------------------------------------------------------------------------------------- the rule

def is_ours(path: Path) -> bool:
    """A directory nlp-rnn made: marked, or a model/tokenizer directory holding only what such directories hold."""
    if not path.is_dir() or path.is_symlink():
        return False
    if (path / MARKER).is_file():
        return True
    names = {p.name for p in path.iterdir()}
    if not names or not names <= OWN_NAMES:
        return False
    if "tokenizer.json" in names:
        return _json_field(path / "tokenizer.json", "kind") in ("char", "sentencepiece")
    return _json_field(path / "config.json", "format") == "nlp-rnn"


def _json_field(path: Path, key: str):
    try:
        if path.stat().st_size > 1 << 20:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return data.get(key) if isinstance(data, dict) else None


def check_output_dir(path: Path, overwrite: bool = False) -> str:
    """How `path` may be written as an output directory: 'new', 'replace' (ours, or empty) or 'merge' (someone
    else's, with --overwrite). Creates missing parents. Raises UsageError when the rule forbids it."""
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise UsageError(f"{path} exists and is not a directory; choose a new output path")
    if not path.exists():
        make_parents(path)
        return "new"
    if is_ours(path) or not any(path.iterdir()):
        return "replace"
    if overwrite:
        return "merge"
    raise UsageError(f"{path} already exists and was not made by nlp-rnn; choose a new path, or pass --overwrite "
                     f"to write nlp-rnn's files into it (nothing else there is touched)")


def check_output_file(path: Path, inputs=(), overwrite: bool = False) -> Path:
    """Refuse an output file that is one of the inputs, that exists (without --overwrite), or that cannot be
    written; create missing parents. Run this before the work, so a bad -o costs nothing."""
    path = Path(path)
    for i in inputs:
        if i is not None and _same_file(path, Path(i)):
            raise UsageError(f"output {path} is also an input; write the output somewhere else")
    if path.is_dir():
        raise UsageError(f"output {path} is a directory; name a file")
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise UsageError(f"output {path} already exists; pass --overwrite to replace it")
        if not path.is_file():
            raise UsageError(f"output {path} is not a regular file; choose another path")
    make_parents(path)
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {path}: directory {path.parent} is not writable")
    return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def make_parents(path: Path) -> None:
    """Create the missing parents of an output path (as mkdir -p does), with a clean error when one is a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UsageError(f"cannot create {path}: a parent path is a file, not a directory") from None
    except OSError as e:
        raise OutputError(f"cannot create {path.parent}: {e.strerror}") from None


@contextlib.contextmanager
def writing(path: Path):
    """Turn OS errors of a write (read-only, disk full, quota) into one clean line naming the path."""
    try:
        yield
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None


# ---------------------------------------------------------------------------------------------- atomic writes

def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_file(path: str | Path, mode: str = "w", encoding: str | None = "utf-8"):
    """Open a temporary file beside `path`; on success it replaces `path`, on error it disappears.
    Callers check the output rule first (`check_output_file`); this only guarantees all or nothing."""
    path = Path(path)
    make_parents(path)
    with writing(path):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with writing(path):
            with os.fdopen(fd, mode, encoding=encoding if "b" not in mode else None) as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_file(path) as f:
        f.write(text)


@contextlib.contextmanager
def atomic_dir(path: str | Path, overwrite: bool = False):
    """Yield a temporary directory; on success it takes the place of `path`.

    `path` must be new or ours (`check_output_dir`); an older directory of ours is swapped out and then removed,
    never half-deleted in place. With `overwrite=True` on someone else's directory our files are moved into it
    one by one and nothing else there is touched.
    """
    path = Path(path)
    how = check_output_dir(path, overwrite)
    with writing(path):
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the result should look like any new directory
    try:
        yield tmp
        with writing(path):
            for f in tmp.rglob("*"):
                if f.is_file():
                    with open(f, "rb") as fh:
                        os.fsync(fh.fileno())
            fsync_dir(tmp)
            if how == "merge":
                _merge_into(tmp, path)
                shutil.rmtree(tmp, ignore_errors=True)
            elif path.exists():
                remove_ours(path, swap_with=tmp)
            else:
                os.rename(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _merge_into(src: Path, dst: Path) -> None:
    for item in src.iterdir():
        target = dst / item.name
        if item.is_dir():
            if target.exists() and not is_ours(target):
                raise UsageError(f"{target} exists and was not made by nlp-rnn; it is left as it is")
            if target.exists():
                remove_ours(target, swap_with=item)
            else:
                os.rename(item, target)
        else:
            if target.is_dir():
                raise UsageError(f"{target} is a directory in the way of nlp-rnn's file {item.name}")
            os.replace(item, target)


def remove_ours(path: Path, swap_with: Path | None = None) -> None:
    """Delete a directory of ours all at once: rename it to a hidden name first (atomic), optionally put
    `swap_with` in its place, then delete the renamed copy. A kill midway leaves the old directory whole or
    gone, plus at most a hidden `.NAME.old-*` that `sweep_leftovers` removes later."""
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    os.rename(path, old)
    if swap_with is not None:
        os.rename(swap_with, path)
    shutil.rmtree(old, ignore_errors=True)


def sweep_leftovers(directory: Path) -> None:
    """Remove the hidden temporaries an earlier kill (SIGKILL, power loss) left in a directory of ours."""
    if not directory.is_dir():
        return
    for p in directory.iterdir():
        name = p.name
        if name.startswith(".") and (name.endswith(".tmp") or ".old-" in name):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            elif stat.S_ISREG(p.lstat().st_mode):
                with contextlib.suppress(OSError):
                    p.unlink()
