"""Reading JSON that nlp-rnn wrote but a user or an attacker may have changed: size, nesting depth, links out
of its directory and the type of every field checked against a small schema before anything uses it.

A schema is one of the small classes below; `check(value, at)` raises _Invalid naming the field (`at`, e.g.
"model.hidden" or "progress.history[3].step"). Bools are never numbers, unknown object fields are refused.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

from .errors import CheckpointError

MAX_COUNT = 2 ** 53             # steps, tokens and other counters of trainer state
MAX_JSON_BYTES = 16 << 20       # any JSON file (trainer.json grows with the evaluation history)
MAX_JSON_DEPTH = 32             # nesting of arrays and objects; ours nest 4 deep


class _Invalid(Exception):
    def __init__(self, at: str, problem: str):
        super().__init__(f"{at}: {problem}" if at else problem)


def _kind(v) -> str:
    """The JSON name of a value's type, for messages."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    return {int: "a number", float: "a number", str: "a string", list: "an array", dict: "an object"}[type(v)]


def show_value(v) -> str:
    """A value for a message, at most 40 characters."""
    text = f"{v:,}" if type(v) is int else f"{v:g}" if type(v) is float else json.dumps(v, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


class Int:
    def __init__(self, lo: int = 0, hi: int = MAX_COUNT):
        self.lo, self.hi = lo, hi

    def check(self, v, at):
        if type(v) is not int:
            raise _Invalid(at, f"must be a whole number, not {_kind(v)}")
        if not self.lo <= v <= self.hi:
            raise _Invalid(at, f"must be from {self.lo:,} to {self.hi:,}, not {show_value(v)}")


class Num:
    """A number (ints too); NaN never, infinities only when `finite` is False."""

    def __init__(self, lo: float = -math.inf, hi: float = math.inf, finite: bool = True):
        self.lo, self.hi, self.finite = lo, hi, finite

    def check(self, v, at):
        if type(v) not in (int, float):
            raise _Invalid(at, f"must be a number, not {_kind(v)}")
        if type(v) is float and (math.isnan(v) or (self.finite and math.isinf(v))):
            raise _Invalid(at, f"must be a finite number, not {v}")
        if not self.lo <= v <= self.hi:
            raise _Invalid(at, f"must be from {self.lo:g} to {self.hi:g}, not {show_value(v)}")


class Str:
    def __init__(self, max_len: int = 4096):
        self.max_len = max_len

    def check(self, v, at):
        if type(v) is not str:
            raise _Invalid(at, f"must be a string, not {_kind(v)}")
        if len(v) > self.max_len:
            raise _Invalid(at, f"is a string of {len(v):,} characters (at most {self.max_len:,})")


class Bool:
    def check(self, v, at):
        if type(v) is not bool:
            raise _Invalid(at, f"must be true or false, not {_kind(v)}")


class Choice:
    """One of a few literal values (of the same JSON type: 1 is not true)."""

    def __init__(self, *values):
        self.values = values

    def check(self, v, at):
        if not any(type(v) is type(c) and v == c for c in self.values):
            raise _Invalid(at, f"must be one of {', '.join(map(json.dumps, self.values))}, not {show_value(v)}")


class Maybe:
    def __init__(self, schema):
        self.schema = schema

    def check(self, v, at):
        if v is not None:
            self.schema.check(v, at)


class Scalar:
    """A number, string, boolean or null: a value that holds nothing else."""

    def check(self, v, at):
        if isinstance(v, (list, dict)):
            raise _Invalid(at, f"must be a number, string, boolean or null, not {_kind(v)}")


class Anything:
    """Any JSON value (its nesting is capped when the file is parsed)."""

    def check(self, v, at):
        return  # deliberately accepts every value: parse_json has already capped size and nesting


class ListOf:
    def __init__(self, item, max_len: int = 1_000_000, length: int | None = None):
        self.item, self.max_len, self.length = item, max_len, length

    def check(self, v, at):
        if type(v) is not list:
            raise _Invalid(at, f"must be an array, not {_kind(v)}")
        if self.length is not None and len(v) != self.length:
            raise _Invalid(at, f"must hold {self.length} items, not {len(v)}")
        if len(v) > self.max_len:
            raise _Invalid(at, f"holds {len(v):,} items (at most {self.max_len:,})")
        for i, x in enumerate(v):
            self.item.check(x, f"{at}[{i}]")


class Tuple:
    """An array of fixed length, each position with its own schema."""

    def __init__(self, *items):
        self.items = items

    def check(self, v, at):
        ListOf(Anything(), length=len(self.items)).check(v, at)
        for i, (x, s) in enumerate(zip(v, self.items)):
            s.check(x, f"{at}[{i}]")


class Fields:
    """An object with these fields; `extra` (a schema) admits other keys, otherwise they are refused."""

    def __init__(self, required: dict, optional: dict | None = None, extra=None):
        self.required, self.optional, self.extra = required, optional or {}, extra

    def check(self, v, at):
        if type(v) is not dict:
            raise _Invalid(at, f"must be an object, not {_kind(v)}")
        for key in self.required:
            if key not in v:
                raise _Invalid(_join(at, key), "missing")
        for key, x in v.items():
            schema = self.required.get(key) or self.optional.get(key) or self.extra
            if schema is None:
                raise _Invalid(_join(at, key), "unknown field")
            schema.check(x, _join(at, key))


class MapOf:
    """An object with any keys (matching `key`, a regular expression, when given), each value of one schema."""

    def __init__(self, value, key: str | None = None, max_len: int = 100_000):
        self.value, self.key, self.max_len = value, key and re.compile(key), max_len

    def check(self, v, at):
        if type(v) is not dict:
            raise _Invalid(at, f"must be an object, not {_kind(v)}")
        if len(v) > self.max_len:
            raise _Invalid(at, f"holds {len(v):,} fields (at most {self.max_len:,})")
        for key, x in v.items():
            if self.key and not self.key.fullmatch(key):
                raise _Invalid(_join(at, key), "unexpected field name")
            self.value.check(x, _join(at, key))


def _join(at: str, key: str) -> str:
    return f"{at}.{key}" if at else key


def validate(value, schema, path: Path, at: str = ""):
    """`value` when it fits `schema`, else a CheckpointError naming the file and the field."""
    try:
        schema.check(value, at)
    except _Invalid as e:
        raise CheckpointError(f"{path}: {e}") from None
    return value


def inside(root: Path, path: Path) -> Path:
    """`path` resolved, refused when it (or a link on the way) leads out of the directory `root`."""
    real_root, real = root.resolve(), path.resolve()
    if real != real_root and real_root not in real.parents:
        raise CheckpointError(f"{path}: leads outside {root} (points outside, to {real}); links out of a checkpoint "
                              f"are refused")
    return real


def regular_file(root: Path, name: str | Path, what: str) -> Path:
    """A regular file inside `root`, resolved."""
    real = inside(root, root / name)
    if not real.is_file():
        raise CheckpointError(f"{root / name}: missing {what}")
    return real


def _too_deep(value) -> bool:
    """True when arrays and objects nest deeper than MAX_JSON_DEPTH in a parsed value (walked level by level:
    code that recurses over it, json.dumps included, stays far from Python's recursion limit)."""
    level = [value]
    for _ in range(MAX_JSON_DEPTH):
        level = [c for v in level if isinstance(v, (dict, list)) for c in (v.values() if isinstance(v, dict) else v)]
        if not level:
            return False
    return any(isinstance(v, (dict, list)) for v in level)


def parse_json(raw: bytes, path: Path):
    too_deep = CheckpointError(f"{path}: corrupt (arrays and objects nest more than {MAX_JSON_DEPTH} deep)")
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise CheckpointError(f"{path}: corrupt (not UTF-8 text)") from None
    except RecursionError:  # json's parser recurses once per level: hundreds of levels stop it here
        raise too_deep from None
    except ValueError as e:
        raise CheckpointError(f"{path}: corrupt (not valid JSON: {str(e)[:100]})") from None
    if _too_deep(value):
        raise too_deep
    return value


def read_json(path: Path, root: Path, schema=None, what: str = "file"):
    """A JSON file inside `root`: at most MAX_JSON_BYTES, nested at most MAX_JSON_DEPTH, fitting `schema`."""
    real = regular_file(root, path.relative_to(root), what)
    with open(real, "rb") as f:
        raw = f.read(MAX_JSON_BYTES + 1)
    if len(raw) > MAX_JSON_BYTES:
        raise CheckpointError(f"{path}: larger than {MAX_JSON_BYTES >> 20} MiB; refused")
    data = parse_json(raw, path)
    return data if schema is None else validate(data, schema, path)
