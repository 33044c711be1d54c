"""Text to tensors: windows of a token stream for the language model, length-bucketed batches for the translator.

Language model (truncated BPTT). The token stream is cut into B parallel rows so that consecutive windows
continue each row, and the hidden state of row b at the end of window i is the right start for window i+1:

    stream:  t0 t1 t2 ... t(N-1)            rows (B=3):  [ a0 a1 a2 a3 | a4 a5 a6 a7 | ... ]
                                                         [ b0 b1 b2 b3 | b4 b5 b6 b7 | ... ]
                                                         [ c0 c1 c2 c3 | c4 c5 c6 c7 | ... ]
                                                           window 0      window 1      (bptt=4)
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch

from .batch import LMBatch, MTBatch
from .tokenizers import BOS, EOS, PAD, Tokenizer


# ---------------------------------------------------------------------------------------------- language model

def encode_text(text: str, tokenizer: Tokenizer) -> torch.Tensor:
    """The whole text as one int64 stream of token ids."""
    return torch.tensor(tokenizer.encode(text), dtype=torch.long)


def write_ids(chunks: Iterable[str], tokenizer: Tokenizer, path: str | Path) -> np.ndarray:
    """Encode text chunk by chunk into a file of uint16 (or uint32) ids and return it memory-mapped, so a
    corpus of any size trains in bounded memory: the OS pages in only the windows being read."""
    dtype = np.uint16 if tokenizer.vocab_size <= np.iinfo(np.uint16).max else np.uint32
    path = Path(path)
    n = 0
    with open(path, "wb") as f:
        for chunk in chunks:
            for start in range(0, len(chunk), 1 << 20):
                ids = np.asarray(tokenizer.encode(chunk[start:start + (1 << 20)]), dtype=dtype)
                ids.tofile(f)
                n += ids.size
    if n == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r")


def spread_holdout(n: int, fraction: float = 0.05, blocks: int = 10, min_block: int = 2_000) -> list[tuple[int, int]]:
    """Validation spans for a text of n characters: `fraction` of it in up to `blocks` equal blocks, one in the
    middle of each of `blocks` equal stretches, so validation samples the whole corpus rather than its end (a
    default chosen on one slice of text can lose on the rest). Small corpora get fewer, longer blocks."""
    total = max(2, int(n * fraction))
    count = max(1, min(blocks, total // min_block))
    size, stretch = total // count, n // count
    return [(i * stretch + (stretch - size) // 2, i * stretch + (stretch - size) // 2 + size) for i in range(count)]


def complement(n: int, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of range(n) outside `spans`, in order."""
    out, pos = [], 0
    for a, b in sorted(spans):
        if a > pos:
            out.append((pos, a))
        pos = max(pos, b)
    if pos < n:
        out.append((pos, n))
    return out


def split_ids(ids: np.ndarray, held: list[tuple[int, int]], path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(the ids outside the held-out spans, streamed to `path` and memory-mapped; the held-out ids, in memory):
    a corpus of any size is split in bounded memory."""
    val = np.concatenate([np.asarray(ids[a:b]) for a, b in held])
    with open(path, "wb") as f:
        for a, b in complement(len(ids), held):
            for s in range(a, b, 1 << 22):
                np.asarray(ids[s:min(b, s + (1 << 22))]).tofile(f)
    return np.memmap(path, dtype=ids.dtype, mode="r"), val


def as_long(ids) -> torch.Tensor:
    """int64 tensor of token ids from a tensor, list or (memory-mapped) numpy array."""
    if torch.is_tensor(ids):
        return ids.long()
    return torch.from_numpy(np.asarray(ids, dtype=np.int64))


class LMStream:
    """A token stream laid out as (B, L) rows, served as (x, y) windows of `bptt` tokens."""

    def __init__(self, ids: torch.Tensor, batch_size: int, bptt: int):
        n = len(ids)
        rows = n // batch_size
        if rows < 2:
            raise ValueError(f"{n} tokens cannot fill a batch of {batch_size} rows")
        self.rows = ids[: rows * batch_size].reshape(batch_size, rows)  # a view, also of a memory-mapped array
        self.bptt = bptt

    def __len__(self) -> int:
        return max(1, (self.rows.shape[1] - 1 + self.bptt - 1) // self.bptt)

    def window(self, i: int) -> LMBatch:
        start = i * self.bptt
        end = min(start + self.bptt, self.rows.shape[1] - 1)
        xy = as_long(self.rows[:, start:end + 1])
        return LMBatch(xy[:, :-1], xy[:, 1:])

    def __iter__(self) -> Iterator[LMBatch]:
        return (self.window(i) for i in range(len(self)))


# ---------------------------------------------------------------------------------------------- translator

def encode_pairs(pairs: Sequence[tuple[str, str]], src_tok: Tokenizer, tgt_tok: Tokenizer,
                 max_tokens: int = 256) -> tuple[list[list[int]], list[list[int]]]:
    """Token ids for each side, cut to `max_tokens` (EOS is added later, by `collate`)."""
    src = [src_tok.encode(s)[:max_tokens] for s, _ in pairs]
    tgt = [tgt_tok.encode(t)[:max_tokens] for _, t in pairs]
    return src, tgt


def bucket_batches(src_lens: Sequence[int], tgt_lens: Sequence[int], max_tokens: int, seed: int | None,
                   max_sentences: int = 1024) -> list[list[int]]:
    """Batches of pair indices holding about `max_tokens` padded target tokens each, with similar lengths.

    Pairs are shuffled, cut into pools of ~50 batches, sorted by length inside each pool (so batches need
    little padding) and cut into batches; the batch order is shuffled again. `seed=None` keeps corpus order
    sorted by length (for translation, where the order is restored afterwards).
    """
    n = len(src_lens)
    order = list(range(n))
    key = lambda i: (src_lens[i], tgt_lens[i])  # noqa: E731
    if seed is None:
        order.sort(key=key)
        pools = [order]
    else:
        rng = random.Random(seed)
        rng.shuffle(order)
        avg = max(1, sum(max(s, t) + 1 for s, t in zip(src_lens, tgt_lens)) // max(1, n))
        pool = max(1, 50 * max_tokens // avg)
        pools = [sorted(order[i:i + pool], key=key) for i in range(0, n, pool)]
    batches: list[list[int]] = []
    for pool_ in pools:
        cur: list[int] = []
        longest = 0
        for i in pool_:
            size = max(src_lens[i], tgt_lens[i]) + 1
            if cur and (max(longest, size) * (len(cur) + 1) > max_tokens or len(cur) >= max_sentences):
                batches.append(cur)
                cur, longest = [], 0
            cur.append(i)
            longest = max(longest, size)
        if cur:
            batches.append(cur)
    if seed is not None:
        random.Random(seed + 1).shuffle(batches)
    return batches


def pad(seqs: Sequence[Sequence[int]], value: int = PAD) -> torch.Tensor:
    width = max(1, max(len(s) for s in seqs))
    out = torch.full((len(seqs), width), value, dtype=torch.long)
    for row, s in enumerate(seqs):
        out[row, : len(s)] = torch.as_tensor(s, dtype=torch.long)
    return out


def collate(src: Sequence[list[int]], tgt: Sequence[list[int]] | None, index: Sequence[int]) -> MTBatch:
    """Pairs at `index` → padded batch; the source gets EOS so that an empty sentence still has one token."""
    s = [src[i] + [EOS] for i in index]
    if tgt is not None:
        tin = pad([[BOS] + tgt[i] for i in index])
        tout = pad([tgt[i] + [EOS] for i in index])
    else:
        tin = tout = torch.zeros(len(index), 1, dtype=torch.long)
    return MTBatch(pad(s), torch.tensor([len(x) for x in s]), tin, tout, torch.tensor(list(index)))
