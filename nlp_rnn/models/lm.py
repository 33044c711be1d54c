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

from .rnn import CELLS, make_rnn, quantize_int8


@dataclass
class LMConfig:
    vocab_size: int
    cell: str = "gru"
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
        """N(0, 1) embeddings and torch's default uniform ±1/sqrt(H) recurrent weights and biases. Measured at 2×512
        on tiny-shakespeare (BENCHMARKS.md): embeddings at std 0.1 with zeroed biases (forget gate 1) reached
        2.24 nats/char after 150 steps where this reaches 1.78 — small inputs starve the gates for hundreds of steps."""
        # tied weights are also the output layer, whose logits would be far too large at std 1
        std = self.config.embed ** -0.5 if self.config.tie_weights else 1.0
        nn.init.normal_(self.embedding.weight, std=std)

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

    def stepper(self) -> "Stepper":
        """A fast inference step over a snapshot of the current weights (see `Stepper`)."""
        return getattr(self, "_int8_stepper", None) or Stepper(self)

    def quantized(self) -> "CharLM":
        """An int8 copy for CPU inference: dynamic quantization of the recurrent and linear layers (weights int8,
        activations quantized on the fly; a tanh `rnn` layer has no int8 kernel and stays fp32)."""
        q = quantize_int8(self, {nn.LSTM, nn.GRU, nn.Linear})
        q._int8_stepper = Stepper(self, int8=True)  # the quantized copy has no float weights left to snapshot
        return q


INT8_MIN_WEIGHTS = 1 << 18  # batch 1 (benchmarks int8-matvec): 512×1536 int8 32 µs vs fp32 57; 512×69 19 vs 5


class Stepper:
    """`CharLM.step` as a few plain matrix products, for generation and autocomplete at batch 1.

    One step at batch 1 is dominated by fixed costs, so this precomputes what it can: the first layer's input
    projection for every character (a V × gates·H table, so embedding + input matmul become one row lookup),
    transposed weights, and merged biases. The state layout is nn.RNNBase's, so it mixes freely with `forward`.
    Weights are snapshotted: make a new stepper after training further.
    """

    def __init__(self, model: CharLM, int8: bool = False):
        c, rnn = model.config, model.rnn
        self.cell, self.layers, self.hidden = c.cell, c.layers, c.hidden
        w = lambda name: getattr(rnn, name).detach()  # noqa: E731
        with torch.no_grad():
            # GRU keeps the hidden bias apart: its candidate gate scales (W_hn·h + b_hn) by the reset gate
            merge = self.cell != "gru"
            self.table = model.embedding.weight.detach() @ w("weight_ih_l0").T + w("bias_ih_l0")
            if merge:
                self.table = self.table + w("bias_hh_l0")
            self.w_ih = [None] + [w(f"weight_ih_l{i}").T.contiguous() for i in range(1, c.layers)]
            self.b_ih = [None] + [w(f"bias_ih_l{i}") + (w(f"bias_hh_l{i}") if merge else 0) for i in range(1, c.layers)]
            self.w_hh = [w(f"weight_hh_l{i}").T.contiguous() for i in range(c.layers)]
            self.b_hh = [w(f"bias_hh_l{i}") for i in range(c.layers)]
            if self.cell == "lstm":  # torch's gate order i, f, g, o → i, f, o, g: one sigmoid over three gates
                H = c.hidden
                order = torch.cat([torch.arange(0, 2 * H), torch.arange(3 * H, 4 * H), torch.arange(2 * H, 3 * H)])
                self.table = self.table[:, order]
                self.w_ih = [None] + [m[:, order].contiguous() for m in self.w_ih[1:]]
                self.b_ih = [None] + [b[order] for b in self.b_ih[1:]]
                self.w_hh = [m[:, order].contiguous() for m in self.w_hh]
            self.head_w = model.head.weight.detach().T.contiguous()
            self.head_b = model.head.bias.detach()
        # int8: the same products as int8 linear layers (biases ride along where they are not merged), for the
        # large matrices only; a small one (the output layer over a character vocabulary) runs faster in fp32
        q = (lambda w, b: _int8_linear(w, b) if int8 and w.numel() >= INT8_MIN_WEIGHTS else None)  # noqa: E731
        self.q_ih = [None] + [q(self.w_ih[i], self.b_ih[i]) for i in range(1, c.layers)]
        self.q_hh = [q(self.w_hh[i], self.b_hh[i] if not merge else None) for i in range(c.layers)]
        self.q_head = q(self.head_w, self.head_b)

    def _hh(self, i: int, h: torch.Tensor, add: torch.Tensor | None) -> torch.Tensor:
        """h @ W_hh (+ the GRU's own bias) + add."""
        if self.q_hh[i] is not None:
            out = self.q_hh[i](h)
            return out if add is None else out + add
        return torch.addmm(self.b_hh[i] if add is None else add, h, self.w_hh[i])

    @torch.no_grad()
    def __call__(self, token: torch.Tensor, state=None):
        """token (B,) → logits (B, V), state ((L, B, H) tensors, as nn.LSTM/GRU/RNN use)."""
        B, H = token.size(0), self.hidden
        if state is None:
            zeros = self.table.new_zeros(self.layers, B, H)
            state = (zeros, zeros) if self.cell == "lstm" else zeros
        hs, cs = (state if self.cell == "lstm" else (state, None))
        new_h, new_c = [], []
        x = None
        for i in range(self.layers):
            h = hs[i]
            if i == 0:
                gi = self.table[token]
            else:
                gi = self.q_ih[i](x) if self.q_ih[i] is not None else torch.addmm(self.b_ih[i], x, self.w_ih[i])
            if self.cell == "lstm":
                g = self._hh(i, h, gi)
                i_g, f_g, o_g = torch.sigmoid(g[:, :3 * H]).chunk(3, 1)  # gates stored as i, f, o, g
                c = f_g * cs[i] + i_g * torch.tanh(g[:, 3 * H:])
                h = o_g * torch.tanh(c)
                new_c.append(c)
            elif self.cell == "gru":
                gh = self._hh(i, h, None)
                r_i, z_i, n_i = gi.chunk(3, 1)
                r_h, z_h, n_h = gh.chunk(3, 1)
                r, z = torch.sigmoid(r_i + r_h), torch.sigmoid(z_i + z_h)
                n = torch.tanh(n_i + r * n_h)
                h = n + z * (h - n)
            else:
                h = torch.tanh(self._hh(i, h, gi))
            new_h.append(h)
            x = h
        logits = self.q_head(x) if self.q_head is not None else torch.addmm(self.head_b, x, self.head_w)
        stack = (lambda xs: xs[0][None]) if self.layers == 1 else torch.stack  # noqa: E731
        h_out = stack(new_h)
        return logits, ((h_out, stack(new_c)) if self.cell == "lstm" else h_out)


def _int8_linear(w_t: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
    """x @ w_t + bias as a dynamically quantized int8 layer, one weight scale per output (per-channel)."""
    lin = nn.Linear(w_t.size(0), w_t.size(1), bias=bias is not None)
    with torch.no_grad():
        lin.weight.copy_(w_t.T)
        if bias is not None:
            lin.bias.copy_(bias)
    return quantize_int8(nn.Sequential(lin), {nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig})[0]
