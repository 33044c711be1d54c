"""Character-level recurrent language model.

    ids (B, T) ─ Embedding ─► (B, T, E) ─ RNN/LSTM/GRU × layers ─► (B, T, H) ─ dropout ─ Linear ─► logits (B, T, V)
                                                   ▲       │
                                        state in ──┘       └─► state out (carried to the next window)

The model is stateless: recurrent state is passed in and returned, so training can carry it across truncated-BPTT
windows (Elman 1990; Williams & Peng 1990) and generation can advance it one character at a time.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .rnn import CELLS, make_rnn


@dataclass
class LMConfig:
    vocab_size: int
    cell: str = "lstm"
    embed: int = 64
    hidden: int = 512
    layers: int = 1
    dropout: float = 0.1
    tie_weights: bool = False  # Press & Wolf 2017; needs embed == hidden

    def validate(self) -> "LMConfig":
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, not {self.cell!r}")
        for name in ("vocab_size", "embed", "hidden", "layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive number, not {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), not {self.dropout}")
        if self.tie_weights and self.embed != self.hidden:
            raise ValueError(f"weight tying needs embed == hidden (got {self.embed} and {self.hidden})")
        return self

    def to_dict(self) -> dict:
        return asdict(self)


class CharLM(nn.Module):
    kind = "lm"

    def __init__(self, config: LMConfig):
        super().__init__()
        self.config = config.validate()
        c = config
        self.embedding = nn.Embedding(c.vocab_size, c.embed)
        self.rnn = make_rnn(c.cell, c.embed, c.hidden, c.layers, c.dropout)
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.hidden, c.vocab_size)
        if c.tie_weights:
            self.head.weight = self.embedding.weight
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.embedding.weight, std=0.1)
        for name, p in self.rnn.named_parameters():
            if "bias" in name:
                nn.init.zeros_(p)
                if self.config.cell == "lstm":  # forget-gate bias 1 (Jozefowicz et al. 2015): remember by default
                    h = self.config.hidden
                    with torch.no_grad():
                        p[h:2 * h].fill_(0.5)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor, state=None):
        """x: (B, T) → logits (B, T, V), state."""
        out, state = self.rnn(self.embedding(x), state)
        return self.head(self.drop(out)), state

    def loss(self, batch, state=None):
        """Mean cross-entropy in nats per token over the window, and the state to carry on."""
        logits, state = self(batch.x, state)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), batch.y.reshape(-1))
        return loss, state

    @torch.no_grad()
    def step(self, token: torch.Tensor, state=None):
        """One character for each sequence of the batch: token (B,) → log-probabilities (B, V), state."""
        out, state = self.rnn(self.embedding(token[:, None]), state)
        return torch.log_softmax(self.head(out[:, 0]).float(), dim=-1), state
