"""What a sentence goes through before and after the translator, and how much to trust what comes out.

    source ──prepare──▶ model text ──search──▶ hypothesis ──finish──▶ translation (+ confidence)

`prepare` folds ALL CAPS to sentence case (a translator reads capitals as rare pieces and answers with noise;
the output is put back in capitals) and replaces protected spans with placeholders the model copies (spans.py).
`finish` undoes both. `confidence` turns what the search knows — the mean log-probability per target token, the
length ratio, lost spans — into a number in [0, 1] through a logistic calibration fitted on a dev split
(`Calibration.fit`), saved with the model.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Sequence

from .spans import Masked, mask, unmask


@dataclass
class Unit:
    """One sentence ready for the model."""

    source: str
    text: str                      # what the model reads
    masked: Masked | None = None   # its placeholders, when the model knows them
    shouted: bool = False          # written in capitals: translated in sentence case, answered in capitals


def shouted(text: str) -> bool:
    """ALL CAPS: at least four letters, and at most one in ten of them lower case."""
    letters = [ch for ch in text if ch.isalpha()]
    return len(letters) >= 4 and sum(ch.islower() for ch in letters) * 10 <= len(letters) and any(
        ch.isupper() for ch in letters)


def sentence_case(text: str) -> str:
    """Lower case with a capital at the start of each sentence ('WHERE IS IT? HERE.' → 'Where is it? Here.')."""
    out, start = [], True
    for ch in text.lower():
        if start and ch.isalpha():
            out.append(ch.upper())
            start = False
        else:
            out.append(ch)
        if ch in ".!?¿¡\n":
            start = True
    return "".join(out)


def prepare(sentence: str, placeholders: bool, keep: Sequence[tuple[int, int]] = ()) -> Unit:
    """The model's input for `sentence`: spans masked (if the model has placeholders), capitals folded. `keep`
    lists character ranges to protect as well (a document's inline markup)."""
    masked = mask(sentence, list(keep)) if placeholders else None
    text = masked.text if masked is not None else sentence
    loud = shouted(sentence)
    return Unit(sentence, sentence_case(text) if loud else text, masked, loud)


@dataclass
class Finished:
    text: str
    missing: list[str] = field(default_factory=list)   # spans the model lost (appended at the end)


def finish(unit: Unit, hypothesis: str) -> Finished:
    """The translation as the user sees it: capitals restored, placeholders replaced by their spans."""
    text = hypothesis.upper() if unit.shouted else hypothesis
    if unit.masked is None:
        return Finished(text)
    restored = unmask(text, unit.masked)
    return Finished(restored.text, restored.missing)


# ---------------------------------------------------------------------------------------------- confidence

def features(score: float, tgt_tokens: int, src_tokens: int, missing: int) -> list[float]:
    """[mean log-probability per target token (EOS included), |log length ratio|, spans lost]."""
    return [score / max(1, tgt_tokens + 1), abs(math.log((tgt_tokens + 1) / (src_tokens + 1))), float(missing)]


@dataclass
class Calibration:
    """P(a good translation | features) = sigmoid(bias + weights · features), fitted on a dev split; a model
    without one uses DEFAULT, fitted on the shipped en→es translator's dev split."""

    weights: list[float]
    bias: float
    good_chrf: float = 50.0   # what counted as good when it was fitted
    fitted_on: str = ""

    def __call__(self, x: Sequence[float]) -> float:
        z = self.bias + sum(w * v for w, v in zip(self.weights, x))
        return 1 / (1 + math.exp(-max(-30.0, min(30.0, z))))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "Calibration":
        if not isinstance(d, dict):
            return DEFAULT
        try:
            cal = cls([float(w) for w in d["weights"]], float(d["bias"]), float(d.get("good_chrf", 50.0)),
                      str(d.get("fitted_on", "")))
        except (KeyError, TypeError, ValueError):
            return DEFAULT
        return cal if len(cal.weights) == 3 and all(map(math.isfinite, [*cal.weights, cal.bias])) else DEFAULT

    @classmethod
    def fit(cls, x: Sequence[Sequence[float]], good: Sequence[bool], good_chrf: float, fitted_on: str,
            steps: int = 500, l2: float = 1e-3) -> "Calibration":
        """Logistic regression by Newton's method (three features: a few hundred steps of 3×3 algebra)."""
        import numpy as np

        X = np.hstack([np.ones((len(x), 1)), np.asarray(x, dtype=float)])
        y = np.asarray(good, dtype=float)
        w = np.zeros(X.shape[1])
        for _ in range(steps):
            p = 1 / (1 + np.exp(-np.clip(X @ w, -30, 30)))
            grad = X.T @ (p - y) + l2 * w
            hess = (X * (p * (1 - p))[:, None]).T @ X + l2 * np.eye(X.shape[1])
            step = np.linalg.solve(hess, grad)
            w -= step
            if np.abs(step).max() < 1e-8:
                break
        return cls([round(float(v), 6) for v in w[1:]], round(float(w[0]), 6), good_chrf, fitted_on)


DEFAULT = Calibration([4.0, -1.0, -2.0], 2.0, 50.0, "a generic guess (no calibration saved with the model)")
