"""Character-level recurrent language model.

    ids (B, T) ─ Embedding ─ drop ─► (B, T, E) ─ RNN/LSTM/GRU ─ drop ─► … ─ layer L ─ drop ─ Linear ─► logits (B, T, V)
                                                 ▲     │
                                      state in ──┘     └─► state out (carried to the next window)

The model is stateless: recurrent state is passed in and returned, so training can carry it across truncated-BPTT
windows (Elman 1990; Williams & Peng 1990) and generation can advance it one character at a time.

Regularisation (training only; AWD-LSTM, Merity et al. 2018): every "drop" above is *locked* (variational)
dropout, one mask per sequence shared by all time steps (Gal & Ghahramani 2016); `embed_dropout` drops whole
characters from the embedding table; `weight_drop` is DropConnect on the hidden-to-hidden matrices, one mask per
batch (Wan et al. 2013), which keeps each layer a single call of the fused recurrent kernel (cuDNN / oneDNN).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..model_configs import LMConfig
from .rnn import make_rnn, quantize_int8


_FUNCTIONAL = {"lstm": torch.lstm, "gru": torch.gru, "rnn": torch.rnn_tanh}


def locked_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """x (B, T, D) with one dropout mask per sequence, the same at every time step."""
    if not training or p == 0:
        return x
    mask = x.new_empty(x.size(0), 1, x.size(2)).bernoulli_(1 - p) / (1 - p)
    return x * mask


class CharLM(nn.Module):
    kind = "lm"

    def __init__(self, config: LMConfig):
        super().__init__()
        self.config = config.validate()
        c = config
        self.embedding = nn.Embedding(c.vocab_size, c.embed)
        self.rnn = make_rnn(c.cell, c.embed, c.hidden, c.layers)  # inference runs all layers in one fused call
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
        c = self.config
        if not self.training:
            out, state = self.rnn(self.embedding(x), state)
            return self.head(out), state
        weight = self.embedding.weight
        if c.embed_dropout:  # one mask over the vocabulary: a dropped character is unseen for the whole batch
            weight = weight * weight.new_empty(weight.size(0), 1).bernoulli_(1 - c.embed_dropout) / (1 - c.embed_dropout)
        h = locked_dropout(F.embedding(x, weight), c.input_dropout, True)
        if c.layers == 1 and not c.weight_drop or not (c.layer_dropout or c.weight_drop):
            h, state = self.rnn(h, state)  # nothing to do between layers: one fused call for all of them
        else:
            h, state = self._layer_by_layer(h, state)
        return self.head(locked_dropout(h, c.dropout, True)), state

    def _layer_by_layer(self, h: torch.Tensor, state):
        """Training with DropConnect or dropout between layers: one fused kernel call per layer."""
        c, rnn = self.config, self.rnn
        lstm = c.cell == "lstm"
        if state is None:
            zeros = h.new_zeros(c.layers, h.size(0), c.hidden)
            state = (zeros, zeros) if lstm else zeros
        hs, cs = state if lstm else (state, None)
        kernel = _FUNCTIONAL[c.cell]
        out_h, out_c = [], []
        for i in range(c.layers):
            w_hh = getattr(rnn, f"weight_hh_l{i}")
            if c.weight_drop:
                w_hh = F.dropout(w_hh, c.weight_drop, True)
            weights = [getattr(rnn, f"weight_ih_l{i}"), w_hh, getattr(rnn, f"bias_ih_l{i}"), getattr(rnn, f"bias_hh_l{i}")]
            if lstm:
                h, h_n, c_n = kernel(h, (hs[i:i + 1], cs[i:i + 1]), weights, True, 1, 0.0, True, False, True)
                out_c.append(c_n)
            else:
                h, h_n = kernel(h, hs[i:i + 1], weights, True, 1, 0.0, True, False, True)
            out_h.append(h_n)
            if i < c.layers - 1:
                h = locked_dropout(h, c.layer_dropout, True)
        h_n = torch.cat(out_h)
        return h, ((h_n, torch.cat(out_c)) if lstm else h_n)

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

    def quantized(self) -> "CharLM":
        """An int8 copy for CPU inference: dynamic quantization of the recurrent and linear layers (weights int8,
        activations quantized on the fly; a tanh `rnn` layer has no int8 kernel and stays fp32)."""
        return quantize_int8(self, {nn.LSTM, nn.GRU, nn.Linear})
