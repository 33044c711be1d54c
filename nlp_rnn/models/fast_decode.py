"""The translator's search step as a few plain matrix products, for greedy and beam search.

`Seq2Seq.step` runs the decoder's RNN module one step at a time, which costs fixed overheads per call, casts
under autocast at every operation, and multiplies the embedding through the first layer's input weights again
at every step. `FastDecoder` snapshots the weights once, in the form the search wants:

    table[y]  = E[y] · W_ih0[:, :E]ᵀ + biases        the embedding half of layer 0, one row lookup (V × G)
    gates_l   = [x_l; h_l] @ [W_ih | W_hh]ᵀ           one product per layer (GRU: input and recurrent apart)
    õ         = tanh([s; ctx] @ Woᵀ),  log p = log_softmax(õ @ Wgᵀ + b)

in fp32, bf16 (products in bf16, cell arithmetic and softmax in fp32) or, given an int8 copy of the model
(`Seq2Seq.quantized`), with the large matrices as dynamically quantized int8 products. The search code builds it
from the model it was given; the state layout is `DecState`'s, so it mixes freely with `Seq2Seq.step`.
Weights are snapshotted: build a new one after training further.
"""
from __future__ import annotations

import torch
from torch import nn

from .rnn import gru_cell, lstm_cell, quantize_int8
from .seq2seq import DecState, Memory, Seq2Seq

INT8_MIN_WEIGHTS = 1 << 17  # smaller matrices stay in float: at search batch sizes their int8 form is no faster


def _float(t) -> torch.Tensor:
    return t.dequantize() if t.is_quantized else t.detach()


def _linear_weights(layer) -> tuple[torch.Tensor, torch.Tensor | None, bool]:
    """weight (out, in) and bias of an nn.Linear or its dynamically quantized copy, as float, and whether int8."""
    if callable(layer.weight):  # torch.ao's quantized Linear keeps its weight packed
        return _float(layer.weight()), layer.bias(), True
    return layer.weight.detach(), None if layer.bias is None else layer.bias.detach(), False


def _rnn_weights(rnn) -> tuple[dict, bool]:
    if hasattr(rnn, "get_weight"):  # torch.ao's dynamically quantized LSTM / GRU
        packed = {**rnn.get_weight(), **rnn.get_bias()}
        return {k: _float(v) for k, v in packed.items()}, True
    return {k: v.detach() for k, v in rnn.named_parameters()}, False


class _Product:
    """x @ W.T (+ b) in the snapshot's form: a float matrix in `dtype`, or a dynamically quantized int8 layer."""

    def __init__(self, w: torch.Tensor, b: torch.Tensor | None, dtype: torch.dtype, int8: bool):
        self.q = None
        if int8 and w.numel() >= INT8_MIN_WEIGHTS and w.device.type == "cpu":
            lin = nn.Linear(w.size(1), w.size(0), bias=b is not None)
            with torch.no_grad():
                lin.weight.copy_(w)
                if b is not None:
                    lin.bias.copy_(b)
            self.q = quantize_int8(nn.Sequential(lin), {nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig})[0]
        self.wt = w.to(dtype).t()  # (in, out) view of a contiguous (out, in): the layout matmul reads fastest
        self.b = None if b is None else b.to(dtype)
        self.dtype = dtype

    def __call__(self, x: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
        """x @ W.T + b (+ add), in the compute dtype (fp32 for int8)."""
        if self.q is not None:
            y = self.q(x.float())
            return y if add is None else y + add
        x = x.to(self.dtype)
        bias = add if self.b is None else (self.b if add is None else add + self.b)
        return x @ self.wt if bias is None else torch.addmm(bias.to(self.dtype), x, self.wt)


class FastDecoder:
    """`Seq2Seq.step` for search, over a snapshot of the model's weights (see the module docstring)."""

    def __init__(self, model: Seq2Seq, dtype: torch.dtype = torch.float32):
        c, dec = model.config, model.decoder
        self.cell, self.kind, self.input_feed, self.layers, self.hidden = c.cell, c.attention, dec.input_feed, c.layers, c.hidden
        w, int8 = _rnn_weights(dec.rnn)
        wc, _, int8_c = _linear_weights(dec.combine)
        wg, bg, int8_g = _linear_weights(model.generator)
        int8 = int8 or int8_c or int8_g  # a tanh `rnn` layer has no int8 kernel; its quantized copy keeps it fp32
        self.dtype = torch.float32 if int8 else dtype
        E, gru = c.embed, c.cell == "gru"
        with torch.no_grad():
            emb = model.tgt_embedding.weight.detach().float()
            b0 = w["bias_ih_l0"] + (0 if gru else w["bias_hh_l0"])  # GRU keeps b_hn inside the reset gate
            self.table = torch.addmm(b0, emb, w["weight_ih_l0"][:, :E].t())  # (V, G), fp32
            self.x, self.h = [], []
            for i in range(c.layers):
                w_ih = w[f"weight_ih_l{i}"][:, E:] if i == 0 else w[f"weight_ih_l{i}"]
                b_ih = None if i == 0 else w[f"bias_ih_l{i}"]
                if w_ih.size(1) == 0:  # Luong without input feeding: layer 0 has no input product
                    self.x.append(None)
                elif gru:
                    self.x.append(_Product(w_ih, b_ih, self.dtype, int8))
                else:  # [x; h] @ [W_ih | W_hh]ᵀ as one product
                    merged = torch.cat([w_ih, w[f"weight_hh_l{i}"]], 1)
                    bias = None if i == 0 else b_ih + w[f"bias_hh_l{i}"]
                    self.x.append(_Product(merged, bias, self.dtype, int8))
                if gru or w_ih.size(1) == 0:
                    self.h.append(_Product(w[f"weight_hh_l{i}"], w[f"bias_hh_l{i}"] if gru else None, self.dtype, int8))
                else:
                    self.h.append(None)
            self.combine = _Product(wc, None, self.dtype, int8)
            self.generator = _Product(wg, bg, self.dtype, int8)
            self._out_w, self._out_b = wg.float(), bg.float()  # for `restricted`
            self.query = self.v = None
            if c.attention == "bahdanau":
                wq, bq, _ = _linear_weights(dec.attention.query)
                self.query = _Product(wq, bq, self.dtype, False)
                self.v = _linear_weights(dec.attention.v)[0].float()[0]  # (H,)

    def prepare(self, mem: Memory) -> Memory:
        """The encoder's memory in the form `step` reads, made once per batch: fp32 attention inputs (the encoder
        ran in bf16 under autocast) and the padding mask as an additive bias."""
        bias = torch.zeros(mem.mask.shape, device=mem.mask.device).masked_fill(~mem.mask, float("-inf"))
        return Memory(mem.enc_out.float(), None if mem.keys is None else mem.keys.float(), mem.mask,
                      mem.context.float(), bias, mem.out_bias)

    def restricted(self, vocab: torch.Tensor) -> "_Product":
        """The output layer over the target ids `vocab` (V',) only (a batch's shortlist), for `step`."""
        return _Product(self._out_w[vocab], self._out_b[vocab], torch.bfloat16 if self.dtype == torch.bfloat16
                        else torch.float32, False)

    @torch.no_grad()
    def step(self, y_prev: torch.Tensor, state: DecState, mem: Memory, output: "_Product | None" = None):
        """Previous tokens (B,) → log-probabilities (B, V) fp32, new state, attention weights (B, S). With
        `output` from `restricted(vocab)`: log-probabilities (B, V') over `vocab`, normalised over it."""
        with torch.autocast(y_prev.device.type, enabled=False):  # dtypes are the snapshot's
            return self._step(y_prev, state, mem, output or self.generator)

    def _attend(self, q: torch.Tensor, mem: Memory):
        """q (B, H) → context (B, H) fp32, weights (B, S)."""
        if mem.bias is None:
            mem = self.prepare(mem)
        if self.kind == "luong":
            scores = torch.bmm(q.float()[:, None], mem.keys.transpose(1, 2))[:, 0]
        else:
            u = torch.tanh(self.query(q).float()[:, None] + mem.keys)  # (B, S, H)
            scores = u @ self.v
        weights = torch.softmax(scores + mem.bias, -1)
        return torch.bmm(weights[:, None], mem.enc_out)[:, 0], weights

    def _step(self, y_prev, state: DecState, mem: Memory, output: "_Product"):
        lstm = self.cell == "lstm"
        hs, cs = state.rnn if lstm else (state.rnn, None)
        weights = None
        if self.kind == "none":
            feed = mem.context.float()
        elif self.kind == "bahdanau":
            feed, weights = self._attend(hs[-1], mem)
        else:
            feed = state.feed if self.input_feed else None
        x = feed
        new_h, new_c = [], []
        for i in range(self.layers):
            add = self.table[y_prev] if i == 0 else None
            h = hs[i]
            if self.cell == "gru":
                gi = self.x[i](x, add).float() if self.x[i] is not None else add
                h = gru_cell(gi, self.h[i](h).float(), h.float())
            else:
                if self.x[i] is None:
                    g = self.h[i](h, add).float()
                else:
                    g = self.x[i](torch.cat([x.to(h.dtype), h], 1), add).float()
                if lstm:
                    h, c = lstm_cell(g, cs[i].float())
                    new_c.append(c)
                else:
                    h = torch.tanh(g)
            new_h.append(h)
            x = h
        if self.kind == "luong":
            ctx, weights = self._attend(x, mem)
        else:
            ctx = feed.float()
        o = torch.tanh(self.combine(torch.cat([x, ctx], 1)).float())
        logits = output(o).float()
        if mem.out_bias is not None:  # each sentence normalised over its own shortlist, whatever its batch
            logits = logits + mem.out_bias
        logp = torch.log_softmax(logits, -1)
        h_out = torch.stack(new_h)
        rnn = (h_out, torch.stack(new_c)) if lstm else h_out
        return logp, DecState(rnn, o if self.input_feed else None), weights
