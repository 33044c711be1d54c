"""Tensor-only batches shared by `data` (which builds them) and the models (which consume them)."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LMBatch:
    """One truncated-BPTT window: `y` is `x` shifted by one character.

        x: (B, T) token ids      y: (B, T) next-token ids
    """

    x: torch.Tensor
    y: torch.Tensor

    @property
    def n_tokens(self) -> int:
        return self.y.numel()

    def to(self, device) -> "LMBatch":
        return LMBatch(self.x.to(device, non_blocking=True), self.y.to(device, non_blocking=True))


@dataclass
class MTBatch:
    """Padded sentence pairs, sorted by source length (longest first) for packed sequences.

        src: (B, S)   src_len: (B,)   tgt_in: (B, T) = <s> y1 .. yn   tgt_out: (B, T) = y1 .. yn </s>
    """

    src: torch.Tensor
    src_len: torch.Tensor
    tgt_in: torch.Tensor
    tgt_out: torch.Tensor
    index: torch.Tensor  # positions of these pairs in the list they came from
    loss_tokens: float | None = None  # divide the summed loss by this (default: this batch's tokens)

    @property
    def n_tokens(self) -> int:
        return int((self.tgt_out != 0).sum())

    def to(self, device) -> "MTBatch":
        return MTBatch(self.src.to(device), self.src_len, self.tgt_in.to(device), self.tgt_out.to(device), self.index,
                       self.loss_tokens)
