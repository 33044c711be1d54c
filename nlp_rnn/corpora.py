"""Read and validate what users train on: monolingual text and parallel pairs, from local files or `datasets`.

Every input is read as a stream in bounded memory, whatever its size: one reader (`iter_text_chunks`, and
`iter_lines` over it) decodes files, pipes and standard input block by block and refuses what is not UTF-8 text —
devices, NUL bytes anywhere, UTF-16/32, compressed files, invalid UTF-8, over-long lines — with a `CorpusError`
naming the file and line. The formats (plain text, aligned files, TSV/CSV/JSONL pairs, labelled examples,
`datasets` rows) are thin layers over it, and `summarize_text`/`summarize_parallel`/`summarize_labelled` give
`nlp-rnn corpus check` its figures in one pass.
"""
from __future__ import annotations

import codecs
import collections
import csv
import glob
import json
import math
import os
import random
import shlex
import stat
import tempfile
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator

from .errors import CorpusError, MissingInput, UsageError
from .tokenizers import normalize

TEXT_SUFFIXES = {".txt", ".jsonl", ".tsv", ".csv", ".de", ".en", ".es", ".fr"}

# The longest line a line-based format (pairs, JSONL, input to translate) may hold. Far beyond any sentence and
# room for a JSONL record carrying a long document, yet one line never strains memory. Character streams (a
# language model's text, `eval lm`) have no limit: a long line, text8-style, is read in pieces.
MAX_LINE_BYTES = 4 << 20
BLOCK_BYTES = 1 << 20  # what one read takes; at most MAX_LINE_BYTES
SAMPLE_CHARS = 200  # `corpus check` samples are cut here


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
            raise MissingInput(p, "no such file")
    if not out:
        raise UsageError("no corpus files given")
    return out


def check_encoding_errors(encoding_errors: str) -> None:
    try:
        codecs.lookup_error(encoding_errors)
    except LookupError:
        raise UsageError(f"--encoding-errors must be strict, replace or ignore, not {encoding_errors!r}") from None


def check_input_file(path: str | Path, encoding_errors: str = "strict") -> None:
    """The checks every reader makes before opening a path: a readable file or pipe, never a device."""
    check_encoding_errors(encoding_errors)
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise MissingInput(path, "no such file") from None
    except OSError as e:
        raise CorpusError(path, f"cannot read ({e.strerror})") from None
    if stat.S_ISDIR(mode):
        raise CorpusError(path, "is a directory, expected a file")
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        raise CorpusError(path, "is a device, not a file")
    if stat.S_ISSOCK(mode):
        raise CorpusError(path, "is a socket, not a file")
    if not os.access(path, os.R_OK):
        raise CorpusError(path, "permission denied")


read_file_text_checks = check_input_file  # the former name


def is_pipe(path: str | Path) -> bool:
    """A named pipe or `<(command)`: it can be read only once."""
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False


# Byte-order marks and the signatures of compressed files: each says what the file is and what to do.
_BOMS = [(b"\x00\x00\xfe\xff", "UTF-32", "big-endian"), (b"\xff\xfe\x00\x00", "UTF-32", "little-endian"),
         (b"\xfe\xff", "UTF-16", "big-endian"), (b"\xff\xfe", "UTF-16", "little-endian")]
_COMPRESSED = [(b"\x1f\x8b", "gzip-compressed", "gunzip -k", "zcat"), (b"\xfd7zXZ\x00", "xz-compressed", "unxz -k", "xzcat"),
               (b"\x28\xb5\x2f\xfd", "zstd-compressed", "unzstd", "zstdcat"), (b"PK\x03\x04", "a zip archive", "unzip", "unzip -p")]


def _convert_hint(where, encoding: str) -> str:
    p = Path(where)
    if str(where).startswith("<"):  # standard input
        return f"iconv -f {encoding} -t UTF-8"
    target = p.with_name(f"{p.stem}.utf8{p.suffix}")
    return f"iconv -f {encoding} -t UTF-8 {shlex.quote(str(p))} > {shlex.quote(str(target))}"


def _check_start(data: bytes, where) -> bytes:
    """Drop a UTF-8 byte-order mark; refuse UTF-16/32 and compressed files, saying what they are."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:]
    for bom, encoding, order in _BOMS:
        if data.startswith(bom):
            raise CorpusError(where, f"is {encoding} text ({order}), expected UTF-8; convert it: "
                                     f"{_convert_hint(where, encoding)}")
    bzip2 = data[:3] == b"BZh" and data[4:10] == b"1AY&SY"
    for magic, what, unpack, cat in _COMPRESSED + ([(b"BZh", "bzip2-compressed", "bunzip2 -k", "bzcat")] if bzip2 else []):
        if data.startswith(magic):
            q = shlex.quote(str(where))
            raise CorpusError(where, f"is {what}, expected UTF-8 text; unpack it first ({unpack} {q}) "
                                     f"or read it through a pipe: <({cat} {q})")
    return data


def _nul_problem(data: bytes, at_start: bool) -> str:
    if at_start and len(data) >= 8:
        head = data[:512]
        even, odd = head[0::2], head[1::2]
        for zeros, other, order in ((odd, even, "LE"), (even, odd, "BE")):
            if zeros.count(0) >= 0.9 * len(zeros) and 0 not in other:
                return ("looks like UTF-16 text without a byte-order mark (a NUL byte beside each letter), expected "
                        f"UTF-8; convert it with iconv -f UTF-16{order} -t UTF-8")
    return "looks like a binary file (contains a NUL byte), expected UTF-8 text"


def _decode(data: bytes, where, line: int, errors: str) -> str:
    try:
        text = data.decode("utf-8", errors)
    except UnicodeDecodeError as e:
        at = line + data.count(b"\n", 0, e.start)
        raise CorpusError(where, f"invalid UTF-8 (byte 0x{data[e.start]:02x}); fix the file or pass "
                                 f"--encoding-errors replace", at) from None
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    return normalize(text)  # NFC never joins across a line break, so block by block equals all at once


def _piece_end(buf: bytes) -> int:
    """Where to cut a long line: before an ASCII byte near the end (NFC never joins anything to an ASCII
    character), else on any character boundary."""
    n = len(buf)
    for i in range(n - 1, max(0, n - 256), -1):
        if buf[i] < 0x80:
            return i
    for i in range(n - 1, max(0, n - 4), -1):
        if buf[i] & 0xC0 != 0x80:
            return i
    return n


def _blocks(f: BinaryIO, where, errors: str, split_long: bool, block: int | None) -> Iterator[tuple[int, str]]:
    """(number of the first line, text) for each block read: whole lines with their line breaks, plus the last
    line even without one. With `split_long` a line longer than a block comes in pieces; without, a line over
    MAX_LINE_BYTES is an error. Memory holds one block and one unfinished line, never the file."""
    block = max(4, min(block or BLOCK_BYTES, MAX_LINE_BYTES))  # a line within one block is never over the limit
    read = f.read1 if hasattr(f, "read1") else f.read
    data = read(block)
    while 0 < len(data) < 4:  # a pipe or terminal may hand over a few bytes at a time
        more = read(block)
        if not more:
            break
        data += more
    data = _check_start(data, where)
    line, pending, at_start = 1, b"", True

    def too_long() -> CorpusError:
        return CorpusError(where, f"line is longer than {MAX_LINE_BYTES >> 20} MiB, the limit for one line "
                                  f"(is the file one record per line?)", line)

    while data:
        nul = data.find(b"\0")
        if nul >= 0:
            raise CorpusError(where, _nul_problem(data, at_start), line + data.count(b"\n", 0, nul))
        at_start = False
        first_nl = data.find(b"\n")
        if first_nl < 0:
            pending += data
            if split_long and len(pending) >= block:
                cut = _piece_end(pending)
                yield line, _decode(pending[:cut], where, line, errors)
                pending = pending[cut:]
            elif len(pending) > MAX_LINE_BYTES:
                raise too_long()
        else:
            if not split_long and len(pending) + first_nl > MAX_LINE_BYTES:
                raise too_long()
            last = data.rfind(b"\n") + 1
            whole = pending + data[:last] if pending else data[:last]
            yield line, _decode(whole, where, line, errors)
            line += data.count(b"\n", 0, last)
            pending = data[last:]
        data = read(block)
    if pending:
        yield line, _decode(pending, where, line, errors)


class _Opened:
    """A path opened for reading (after `check_input_file`), or a stream given by the caller (not closed)."""

    def __init__(self, source: str | Path | BinaryIO, encoding_errors: str, name: str | Path | None):
        check_encoding_errors(encoding_errors)
        if isinstance(source, (str, Path)):
            check_input_file(source)
            self.where, self.owned = name or Path(source), True
            try:
                self.f = open(source, "rb")
            except PermissionError:
                raise CorpusError(source, "permission denied") from None
            except OSError as e:
                raise CorpusError(source, f"cannot read ({e.strerror})") from None
        else:
            self.f, self.where, self.owned = source, name or getattr(source, "name", "<stream>"), False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.owned:
            self.f.close()


def iter_text_chunks(source: str | Path | BinaryIO, encoding_errors: str = "strict", *, name: str | Path | None = None,
                     block: int | None = None) -> Iterator[str]:
    """A file's (or binary stream's) text as a character stream, in pieces of about `block` bytes: UTF-8 with its
    byte-order mark dropped, CRLF as LF, NFC. Concatenated they are the whole text; lines of any length pass."""
    opened = _Opened(source, encoding_errors, name)  # errors in the path show before the first chunk is asked for

    def chunks() -> Iterator[str]:
        with opened:
            for _, text in _blocks(opened.f, opened.where, encoding_errors, True, block):
                yield text
    return chunks()


def iter_file_chunks(path: str | Path, encoding_errors: str = "strict", chunk_bytes: int | None = None) -> Iterator[str]:
    """The former name of `iter_text_chunks` for paths."""
    return iter_text_chunks(path, encoding_errors, block=chunk_bytes)


def iter_lines(source: str | Path | BinaryIO, encoding_errors: str = "strict", *, name: str | Path | None = None,
               keepends: bool = False) -> Iterator[tuple[int, str]]:
    """(line number, text) for each line of a file, named pipe or binary stream (`sys.stdin.buffer`, with `name`
    for messages), checked and decoded like `iter_text_chunks`; a line over MAX_LINE_BYTES is a CorpusError.
    Every line-based reader is built on this; `keepends` keeps each "\\n"."""
    opened = _Opened(source, encoding_errors, name)

    def lines() -> Iterator[tuple[int, str]]:
        with opened:
            for n, text in _blocks(opened.f, opened.where, encoding_errors, False, None):
                parts = text.split("\n")
                last = parts.pop()  # "" when the block ends with a line break
                if keepends:
                    for i, part in enumerate(parts):
                        yield n + i, part + "\n"
                else:
                    yield from enumerate(parts, n)
                if last:
                    yield n + len(parts), last
    return lines()


def decode_line(data: bytes | str, where: str, line: int, encoding_errors: str = "strict") -> str:
    """One line of user input that does not come through `iter_lines` (an argument, a REPL line), checked the
    same way: length, NUL bytes, UTF-8 (text read with surrogateescape is re-checked), line break dropped, NFC."""
    check_encoding_errors(encoding_errors)
    if isinstance(data, str):
        try:
            data = data.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a lone surrogate that no byte stands for: let the decoder name it
            data = data.encode("utf-8", "surrogatepass")
    if len(data) > MAX_LINE_BYTES:
        raise CorpusError(where, f"line is longer than {MAX_LINE_BYTES >> 20} MiB, the limit for one line", line)
    if b"\0" in data:
        raise CorpusError(where, "contains a NUL byte, expected UTF-8 text", line)
    if data.endswith(b"\n"):
        data = data[:-1]
    return _decode(data, where, line, encoding_errors).removesuffix("\r")


def read_file_text(path: str | Path, encoding_errors: str = "strict") -> str:
    """A whole file's text (checked like `iter_text_chunks`). Whole in memory: prefer `iter_text_chunks` or
    `iter_lines` for anything that may be large."""
    return "".join(iter_text_chunks(path, encoding_errors))


# ---------------------------------------------------------------------------------------------- monolingual

def _is_jsonl(path: Path) -> bool:
    return path.suffix == ".jsonl"


def _json_records(path: Path, encoding_errors: str, stream: BinaryIO | None = None) -> Iterator[tuple[int, dict]]:
    for n, line in iter_lines(path if stream is None else stream, encoding_errors, name=path):
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


def _record_texts(records: Iterable[tuple[int, dict]], text_field: str, where, what: str,
                  stats: CorpusStats | None) -> Iterator[str]:
    """The text field of each record (JSONL line or dataset row) + "\\n"; blank ones are dropped and counted."""
    for n, rec in records:
        value = rec.get(text_field)
        if not isinstance(value, str):
            raise CorpusError(where, f"{what} has no string field {text_field!r} (use --text-field)", n)
        if stats is not None:
            stats.read += 1
        if value.strip():
            if stats is not None:
                stats.kept += 1
            yield normalize(value) + "\n"
        elif stats is not None:
            stats.drop("blank")


def _file_text(path: Path, text_field: str, encoding_errors: str, stats: CorpusStats | None = None,
               stream: BinaryIO | None = None) -> Iterator[str]:
    """A plain-text file's characters as they are, or a JSONL file's records, one per line (from `stream`
    instead of opening `path` when one is given)."""
    if _is_jsonl(path):
        return _record_texts(_json_records(path, encoding_errors, stream), text_field, path, "record", stats)
    return iter_text_chunks(path if stream is None else stream, encoding_errors, name=path)


class _Spool:
    """A copy, in a temporary file, of a pipe being read, so that a second pass reads the copy."""

    def __init__(self, pipe: BinaryIO, path: Path):
        self.pipe, self.path = pipe, path
        fd, self.name = tempfile.mkstemp(prefix="nlp-rnn-pipe-")
        self.copy = os.fdopen(fd, "wb")

    def read1(self, n: int) -> bytes:
        data = self.pipe.read1(n)
        try:
            self.copy.write(data)
        except OSError as e:
            raise CorpusError(self.path, f"cannot keep a copy of this pipe in {tempfile.gettempdir()} "
                                         f"({e.strerror}); save it to a file first") from None
        return data


class TextSource:
    """Monolingual text that can be read more than once, in chunks, in bounded memory: files are streamed from
    disk each time, and a pipe (`<(zcat corpus.gz)`, a FIFO) — which can be read only once — is copied to a
    temporary file on the first pass, which later passes read (deleted with the source or at exit). `texts`
    is any re-iterable of strings (a list, or dataset rows)."""

    def __init__(self, paths: list[Path] | None = None, texts: Iterable[str] | None = None,
                 encoding_errors: str = "strict", description: str = "", text_field: str = "text"):
        self.paths, self.texts, self.encoding_errors, self.text_field = paths, texts, encoding_errors, text_field
        self.description = description or ", ".join(str(p) for p in paths or [])
        self._copies: dict[int, str | None] = {}  # pipe index → its copy (None while the first pass runs)

    @classmethod
    def from_text(cls, text: str) -> "TextSource":
        return cls(texts=[text], description="text")

    def chunks(self) -> Iterator[str]:
        if self.paths is None:
            yield from self.texts
            return
        for i, path in enumerate(self.paths):
            if i:
                yield "\n"  # files are joined by a line break
            yield from self._chunks_of(i, Path(path))

    def _chunks_of(self, i: int, path: Path) -> Iterator[str]:
        if i in self._copies:
            if self._copies[i] is None:
                raise CorpusError(path, "is a pipe, which can be read once, and its first reading did not finish")
            with open(self._copies[i], "rb") as f:
                yield from _file_text(path, self.text_field, self.encoding_errors, stream=f)
        elif is_pipe(path):
            check_input_file(path, self.encoding_errors)
            self._copies[i] = None
            with open(path, "rb") as pipe:
                spool = _Spool(pipe, path)
                weakref.finalize(self, _unlink, spool.name)
                with spool.copy:
                    yield from _file_text(path, self.text_field, self.encoding_errors, stream=spool)
            self._copies[i] = spool.name
        else:
            yield from _file_text(path, self.text_field, self.encoding_errors)


def _unlink(name: str) -> None:
    try:
        os.unlink(name)
    except OSError:
        pass


class _DatasetTexts:
    """The text field of each row of a `datasets` dataset, re-iterable (the rows are memory-mapped Arrow)."""

    def __init__(self, rows: Iterable[dict], text_field: str, where: str):
        self.rows, self.text_field, self.where = rows, text_field, where

    def __iter__(self) -> Iterator[str]:
        return _record_texts(enumerate(self.rows, 1), self.text_field, self.where, "row", None)


def read_text(specs: Iterable[str | Path], text_field: str = "text", encoding_errors: str = "strict") -> TextCorpus:
    """Monolingual text from .txt files (as they are, paragraph breaks included) and .jsonl records, whole in
    memory; `open_text_source` streams the same text."""
    stats = CorpusStats()
    parts: list[str] = []
    for path in expand_paths(specs):
        stats.files.append(str(path))
        if _is_jsonl(path):
            parts.extend(t[:-1] for t in _file_text(path, text_field, encoding_errors, stats))
        else:
            tally = _TextTally()
            text = "".join(tally.feed(t) for t in iter_text_chunks(path, encoding_errors))
            tally.finish()
            stats.read += tally.lines
            stats.kept += tally.lines - tally.blank
            stats.blank_kept += tally.blank
            parts.append(text.rstrip("\n"))
    text = "\n".join(p for p in parts if p)
    if not text.strip():
        raise CorpusError(", ".join(stats.files), "corpus is empty (no non-blank text)")
    return TextCorpus(text + "\n", stats)


def iter_text_lines(specs: Iterable[str | Path], text_field: str = "text", encoding_errors: str = "strict",
                    max_chars: int = 4096, stats: CorpusStats | None = None) -> Iterator[str]:
    """The non-blank lines of text files and JSONL records, streamed, each at most `max_chars` long (longer
    lines are cut, at a space when there is one): what a subword tokenizer trains on. `stats.kept` counts them."""
    stats = stats if stats is not None else CorpusStats()
    paths = expand_paths(specs)
    for path in paths:
        check_input_file(path, encoding_errors)
    for path in paths:
        stats.files.append(str(path))
        carry = ""
        for piece in _file_text(path, text_field, encoding_errors):
            lines = (carry + piece).split("\n")
            carry = lines.pop()
            while len(carry) > max_chars:
                head, carry = _cut(carry, max_chars)
                stats.kept += 1
                yield head
            for line in lines:
                while line.strip():
                    head, line = _cut(line, max_chars)
                    if head.strip():
                        stats.kept += 1
                        yield head
        if carry.strip():
            stats.kept += 1
            yield carry
    if not stats.kept:
        raise CorpusError(", ".join(stats.files), "corpus is empty (no non-blank text)")


def _cut(text: str, limit: int) -> tuple[str, str]:
    if len(text) <= limit:
        return text, ""
    at = text.rfind(" ", limit // 2, limit)
    at = at + 1 if at > 0 else limit
    return text[:at], text[at:]


# ---------------------------------------------------------------------------------------------- parallel

def _word_len(s: str) -> int:
    return len(s.split())


class _PairFilter:
    """Drops blank and over-long pairs, counting each reason."""

    def __init__(self, stats: CorpusStats, max_len: int | None):
        self.stats, self.max_len = stats, max_len

    def add(self, src: str, tgt: str) -> tuple[str, str] | None:
        self.stats.read += 1
        src, tgt = normalize(src.strip()), normalize(tgt.strip())
        if not src or not tgt:
            self.stats.drop("blank")
        elif self.max_len and (_word_len(src) > self.max_len or _word_len(tgt) > self.max_len):
            self.stats.drop("too_long")
        else:
            self.stats.kept += 1
            return src, tgt
        return None

    def blank(self) -> None:
        self.stats.read += 1
        self.stats.drop("blank")

    def check_some(self, where: str) -> None:
        if not self.stats.kept:
            why = ", ".join(f"{n} {r}" for r, n in self.stats.dropped.items()) or "no lines"
            hint = " (raise --max-len)" if self.stats.dropped.get("too_long") else ""
            raise CorpusError(where, f"no usable sentence pairs ({why} dropped){hint}")


def _aligned_pairs(src: Path, tgt: Path, f: _PairFilter, encoding_errors: str) -> Iterator[tuple[str, str]]:
    """Two files read side by side. Multi30k-style files end with one blank line; blank lines past the end of
    the shorter file do not count as pairs, anything else there is a length mismatch."""
    a, b = iter_lines(src, encoding_errors), iter_lines(tgt, encoding_errors)
    n = 0
    while True:
        x, y = next(a, None), next(b, None)
        if x is None or y is None:
            break
        n += 1
        pair = f.add(x[1], y[1])
        if pair:
            yield pair
    if x is None and y is None:
        return
    rest, first = (b, y) if x is None else (a, x)
    extra, ink = 1, bool(first[1].strip())
    for _, line in rest:
        extra += 1
        ink = ink or bool(line.strip())
    if ink:
        n_src, n_tgt = (n, n + extra) if x is None else (n + extra, n)
        raise CorpusError(None, f"aligned files differ in length: {src} has {n_src} lines, {tgt} has {n_tgt}")


def _tsv_fields(line: str, path: Path, n: int) -> list[str]:
    """Fields split at every tab: quotes are ordinary characters (Anki/Tatoeba exports are not quoted, and
    their sentences may start with one). A line where a field is wrapped in quotes that enclose a tab — what
    a CSV writer makes with a tab delimiter — is refused rather than cut into a wrong pair."""
    fields = line.split("\t")
    if len(fields) > 1 and '"' in line and (line.startswith('"') or '\t"' in line):
        try:
            quoted = next(csv.reader([line], delimiter="\t", quotechar='"', strict=True))
        except csv.Error:  # quotes that do not wrap a field: plain text
            quoted = []
        held = next((q for q in quoted if "\t" in q), None)
        if held is not None:
            raise CorpusError(path, f"a quoted field holds a tab ({shorten(held, 60)!r}); TSV fields are split at "
                                    f"every tab, so this line would give a wrong pair: remove the tab or write the "
                                    f"file as CSV (.csv) or JSONL (.jsonl)", n)
    return fields


def _file_pairs(path: Path, src_col: int | str, tgt_col: int | str, f: _PairFilter,
                encoding_errors: str) -> Iterator[tuple[str, str]]:
    if _is_jsonl(path):
        sf, tf = (("src", "tgt") if isinstance(src_col, int) else (src_col, tgt_col))
        for n, rec in _json_records(path, encoding_errors):
            if sf not in rec or tf not in rec:
                raise CorpusError(path, f"record lacks field {sf!r} or {tgt_col if isinstance(tgt_col, str) else 'tgt'!r} "
                                        f"(fields: {shorten(', '.join(rec), 200)}; use --src-field/--tgt-field)", n)
            if not isinstance(rec[sf], str) or not isinstance(rec[tf], str):
                raise CorpusError(path, f"fields {sf!r} and {tf!r} must be strings", n)
            pair = f.add(rec[sf], rec[tf])
            if pair:
                yield pair
        return
    sc, tc = int(src_col), int(tgt_col)
    need = max(sc, tc) + 1
    sep = "comma" if path.suffix == ".csv" else "tab"
    rows = _csv_rows(path, encoding_errors) if path.suffix == ".csv" else (
        (n, _tsv_fields(line, path, n)) for n, line in iter_lines(path, encoding_errors))
    for n, row in rows:
        if not row or (len(row) == 1 and not row[0].strip()):
            f.blank()
            continue
        if len(row) < need:
            raise CorpusError(path, f"expected at least {need} {sep}-separated columns, found {len(row)}", n)
        pair = f.add(row[sc], row[tc])
        if pair:
            yield pair


def _csv_rows(path: Path, encoding_errors: str) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(line for _, line in iter_lines(path, encoding_errors, keepends=True))
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise CorpusError(path, f"malformed CSV ({e})", reader.line_num) from None
        yield reader.line_num, row


def _columns(src_col, tgt_col) -> None:
    try:
        int(src_col), int(tgt_col)
    except ValueError:
        raise UsageError("columns of a TSV/CSV file are 0-based numbers") from None


def read_aligned(src: str | Path, tgt: str | Path, max_len: int | None = None,
                 encoding_errors: str = "strict") -> ParallelCorpus:
    """Two files aligned line by line (`train.de` / `train.en`)."""
    stream = PairStream("aligned", (Path(src), Path(tgt)), max_len=max_len, encoding_errors=encoding_errors)
    return stream.collect()


def read_pairs(path: str | Path, src_col: int | str = 0, tgt_col: int | str = 1, max_len: int | None = None,
               encoding_errors: str = "strict") -> ParallelCorpus:
    """Pairs in one file: TSV (also the Tatoeba/Anki `english<TAB>spanish<TAB>attribution` export), CSV, or
    JSONL with two fields. Columns are 0-based indices for TSV/CSV and field names for JSONL."""
    stream = PairStream("file", (Path(path), src_col, tgt_col), max_len=max_len, encoding_errors=encoding_errors)
    return stream.collect()


class PairStream:
    """Sentence pairs read one at a time (blank and over-long ones dropped), so a check can look at a corpus of
    any size; `stats` fills in as they go. `kind` is aligned (src, tgt), file (path, src_col, tgt_col) or
    dataset (rows, src_field, tgt_field, name)."""

    def __init__(self, kind: str, args: tuple, max_len: int | None = None, encoding_errors: str = "strict"):
        self.kind, self.args, self.encoding_errors = kind, args, encoding_errors
        check_encoding_errors(encoding_errors)
        if kind == "aligned":
            for p in args:
                check_input_file(p, encoding_errors)
            files, self.where = [str(p) for p in args], f"{args[0]} + {args[1]}"
        elif kind == "file":
            check_input_file(args[0], encoding_errors)
            if not _is_jsonl(args[0]):
                _columns(args[1], args[2])
            self.where = str(args[0])
            files = [self.where]
        else:
            self.where = args[3]
            files = [self.where]
        self.stats = CorpusStats(files=files)
        self.filter = _PairFilter(self.stats, max_len)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        f = self.filter
        if self.kind == "aligned":
            return _aligned_pairs(*self.args, f, self.encoding_errors)
        if self.kind == "file":
            return _file_pairs(*self.args, f, self.encoding_errors)
        return _dataset_pairs(*self.args, f)

    def collect(self) -> ParallelCorpus:
        pairs = list(self)
        self.filter.check_some(self.where)
        return ParallelCorpus(pairs, self.stats)


# ---------------------------------------------------------------------------------------------- datasets

def load_dataset_rows(name: str, config: str | None = None, split: str = "train",
                      data_files: list[str] | None = None) -> Iterable[dict]:
    """Rows of a `datasets` dataset: a hub name, or a builder (`text`, `json`, `csv`) over local files, which
    `datasets` converts to memory-mapped Arrow so a corpus larger than RAM can be read."""
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
                raise MissingInput(f, "no such file")
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
    text = "".join(_record_texts(enumerate(rows, 1), text_field, where, "row", stats))
    if not text:
        raise CorpusError(where, "corpus is empty (no non-blank text)")
    return TextCorpus(text, stats)


def _dataset_pairs(rows: Iterable[dict], src_field: str, tgt_field: str, where: str,
                   f: _PairFilter) -> Iterator[tuple[str, str]]:
    for n, row in enumerate(rows, 1):
        rec = row.get("translation", row) if isinstance(row.get("translation"), dict) else row
        s, t = rec.get(src_field), rec.get(tgt_field)
        if not isinstance(s, str) or not isinstance(t, str):
            raise CorpusError(where, f"row has no string fields {src_field!r} and {tgt_field!r} "
                                     f"(fields: {shorten(', '.join(rec), 200)}; use --src-field/--tgt-field)", n)
        pair = f.add(s, t)
        if pair:
            yield pair


def pairs_from_dataset(rows: Iterable[dict], src_field: str, tgt_field: str, where: str,
                       max_len: int | None = None) -> ParallelCorpus:
    """Rows with two text fields, or the hub's `{"translation": {"de": ..., "en": ...}}` layout."""
    return PairStream("dataset", (rows, src_field, tgt_field, where), max_len=max_len).collect()


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

def shorten(text: str, limit: int = SAMPLE_CHARS, length: int | None = None) -> str:
    """`text` cut to `limit` characters, saying how many more there were (`length`: the full length, when
    `text` is already a prefix)."""
    length = len(text) if length is None else length
    return text if length <= limit else f"{text[:limit]}… (+{length - limit:,} chars)"


def percentiles(values: list[int], ps=(50, 90, 99, 100)) -> dict[str, int]:
    if not values:
        return {}
    v = sorted(values)
    return {f"p{p}": v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))] for p in ps}


class LengthHistogram:
    """Counts of lengths for percentiles in bounded memory: exact below 1024, above that rounded down to 8
    significant bits (within 1%); the maximum is kept exactly."""

    def __init__(self):
        self.counts: collections.Counter[int] = collections.Counter()
        self.n = self.max = 0

    def add(self, length: int) -> None:
        self.n += 1
        self.max = max(self.max, length)
        self.counts[_bucket(length)] += 1

    def add_many(self, lengths: list[int]) -> None:
        if lengths:
            self.n += len(lengths)
            self.max = max(self.max, max(lengths))
            self.counts.update(lengths)
            if len(self.counts) > 8192:
                merged: collections.Counter[int] = collections.Counter()
                for k, c in self.counts.items():
                    merged[_bucket(k)] += c
                self.counts = merged

    def percentiles(self, ps=(50, 90, 99, 100)) -> dict[str, int]:
        if not self.n:
            return {}
        keys = sorted(self.counts)
        out, seen, i = {}, 0, 0
        for p in ps:
            rank = min(self.n - 1, int(round(p / 100 * (self.n - 1))))
            while seen + self.counts[keys[i]] <= rank:
                seen += self.counts[keys[i]]
                i += 1
            out[f"p{p}"] = self.max if rank == self.n - 1 else keys[i]
        return out


def _bucket(n: int) -> int:
    if n < 1024:
        return n
    s = n.bit_length() - 8
    return n >> s << s


class Reservoir:
    """A uniform random sample of at most `k` items of a stream of unknown length, kept in stream order
    (Li 1994, algorithm L: random numbers are drawn only when an item is taken)."""

    def __init__(self, k: int, seed: int = 0):
        self.k, self.rng, self.seen = k, random.Random(seed), 0
        self.items: list[tuple[int, object]] = []
        self.w = math.exp(math.log(self.rng.random() or 1e-300) / k) if k else 0.0
        self.next = k + self._skip() if k else math.inf

    def _skip(self) -> int:
        u = self.rng.random() or 1e-300
        return int(math.log(u) / math.log1p(-self.w)) if self.w < 1 else 0

    def wants(self) -> bool:
        """Whether the next item is taken (then `put` it)."""
        return self.seen < self.k or self.seen == self.next

    def put(self, item) -> None:
        if self.seen < self.k:
            self.items.append((self.seen, item))
        elif self.seen == self.next:
            self.items[self.rng.randrange(self.k)] = (self.seen, item)
            self.w *= math.exp(math.log(self.rng.random() or 1e-300) / self.k)
            self.next += self._skip() + 1
        self.seen += 1

    def skip(self) -> None:
        self.seen += 1

    def offer_many(self, items: list, make: Callable = lambda x: x) -> None:
        """Offer a list of items, building only the ones taken with `make`."""
        end = self.seen + len(items)
        while self.seen < end:
            if self.wants():
                self.put(make(items[len(items) - (end - self.seen)]))
            else:
                self.seen = min(end, self.next)

    def sample(self) -> list:
        return [item for _, item in sorted(self.items, key=lambda x: x[0])]


class _TextTally:
    """Lines of a character stream counted as it passes, in bounded memory: lines (blank and not), characters,
    character set, a histogram of non-blank line lengths and a reservoir of shortened non-blank lines. A line
    may arrive in pieces; `feed` returns its text so that a reader can tally and pass the text on."""

    def __init__(self, samples: int = 0, seed: int = 0):
        self.lines = self.blank = self.chars = 0
        self.charset: set[str] = set()
        self.lengths = LengthHistogram()
        self.samples = Reservoir(samples, seed)
        self._len, self._head, self._ink = 0, "", False

    def feed(self, text: str) -> str:
        self.chars += len(text)
        self.charset.update(text)
        parts = text.split("\n")
        if len(parts) > 1:
            self._grow(parts[0])
            self._end_line()
            whole = parts[1:-1]
            inked = [line for line in whole if line and not line.isspace()]
            self.lines += len(whole)
            self.blank += len(whole) - len(inked)
            self.lengths.add_many([len(line) for line in inked])
            self.samples.offer_many(inked, shorten)
        self._grow(parts[-1])
        return text

    def finish(self) -> None:
        """The end of a file: a last line without a line break still counts."""
        if self._len:
            self._end_line()

    def _grow(self, part: str) -> None:
        if part:
            if len(self._head) <= SAMPLE_CHARS:
                self._head += part[:SAMPLE_CHARS + 1 - len(self._head)]
            self._len += len(part)
            self._ink = self._ink or not part.isspace()

    def _end_line(self) -> None:
        self.lines += 1
        if self._ink:
            self.lengths.add(self._len)
            if self.samples.wants():
                self.samples.put(shorten(self._head, length=self._len))
            else:
                self.samples.skip()
        else:
            self.blank += 1
        self._len, self._head, self._ink = 0, "", False


class _PairTally:
    def __init__(self, samples: int = 0, seed: int = 0):
        self.pairs = 0
        self.src_chars: set[str] = set()
        self.tgt_chars: set[str] = set()
        self.src_len, self.tgt_len = LengthHistogram(), LengthHistogram()
        self.samples = Reservoir(samples, seed)

    def add(self, src: str, tgt: str) -> None:
        self.pairs += 1
        self.src_chars.update(src)
        self.tgt_chars.update(tgt)
        self.src_len.add(_word_len(src))
        self.tgt_len.add(_word_len(tgt))
        if self.samples.wants():
            self.samples.put([shorten(src), shorten(tgt)])
        else:
            self.samples.skip()


MAX_FILES_LISTED = 100


def _stats_dict(stats: CorpusStats) -> dict:
    d = stats.to_dict()
    d["file_count"] = len(stats.files)
    d["files"] = stats.files[:MAX_FILES_LISTED]
    return d


def _text_report(stats: CorpusStats, tally: _TextTally) -> dict:
    return {"kind": "text", **_stats_dict(stats), "characters": tally.chars, "charset_size": len(tally.charset),
            "line_length_chars": tally.lengths.percentiles(), "samples": tally.samples.sample()}


def _pair_report(stats: CorpusStats, tally: _PairTally) -> dict:
    return {"kind": "parallel", **_stats_dict(stats), "pairs": tally.pairs,
            "src_charset_size": len(tally.src_chars), "tgt_charset_size": len(tally.tgt_chars),
            "src_length_words": tally.src_len.percentiles(), "tgt_length_words": tally.tgt_len.percentiles(),
            "samples": tally.samples.sample()}


def describe_text(corpus: TextCorpus, samples: int = 3, seed: int = 0) -> dict:
    """`summarize_text`'s figures for a corpus already in memory."""
    tally = _TextTally(samples, seed)
    tally.feed(corpus.text)
    tally.finish()
    return _text_report(corpus.stats, tally)


def describe_pairs(corpus: ParallelCorpus, samples: int = 3, seed: int = 0) -> dict:
    tally = _PairTally(samples, seed)
    for s, t in corpus.pairs:
        tally.add(s, t)
    return _pair_report(corpus.stats, tally)


def summarize_text(files: list[str] | None = None, dataset: str | None = None, dataset_config: str | None = None,
                   split: str = "train", data_files: list[str] | None = None, text_field: str = "text",
                   encoding_errors: str = "strict", samples: int = 3, seed: int = 0) -> dict:
    """What `train lm` would see, in one streaming pass and bounded memory: lines kept and dropped, characters,
    character set, line-length percentiles (from a histogram), and `samples` lines drawn uniformly (a reservoir),
    each cut to SAMPLE_CHARS characters."""
    _one_text_source(files, dataset)
    tally = _TextTally(samples, seed)
    if dataset:
        stats = CorpusStats(files=[f"dataset {dataset}"])
        rows = load_dataset_rows(dataset, dataset_config, split, data_files or None)
        for text in _record_texts(enumerate(rows, 1), text_field, stats.files[0], "row", stats):
            tally.feed(text)
    else:
        stats = CorpusStats()
        paths = expand_paths(files)
        for path in paths:
            check_input_file(path, encoding_errors)
        for path in paths:
            stats.files.append(str(path))
            lines, blank = tally.lines, tally.blank
            for text in _file_text(path, text_field, encoding_errors, stats):
                tally.feed(text)
            tally.finish()
            if not _is_jsonl(path):
                read, empty = tally.lines - lines, tally.blank - blank
                stats.read += read
                stats.kept += read - empty
                stats.blank_kept += empty
    if not stats.kept:
        raise CorpusError(", ".join(stats.files[:MAX_FILES_LISTED]), "corpus is empty (no non-blank text)")
    return _text_report(stats, tally)


def summarize_parallel(src: str | None = None, tgt: str | None = None, pairs: str | None = None,
                       dataset: str | None = None, dataset_config: str | None = None, split: str = "train",
                       data_files: list[str] | None = None, src_col: int = 0, tgt_col: int = 1,
                       src_field: str | None = None, tgt_field: str | None = None, max_len: int | None = None,
                       encoding_errors: str = "strict", samples: int = 3, seed: int = 0) -> dict:
    """What `train mt` would see, in one streaming pass and bounded memory (like `summarize_text`)."""
    stream = open_pair_stream(src, tgt, pairs, dataset, dataset_config, split, data_files, src_col, tgt_col,
                              src_field, tgt_field, max_len, encoding_errors)
    tally = _PairTally(samples, seed)
    for s, t in stream:
        tally.add(s, t)
    stream.filter.check_some(stream.where)
    return _pair_report(stream.stats, tally)


# ---------------------------------------------------------------------------------------------- one entry for each kind

def _one_text_source(files, dataset) -> None:
    if dataset and files:
        raise UsageError("give corpus FILES or --dataset, not both")
    if not dataset and not files:
        raise UsageError("no corpus given: pass FILES... or --dataset NAME")


def open_text(files: list[str] | None = None, dataset: str | None = None, dataset_config: str | None = None,
              split: str = "train", data_files: list[str] | None = None, text_field: str = "text",
              encoding_errors: str = "strict") -> TextCorpus:
    """Monolingual text from FILES... or from `--dataset` (hub name or a local builder with data files), whole in
    memory; `open_text_source` streams it."""
    _one_text_source(files, dataset)
    if dataset:
        rows = load_dataset_rows(dataset, dataset_config, split, data_files or None)
        return text_from_dataset(rows, text_field, f"dataset {dataset}")
    return read_text(files, text_field=text_field, encoding_errors=encoding_errors)


def open_pair_stream(src: str | None = None, tgt: str | None = None, pairs: str | None = None,
                     dataset: str | None = None, dataset_config: str | None = None, split: str = "train",
                     data_files: list[str] | None = None, src_col: int = 0, tgt_col: int = 1,
                     src_field: str | None = None, tgt_field: str | None = None, max_len: int | None = None,
                     encoding_errors: str = "strict") -> PairStream:
    """Pairs from `--src/--tgt`, `--pairs FILE` or `--dataset` (exactly one of them), not yet read."""
    given = [name for name, v in (("--src/--tgt", src or tgt), ("--pairs", pairs), ("--dataset", dataset)) if v]
    if len(given) != 1:
        raise UsageError("give exactly one of --src and --tgt, --pairs FILE, or --dataset NAME"
                         + (f" (got {', '.join(given)})" if given else ""))
    if max_len is not None and max_len < 1:
        raise UsageError(f"--max-len must be at least 1, not {max_len}")
    if src or tgt:
        if not (src and tgt):
            raise UsageError("--src and --tgt go together")
        return PairStream("aligned", (Path(src), Path(tgt)), max_len, encoding_errors)
    if pairs:
        cols = (src_field or "src", tgt_field or "tgt") if _is_jsonl(Path(pairs)) else (src_col, tgt_col)
        return PairStream("file", (Path(pairs), *cols), max_len, encoding_errors)
    rows = load_dataset_rows(dataset, dataset_config, split, data_files or None)
    return PairStream("dataset", (rows, src_field or "src", tgt_field or "tgt", f"dataset {dataset}"), max_len)


def open_parallel(src: str | None = None, tgt: str | None = None, pairs: str | None = None,
                  dataset: str | None = None, dataset_config: str | None = None, split: str = "train",
                  data_files: list[str] | None = None, src_col: int = 0, tgt_col: int = 1,
                  src_field: str | None = None, tgt_field: str | None = None, max_len: int | None = None,
                  encoding_errors: str = "strict") -> ParallelCorpus:
    """Pairs from `--src/--tgt`, `--pairs FILE` or `--dataset` (exactly one of them), read into memory (the
    files are streamed: memory holds the kept pairs, not the files)."""
    return open_pair_stream(src, tgt, pairs, dataset, dataset_config, split, data_files, src_col, tgt_col,
                            src_field, tgt_field, max_len, encoding_errors).collect()


def open_text_source(files: list[str] | None = None, dataset: str | None = None, dataset_config: str | None = None,
                     split: str = "train", data_files: list[str] | None = None, text_field: str = "text",
                     encoding_errors: str = "strict") -> TextSource:
    """Like `open_text`, but streamed: files are read from disk on each pass (pipes once, then from a copy),
    dataset rows from their memory-mapped Arrow tables."""
    _one_text_source(files, dataset)
    if dataset:
        rows = load_dataset_rows(dataset, dataset_config, split, data_files or None)
        where = f"dataset {dataset}"
        return TextSource(texts=_DatasetTexts(rows, text_field, where), description=where)
    paths = expand_paths(files)
    for p in paths:
        check_input_file(p, encoding_errors)
    return TextSource(paths=paths, encoding_errors=encoding_errors, text_field=text_field)


# ---------------------------------------------------------------------------------------------- labelled examples

# Column names that say "the text" or "the label" in a header line; a first row holding one of the label names is
# taken for a header (unless --header/--no-header says otherwise), and without --text-col/--label-col these pick
# the columns, in this order of preference.
TEXT_NAMES = ("text", "sentence", "review", "document", "content", "body", "comment", "tweet", "utterance",
              "message", "query", "question", "title")
LABEL_NAMES = ("label", "labels", "class", "category", "sentiment", "target", "polarity", "intent", "tag", "y",
               "rating", "stars")


@dataclass
class LabelledCorpus:
    """Texts with one string label each, as a classifier trains on them."""

    texts: list[str]
    labels: list[str]
    stats: CorpusStats

    def counts(self) -> dict[str, int]:
        """Examples per label, most frequent first (ties by label)."""
        c = collections.Counter(self.labels)
        return dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))


def _column(value: int | str | None) -> int | str | None:
    """A --text-col/--label-col value: a 0-based index ("2") or a header name ("review")."""
    if value is None or isinstance(value, int):
        return value
    text = str(value).strip()
    return int(text) if text.isdigit() else text


def _label_text(value, where, what: str, n: int) -> str:
    """A label as a string: strings as they are, whole numbers and booleans as JSON writes them."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return str(int(value))
    if isinstance(value, float):
        return repr(value)
    raise CorpusError(where, f"{what} has a label that is not a string or number ({type(value).__name__})", n)


class LabelledStream:
    """(text, label) examples read one at a time, blank ones dropped and counted in `stats`, from exactly one of:

        a TSV/CSV file    text and label columns by 0-based index or header name; the header line is detected
        a JSONL file      one object per line, `text_field` and `label_field`
        a directory       one subfolder per class holding .txt files, one example per file (the IMDB layout)
        a dataset         `datasets` rows (hub name or a local builder), `text_field` and `label_field`; class
                          ids of a ClassLabel feature become their names
    """

    def __init__(self, path: str | Path | None = None, dataset: str | None = None, dataset_config: str | None = None,
                 split: str = "train", data_files: list[str] | None = None, text_col: int | str | None = None,
                 label_col: int | str | None = None, header: bool | None = None, text_field: str = "text",
                 label_field: str = "label", encoding_errors: str = "strict"):
        if (path is None) == (dataset is None):
            raise UsageError("give the labelled data as a FILE or folder, or --dataset NAME (exactly one)")
        check_encoding_errors(encoding_errors)
        self.text_col, self.label_col, self.header = _column(text_col), _column(label_col), header
        self.text_field, self.label_field, self.encoding_errors = text_field, label_field, encoding_errors
        if dataset is not None:
            self.kind, self.rows, self.where = "dataset", load_dataset_rows(dataset, dataset_config, split,
                                                                             data_files or None), f"dataset {dataset}"
        else:
            self.path = Path(path)
            if self.path.is_dir():
                self.kind = "folder"
            else:
                check_input_file(self.path, encoding_errors)
                self.kind = "jsonl" if _is_jsonl(self.path) else "table"
            self.where = str(self.path)
        self.stats = CorpusStats(files=[self.where])
        self.at: tuple[str | Path, int | None] = (self.where, None)  # (file, line) of the example last read

    def __iter__(self) -> Iterator[tuple[str, str]]:
        rows = {"table": self._table, "jsonl": self._jsonl, "folder": self._folder, "dataset": self._dataset}
        for text, label in rows[self.kind]():
            self.stats.read += 1
            text, label = normalize(text.strip()), normalize(label.strip())
            if not text:
                self.stats.drop("blank_text")
            elif not label:
                self.stats.drop("blank_label")
            else:
                self.stats.kept += 1
                yield text, label

    def collect(self) -> LabelledCorpus:
        texts, labels = [], []
        for text, label in self:
            texts.append(text)
            labels.append(label)
        if not texts:
            why = ", ".join(f"{n} {r}" for r, n in self.stats.dropped.items()) or "no rows"
            raise CorpusError(self.where, f"no usable examples ({why} dropped)")
        return LabelledCorpus(texts, labels, self.stats)

    # ------------------------------------------------------------------ layouts
    def _table(self) -> Iterator[tuple[str, str]]:
        path = self.path
        csv_file = path.suffix == ".csv"
        sep = "comma" if csv_file else "tab"
        rows = _csv_rows(path, self.encoding_errors) if csv_file else (
            (n, _tsv_fields(line, path, n)) for n, line in iter_lines(path, self.encoding_errors))
        cols = None
        for n, row in rows:
            if not row or (len(row) == 1 and not row[0].strip()):
                if cols is not None:
                    self.stats.read += 1
                    self.stats.drop("blank")
                continue
            if cols is None:
                cols, is_header = self._resolve_columns(row, n)
                if is_header:
                    continue
            need = max(cols) + 1
            self.at = (path, n)
            if len(row) < need:
                raise CorpusError(path, f"expected at least {need} {sep}-separated columns (text in column "
                                        f"{cols[0]}, label in column {cols[1]}), found {len(row)}", n)
            yield row[cols[0]], row[cols[1]]

    def _resolve_columns(self, first: list[str], n: int) -> tuple[tuple[int, int], bool]:
        """(text column, label column) and whether `first`, the first non-blank row, is a header line."""
        names = [c.strip().lower() for c in first]
        by_name = [c for c in (self.text_col, self.label_col) if isinstance(c, str)]
        is_header = self.header if self.header is not None else bool(by_name) or any(c in LABEL_NAMES for c in names)
        if by_name and not is_header:
            raise UsageError(f"--text-col/--label-col {by_name[0]!r} names a column, but --no-header says {self.path} "
                             f"has no header line; give a 0-based column number")
        if not is_header:  # by default the text comes first and the label second, unless one of them is placed
            label = self.label_col if self.label_col is not None else 0 if self.text_col not in (None, 0) else 1
            text = self.text_col if self.text_col is not None else 1 if label == 0 else 0
            return (text, label), False
        shown = shorten(", ".join(c.strip() for c in first), 200)

        def find(col, known: tuple[str, ...], what: str, taken: int | None = None) -> int:
            flag = f"--{what}-col"
            if isinstance(col, int):
                return col
            if col is not None:
                if col.lower() not in names:
                    raise CorpusError(self.path, f"no column named {col!r} in the header line (columns: {shown}); "
                                                 f"use {flag} with a column name or 0-based number", n)
                return names.index(col.lower())
            hit = next((names.index(k) for k in known if k in names and names.index(k) != taken), None)
            if hit is None and len(names) == 2 and taken is not None:
                hit = 1 - taken  # two columns: the text is the one that is not the label
            if hit is None:
                raise CorpusError(self.path, f"cannot tell which column holds the {what} from the header line "
                                             f"(columns: {shown}); use {flag}", n)
            return hit

        label = find(self.label_col, LABEL_NAMES, "label")
        return (find(self.text_col, TEXT_NAMES, "text", taken=label), label), True

    def _jsonl(self) -> Iterator[tuple[str, str]]:
        for n, rec in _json_records(self.path, self.encoding_errors):
            self.at = (self.path, n)
            yield self._record(rec, self.path, "record", n)

    def _dataset(self) -> Iterator[tuple[str, str]]:
        feature = getattr(self.rows, "features", {}) or {}
        names = getattr(feature.get(self.label_field), "names", None)  # a ClassLabel: ids → names
        for n, row in enumerate(self.rows, 1):
            self.at = (f"{self.where}, row {n}", None)
            text, label = self._record(row, self.where, "row", n, raw=names is not None)
            yield text, (names[label] if names is not None and isinstance(label, int) and 0 <= label < len(names)
                         else _label_text(label, self.where, "row", n))

    def _record(self, rec: dict, where, what: str, n: int, raw: bool = False):
        for field_, flag in ((self.text_field, "--text-field"), (self.label_field, "--label-field")):
            if field_ not in rec:
                raise CorpusError(where, f"{what} has no field {field_!r} (fields: {shorten(', '.join(rec), 200)}; "
                                         f"use {flag})", n)
        text = rec[self.text_field]
        if not isinstance(text, str):
            raise CorpusError(where, f"{what}'s field {self.text_field!r} must be a string", n)
        label = rec[self.label_field]
        return text, label if raw else _label_text(label, where, what, n)

    def _folder(self) -> Iterator[tuple[str, str]]:
        classes = sorted(d for d in self.path.iterdir() if d.is_dir() and not d.name.startswith("."))
        found = False
        for d in classes:
            for f in sorted(p for p in d.rglob("*.txt") if p.is_file()):
                found = True
                self.at = (f, None)
                yield _document(f, self.encoding_errors), d.name
        if not found:
            raise CorpusError(self.path, "folder holds no class subfolders with .txt files (expected one "
                                         "subfolder per class, e.g. pos/ and neg/, each with one .txt file per example)")


def _document(path: Path, encoding_errors: str) -> str:
    """A whole file as one example: its lines joined by spaces, at most MAX_LINE_BYTES."""
    parts, size = [], 0
    for chunk in iter_text_chunks(path, encoding_errors):
        size += len(chunk)
        if size > MAX_LINE_BYTES:
            raise CorpusError(path, f"longer than {MAX_LINE_BYTES >> 20} MiB, the limit for one example")
        parts.append(chunk)
    return " ".join("".join(parts).split("\n"))


def open_labelled(path: str | Path | None = None, dataset: str | None = None, dataset_config: str | None = None,
                  split: str = "train", data_files: list[str] | None = None, text_col: int | str | None = None,
                  label_col: int | str | None = None, header: bool | None = None, text_field: str = "text",
                  label_field: str = "label", encoding_errors: str = "strict") -> LabelledCorpus:
    """Labelled examples from a file, a folder per class or `--dataset`, in memory (see `LabelledStream`)."""
    return LabelledStream(path, dataset, dataset_config, split, data_files, text_col, label_col, header, text_field,
                          label_field, encoding_errors).collect()


def split_labelled(corpus: LabelledCorpus, fraction: float, seed: int) -> tuple[LabelledCorpus, LabelledCorpus]:
    """A seeded split stratified by label: each label with at least two examples gives `fraction` of them (at
    least one) to validation, so a rare class is held out too, and the same seed holds out the same examples."""
    if not 0 < fraction < 1:
        raise UsageError(f"--val-fraction must be between 0 and 1, not {fraction}")
    rng = random.Random(seed)
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(corpus.labels):
        by_label.setdefault(label, []).append(i)
    held: set[int] = set()
    for label in sorted(by_label):
        index = by_label[label]
        rng.shuffle(index)
        if len(index) >= 2:
            held.update(index[:min(len(index) - 1, max(1, round(len(index) * fraction)))])
    if not held:
        raise CorpusError(corpus.stats.files[0] if corpus.stats.files else None,
                          f"only {len(corpus.texts)} examples: too few to hold out a validation set; give --val FILE")

    def part(keep) -> LabelledCorpus:
        index = [i for i in range(len(corpus.texts)) if keep(i)]
        return LabelledCorpus([corpus.texts[i] for i in index], [corpus.labels[i] for i in index], corpus.stats)
    return part(lambda i: i not in held), part(lambda i: i in held)


def summarize_labelled(path: str | Path | None = None, dataset: str | None = None, dataset_config: str | None = None,
                       split: str = "train", data_files: list[str] | None = None, text_col: int | str | None = None,
                       label_col: int | str | None = None, header: bool | None = None, text_field: str = "text",
                       label_field: str = "label", encoding_errors: str = "strict", samples: int = 3,
                       seed: int = 0) -> dict:
    """What `train clf` would see, in one streaming pass: examples kept and dropped, examples per label, how
    imbalanced the labels are (largest class / smallest), text lengths, and `samples` (text, label) drawn
    uniformly. Memory holds the label counts, a length histogram and the samples, never the corpus."""
    stream = LabelledStream(path, dataset, dataset_config, split, data_files, text_col, label_col, header,
                            text_field, label_field, encoding_errors)
    counts: collections.Counter[str] = collections.Counter()
    lengths = LengthHistogram()
    reservoir = Reservoir(samples, seed)
    for text, label in stream:
        counts[label] += 1
        lengths.add(len(text))
        if reservoir.wants():
            reservoir.put([shorten(text), shorten(label, 60)])
        else:
            reservoir.skip()
    if not counts:
        why = ", ".join(f"{n} {r}" for r, n in stream.stats.dropped.items()) or "no rows"
        raise CorpusError(stream.where, f"no usable examples ({why} dropped)")
    ordered = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    largest, smallest = max(counts.values()), min(counts.values())
    report = {"kind": "labelled", **_stats_dict(stream.stats), "examples": sum(counts.values()),
              "classes": len(counts), "class_counts": ordered, "imbalance": round(largest / smallest, 2),
              "majority_share": round(largest / sum(counts.values()), 4),
              "text_length_chars": lengths.percentiles(), "samples": reservoir.sample()}
    if len(counts) < 2:
        report["problem"] = "only one label: a classifier needs at least two"
    elif largest / smallest >= IMBALANCED:
        report["hint"] = ("the classes are imbalanced: train with --class-weights auto, and judge by macro-F1 "
                          "(a model that always answers the largest class scores the majority share in accuracy)")
    return report


IMBALANCED = 1.5  # largest class / smallest from which `corpus check` suggests --class-weights auto
