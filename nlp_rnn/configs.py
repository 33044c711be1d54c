"""The training recipes' settings, torch-free so the command line can show every default without importing torch.

`TrainConfig` is the optimisation recipe the one training loop (`training.Trainer`) runs; each model's own
defaults are named here once, and `nlp-rnn train lm|mt` shows them as its option defaults.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from .errors import UsageError

DEFAULT_SEED = 1234


@dataclass
class TrainConfig:
    """The optimisation recipe: AdamW, linear warmup then cosine decay, clipping, evaluation and checkpoints."""

    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup: int = 100
    min_lr_ratio: float = 0.1     # cosine decay ends at lr * min_lr_ratio
    clip: float = 1.0             # gradient-norm clipping (0 turns it off)
    max_steps: int | None = None
    max_time: float | None = None  # seconds
    epochs: float | None = None
    eval_every: int = 500
    save_every: int | None = None         # steps; checkpoints are also written at every evaluation
    save_every_minutes: float | None = None
    keep: int = 2                 # resumable checkpoints kept besides the best
    patience: int | None = None   # evaluations without improvement before stopping
    max_bad_steps: int = 20       # consecutive non-finite steps before giving up
    precision: str = "auto"
    seed: int = DEFAULT_SEED

    def validate(self) -> "TrainConfig":
        from .limits import check

        for name in ("lr", "weight_decay", "warmup", "min_lr_ratio", "clip", "max_steps", "max_time", "epochs",
                     "eval_every", "save_every", "save_every_minutes", "keep", "patience", "max_bad_steps", "seed"):
            check(name, getattr(self, name))
        if self.max_steps is None and self.max_time is None and self.epochs is None:
            raise UsageError("give a budget: --max-steps, --max-time or --epochs")
        return self



# Each model's training defaults (measured: BENCHMARKS.md). The CLI's defaults are these values.
LM_TRAINING = TrainConfig(lr=2e-3, warmup=0, weight_decay=0.01, clip=5.0, eval_every=500)
MT_TRAINING = TrainConfig(lr=2e-3, warmup=200, weight_decay=0.01, clip=1.0, eval_every=500)


def recipe(base: TrainConfig, **changes) -> TrainConfig:
    """`base` with the given fields changed (None leaves a field as it is), validated."""
    return replace(base, **{k: v for k, v in changes.items() if v is not None}).validate()
