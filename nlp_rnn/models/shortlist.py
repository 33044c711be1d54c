"""A lexical shortlist: the target words a batch of source sentences is likely to need (as Marian decodes on CPUs).

Search spends most of a step on the output layer and the softmax over the whole target vocabulary. A sentence
needs a few hundred of those words: the ones its source words co-occur with in the training pairs, and the
frequent ones. The shortlist stores, per source id, the `per_source` target ids with the highest Dice
co-occurrence 2·c(s, t) / (c(s) + c(t)) over training pairs, and the `frequent` most frequent target ids; a batch
gets the union over its source words (`for_batch`), and search scores only those rows of the output layer.
Log-probabilities are then normalised over the shortlist, not the vocabulary: an approximation, checked by BLEU.

Stored as two int32 tensors, `candidates` (src_vocab, per_source), padded with -1, and `frequent` (n,).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch


@dataclass
class Shortlist:
    candidates: torch.Tensor  # (src_vocab, per_source) int32 target ids, -1 where a source id has fewer
    frequent: torch.Tensor    # (n,) int32 target ids always included (specials among them)

    @classmethod
    def build(cls, src_ids: Sequence[Sequence[int]], tgt_ids: Sequence[Sequence[int]], src_vocab: int,
              tgt_vocab: int, per_source: int = 64, frequent: int = 256, always: Sequence[int] = (1, 2, 3)):
        """From token-id pairs (no specials needed: `always` adds UNK, BOS, EOS)."""
        keys, c_src, c_tgt = [], torch.zeros(src_vocab, dtype=torch.long), torch.zeros(tgt_vocab, dtype=torch.long)
        for s, t in zip(src_ids, tgt_ids):
            s = torch.tensor(sorted(set(s)), dtype=torch.long)
            t = torch.tensor(sorted(set(t)), dtype=torch.long)
            if len(s) == 0 or len(t) == 0:
                continue
            c_src[s] += 1
            c_tgt[t] += 1
            keys.append((s[:, None] * tgt_vocab + t[None]).flatten())
        pairs, counts = torch.unique(torch.cat(keys) if keys else torch.zeros(0, dtype=torch.long), return_counts=True)
        s, t = pairs // tgt_vocab, pairs % tgt_vocab
        dice = 2 * counts.double() / (c_src[s] + c_tgt[t]).double()
        # per source id, its targets by falling Dice: sort by (s, -dice) and take each group's first per_source
        order = torch.argsort(dice, descending=True, stable=True)
        order = order[torch.argsort(s[order], stable=True)]
        s, t = s[order], t[order]
        rank = torch.arange(len(s)) - torch.searchsorted(s, s, right=False)
        keep = rank < per_source
        candidates = torch.full((src_vocab, per_source), -1, dtype=torch.int32)
        candidates[s[keep], rank[keep]] = t[keep].int()
        top = torch.argsort(c_tgt, descending=True, stable=True)[:frequent]
        frequent_ids = torch.unique(torch.cat([top, torch.tensor(list(always), dtype=torch.long)])).int()
        return cls(candidates, frequent_ids)

    def for_batch(self, src: torch.Tensor) -> torch.Tensor:
        """src (B, S) ids → the sorted target ids (V',) long that search may produce for this batch."""
        ids = torch.unique(src.cpu()).long()
        ids = ids[ids < self.candidates.size(0)]
        words = self.candidates[ids].flatten()
        return torch.unique(torch.cat([words[words >= 0], self.frequent])).long().to(src.device)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"candidates": self.candidates, "frequent": self.frequent}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> "Shortlist":
        return cls(tensors["candidates"].int(), tensors["frequent"].int())
