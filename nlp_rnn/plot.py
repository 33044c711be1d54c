"""`--plot`: loss curves of a run (training loss and validation figures from log.jsonl) as a PNG.

matplotlib is an optional extra (`pip install 'nlp-rnn[plot]'`); nothing else in the project needs it.
"""
from __future__ import annotations

import json
from pathlib import Path

from .errors import UsageError


def plot_run(run_dir: str | Path) -> Path:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'nlp-rnn[plot]'") from None
    run_dir = Path(run_dir)
    steps, losses, evals = [], [], {}
    for line in (run_dir / "log.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if rec["event"] == "StepEvent":
            steps.append(rec["step"])
            losses.append(rec["loss"])
        elif rec["event"] == "EvalEvent":
            for k, v in rec["metrics"].items():
                if k != "score" and isinstance(v, (int, float)) and ("loss" in k or "nats" in k or "bleu" in k):
                    evals.setdefault(k, []).append((rec["step"], v))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(steps, losses, label="training loss", linewidth=1)
    for k, pts in evals.items():
        target = ax.twinx() if "bleu" in k else ax
        target.plot([s for s, _ in pts], [v for _, v in pts], marker="o", label=k)
        if target is not ax:
            target.set_ylabel("BLEU")
    ax.set_xlabel("step")
    ax.set_ylabel("nats per token")
    ax.legend(loc="upper right")
    ax.set_title(run_dir.name)
    out = run_dir / "curves.png"
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
