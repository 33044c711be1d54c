"""Many-to-one recurrent text classifier: one label per sequence, top to bottom.

    ids (B, T) ─ Embedding ─ dropout ─► [bi]RNN/LSTM/GRU × layers (packed) ─► out (B, T, D), final states
                                                                                │
        pooling last:       the top layer's final state of each direction: forward after the last real token,
                            backward after the first (the classic many-to-one RNN, Elman 1990)
        pooling mean, max:  mean or elementwise max of `out` over the real tokens (Collobert et al. 2011)
        pooling attention:  a learned query scores each position, a = softmax(q·tanh(W·out[t] + b)) over the
                            real tokens, and the features are Σ a[t]·out[t] (Yang et al. 2016)
                                                                                ▼
                                                       features (B, D) ─ dropout ─ Linear ─► logits (B, C)

D = hidden × directions. Padding (id 0) never reaches the result: the encoder reads packed sequences, so it stops
at each sequence's length, and every pooling masks the padded positions.

Two classes get two logits and a softmax rather than one logit and a sigmoid. The two are the same model
(softmax([z0, z1])[1] = sigmoid(z1 - z0)); one design means one loss, one way to weight classes and one
`predict_proba` for every number of classes, for the cost of one redundant row in the output layer.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..model_configs import ClassifierConfig
from .rnn import make_rnn, quantize_int8


@dataclass
class ClfBatch:
    """Padded sequences with one label each.

        ids: (B, T) token ids, 0 after each length   lengths: (B,) real tokens, on the CPU   labels: (B,) class ids
        weights: (C,) loss weight of each class (e.g. inverse class frequencies), or None for equal weights
    """

    ids: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor
    weights: torch.Tensor | None = None

    @property
    def n_tokens(self) -> int:
        return int(self.lengths.sum())

    def to(self, device) -> "ClfBatch":
        # lengths stay on the CPU, where pack_padded_sequence wants them
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return ClfBatch(move(self.ids), self.lengths, move(self.labels), move(self.weights))


class TextClassifier(nn.Module):
    kind = "clf"

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        c = self.config = config.validate()
        self.dirs = 2 if c.bidirectional else 1
        features = c.hidden * self.dirs
        self.embedding = nn.Embedding(c.vocab_size, c.embed, padding_idx=0)
        self.rnn = make_rnn(c.cell, c.embed, c.hidden, c.layers, c.dropout, c.bidirectional)
        if c.pooling == "attention":
            self.attn_proj = nn.Linear(features, features)
            self.attn_query = nn.Linear(features, 1, bias=False)
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(features, c.num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """N(0, 1) embeddings (the padding row zero) and torch's uniform ±1/sqrt(H) recurrent and output layers: the
        init `CharLM` measured best (small embeddings starve the gates). The attention query starts at zero, so
        attention starts as mean pooling and learns where to look from there."""
        nn.init.normal_(self.embedding.weight)
        with torch.no_grad():
            self.embedding.weight[0].zero_()
        self.rnn.reset_parameters()
        self.head.reset_parameters()
        if self.config.pooling == "attention":
            self.attn_proj.reset_parameters()
            nn.init.zeros_(self.attn_query.weight)

    def features(self, ids: torch.Tensor, lengths: torch.Tensor):
        """ids (B, T), lengths (B,) → pooled features (B, D), attention weights (B, T) or None."""
        T = ids.size(1)
        lengths = lengths.cpu()
        if lengths.numel() and (int(lengths.min()) < 1 or int(lengths.max()) > T):
            raise ValueError(f"every length must be from 1 to the padded length {T}, got {lengths.tolist()}")
        x = self.drop(self.embedding(ids))
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, state = self.rnn(packed)
        if self.config.pooling == "last":
            h = state[0] if isinstance(state, tuple) else state  # (layers × dirs, B, H), forward before backward
            return torch.cat(list(h[-self.dirs:]), dim=-1), None
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=T)  # (B, T, D)
        mask = (torch.arange(T)[None] < lengths[:, None]).to(out.device)  # (B, T), True on real tokens
        if self.config.pooling == "mean":
            summed = out.masked_fill(~mask[..., None], 0).sum(1)
            return summed / lengths.to(out.device, out.dtype)[:, None], None
        if self.config.pooling == "max":
            return out.masked_fill(~mask[..., None], float("-inf")).amax(1), None
        scores = self.attn_query(torch.tanh(self.attn_proj(out))).squeeze(-1)  # (B, T)
        weights = torch.softmax(scores.float().masked_fill(~mask, float("-inf")), dim=-1).to(out.dtype)
        return torch.bmm(weights[:, None], out)[:, 0], weights

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """ids (B, T), lengths (B,) → logits (B, C)."""
        pooled, _ = self.features(ids, lengths)
        return self.head(self.drop(pooled))

    def loss(self, batch, state=None):
        """Mean cross-entropy over the batch, each example weighted by its class's weight when the batch has
        `weights` (divided by the summed weights, so the scale of the weights does not change the step size)."""
        logits = self(batch.ids, batch.lengths)
        weights = getattr(batch, "weights", None)
        weights = None if weights is None else weights.float()
        return F.cross_entropy(logits.float(), batch.labels, weight=weights), None

    @torch.no_grad()
    def predict_proba(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Class probabilities (B, C); call `eval()` first to turn dropout off."""
        return torch.softmax(self(ids, lengths).float(), dim=-1)

    @torch.no_grad()
    def attention_weights(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """How much each position counts, (B, T): sums to 1 over each sequence's real tokens, 0 on padding."""
        if self.config.pooling != "attention":
            raise ValueError(f"attention weights need pooling 'attention', this model pools by {self.config.pooling!r}")
        return self.features(ids, lengths)[1]

    def quantized(self) -> "TextClassifier":
        """An int8 copy for CPU inference: dynamic quantization of the recurrent and linear layers (embeddings and
        tanh `rnn` layers stay fp32)."""
        return quantize_int8(self, {nn.LSTM, nn.GRU, nn.Linear})


def load_encoder_from_lm(model: TextClassifier, lm_state: dict) -> list[str]:
    """Start the classifier's encoder from a character language model's weights (`CharLM.state_dict()`): the
    embedding, then each recurrent layer, forward direction, while all its tensors match in name and shape — so
    the classifier must use the LM's tokenizer, cell, embed and hidden sizes. Pretraining the encoder as a
    language model is Dai & Le 2015 and Radford et al. 2017. Returns the names copied."""
    own = model.state_dict()
    copied = []
    emb = lm_state.get("embedding.weight")
    if emb is None or emb.shape != own["embedding.weight"].shape:
        got = None if emb is None else tuple(emb.shape)
        raise ValueError(f"the language model's embedding {got} does not match the classifier's "
                         f"{tuple(own['embedding.weight'].shape)} (vocab size × embed): "
                         "use the LM's tokenizer and embed size")
    copied.append("embedding.weight")
    for layer in range(model.config.layers):
        names = [f"rnn.{kind}_l{layer}" for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        if not all(n in lm_state and n in own and lm_state[n].shape == own[n].shape for n in names):
            break
        copied += names
    if len(copied) == 1:
        raise ValueError("no recurrent layer of the language model matches the classifier's first layer: "
                         f"use the LM's cell and hidden size ({model.config.cell}, {model.config.hidden} here)")
    with torch.no_grad():
        for name in copied:
            own[name].copy_(lm_state[name])
    return copied
