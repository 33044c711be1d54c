"""Tokenizers: one interface for characters and sentencepiece subwords.

Every tokenizer reserves the same special ids, so models and search never ask which kind they have:

    pad = 0   unk = 1   bos = 2   eos = 3
"""
from __future__ import annotations

import collections
import heapq
import io
import json
import os
import random
import unicodedata
from pathlib import Path
from typing import Iterable, Protocol

from .errors import TokenizerError

PAD, UNK, BOS, EOS = 0, 1, 2, 3
SPECIALS = ["<pad>", "<unk>", "<s>", "</s>"]
TOKENIZER_FILE = "tokenizer.json"
SPM_FILE = "spm.model"

# What sentencepiece is given at most: it would sample input_sentence_size = 2M sentences anyway, and 100M
# characters is far more than a vocabulary needs; together they bound the memory a corpus of any size takes.
SAMPLE_LINES = 2_000_000
SAMPLE_CHARS = 100_000_000


def normalize(text: str) -> str:
    """NFC, so that 'é' typed as one code point or as e + combining accent is the same character."""
    return unicodedata.normalize("NFC", text)


def sample_lines(texts: Iterable[str], max_lines: int | None = None, max_chars: int | None = None,
                 seed: int = 0) -> list[str]:
    """The non-blank lines of `texts` (NFC) in their order: all of them when they fit in `max_lines` and
    `max_chars`, else a uniform random sample that fits. Each line draws a random key and the lines with the
    smallest keys are kept (bottom-k sampling), so memory stays bounded however long the stream (defaults:
    SAMPLE_LINES, SAMPLE_CHARS)."""
    max_lines = SAMPLE_LINES if max_lines is None else max_lines
    max_chars = SAMPLE_CHARS if max_chars is None else max_chars
    rng = random.Random(seed)
    kept: list[tuple[float, int, str]] = []  # a max-heap on the key: (-key, index, line)
    chars = 0
    for i, text in enumerate(texts):
        if not text.strip():
            continue
        key = rng.random()
        full = len(kept) >= max_lines or chars + len(text) > max_chars
        if full and kept and key > -kept[0][0]:
            continue  # it would be the first to go
        line = normalize(text)
        heapq.heappush(kept, (-key, i, line))
        chars += len(line)
        while len(kept) > max_lines or chars > max_chars:
            chars -= len(heapq.heappop(kept)[2])
    return [line for _, _, line in sorted(kept, key=lambda k: k[1])]


class Tokenizer(Protocol):
    kind: str
    pad: int
    unk: int
    bos: int
    eos: int

    @property
    def vocab_size(self) -> int: ...
    def encode(self, text: str) -> list[int]: ...
    def decode(self, ids: Iterable[int]) -> str: ...
    def save(self, directory: str | Path) -> None: ...


class CharTokenizer:
    """Characters as tokens, built from a corpus; rare or unseen characters map to `unk`."""

    kind = "char"
    pad, unk, bos, eos = PAD, UNK, BOS, EOS

    def __init__(self, chars: Iterable[str]):
        self.chars = list(chars)
        self.index = {c: i + len(SPECIALS) for i, c in enumerate(self.chars)}
        if len(self.index) != len(self.chars) or any(len(c) != 1 for c in self.chars):
            raise TokenizerError("a character vocabulary must list distinct single characters")

    @classmethod
    def build(cls, texts: Iterable[str], min_freq: int = 1) -> "CharTokenizer":
        counts: collections.Counter[str] = collections.Counter()
        for t in texts:
            counts.update(normalize(t))
        chars = sorted(c for c, n in counts.items() if n >= min_freq)
        if not chars:
            raise TokenizerError("no character occurs often enough to build a vocabulary")
        return cls(chars)

    @property
    def vocab_size(self) -> int:
        return len(SPECIALS) + len(self.chars)

    def encode(self, text: str) -> list[int]:
        get = self.index.get
        return [get(c, UNK) for c in normalize(text)]

    def decode(self, ids: Iterable[int]) -> str:
        n = len(SPECIALS)
        return "".join(self.chars[i - n] if i >= n else ("\ufffd" if i == UNK else "") for i in map(int, ids)
                       if i < self.vocab_size)

    def id_to_piece(self, i: int) -> str:
        return self.chars[i - len(SPECIALS)] if i >= len(SPECIALS) else SPECIALS[i]

    def save(self, directory: str | Path) -> None:
        _write_json(Path(directory) / TOKENIZER_FILE, {"kind": "char", "chars": "".join(self.chars)})


class SentencePieceTokenizer:
    """Subwords (unigram or BPE) from the sentencepiece library; the model is kept as bytes."""

    kind = "sentencepiece"
    pad, unk, bos, eos = PAD, UNK, BOS, EOS

    def __init__(self, model_proto: bytes):
        import sentencepiece as spm

        self.model_proto = model_proto
        try:
            self.sp = spm.SentencePieceProcessor(model_proto=model_proto)
        except Exception as e:  # sentencepiece raises RuntimeError/OSError with C++ text
            raise TokenizerError(f"not a valid sentencepiece model ({e})") from None
        if (self.sp.pad_id(), self.sp.unk_id(), self.sp.bos_id(), self.sp.eos_id()) != (PAD, UNK, BOS, EOS):
            raise TokenizerError("sentencepiece model was not trained with nlp-rnn's special ids (pad=0 unk=1 bos=2 eos=3)")

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 8000, model_type: str = "unigram",
              character_coverage: float = 1.0, byte_fallback: bool = False,
              symbols: Iterable[str] = ()) -> "SentencePieceTokenizer":
        """Train on an iterable of lines (streamed: at most `sample_lines` of them are held). Identity
        normalization keeps detokenization exact; `hard_vocab_limit=False` lets a small corpus yield fewer
        pieces than asked instead of failing. With `byte_fallback`, a character outside the vocabulary becomes
        its UTF-8 bytes (256 pieces) instead of <unk>, so any name can pass through a translator; `symbols` are
        kept whole as pieces of their own (a translator's placeholders)."""
        import sentencepiece as spm

        if model_type not in ("unigram", "bpe"):
            raise TokenizerError(f"sentencepiece type must be unigram or bpe, not {model_type!r}")
        if vocab_size < len(SPECIALS) + 2:
            raise TokenizerError(f"vocabulary size {vocab_size} is too small: sentencepiece needs at least {len(SPECIALS) + 2}")
        lines = sample_lines(texts)
        if not lines:
            raise TokenizerError("cannot train a tokenizer on an empty corpus")
        charset: set[str] = set()
        for line in lines:
            charset.update(line)
        symbols = list(symbols)
        n_chars = len(charset) if not byte_fallback else 0  # bytes stand in for the rare characters
        needed = n_chars + len(SPECIALS) + len(symbols) + (256 + 64 if byte_fallback else 0)
        if vocab_size < needed:  # both algorithms keep every character as a piece
            what = "256 byte pieces, room for characters" if byte_fallback else f"the corpus's {n_chars} characters"
            raise TokenizerError(f"vocabulary size {vocab_size} is too small for {what} and {len(SPECIALS)} special "
                                 f"tokens{f' and {len(symbols)} placeholders' if symbols else ''}; use --vocab-size "
                                 f"{needed} or more")
        buf = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(lines), model_writer=buf, vocab_size=vocab_size, model_type=model_type,
                character_coverage=min(character_coverage, 0.9999) if byte_fallback else character_coverage,
                byte_fallback=byte_fallback, **({"user_defined_symbols": symbols} if symbols else {}),
                pad_id=PAD, unk_id=UNK, bos_id=BOS, eos_id=EOS,
                normalization_rule_name="identity", remove_extra_whitespaces=False, hard_vocab_limit=False,
                input_sentence_size=2_000_000, shuffle_input_sentence=True, max_sentence_length=1 << 16,
                minloglevel=2, num_threads=max(1, min(4, os.cpu_count() or 1)))
        except RuntimeError as e:
            msg = str(e).strip().splitlines()[-1] if str(e).strip() else "unknown error"
            raise TokenizerError(f"sentencepiece could not train a vocabulary of {vocab_size}: {msg}") from None
        return cls(buf.getvalue())

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def extended(self, symbols: Iterable[str] = (), byte_fallback: bool = False) -> "SentencePieceTokenizer":
        """This vocabulary with `symbols` (whole pieces of their own) and, with `byte_fallback`, the 256 byte
        pieces added at the end: every existing id keeps its meaning and ordinary text its segmentation, so a
        model trained on it can grow its embeddings by the new rows and go on training (`train mt --init-from`)."""
        have = {self.sp.id_to_piece(i) for i in range(self.vocab_size)}
        new = [(p, _USER_DEFINED) for p in symbols if p not in have]
        if byte_fallback and "<0x00>" not in have:
            new += [(f"<0x{b:02X}>", _BYTE) for b in range(256)]
        if not new:
            return self
        proto = self.model_proto + b"".join(_field(1, _field(1, p.encode()) + b"\x15\x00\x00\x00\x00" +
                                                        _varint_field(3, kind)) for p, kind in new)
        if byte_fallback:
            proto += _field(2, _varint_field(35, 1))  # trainer_spec.byte_fallback = true (a message merges)
        return SentencePieceTokenizer(proto)

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(normalize(text))

    def decode(self, ids: Iterable[int]) -> str:
        n = self.vocab_size
        return self.sp.decode([i for i in map(int, ids) if 0 <= i < n and i not in (PAD, BOS, EOS)])

    def id_to_piece(self, i: int) -> str:
        return self.sp.id_to_piece(int(i))

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        (directory / SPM_FILE).write_bytes(self.model_proto)
        _write_json(directory / TOKENIZER_FILE, {"kind": "sentencepiece", "model": SPM_FILE})


# Protocol-buffer wire format, enough to append pieces to a sentencepiece ModelProto (repeated field 1:
# SentencePiece{1: piece, 2: score, 3: type}) without a protobuf dependency
_USER_DEFINED, _BYTE = 4, 6


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint_field(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def train_tokenizer(texts: Iterable[str], kind: str, vocab_size: int = 8000, min_freq: int = 1,
                    character_coverage: float = 1.0, byte_fallback: bool = False,
                    symbols: Iterable[str] = ()) -> Tokenizer:
    """`kind` is char, unigram or bpe (`byte_fallback` and `symbols`: sentencepiece only)."""
    if kind == "char":
        return CharTokenizer.build(texts, min_freq=min_freq)
    return SentencePieceTokenizer.train(texts, vocab_size=vocab_size, model_type=kind,
                                        character_coverage=character_coverage, byte_fallback=byte_fallback,
                                        symbols=symbols)


MAX_SPM_BYTES = 64 << 20


def load_tokenizer(directory: str | Path, root: str | Path | None = None) -> Tokenizer:
    """Load whatever tokenizer `save` wrote into `directory`, its files checked (size, schema, no link out of
    `root`, by default the directory itself)."""
    from .errors import CheckpointError
    from .schema import Choice, Fields, Str, read_json, regular_file

    directory = Path(directory)
    root = Path(root) if root is not None else directory
    path = directory / TOKENIZER_FILE
    if not path.is_file():
        raise TokenizerError(f"{path}: missing tokenizer file")
    schema = Fields({"kind": Choice("char", "sentencepiece")}, {"chars": Str(1_000_000), "model": Str(255)})
    try:
        meta = read_json(path, root, schema, "tokenizer file")
        name = meta.get("model", SPM_FILE)
        if meta["kind"] == "sentencepiece" and (Path(name).name != name or name in ("", ".", "..")):
            raise TokenizerError(f"{path}: model file {name!r} points outside {directory} (give a file name)")
        if meta["kind"] == "sentencepiece":
            model_path = regular_file(root, (directory / meta.get("model", SPM_FILE)).relative_to(root),
                                      "sentencepiece model")
    except CheckpointError as e:
        raise TokenizerError(str(e)) from None
    kind = meta["kind"]
    if kind == "char":
        if not isinstance(meta.get("chars"), str):
            raise TokenizerError(f"{path}: 'chars' must be a string")
        return CharTokenizer(meta["chars"])
    if kind == "sentencepiece":
        if model_path.stat().st_size > MAX_SPM_BYTES:
            raise TokenizerError(f"{model_path}: larger than {MAX_SPM_BYTES >> 20} MiB; not a sentencepiece model of ours")
        return SentencePieceTokenizer(model_path.read_bytes())
    raise TokenizerError(f"{path}: unknown tokenizer kind {kind!r}")


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
