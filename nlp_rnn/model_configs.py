"""The models' configurations: what each model is made of, and every default size, in one place.

Torch-free on purpose: the command line reads its defaults and choices from here without loading torch, and a
checkpoint's `config.json` is one of these, saved with `to_dict()`. Each model's file (`models/lm.py`,
`models/seq2seq.py`, `models/classifier.py`) builds the network from its config.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

CELLS = ("rnn", "lstm", "gru")


@dataclass
class LMConfig:
    vocab_size: int
    cell: str = "gru"
    embed: int = 64
    hidden: int = 512
    layers: int = 1
    dropout: float = 0.1          # locked dropout on the last layer's output, before the output layer
    tie_weights: bool = False     # Press & Wolf 2017; needs embed == hidden
    input_dropout: float = 0.0    # locked dropout on the embeddings (the first layer's input)
    layer_dropout: float = 0.0    # locked dropout between recurrent layers
    weight_drop: float = 0.0      # DropConnect on the hidden-to-hidden weights
    embed_dropout: float = 0.0    # drop whole characters from the embedding table

    DROPOUTS = ("dropout", "input_dropout", "layer_dropout", "weight_drop", "embed_dropout")
    # What a field meant before it existed: a config.json saved without it is read with this value, never with
    # today's default, so a changed default cannot change an old checkpoint or what `--resume` of it trains.
    ABSENT = {"tie_weights": False, "input_dropout": 0.0, "layer_dropout": 0.0, "weight_drop": 0.0,
              "embed_dropout": 0.0}

    def validate(self) -> "LMConfig":
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, not {self.cell!r}")
        for name in ("vocab_size", "embed", "hidden", "layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive number, not {getattr(self, name)}")
        for name in self.DROPOUTS:
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), not {getattr(self, name)}")
        if self.tie_weights and self.embed != self.hidden:
            raise ValueError(f"weight tying needs embed == hidden (got {self.embed} and {self.hidden})")
        return self

    def to_dict(self) -> dict:
        return asdict(self)


def lm_parameters(c: LMConfig) -> int:
    """How many weights `models.lm.CharLM` has for this config (counted without building it)."""
    gates = {"rnn": 1, "lstm": 4, "gru": 3}[c.cell]
    rnn = sum(gates * c.hidden * ((c.embed if i == 0 else c.hidden) + c.hidden + 2) for i in range(c.layers))
    head = 0 if c.tie_weights else c.hidden * c.vocab_size
    return c.vocab_size * c.embed + rnn + head + c.vocab_size


# Regularisation that scales with how little text there is (issue #18; BENCHMARKS.md, "Language model across
# folds"). With fewer training characters per weight than this, a model overfits within a 15-minute run and the
# stronger recipe won on every fold of tiny-shakespeare (0.8 characters per weight); with more (Quijote, 1.6) it
# lost. `train lm` applies it unless the user sets --dropout or --weight-drop.
SMALL_CORPUS_CHARS_PER_WEIGHT = 1.2
SMALL_CORPUS_REGULARISATION = {"dropout": 0.2, "weight_drop": 0.1}


def lm_regularisation(train_chars: int, weights: int) -> dict:
    """{dropout, weight_drop} for a corpus of `train_chars` characters and a model of `weights` weights."""
    if train_chars < SMALL_CORPUS_CHARS_PER_WEIGHT * weights:
        return dict(SMALL_CORPUS_REGULARISATION)
    return {"dropout": LMConfig.dropout, "weight_drop": LMConfig.weight_drop}


# Step size of dynamic evaluation (`eval lm --dynamic`), chosen on held-out folds (BENCHMARKS.md, issue #18).
DYNAMIC_LR = 3e-3  # chosen on validation text on every fold run (tiny-shakespeare and Quijote), of 3e-4, 1e-3, 3e-3


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


POOLINGS = ("last", "mean", "max", "attention")
CLF_LIMITS = {"vocab_size": (1, 1 << 21), "num_classes": (2, 10_000), "embed": (1, 8192), "hidden": (1, 8192),
          "layers": (1, 16)}


@dataclass
class ClassifierConfig:
    vocab_size: int
    num_classes: int = 2
    cell: str = "lstm"
    embed: int = 128
    hidden: int = 128           # per direction: a bidirectional encoder gives 2 × hidden features
    layers: int = 1
    bidirectional: bool = True
    pooling: str = "attention"  # on SST-2 no pooling won beyond seed noise; attention also shows what it read
    dropout: float = 0.3        # on the embeddings, between layers and on the pooled features

    def validate(self) -> "ClassifierConfig":
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, not {self.cell!r}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, not {self.pooling!r}")
        for name, (low, high) in CLF_LIMITS.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ValueError(f"{name} must be a whole number from {low:,} to {high:,}, not {value!r}")
        if not isinstance(self.bidirectional, bool):
            raise ValueError(f"bidirectional must be true or false, not {self.bidirectional!r}")
        if not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), not {self.dropout!r}")
        return self

    def to_dict(self) -> dict:
        return asdict(self)
