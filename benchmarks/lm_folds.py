"""Choose language-model defaults by k-fold validation over a training text (issue #18).

The text is cut into k contiguous folds (at line breaks). A run holds one fold out as its test text and trains
on the rest, exactly as `train lm` would on a user's corpus: its own validation is a few spread-out blocks of
that training text (`spread_holdout`), and the held-out fold is scored only once, at the end (exact, stateful,
batch 1). The plain PyTorch char-LSTM peer trains on the same text (all of it: it keeps no validation) and is
scored on the same fold. Rerun this whenever a default changes:

    taskset -c 0 python -m benchmarks.lm_folds run CORPUS.txt RECIPE --fold 2 --budget 900 --out DIR
    taskset -c 0 python -m benchmarks.lm_folds peer CORPUS.txt --fold 2 --budget 900 --out DIR
    taskset -c 0 python -m benchmarks.lm_folds queue CORPUS.txt --recipes default,gru-awd,peer --folds 0,2,4 ...
    python -m benchmarks.lm_folds table DIR [DIR ...]

Budgets are CPU seconds of the training process by default (`--clock cpu`; the Trainer's and the peer's clocks
are both pointed at the process's CPU time), so a run that shares its core with someone else's job still gets
its full 15 minutes of one core; `--clock wall` uses the wall clock as `train lm --max-time` does.
Each run writes DIR/RECIPE.foldI.json (test and validation scores, steps, speed) and keeps its run directory.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from nlp_rnn.data import complement, spread_holdout  # the split `train lm` itself makes

PEERS = Path(os.environ.get("PEERS", Path(__file__).resolve().parent.parent.parent / "shared" / "peers"))
PEER = PEERS / "charlm" / "lstm_baseline.py"

# Every candidate recipe: LMConfig fields, TrainConfig fields that differ from `train lm`'s, batch layout.
BASE_TRAIN = dict(lr=2e-3, warmup=0, weight_decay=0.01, clip=5.0, min_lr_ratio=0.1)
BASE_DATA = dict(batch_size=64, bptt=128)
GRU1 = dict(cell="gru", layers=1, hidden=512, embed=64)
AWD1 = dict(input_dropout=0.1, dropout=0.25, weight_drop=0.25)
RECIPES: dict[str, dict] = {
    # `train lm`'s default before issue #18 (its output dropout is now locked, one mask per sequence)
    "default": dict(model=dict(GRU1, dropout=0.1)),
    # `train lm`'s default since: dropout and DropConnect chosen by training characters per weight
    "auto": dict(model=dict(GRU1)),
    "gru-awd": dict(model=dict(GRU1, **AWD1)),
    "gru-awd-strong": dict(model=dict(GRU1, input_dropout=0.15, dropout=0.35, weight_drop=0.5)),
    "gru-awd-emb": dict(model=dict(GRU1, **AWD1, embed_dropout=0.05)),
    "gru-awd-wd": dict(model=dict(GRU1, **AWD1), train=dict(weight_decay=0.1)),
    "gru-awd-tied": dict(model=dict(GRU1, **{**AWD1, "embed": 512, "tie_weights": True})),
    "lstm-awd": dict(model=dict(GRU1, **AWD1, cell="lstm")),
    "gru-768-awd": dict(model=dict(GRU1, hidden=768, input_dropout=0.1, dropout=0.3, weight_drop=0.3)),
    "gru2-awd": dict(model=dict(cell="gru", layers=2, hidden=512, embed=128, input_dropout=0.1, layer_dropout=0.2,
                                dropout=0.2, weight_drop=0.2)),
    "lstm2-awd": dict(model=dict(cell="lstm", layers=2, hidden=512, embed=128, input_dropout=0.1, layer_dropout=0.2,
                                 dropout=0.2, weight_drop=0.2)),
    # lighter: a 15-minute run sees 7-20 epochs, not AWD-LSTM's hundreds (gru-awd underfit at 450 s)
    "lstm2": dict(model=dict(cell="lstm", layers=2, hidden=512, embed=128, input_dropout=0.1, layer_dropout=0.2,
                             dropout=0.2)),
    "gru2": dict(model=dict(cell="gru", layers=2, hidden=512, embed=128, input_dropout=0.1, layer_dropout=0.2,
                            dropout=0.2)),
    "gru-light": dict(model=dict(GRU1, dropout=0.2, weight_drop=0.1)),
}


# ---------------------------------------------------------------------------------------------- splits

def _at_line_break(text: str, pos: int) -> int:
    """The start of the line that holds `pos` (or `pos` itself when no line break is near)."""
    if pos <= 0 or pos >= len(text):
        return max(0, min(pos, len(text)))
    nl = text.rfind("\n", max(0, pos - 2000), pos)
    return nl + 1 if nl >= 0 else pos


def folds(text: str, k: int) -> list[tuple[int, int]]:
    """k contiguous (start, end) spans covering the text, cut at line breaks."""
    cuts = [0] + [_at_line_break(text, len(text) * i // k) for i in range(1, k)] + [len(text)]
    return list(zip(cuts[:-1], cuts[1:]))


def fold_texts(text: str, k: int, fold: int) -> tuple[str, str]:
    """(training text, held-out test text) for one fold."""
    a, b = folds(text, k)[fold]
    return text[:a] + text[b:], text[a:b]


def train_val(train_text: str, fraction: float = 0.05) -> tuple[str, str]:
    """`train lm`'s proposed default split of a training text: spread-out validation blocks."""
    held = spread_holdout(len(train_text), fraction)
    return ("".join(train_text[a:b] for a, b in complement(len(train_text), held)),
            "".join(train_text[a:b] for a, b in held))


# ---------------------------------------------------------------------------------------------- runs

class _CpuClock:
    """The `time` module with `monotonic` (and `time`) reading this process's CPU time."""

    def __getattr__(self, name):
        return getattr(time, name)

    monotonic = staticmethod(time.process_time)
    time = staticmethod(time.process_time)


def _train(train_text, val_text, run_dir, model_options, cfg, data):
    from nlp_rnn import tasks

    if hasattr(tasks, "LMData"):  # the library's newer signature
        return tasks.train_lm(train_text, val_text, run_dir, model_options, cfg, tasks.LMData(**data))
    return tasks.train_lm(train_text, val_text, run_dir, model_options, cfg, **data)


def _train_loss_tail(run_dir: Path, last: int = 50) -> float | None:
    """Mean training loss over the last `last` logged steps (the loss the model fits at the end)."""
    losses = []
    for line in (run_dir / "log.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if rec.get("event") == "StepEvent":
            losses.append(rec["loss"])
    return round(statistics.mean(losses[-last:]), 4) if losses else None


def run_recipe(corpus: Path, name: str, fold: int, k: int, budget: float, out: Path, seed: int, clock: str,
               eval_every: int, extras: tuple[str, ...] = ()) -> dict:
    import torch

    from nlp_rnn import training
    from nlp_rnn.checkpoint import load_checkpoint
    from nlp_rnn.evaluate import lm_metrics

    torch.set_num_threads(1)
    if clock == "cpu":
        training.time = _CpuClock()
    recipe = RECIPES[name]
    text = corpus.read_text(encoding="utf-8")
    train_text, test_text = fold_texts(text, k, fold)
    fit_text, val_text = train_val(train_text)
    cfg = training.TrainConfig(**{**BASE_TRAIN, **recipe.get("train", {})}, max_time=budget, eval_every=eval_every,
                               keep=3, seed=seed, precision="auto")
    run_dir = out / f"{name}.fold{fold}"
    wall, cpu = time.monotonic(), time.process_time()
    summary = _train(fit_text, val_text, run_dir, recipe["model"], cfg, {**BASE_DATA, **recipe.get("data", {})})
    wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    loaded = load_checkpoint(run_dir / "model", kind="lm")
    start = time.monotonic()
    test = lm_metrics(loaded.model, loaded.tokenizer, test_text)
    result = {"recipe": name, "corpus": str(corpus), "k": k, "fold": fold, "budget_s": budget, "clock": clock,
              "seed": seed, "test_nats": round(test["nats_per_char"], 4), "test_bits": round(test["bits_per_char"], 4),
              "test_chars": test["chars"], "test_unk": test["unk_chars"],
              "val_nats": (summary.get("best") or {}).get("val_nats_per_char"),
              "steps": summary["steps"], "best_step": summary["best_step"], "epochs": round(summary["epochs"], 2),
              "chars_per_s": summary["tokens_per_s"], "train_loss_end": _train_loss_tail(run_dir),
              "params": sum(p.numel() for p in loaded.model.parameters()), "cpu_share": round(cpu / max(wall, 1e-9), 2),
              "score_seconds": round(time.monotonic() - start, 1), "model": recipe["model"],
              "config": loaded.model.config.to_dict(),  # as trained: "auto" shows what it chose
              "train": {**BASE_TRAIN, **recipe.get("train", {})}, "data": {**BASE_DATA, **recipe.get("data", {})},
              "fit_chars": len(fit_text), "val_chars": len(val_text)}
    if "average" in extras:  # the mean of the last three evaluated checkpoints' weights, scored the same way
        averaged = average_checkpoints(run_dir, loaded.model, last=3)
        if averaged is not None:
            result["avg_test_nats"] = round(lm_metrics(averaged, loaded.tokenizer, test_text)["nats_per_char"], 4)
    if "dynamic" in extras:  # dynamic evaluation (`eval lm --dynamic`), its step size chosen on the run's own validation
        tuned = {lr: lm_metrics(loaded.model, loaded.tokenizer, val_text, dynamic_lr=lr)["nats_per_char"]
                 for lr in DYNAMIC_LRS}
        lr = min(tuned, key=tuned.get)
        dynamic = lm_metrics(loaded.model, loaded.tokenizer, test_text, dynamic_lr=lr)["nats_per_char"]
        result.update(dynamic_test_nats=round(dynamic, 4), dynamic_lr=lr, dynamic_val_by_lr=tuned)
    return result


def average_checkpoints(run_dir: Path, model, last: int = 3):
    """A copy of `model` holding the mean weights of the run's last `last` step checkpoints (None if fewer)."""
    import copy

    from nlp_rnn.checkpoint import load_checkpoint

    steps = sorted(p for p in (run_dir / "checkpoints").iterdir() if p.name.startswith("step-"))[-last:]
    if len(steps) < last:
        return None
    states = [load_checkpoint(p, kind="lm").model.state_dict() for p in steps]
    avg = copy.deepcopy(model)
    avg.load_state_dict({k: sum(s[k] for s in states) / len(states) for k in states[0]})
    return avg.eval()


DYNAMIC_LRS = (3e-4, 1e-3, 3e-3)


def run_peer(corpus: Path, fold: int, k: int, budget: float, out: Path, clock: str) -> dict:
    text = corpus.read_text(encoding="utf-8")
    train_text, test_text = fold_texts(text, k, fold)
    work = out / f"peer.fold{fold}"
    # the peer names its test set by the folder it is in, and scores the file as given
    (work / "test").mkdir(parents=True, exist_ok=True)
    (work / "train.txt").write_text(train_text, encoding="utf-8")
    (work / "test" / "test.txt").write_text(test_text, encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    patch = "import time; time.time = time.process_time; " if clock == "cpu" else ""

    def peer(*args) -> dict:
        code = (f"{patch}import runpy, sys; sys.argv = {[str(PEER), *args]!r}; "
                f"runpy.run_path({str(PEER)!r}, run_name='__main__')")
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        (work / f"{args[0]}.log").write_text(done.stdout + done.stderr, encoding="utf-8")
        return json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[7:])

    wall, cpu = time.monotonic(), _children_cpu()
    trained = peer("train", "--train", str(work / "train.txt"), "--out", str(work / "peer.pt"), "--budget", str(budget))
    wall, cpu = time.monotonic() - wall, _children_cpu() - cpu
    scored = peer("score", "--ckpt", str(work / "peer.pt"), "--test", str(work / "test" / "test.txt"))
    return {"recipe": "peer", "corpus": str(corpus), "k": k, "fold": fold, "budget_s": budget, "clock": clock,
            "test_nats": scored["nats_per_char"], "test_bits": scored["bits_per_char"], "test_chars": scored["predicted"],
            "test_unk": scored["dropped_unseen"], "val_nats": None, "steps": trained["steps"], "best_step": None,
            "epochs": None, "chars_per_s": trained["train_chars_per_s"], "train_loss_end": trained["final_train_loss_ema"],
            "params": trained["params"], "cpu_share": round(cpu / max(wall, 1e-9), 2), "fit_chars": len(train_text)}


def _children_cpu() -> float:
    r = os.times()
    return r.children_user + r.children_system


# ---------------------------------------------------------------------------------------------- tables

def load_results(dirs: list[Path]) -> list[dict]:
    return [json.loads(p.read_text(encoding="utf-8")) for d in dirs for p in sorted(d.glob("*.fold*.json"))]


def table(results: list[dict], folds_shown: list[int] | None = None) -> str:
    """Markdown: one row per recipe, test nats/char on each fold, mean ± sample standard deviation, vs the peer."""
    by = {}
    for r in results:
        by.setdefault(r["recipe"], {})[r["fold"]] = r
    shown = folds_shown or sorted({r["fold"] for r in results})
    peer = by.get("peer", {})
    lines = ["| recipe | " + " | ".join(f"fold {f}" for f in shown) +
             " | mean ± sd | vs peer (same folds) | own val | steps | chars/s | train loss (end) |",
             "| --- | " + " | ".join("---" for _ in shown) + " | --- | --- | --- | --- | --- | --- |"]

    def mean_sd(xs):
        return (statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0) if xs else (math.nan, 0.0)

    rows = sorted(by.items(), key=lambda kv: mean_sd([r["test_nats"] for r in kv[1].values()])[0])
    for name, runs in rows:
        have = [f for f in shown if f in runs]
        m, sd = mean_sd([runs[f]["test_nats"] for f in have])
        both = [f for f in have if f in peer]
        diff = (statistics.mean(runs[f]["test_nats"] - peer[f]["test_nats"] for f in both)
                if both and name != "peer" else None)
        avg = lambda key: statistics.mean(runs[f][key] for f in have) if all(runs[f].get(key) is not None for f in have) else None  # noqa: E731
        cells = [f"{runs[f]['test_nats']:.4f}" if f in runs else "—" for f in shown]
        fmt = lambda v, spec: "—" if v is None else format(v, spec)  # noqa: E731
        lines.append(f"| {name} | " + " | ".join(cells) + f" | **{m:.4f}** ± {sd:.4f} | {fmt(diff, '+.4f')} | "
                     f"{fmt(avg('val_nats'), '.4f')} | {fmt(avg('steps'), ',.0f')} | {fmt(avg('chars_per_s'), ',.0f')} | "
                     f"{fmt(avg('train_loss_end'), '.3f')} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- command line

def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.lm_folds", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for cmd in ("run", "peer", "queue"):
        p = sub.add_parser(cmd)
        p.add_argument("corpus", type=Path)
        if cmd == "run":
            p.add_argument("recipe", choices=sorted(RECIPES))
        if cmd == "queue":
            p.add_argument("--recipes", required=True, help="comma-separated recipe names (and `peer`)")
            p.add_argument("--folds", default="0,1,2,3,4")
        else:
            p.add_argument("--fold", type=int, required=True)
        p.add_argument("-k", type=int, default=5, help="number of folds")
        p.add_argument("--budget", type=float, default=900, help="training seconds (default 900)")
        p.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
        p.add_argument("--seed", type=int, default=1)
        p.add_argument("--eval-every", type=int, default=200)
        p.add_argument("--extras", default="", help="also score: average (last 3 checkpoints), dynamic (evaluation)")
        p.add_argument("--out", type=Path, required=True)
    t = sub.add_parser("table")
    t.add_argument("dirs", type=Path, nargs="+")
    a = ap.parse_args(argv)
    if a.cmd == "table":
        print(table(load_results(a.dirs)))
        return
    a.out.mkdir(parents=True, exist_ok=True)
    if a.cmd == "queue":  # one job at a time, each in its own process; finished jobs are skipped
        for fold in (int(f) for f in a.folds.split(",")):
            for name in a.recipes.split(","):
                if (a.out / f"{name}.fold{fold}.json").exists():
                    continue
                args = ["peer", str(a.corpus)] if name == "peer" else ["run", str(a.corpus), name]
                args += ["--fold", str(fold), "-k", str(a.k), "--budget", str(a.budget), "--clock", a.clock,
                         "--seed", str(a.seed), "--eval-every", str(a.eval_every), "--out", str(a.out)]
                if name != "peer":
                    args += ["--extras", a.extras]
                print(f"{time.strftime('%H:%M:%S')} {name} fold {fold}", flush=True)
                code = subprocess.run([sys.executable, "-m", "benchmarks.lm_folds", *args]).returncode
                print(f"{time.strftime('%H:%M:%S')} {name} fold {fold} exit {code}", flush=True)
        return
    if a.cmd == "peer":
        result = run_peer(a.corpus, a.fold, a.k, a.budget, a.out, a.clock)
        name = "peer"
    else:
        result = run_recipe(a.corpus, a.recipe, a.fold, a.k, a.budget, a.out, a.seed, a.clock, a.eval_every,
                            tuple(x for x in a.extras.split(",") if x))
        name = a.recipe
    (a.out / f"{name}.fold{a.fold}.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: result[k] for k in ("recipe", "fold", "test_nats", "val_nats", "steps", "chars_per_s",
                                             "train_loss_end", "cpu_share")}), flush=True)


if __name__ == "__main__":
    main()
