"""Encoder-decoder translator: the context-vector model and its attention variants, top to bottom.

    src (B, S) ─ Embedding ─ [bi]RNN encoder (packed) ─► enc_out (B, S, H)        final states
                                                            │                      │ bridge: Linear + tanh
                                                            │ keys = W·enc_out      ▼
    tgt_in (B, T) ─ Embedding ─► decoder RNN, one step per target token, initialised from the bridged state
                                     │
         attention none:     the decoder sees the source only through the context vector c (the encoder's
                             final top-layer state), fed at every step with the input and to the output layer
                             (Cho et al. 2014; Sutskever et al. 2014 without the feed).
         attention bahdanau: additive scores v·tanh(Wq·s[t-1] + Wk·h[j]) over all encoder states; the context
                             joins the decoder input (Bahdanau et al. 2015).
         attention luong:    multiplicative "general" scores s[t]·Wk·h[j] after the step, attentional output
                             õ[t] = tanh(Wo·[s[t]; ctx[t]]) fed back to the next input (input feeding, Luong et al. 2015).
                                     │
                                     ▼  õ (B, T, H) ─ dropout ─ generator Linear ─► logits (B, T, V)

Decoder state is passed in and returned (`DecState`), never kept on the module, so beam search can reorder it.
Search runs faster through `models.fast_decode.FastDecoder`, which the search code builds from a model.
"""
from __future__ import annotations

import dataclasses

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..model_configs import Seq2SeqConfig
from . import fused_decoder
from .output import dropout, linear_cross_entropy
from .rnn import make_rnn, map_state, quantize_int8, select_state, top_hidden


@dataclass
class Memory:
    """What the decoder reads from the source: encoder states, projected keys, padding mask, context vector."""

    enc_out: torch.Tensor       # (B, S, H)
    keys: torch.Tensor | None   # (B, S, H), precomputed once per sentence
    mask: torch.Tensor          # (B, S), True on real tokens
    context: torch.Tensor       # (B, H), the encoder's final top-layer state
    bias: torch.Tensor | None = None  # (B, S) fp32, 0 on tokens and -inf on padding (`FastDecoder.prepare`)
    out_bias: torch.Tensor | None = None  # (B, V') 0 on each sentence's own shortlisted words, -inf elsewhere

    def select(self, index: torch.Tensor) -> "Memory":
        pick = lambda t: None if t is None else t.index_select(0, index)  # noqa: E731
        return Memory(pick(self.enc_out), pick(self.keys), pick(self.mask), pick(self.context), pick(self.bias),
                      pick(self.out_bias))


@dataclass
class DecState:
    rnn: object                  # h, or (h, c): (L, B, H)
    feed: torch.Tensor | None    # previous attentional output (B, H), Luong input feeding only

    def select(self, index: torch.Tensor) -> "DecState":
        return DecState(select_state(self.rnn, index), None if self.feed is None else self.feed.index_select(0, index))


class Encoder(nn.Module):
    def __init__(self, c: Seq2SeqConfig, embedding: nn.Embedding):
        super().__init__()
        self.embedding = embedding
        self.dirs = 2 if c.bidirectional else 1
        self.rnn = make_rnn(c.cell, c.embed, c.hidden // self.dirs, c.layers, c.dropout, c.bidirectional)
        self.p = c.dropout

    def forward(self, src: torch.Tensor, src_len: torch.Tensor):
        """src (B, S) → enc_out (B, S, H), final state with directions joined: (L, B, H)."""
        x = dropout(self.embedding(src), self.p, self.training)
        packed = pack_padded_sequence(x, src_len.cpu(), batch_first=True, enforce_sorted=False)
        out, state = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))
        if self.dirs == 2:  # (2L, B, H/2) → (L, B, H): forward and backward of each layer side by side
            state = map_state(state, lambda s: torch.cat([s[0::2], s[1::2]], dim=-1))
        return out, state


class Attention(nn.Module):
    """Scores a query against every source position and returns the weighted sum of encoder states."""

    def __init__(self, kind: str, hidden: int):
        super().__init__()
        self.kind = kind
        self.key = nn.Linear(hidden, hidden, bias=False)
        if kind == "bahdanau":
            self.query = nn.Linear(hidden, hidden)
            self.v = nn.Linear(hidden, 1, bias=False)

    def forward(self, q: torch.Tensor, mem: Memory):
        """q (B, T, H) → ctx (B, T, H), weights (B, T, S)."""
        if self.kind == "luong":
            scores = torch.bmm(q, mem.keys.transpose(1, 2))
        else:
            scores = self.v(torch.tanh(self.query(q)[:, :, None] + mem.keys[:, None])).squeeze(-1)
        scores = scores.masked_fill(~mem.mask[:, None], float("-inf"))
        weights = torch.softmax(scores.float(), dim=-1).to(q.dtype)
        return torch.bmm(weights, mem.enc_out), weights


class Decoder(nn.Module):
    """The target side: an RNN whose input is the target embedding joined by a feed vector, then attention and
    the attentional output õ = tanh(Wo·[s; ctx]).

    The feed is the context vector (attention none), this step's context (Bahdanau, queried with the previous
    state) or the previous õ (Luong input feeding); Luong without input feeding has no feed.
    """

    def __init__(self, c: Seq2SeqConfig):
        super().__init__()
        self.cell, self.kind, self.p = c.cell, c.attention, c.dropout
        self.input_feed = c.attention == "luong" and c.input_feed
        feeds = c.attention != "luong" or c.input_feed
        self.rnn = make_rnn(c.cell, c.embed + (c.hidden if feeds else 0), c.hidden, c.layers, c.dropout)
        self.attention = Attention(c.attention, c.hidden) if c.attention != "none" else None
        self.combine = nn.Linear(2 * c.hidden, c.hidden, bias=False)

    @property
    def feeds_back(self) -> bool:
        """Whether a step's input depends on the step before (so training must run step by step)."""
        return self.kind == "bahdanau" or self.input_feed

    def memory(self, enc_out: torch.Tensor, mask: torch.Tensor, context: torch.Tensor) -> Memory:
        return Memory(enc_out, self.attention.key(enc_out) if self.attention is not None else None, mask, context)

    def step(self, emb: torch.Tensor, state: DecState, mem: Memory):
        """One step on embedded input (B, E) → attentional output õ (B, H), state, weights. The reference
        definition of the decoder, run through the RNN module; `forward` computes the same for a whole target."""
        weights = None
        if self.kind == "none":
            ctx = mem.context
            inp = torch.cat([emb, ctx], -1)
        elif self.kind == "bahdanau":
            ctx, weights = self.attention(top_hidden(state.rnn)[:, None], mem)
            ctx = ctx[:, 0]
            inp = torch.cat([emb, ctx], -1)
        else:
            inp = torch.cat([emb, state.feed], -1) if self.input_feed else emb
        out, rnn_state = self.rnn(inp[:, None], state.rnn)
        h = out[:, 0]
        if self.kind == "luong":
            ctx, weights = self.attention(h[:, None], mem)
            ctx = ctx[:, 0]
        o = torch.tanh(self.combine(torch.cat([h, ctx], -1)))
        return o, DecState(rnn_state, o if self.input_feed else None), weights

    def forward(self, emb: torch.Tensor, state: DecState, mem: Memory, lengths: torch.Tensor | None = None):
        """Teacher forcing: embedded targets (B, T, E) → attentional outputs õ (B, T, H). With `lengths` (B,),
        positions past a row's length may be left at 0 (the step-by-step path skips them)."""
        if self.feeds_back:
            return self._fed_back(emb, state, mem, lengths)
        # Inputs do not depend on earlier outputs, so the whole target runs through one fused kernel.
        if self.kind == "none":
            h, _ = self.rnn(torch.cat([emb, mem.context[:, None].expand(-1, emb.size(1), -1)], -1), state.rnn)
            ctx = mem.context[:, None].expand_as(h)
        else:
            h, _ = self.rnn(emb, state.rnn)
            ctx, _ = self.attention(h, mem)
        return torch.tanh(self.combine(torch.cat([h, ctx], -1)))

    def _fed_back(self, emb: torch.Tensor, state: DecState, mem: Memory, lengths) -> torch.Tensor:
        """`step` over the whole target as one autograd node (`fused_decoder`): the embedding half of the first
        layer's input projection runs once for all steps, weights are cast once to the compute dtype (bf16
        under autocast), and backward multiplies each weight's gradient once over all steps."""
        rnn, E, gru = self.rnn, emb.size(-1), self.cell == "gru"
        p = lambda name: getattr(rnn, name)  # noqa: E731
        b0 = p("bias_ih_l0") if gru else p("bias_ih_l0") + p("bias_hh_l0")  # GRU keeps b_hn inside the reset gate
        pre = F.linear(emb, p("weight_ih_l0")[:, :E], b0)  # (B, T, G): the embedding half, all steps at once
        dt = pre.dtype
        wx, wh, bx, bh = [], [], [], []
        for i in range(rnn.num_layers):
            w_ih = p(f"weight_ih_l{i}")[:, E:] if i == 0 else p(f"weight_ih_l{i}")
            if gru:
                wx.append(w_ih.to(dt))
                wh.append(p(f"weight_hh_l{i}").to(dt))
                bh.append(p(f"bias_hh_l{i}").to(dt))
                bx += [p(f"bias_ih_l{i}").to(dt)] if i else []
            else:  # one product for the input and recurrent parts: [x; h] @ [W_ih | W_hh]ᵀ
                wx.append(torch.cat([w_ih, p(f"weight_hh_l{i}")], 1).to(dt))
                bx += [(p(f"bias_ih_l{i}") + p(f"bias_hh_l{i}")).to(dt)] if i else []
        weights = wx + wh + bx + bh + [self.combine.weight.to(dt)]
        if self.kind == "bahdanau":
            a = self.attention
            weights += [a.query.weight.to(dt), a.query.bias.to(dt), a.v.weight.to(dt)]
        h0, c0 = state.rnn if self.cell == "lstm" else (state.rnn, None)
        plan = fused_decoder.Plan(self.cell, self.kind, rnn.num_layers, self.p if self.training else 0.0)
        return fused_decoder.run(plan, pre, state.feed, h0, c0, mem.enc_out, mem.keys, mem.mask, lengths, weights)


class Seq2Seq(nn.Module):
    kind = "mt"

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        c = self.config = config.validate()
        self.src_embedding = nn.Embedding(c.src_vocab, c.embed, padding_idx=0)
        self.tgt_embedding = self.src_embedding if c.share_embeddings else nn.Embedding(c.tgt_vocab, c.embed, padding_idx=0)
        self.encoder = Encoder(c, self.src_embedding)
        self.bridge = nn.ModuleList(nn.Linear(c.hidden, c.hidden) for _ in range(2 if c.cell == "lstm" else 1))
        self.decoder = Decoder(c)
        self.generator = nn.Linear(c.hidden, c.tgt_vocab)
        if c.tie_output:
            self.generator.weight = self.tgt_embedding.weight
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight uniform in ±0.1, as in Luong et al. 2015 (the same rule for every cell keeps them comparable)."""
        for p in self.parameters():
            nn.init.uniform_(p, -0.1, 0.1)

    # ---------------------------------------------------------------- checkpoint names
    # Checkpoints name the decoder's parts as they were before `Decoder` held them (the RNN as `decoder.*`,
    # `attention.*` and `combine.*` at the top), so every checkpoint ever written loads, and older code reads
    # new ones. These two methods translate between those names and the module tree.
    _SAVED_AS = (("decoder.rnn.", "decoder."), ("decoder.attention.", "attention."), ("decoder.combine.", "combine."))

    def state_dict(self, *args, destination=None, prefix: str = "", keep_vars: bool = False):
        out = super().state_dict(*args, destination=destination, prefix=prefix, keep_vars=keep_vars)
        items = list(out.items())
        out.clear()
        for key, value in items:
            for new, old in self._SAVED_AS:
                if key.startswith(prefix + new):
                    key = prefix + old + key[len(prefix + new):]
                    break
            out[key] = value
        return out

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for key in [k for k in state_dict if k.startswith(prefix)]:
            name = key[len(prefix):]
            for new, old in self._SAVED_AS:
                rest = name[len(old):]
                # `decoder.X` with no further dot is an RNN weight; `decoder.rnn.…` is already the module name
                if name.startswith(old) and (old != "decoder." or "." not in rest):
                    state_dict[prefix + new + rest] = state_dict.pop(key)
                    break
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def grown(self, src_vocab: int, tgt_vocab: int) -> "Seq2Seq":
        """A copy with room for `src_vocab`/`tgt_vocab` ids (at least today's): the old ids keep their rows; new
        embedding rows start as in `reset_parameters`, new output rows with the smallest bias the layer has, so
        a grown vocabulary's new pieces start unlikely and the translations do not change before training."""
        c = self.config
        if src_vocab < c.src_vocab or tgt_vocab < c.tgt_vocab:
            raise ValueError("a vocabulary can only grow")
        grown = Seq2Seq(dataclasses.replace(c, src_vocab=src_vocab, tgt_vocab=tgt_vocab)).to(
            next(self.parameters()).device)
        new = grown.state_dict()
        for key, old in self.state_dict().items():
            if new[key].shape != old.shape:  # embeddings and the output layer: copy the rows that exist
                new[key][: old.size(0)] = old
                if key == "generator.bias":
                    new[key][old.size(0):] = old.min()
            else:
                new[key] = old
        grown.load_state_dict(new)
        return grown

    # ---------------------------------------------------------------- encoder side
    def quantized(self) -> "Seq2Seq":
        """An int8 copy for CPU inference: dynamic quantization of the recurrent and linear layers (weights int8,
        activations quantized on the fly; embeddings and tanh `rnn` layers stay fp32)."""
        return quantize_int8(self, {nn.LSTM, nn.GRU, nn.Linear})

    def encode(self, src: torch.Tensor, src_len: torch.Tensor) -> tuple[Memory, DecState]:
        enc_out, state = self.encoder(src, src_len)
        mask = torch.arange(src.size(1), device=src.device)[None] < src_len.to(src.device)[:, None]
        context = top_hidden(state)
        if isinstance(state, tuple):
            init = (torch.tanh(self.bridge[0](state[0])), self.bridge[1](state[1]))
        else:
            init = torch.tanh(self.bridge[0](state))
        feed = enc_out.new_zeros(src.size(0), self.config.hidden) if self.decoder.input_feed else None
        return self.decoder.memory(enc_out, mask, context), DecState(init, feed)

    # ---------------------------------------------------------------- decoder side
    def forward(self, src, src_len, tgt_in):
        """Teacher forcing: (B, S), (B,), (B, T) → logits (B, T, V) (at padding positions: of a zero õ)."""
        mem, state = self.encode(src, src_len)
        outs = self.decoder(dropout(self.tgt_embedding(tgt_in), self.config.dropout, self.training), state, mem,
                            (tgt_in != 0).sum(1))
        return self.generator(dropout(outs, self.config.dropout, self.training))

    def loss(self, batch, state=None):
        """Label-smoothed cross-entropy per target token (padding excluded), and no state to carry. The output
        layer runs on real tokens only, fused with the loss (`output.linear_cross_entropy`): no (B, T, V) logits."""
        p = self.config.dropout
        mem, dec_state = self.encode(batch.src, batch.src_len)
        real = batch.tgt_out != 0
        outs = self.decoder(dropout(self.tgt_embedding(batch.tgt_in), p, self.training), dec_state, mem, real.sum(1))
        loss = linear_cross_entropy(dropout(outs[real], p, self.training), self.generator.weight,
                                    self.generator.bias, batch.tgt_out[real], self.config.label_smoothing)
        return loss / (batch.loss_tokens or max(1, batch.n_tokens)), None

    @torch.no_grad()
    def step(self, y_prev: torch.Tensor, state: DecState, mem: Memory):
        """Search step: previous tokens (B,) → log-probabilities (B, V), new state, attention weights (B, S)."""
        o, state, weights = self.decoder.step(self.tgt_embedding(y_prev), state, mem)
        logp = torch.log_softmax(self.generator(o).float(), dim=-1)
        return logp, state, None if weights is None else weights[:, 0]
