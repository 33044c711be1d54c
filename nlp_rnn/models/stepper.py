"""The language model's fast inference step: one character at batch 1 as a few plain matrix products.

Generation and autocomplete build a `Stepper` from the model they were given, fp32 or int8 (`CharLM.quantized`):
it reads the weights in whichever form the model holds them, so nothing about the fast path is stored on the model.
"""
from __future__ import annotations

import torch
from torch import nn

from .rnn import gru_cell, quantize_int8

INT8_MIN_WEIGHTS = 1 << 18  # batch 1 (benchmarks int8-matvec): 512×1536 int8 32 µs vs fp32 57; 512×69 19 vs 5


def _float(w) -> torch.Tensor:
    return w.dequantize() if w.is_quantized else w.detach()


def _weights(model) -> tuple[dict, dict, bool]:
    """The recurrent and output weights as float tensors, the int8 ones among them (name → their quantized form),
    and whether the model is a quantized copy."""
    rnn, head = model.rnn, model.head
    if hasattr(rnn, "get_weight"):  # torch.ao's dynamically quantized LSTM / GRU
        packed = {**rnn.get_weight(), **rnn.get_bias()}
    else:
        packed = dict(rnn.named_parameters())
    if callable(head.weight):  # a dynamically quantized Linear keeps its weight packed
        packed.update(head_weight=head.weight(), head_bias=head.bias())
    else:
        packed.update(head_weight=head.weight, head_bias=head.bias)
    quantized = {k: v for k, v in packed.items() if v is not None and v.is_quantized}
    # a tanh `rnn` layer has no int8 kernel, so its quantized copy keeps it fp32; the head tells the two apart
    return {k: _float(v) for k, v in packed.items()}, quantized, bool(quantized)


class Stepper:
    """`CharLM.step` as a few plain matrix products, for generation and autocomplete at batch 1.

    One step at batch 1 is dominated by fixed costs, so this precomputes what it can: the first layer's input
    projection for every character (a V × gates·H table, so embedding + input matmul become one row lookup),
    transposed weights, and merged biases. The state layout is nn.RNNBase's, so it mixes freely with `forward`.
    Given an int8 model, the large matrices run as int8 products (the model's own int8 weights where it has them).
    Weights are snapshotted: make a new stepper after training further.
    """

    def __init__(self, model):
        c = model.config
        self.cell, self.layers, self.hidden = c.cell, c.layers, c.hidden
        w, packed, int8 = _weights(model)
        with torch.no_grad():
            # GRU keeps the hidden bias apart: its candidate gate scales (W_hn·h + b_hn) by the reset gate
            merge = self.cell != "gru"
            self.table = model.embedding.weight.detach() @ w["weight_ih_l0"].T + w["bias_ih_l0"]
            if merge:
                self.table = self.table + w["bias_hh_l0"]
            self.w_ih = [None] + [w[f"weight_ih_l{i}"].T.contiguous() for i in range(1, c.layers)]
            self.b_ih = [None] + [w[f"bias_ih_l{i}"] + (w[f"bias_hh_l{i}"] if merge else 0) for i in range(1, c.layers)]
            self.w_hh = [w[f"weight_hh_l{i}"].T.contiguous() for i in range(c.layers)]
            self.b_hh = [w[f"bias_hh_l{i}"] for i in range(c.layers)]
            order = None
            if self.cell == "lstm":  # torch's gate order i, f, g, o → i, f, o, g: one sigmoid over three gates
                H = c.hidden
                order = torch.cat([torch.arange(0, 2 * H), torch.arange(3 * H, 4 * H), torch.arange(2 * H, 3 * H)])
                self.table = self.table[:, order]
                self.w_ih = [None] + [m[:, order].contiguous() for m in self.w_ih[1:]]
                self.b_ih = [None] + [b[order] for b in self.b_ih[1:]]
                self.w_hh = [m[:, order].contiguous() for m in self.w_hh]
            self.head_w = w["head_weight"].T.contiguous()
            self.head_b = w["head_bias"]

        # int8: the same products as int8 linear layers (biases ride along where they are not merged), for the
        # large matrices only; a small one (the output layer over a character vocabulary) runs faster in fp32
        def q(name, w_t, bias):
            if not int8 or w_t.numel() < INT8_MIN_WEIGHTS:
                return None
            source = packed.get(name)
            return _int8_linear(w_t, bias, None if source is None else (source.q_scale(), source.q_zero_point()))

        self.q_ih = [None] + [q(f"weight_ih_l{i}", self.w_ih[i], self.b_ih[i]) for i in range(1, c.layers)]
        self.q_hh = [q(f"weight_hh_l{i}", self.w_hh[i], None if merge else self.b_hh[i]) for i in range(c.layers)]
        self.q_head = q("head_weight", self.head_w, self.head_b)

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
                h = gru_cell(gi, self._hh(i, h, None), h)
            else:
                h = torch.tanh(self._hh(i, h, gi))
            new_h.append(h)
            x = h
        logits = self.q_head(x) if self.q_head is not None else torch.addmm(self.head_b, x, self.head_w)
        stack = (lambda xs: xs[0][None]) if self.layers == 1 else torch.stack  # noqa: E731
        h_out = stack(new_h)
        return logits, ((h_out, stack(new_c)) if self.cell == "lstm" else h_out)


def _int8_linear(w_t: torch.Tensor, bias: torch.Tensor | None, qparams: tuple[float, int] | None = None) -> nn.Module:
    """x @ w_t + bias as a dynamically quantized int8 layer. `qparams` (scale, zero point): w_t already holds the
    values of a per-tensor int8 matrix, which are kept exactly; otherwise one weight scale per output (per-channel)."""
    if qparams is not None:
        lin = torch.ao.nn.quantized.dynamic.Linear(w_t.size(0), w_t.size(1), bias_=bias is not None, dtype=torch.qint8)
        lin.set_weight_bias(torch.quantize_per_tensor(w_t.T.contiguous(), *qparams, torch.qint8), bias)
        return lin
    lin = nn.Linear(w_t.size(0), w_t.size(1), bias=bias is not None)
    with torch.no_grad():
        lin.weight.copy_(w_t.T)
        if bias is not None:
            lin.bias.copy_(bias)
    return quantize_int8(nn.Sequential(lin), {nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig})[0]
