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
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .rnn import CELLS, make_rnn, map_state, quantize_int8, select_state, top_hidden

ATTENTIONS = ("none", "bahdanau", "luong")


@dataclass
class Seq2SeqConfig:
    src_vocab: int
    tgt_vocab: int
    cell: str = "lstm"
    embed: int = 256
    hidden: int = 256          # decoder size; a bidirectional encoder gives each direction hidden // 2
    layers: int = 2
    bidirectional: bool = True
    attention: str = "luong"
    input_feed: bool = True    # Luong input feeding; without it the decoder runs as one fused kernel in training
    dropout: float = 0.3
    share_embeddings: bool = False  # one embedding table for source and target (needs a joint vocabulary)
    tie_output: bool = False        # generator shares the target embedding (Press & Wolf 2017; needs embed == hidden)
    label_smoothing: float = 0.1

    def validate(self) -> "Seq2SeqConfig":
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, not {self.cell!r}")
        if self.attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {', '.join(ATTENTIONS)}, not {self.attention!r}")
        for name in ("src_vocab", "tgt_vocab", "embed", "hidden", "layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive number, not {getattr(self, name)}")
        if self.bidirectional and self.hidden % 2:
            raise ValueError(f"a bidirectional encoder needs an even hidden size, not {self.hidden}")
        if not 0 <= self.dropout < 1 or not 0 <= self.label_smoothing < 1:
            raise ValueError("dropout and label smoothing must be in [0, 1)")
        if self.share_embeddings and self.src_vocab != self.tgt_vocab:
            raise ValueError("shared embeddings need one joint vocabulary for source and target")
        if self.tie_output and self.embed != self.hidden:
            raise ValueError(f"tying the output layer needs embed == hidden (got {self.embed} and {self.hidden})")
        return self

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Memory:
    """What the decoder reads from the source: encoder states, projected keys, padding mask, context vector."""

    enc_out: torch.Tensor       # (B, S, H)
    keys: torch.Tensor | None   # (B, S, H), precomputed once per sentence
    mask: torch.Tensor          # (B, S), True on real tokens
    context: torch.Tensor       # (B, H), the encoder's final top-layer state

    def select(self, index: torch.Tensor) -> "Memory":
        pick = lambda t: None if t is None else t.index_select(0, index)  # noqa: E731
        return Memory(pick(self.enc_out), pick(self.keys), pick(self.mask), pick(self.context))


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
        self.drop = nn.Dropout(c.dropout)

    def forward(self, src: torch.Tensor, src_len: torch.Tensor):
        """src (B, S) → enc_out (B, S, H), final state with directions joined: (L, B, H)."""
        x = self.drop(self.embedding(src))
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


class Seq2Seq(nn.Module):
    kind = "mt"

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        c = self.config = config.validate()
        self.src_embedding = nn.Embedding(c.src_vocab, c.embed, padding_idx=0)
        self.tgt_embedding = self.src_embedding if c.share_embeddings else nn.Embedding(c.tgt_vocab, c.embed, padding_idx=0)
        self.encoder = Encoder(c, self.src_embedding)
        self.bridge = nn.ModuleList(nn.Linear(c.hidden, c.hidden) for _ in range(2 if c.cell == "lstm" else 1))
        feeds = c.attention != "luong" or c.input_feed  # the decoder input carries a context or feed vector
        self.decoder = make_rnn(c.cell, c.embed + (c.hidden if feeds else 0), c.hidden, c.layers, c.dropout)
        self.attention = Attention(c.attention, c.hidden) if c.attention != "none" else None
        self.combine = nn.Linear(2 * c.hidden, c.hidden, bias=False)  # õ = tanh(Wo·[s; ctx])
        self.drop = nn.Dropout(c.dropout)
        self.generator = nn.Linear(c.hidden, c.tgt_vocab)
        if c.tie_output:
            self.generator.weight = self.tgt_embedding.weight

    # ---------------------------------------------------------------- encoder side
    def quantized(self) -> "Seq2Seq":
        """An int8 copy for CPU inference: dynamic quantization of the recurrent and linear layers (weights int8,
        activations quantized on the fly; embeddings and tanh `rnn` layers stay fp32)."""
        return quantize_int8(self, {nn.LSTM, nn.GRU, nn.Linear})

    def encode(self, src: torch.Tensor, src_len: torch.Tensor) -> tuple[Memory, DecState]:
        enc_out, state = self.encoder(src, src_len)
        mask = torch.arange(src.size(1), device=src.device)[None] < src_len.to(src.device)[:, None]
        keys = self.attention.key(enc_out) if self.attention is not None else None
        context = top_hidden(state)
        if isinstance(state, tuple):
            init = (torch.tanh(self.bridge[0](state[0])), self.bridge[1](state[1]))
        else:
            init = torch.tanh(self.bridge[0](state))
        feed = enc_out.new_zeros(src.size(0), self.config.hidden) if self._input_feed else None
        return Memory(enc_out, keys, mask, context), DecState(init, feed)

    @property
    def _input_feed(self) -> bool:
        return self.config.attention == "luong" and self.config.input_feed

    # ---------------------------------------------------------------- decoder side
    def _step(self, emb: torch.Tensor, state: DecState, mem: Memory):
        """One decoder step on embedded input (B, E) → attentional output õ (B, H), state, weights."""
        att, weights = self.config.attention, None
        if att == "none":
            ctx = mem.context
            inp = torch.cat([emb, ctx], -1)
        elif att == "bahdanau":
            ctx, weights = self.attention(top_hidden(state.rnn)[:, None], mem)
            ctx = ctx[:, 0]
            inp = torch.cat([emb, ctx], -1)
        else:
            inp = torch.cat([emb, state.feed], -1) if self._input_feed else emb
        out, rnn_state = self.decoder(inp[:, None], state.rnn)
        h = out[:, 0]
        if att == "luong":
            ctx, weights = self.attention(h[:, None], mem)
            ctx = ctx[:, 0]
        o = torch.tanh(self.combine(torch.cat([h, ctx], -1)))
        return o, DecState(rnn_state, o if self._input_feed else None), weights

    def forward(self, src, src_len, tgt_in):
        """Teacher forcing: (B, S), (B,), (B, T) → logits (B, T, V)."""
        mem, state = self.encode(src, src_len)
        emb = self.drop(self.tgt_embedding(tgt_in))
        att = self.config.attention
        if att == "none" or (att == "luong" and not self._input_feed):
            # Inputs do not depend on earlier outputs, so the whole target runs through one fused kernel.
            if att == "none":
                ctx = mem.context[:, None].expand(-1, emb.size(1), -1)
                h, _ = self.decoder(torch.cat([emb, ctx], -1), state.rnn)
            else:
                h, _ = self.decoder(emb, state.rnn)
                ctx, _ = self.attention(h, mem)
            outs = torch.tanh(self.combine(torch.cat([h, ctx], -1)))
        else:
            steps = []
            for t in range(emb.size(1)):
                o, state, _ = self._step(emb[:, t], state, mem)
                steps.append(o)
            outs = torch.stack(steps, 1)
        return self.generator(self.drop(outs))

    def loss(self, batch, state=None):
        """Label-smoothed cross-entropy per target token (padding excluded), and no state to carry."""
        logits = self(batch.src, batch.src_len, batch.tgt_in)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), batch.tgt_out.reshape(-1),
                               ignore_index=0, label_smoothing=self.config.label_smoothing, reduction="sum")
        return loss / (batch.loss_tokens or max(1, batch.n_tokens)), None

    @torch.no_grad()
    def step(self, y_prev: torch.Tensor, state: DecState, mem: Memory):
        """Search step: previous tokens (B,) → log-probabilities (B, V), new state, attention weights (B, S)."""
        o, state, weights = self._step(self.tgt_embedding(y_prev), state, mem)
        logp = torch.log_softmax(self.generator(o).float(), dim=-1)
        return logp, state, None if weights is None else weights[:, 0]
