"""Read and validate what users train on: monolingual text and parallel pairs, from local files or `datasets`.

Every problem is a `CorpusError` naming the file and, where there is one, the line. Readers return the kept
text plus a `CorpusStats` that says what was dropped and why, which is what `nlp-rnn corpus check` prints.
"""
from __future__ import annotations

import codecs
import csv
import os
import glob
import io
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from .errors import CorpusError, UsageError
from .tokenizers import normalize

TEXT_SUFFIXES = {".txt", ".jsonl", ".tsv", ".csv", ".de", ".en", ".es", ".fr"}


@dataclass
class CorpusStats:
    """What a reader saw: files, records read, kept, and dropped by reason."""

    files: list[str] = field(default_factory=list)
    read: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    blank_kept: int = 0  # blank lines of plain text: a language model keeps them as paragraph breaks

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def to_dict(self) -> dict:
        return {"files": self.files, "read": self.read, "kept": self.kept, "dropped": dict(self.dropped),
                **({"blank_lines_kept": self.blank_kept} if self.blank_kept else {})}


@dataclass
class TextCorpus:
    """Monolingual text. `text` is what a language model trains on: the files' characters, in order."""

    text: str
    stats: CorpusStats


@dataclass
class ParallelCorpus:
    pairs: list[tuple[str, str]]
    stats: CorpusStats


# ---------------------------------------------------------------------------------------------- files

def expand_paths(specs: Iterable[str | Path]) -> list[Path]:
    """Files, directories (their text files, sorted) and globs, in the order given."""
    out: list[Path] = []
    for spec in specs:
        s = str(spec)
        if any(ch in s for ch in "*?[") and not Path(s).exists():
            hits = sorted(glob.glob(s, recursive=True))
            if not hits:
                raise CorpusError(s, "no file matches this pattern")
            out.extend(Path(h) for h in hits if Path(h).is_file())
            continue
        p = Path(s)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in TEXT_SUFFIXES)
            if not files:
                raise CorpusError(p, "directory holds no text files (.txt, .jsonl, .tsv, .csv)")
            out.extend(files)
        elif p.exists():
            out.append(p)
        else:
            raise CorpusError(p, "no such file")
    if not out:
        raise UsageError("no corpus files given")
    return out


def read_file_text(path: str | Path, encoding_errors: str = "strict") -> str:
    """Decode a whole file as UTF-8 (NFC), naming the line of the first invalid byte."""
    path = Path(path)
    read_file_text_checks(path, encoding_errors)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CorpusError(path, "no such file") from None
    except PermissionError:
        raise CorpusError(path, "permission denied") from None
    except OSError as e:
        raise CorpusError(path, f"cannot read ({e.strerror})") from None
    if b"\x00" in data[:65536]:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise CorpusError(path, "looks like a binary file (contains NUL bytes), expected UTF-8 text", line)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8", errors=encoding_errors)
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise CorpusError(path, f"invalid UTF-8 (byte 0x{data[e.start]:02x}); "
                                f"fix the file or pass --encoding-errors replace", line) from None
    except LookupError:
        raise UsageError(f"--encoding-errors must be strict, replace or ignore, not {encoding_errors!r}") from None
    return normalize(text.replace("\r\n", "\n"))


def iter_file_chunks(path: str | Path, encoding_errors: str = "strict", chunk_bytes: int = 1 << 22) -> Iterator[str]:
    """A file's text in pieces of about `chunk_bytes`, validated like `read_file_text` but never whole in memory."""
    path = Path(path)
    read_file_text_checks(path, encoding_errors)
    decoder = codecs.getincrementaldecoder("utf-8")(errors=encoding_errors)
    line = 1
    first = True
    with open(path, "rb") as f:
        while True:
            data = f.read(chunk_bytes)
            final = not data
            if first and data.startswith(b"\xef\xbb\xbf"):
                data = data[3:]
            first = False
            if b"\x00" in data:
                at = line + data[: data.index(b"\x00")].count(b"\n")
                raise CorpusError(path, "looks like a binary file (contains NUL bytes), expected UTF-8 text", at)
            try:
                text = decoder.decode(data, final=final)
            except UnicodeDecodeError as e:
                at = line + data[: max(0, e.start)].count(b"\n")
                raise CorpusError(path, "invalid UTF-8; fix the file or pass --encoding-errors replace", at) from None
            line += data.count(b"\n")
            if text:
                yield normalize(text.replace("\r\n", "\n"))
            if final:
                return


def read_file_text_checks(path: Path, encoding_errors: str) -> None:
    """The checks every reader makes before opening a file."""
    try:
        codecs.lookup_error(encoding_errors)
    except LookupError:
        raise UsageError(f"--encoding-errors must be strict, replace or ignore, not {encoding_errors!r}") from None
    if path.is_dir():
        raise CorpusError(path, "is a directory, expected a file")
    if not path.exists():
        raise CorpusError(path, "no such file")
    if not os.access(path, os.R_OK):
        raise CorpusError(path, "permission denied")


class TextSource:
    """Monolingual text that can be read more than once, in chunks: plain-text files are streamed from disk
    (a corpus larger than memory never sits in memory), other inputs are held as already-read text."""

    def __init__(self, paths: list[Path] | None = None, texts: Iterable[str] | None = None,
                 encoding_errors: str = "strict", description: str = ""):
        self.paths, self.texts, self.encoding_errors = paths, texts, encoding_errors
        self.description = description or ", ".join(str(p) for p in paths or [])

    @classmethod
    def from_text(cls, text: str) -> "TextSource":
        return cls(texts=[text], description="text")

    def chunks(self) -> Iterator[str]:
        if self.paths is None:
            yield from self.texts
            return
        for i, path in enumerate(self.paths):
            if i:
                yield "\n"  # files are joined by a line break, as read_text joins them
            yield from iter_file_chunks(path, self.encoding_errors)


def _lines(path: Path, encoding_errors: str) -> list[str]:
    text = read_file_text(path, encoding_errors)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _json_records(path: Path, encoding_errors: str) -> Iterator[tuple[int, dict]]:
    for n, line in enumerate(_lines(path, encoding_errors), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise CorpusError(path, f"invalid JSON ({e.msg})", n) from None
        except (ValueError, RecursionError) as e:  # e.g. integers too long, nesting too deep
            raise CorpusError(path, f"invalid JSON ({type(e).__name__}: {str(e)[:80]})", n) from None
        if not isinstance(rec, dict):
            raise CorpusError(path, "expected a JSON object on each line", n)
        yield n, rec


# ---------------------------------------------------------------------------------------------- monolingual

def read_text(specs: Iterable[str | Path], text_field: str = "text", encoding_errors: str = "strict") -> TextCorpus:
    """Monolingual text from .txt files (as they are, paragraph breaks included) and .jsonl records."""
    stats = CorpusStats()
    parts: list[str] = []
    for path in expand_paths(specs):
        stats.files.append(str(path))
        if path.suffix == ".jsonl":
            for n, rec in _json_records(path, encoding_errors):
                stats.read += 1
                value = rec.get(text_field)
                if not isinstance(value, str):
                    raise CorpusError(path, f"record has no string field {text_field!r} (use --text-field)", n)
                if value.strip():
                    parts.append(normalize(value))
                    stats.kept += 1
                else:
                    stats.drop("blank")
        else:
            text = read_file_text(path, encoding_errors)
            lines = text.split("\n")
            if lines[-1] == "":
                lines.pop()
            blank = sum(1 for line in lines if not line.strip())
            stats.read += len(lines)
            stats.kept += len(lines) - blank
            stats.blank_kept += blank
            parts.append(text.rstrip("\n"))
    text = "\n".join(p for p in parts if p)
    if not text.strip():
        raise CorpusError(", ".join(stats.files), "corpus is empty (no non-blank text)")
    return TextCorpus(text + "\n", stats)


# ---------------------------------------------------------------------------------------------- parallel

def _word_len(s: str) -> int:
    return len(s.split())


class _PairFilter:
    """Drops blank and over-long pairs, counting each reason."""

    def __init__(self, stats: CorpusStats, max_len: int | None):
        self.stats, self.max_len, self.pairs = stats, max_len, []

    def add(self, src: str, tgt: str) -> None:
        self.stats.read += 1
        src, tgt = normalize(src.strip()), normalize(tgt.strip())
        if not src or not tgt:
            self.stats.drop("blank")
        elif self.max_len and (_word_len(src) > self.max_len or _word_len(tgt) > self.max_len):
            self.stats.drop("too_long")
        else:
            self.pairs.append((src, tgt))
            self.stats.kept += 1

    def result(self, where: str) -> ParallelCorpus:
        if not self.pairs:
            why = ", ".join(f"{n} {r}" for r, n in self.stats.dropped.items()) or "no lines"
            hint = " (raise --max-len)" if self.stats.dropped.get("too_long") else ""
            raise CorpusError(where, f"no usable sentence pairs ({why} dropped){hint}")
        return ParallelCorpus(self.pairs, self.stats)


def read_aligned(src: str | Path, tgt: str | Path, max_len: int | None = None,
                 encoding_errors: str = "strict") -> ParallelCorpus:
    """Two files aligned line by line (`train.de` / `train.en`)."""
    src, tgt = Path(src), Path(tgt)
    a, b = _lines(src, encoding_errors), _lines(tgt, encoding_errors)
    # Multi30k-style files end with one blank line; trailing blank lines do not count as pairs.
    while a and not a[-1].strip() and len(a) > len(b):
        a.pop()
    while b and not b[-1].strip() and len(b) > len(a):
        b.pop()
    if len(a) != len(b):
        raise CorpusError(None, f"aligned files differ in length: {src} has {len(a)} lines, {tgt} has {len(b)}")
    stats = CorpusStats(files=[str(src), str(tgt)])
    f = _PairFilter(stats, max_len)
    for x, y in zip(a, b):
        f.add(x, y)
    return f.result(f"{src} + {tgt}")


def read_pairs(path: str | Path, src_col: int | str = 0, tgt_col: int | str = 1, max_len: int | None = None,
               encoding_errors: str = "strict") -> ParallelCorpus:
    """Pairs in one file: TSV (also the Tatoeba/Anki `english<TAB>spanish<TAB>attribution` export), CSV, or
    JSONL with two fields. Columns are 0-based indices for TSV/CSV and field names for JSONL."""
    path = Path(path)
    stats = CorpusStats(files=[str(path)])
    f = _PairFilter(stats, max_len)
    if path.suffix == ".jsonl":
        sf, tf = (("src", "tgt") if isinstance(src_col, int) else (src_col, tgt_col))
        for n, rec in _json_records(path, encoding_errors):
            if sf not in rec or tf not in rec:
                raise CorpusError(path, f"record lacks field {sf!r} or {tgt_col if isinstance(tgt_col, str) else 'tgt'!r} "
                                        f"(fields: {', '.join(rec)}; use --src-field/--tgt-field)", n)
            if not isinstance(rec[sf], str) or not isinstance(rec[tf], str):
                raise CorpusError(path, f"fields {sf!r} and {tf!r} must be strings", n)
            f.add(rec[sf], rec[tf])
        return f.result(str(path))
    try:
        sc, tc = int(src_col), int(tgt_col)
    except ValueError:
        raise UsageError("columns of a TSV/CSV file are 0-based numbers") from None
    need = max(sc, tc) + 1
    lines = _lines(path, encoding_errors)
    if path.suffix == ".csv":
        rows = _csv_rows(path, lines)
    else:
        rows = (line.split("\t") for line in lines)
    for n, row in enumerate(rows, 1):
        if not row or (len(row) == 1 and not row[0].strip()):
            stats.read += 1
            stats.drop("blank")
            continue
        if len(row) < need:
            sep = "comma" if path.suffix == ".csv" else "tab"
            raise CorpusError(path, f"expected at least {need} {sep}-separated columns, found {len(row)}", n)
        f.add(row[sc], row[tc])
    return f.result(str(path))


def _csv_rows(path: Path, lines: list[str]) -> Iterator[list[str]]:
    reader = csv.reader(io.StringIO("\n".join(lines)))
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise CorpusError(path, f"malformed CSV ({e})", reader.line_num) from None
        yield row


# ---------------------------------------------------------------------------------------------- datasets

def load_dataset_rows(name: str, config: str | None = None, split: str = "train",
                      data_files: list[str] | None = None) -> Iterable[dict]:
    """Rows of a `datasets` dataset: a hub name, or a builder (`text`, `json`, `csv`) over local files, which
    `datasets` converts to memory-mapped Arrow so a corpus larger than RAM can be read."""
    import os

    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    try:
        import datasets
    except ImportError:
        raise UsageError("--dataset needs the 'datasets' package: pip install datasets") from None
    datasets.logging.set_verbosity_error()
    local = data_files is not None
    if local:
        for f in data_files:
            if not Path(f).exists():
                raise CorpusError(f, "no such file")
    try:
        return datasets.load_dataset(name, config, split=split, data_files=data_files)
    except Exception as e:  # datasets raises many types (ConnectionError, FileNotFoundError, DatasetNotFoundError…)
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        if local:
            raise CorpusError(", ".join(data_files), f"datasets could not read these files with the {name!r} builder: {text}") from None
        offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1"
        reach = ("the Hugging Face hub is switched off (HF_HUB_OFFLINE=1)" if offline
                 else "could not load it from the Hugging Face hub")
        raise CorpusError(None, f"dataset {name!r}: {reach} ({text}); to train on local files, pass FILES... "
                                f"or --src/--tgt or --pairs instead of --dataset") from None


def text_from_dataset(rows: Iterable[dict], text_field: str, where: str) -> TextCorpus:
    stats = CorpusStats(files=[where])
    parts = []
    for n, row in enumerate(rows, 1):
        stats.read += 1
        value = row.get(text_field)
        if not isinstance(value, str):
            raise CorpusError(where, f"row has no string field {text_field!r} (use --text-field)", n)
        if value.strip():
            parts.append(normalize(value))
            stats.kept += 1
        else:
            stats.drop("blank")
    if not parts:
        raise CorpusError(where, "corpus is empty (no non-blank text)")
    return TextCorpus("\n".join(parts) + "\n", stats)


def pairs_from_dataset(rows: Iterable[dict], src_field: str, tgt_field: str, where: str,
                       max_len: int | None = None) -> ParallelCorpus:
    """Rows with two text fields, or the hub's `{"translation": {"de": ..., "en": ...}}` layout."""
    stats = CorpusStats(files=[where])
    f = _PairFilter(stats, max_len)
    for n, row in enumerate(rows, 1):
        rec = row.get("translation", row) if isinstance(row.get("translation"), dict) else row
        s, t = rec.get(src_field), rec.get(tgt_field)
        if not isinstance(s, str) or not isinstance(t, str):
            raise CorpusError(where, f"row has no string fields {src_field!r} and {tgt_field!r} "
                                     f"(fields: {', '.join(rec)}; use --src-field/--tgt-field)", n)
        f.add(s, t)
    return f.result(where)


# ---------------------------------------------------------------------------------------------- splits

def split_pairs(pairs: list, fraction: float, seed: int) -> tuple[list, list]:
    """A seeded random split; the same seed always holds out the same pairs."""
    if not 0 < fraction < 1:
        raise UsageError(f"--val-fraction must be between 0 and 1, not {fraction}")
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    n_val = max(1, int(round(len(pairs) * fraction)))
    if n_val >= len(pairs):
        raise CorpusError(None, f"only {len(pairs)} pairs: too few to hold out a validation set; give --val-src/--val-tgt")
    held = set(order[:n_val])
    return [p for i, p in enumerate(pairs) if i not in held], [pairs[i] for i in sorted(held)]


# ---------------------------------------------------------------------------------------------- summaries

def percentiles(values: list[int], ps=(50, 90, 99, 100)) -> dict[str, int]:
    if not values:
        return {}
    v = sorted(values)
    return {f"p{p}": v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))] for p in ps}


def describe_text(corpus: TextCorpus, samples: int = 3, seed: int = 0) -> dict:
    lines = [line for line in corpus.text.split("\n") if line.strip()]
    rng = random.Random(seed)
    return {"kind": "text", **corpus.stats.to_dict(), "characters": len(corpus.text),
            "charset_size": len(set(corpus.text)),
            "line_length_chars": percentiles([len(line) for line in lines]),
            "samples": rng.sample(lines, min(samples, len(lines)))}


def describe_pairs(corpus: ParallelCorpus, samples: int = 3, seed: int = 0) -> dict:
    rng = random.Random(seed)
    src_chars = set("".join(s for s, _ in corpus.pairs))
    tgt_chars = set("".join(t for _, t in corpus.pairs))
    return {"kind": "parallel", **corpus.stats.to_dict(), "pairs": len(corpus.pairs),
            "src_charset_size": len(src_chars), "tgt_charset_size": len(tgt_chars),
            "src_length_words": percentiles([_word_len(s) for s, _ in corpus.pairs]),
            "tgt_length_words": percentiles([_word_len(t) for _, t in corpus.pairs]),
            "samples": [list(p) for p in rng.sample(corpus.pairs, min(samples, len(corpus.pairs)))]}


# ---------------------------------------------------------------------------------------------- one entry for each kind

def open_text(files: list[str] | None = None, dataset: str | None = None, dataset_config: str | None = None,
              split: str = "train", data_files: list[str] | None = None, text_field: str = "text",
              encoding_errors: str = "strict") -> TextCorpus:
    """Monolingual text from FILES... or from `--dataset` (hub name or a local builder with data files)."""
    if dataset:
        if files:
            raise UsageError("give corpus FILES or --dataset, not both")
        rows = load_dataset_rows(dataset, dataset_config, split, data_files or None)
        return text_from_dataset(rows, text_field, f"dataset {dataset}")
    if not files:
        raise UsageError("no corpus given: pass FILES... or --dataset NAME")
    return read_text(files, text_field=text_field, encoding_errors=encoding_errors)


def open_parallel(src: str | None = None, tgt: str | None = None, pairs: str | None = None,
                  dataset: str | None = None, dataset_config: str | None = None, split: str = "train",
                  data_files: list[str] | None = None, src_col: int = 0, tgt_col: int = 1,
                  src_field: str | None = None, tgt_field: str | None = None, max_len: int | None = None,
                  encoding_errors: str = "strict") -> ParallelCorpus:
    """Pairs from `--src/--tgt`, `--pairs FILE` or `--dataset` (exactly one of them)."""
    given = [name for name, v in (("--src/--tgt", src or tgt), ("--pairs", pairs), ("--dataset", dataset)) if v]
    if len(given) != 1:
        raise UsageError("give exactly one of --src and --tgt, --pairs FILE, or --dataset NAME"
                         + (f" (got {', '.join(given)})" if given else ""))
    if max_len is not None and max_len < 1:
        raise UsageError(f"--max-len must be at least 1, not {max_len}")
    if src or tgt:
        if not (src and tgt):
            raise UsageError("--src and --tgt go together")
        return read_aligned(src, tgt, max_len, encoding_errors)
    if pairs:
        if Path(pairs).suffix == ".jsonl":
            return read_pairs(pairs, src_field or "src", tgt_field or "tgt", max_len, encoding_errors)
        return read_pairs(pairs, src_col, tgt_col, max_len, encoding_errors)
    rows = load_dataset_rows(dataset, dataset_config, split, data_files or None)
    return pairs_from_dataset(rows, src_field or "src", tgt_field or "tgt", f"dataset {dataset}", max_len)


def open_text_source(files: list[str] | None = None, dataset: str | None = None, dataset_config: str | None = None,
                     split: str = "train", data_files: list[str] | None = None, text_field: str = "text",
                     encoding_errors: str = "strict") -> TextSource:
    """Like `open_text`, but plain-text files are streamed rather than read whole (for very large corpora)."""
    if dataset or not files:
        corpus = open_text(files, dataset, dataset_config, split, data_files, text_field, encoding_errors)
        return TextSource(texts=[corpus.text], description=", ".join(corpus.stats.files))
    paths = expand_paths(files)
    if any(p.suffix == ".jsonl" for p in paths):
        corpus = read_text(paths, text_field=text_field, encoding_errors=encoding_errors)
        return TextSource(texts=[corpus.text], description=", ".join(corpus.stats.files))
    for p in paths:
        read_file_text_checks(p, encoding_errors)
    return TextSource(paths=paths, encoding_errors=encoding_errors)
