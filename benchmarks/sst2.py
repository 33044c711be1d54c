"""SST-2 sentence sentiment with `train clf`, beside the TF-IDF + logistic regression peer (`sst2_tfidf.py`).

Each recipe is the library call behind `nlp-rnn train clf` (the same options; `command` in the printed result is
the equivalent command line), trained within a time budget on one thread. The best checkpoint is chosen on a
validation slice carved from train.tsv, never on dev, the way `sst2_tfidf.py` chooses its C: 5% of the train rows
of at least 10 words (sentence-like, as dev is) are held out, and since SST-2's train rows are phrases of the same
sentences, every train row that lies inside a held-out row or contains one is left out of training (`fit.tsv` and
`val.tsv` are written beside the run). The chosen checkpoint is scored once on dev.tsv. Prints `RESULT {json}`.

Budgets are CPU seconds of the training process by default (`--clock cpu`: the Trainer's clock reads the process's
CPU time, so a run on a shared machine still gets its full budget of one core); `--clock wall` is what
`train clf --max-time` does. Pin each run to one core:

    taskset -c 1 .venv/bin/python -m benchmarks.sst2 run articles --budget 900 --out /tmp/sst2
    taskset -c 1 .venv/bin/python -m benchmarks.sst2 run best --budget 900 --out /tmp/sst2
    taskset -c 1 .venv/bin/python -m benchmarks.sst2 latency /tmp/sst2/best/model
    taskset -c 1 .venv/bin/python -m benchmarks.sst2 peer        # sst2_tfidf.py from /work/peers-venv

`benchmarks/sst2.sh` runs all four.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

DATA = Path(os.environ.get("SST2_DIR", Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"))
PEER_PYTHON = os.environ.get("PEER_PYTHON", "/work/peers-venv/bin/python")

# name → `train clf` options (model, data and training); everything not named is the command's default
RECIPES = {
    # the articles' many-to-one RNN: a tanh RNN of 64 units read to its last state
    "articles": {"cell": "rnn", "hidden": 64, "pooling": "last", "eval_every": 500},
    # subword tokens close to words, a bidirectional LSTM, attention pooling
    "best": {"tokenizer_type": "unigram", "vocab_size": 16000, "cell": "lstm", "hidden": 256, "embed": 128,
             "pooling": "attention", "batch_size": 64, "eval_every": 500},
    "bilstm-max": {"tokenizer_type": "unigram", "vocab_size": 16000, "cell": "lstm", "hidden": 256, "embed": 128,
                   "pooling": "max", "batch_size": 64, "eval_every": 500},
    "char-bilstm": {"cell": "lstm", "hidden": 256, "embed": 64, "pooling": "attention", "batch_size": 64,
                    "eval_every": 500},
}
MODEL_KEYS = ("cell", "layers", "hidden", "embed", "bidirectional", "pooling", "dropout")
DATA_KEYS = ("batch_size", "max_tokens", "val_fraction", "class_weights")
TOKENIZER_KEYS = {"tokenizer_type": "kind", "vocab_size": "vocab_size"}
TRAIN_KEYS = ("lr", "warmup", "weight_decay", "clip", "eval_every")


class _CpuClock:
    """The `time` module with `monotonic` (and `time`) reading this process's CPU time."""

    def __getattr__(self, name):
        return getattr(time, name)

    monotonic = staticmethod(time.process_time)
    time = staticmethod(time.process_time)


WINDOW = 10  # held-out rows are found inside longer train rows by their first WINDOW words


def carve(out: Path, fraction: float = 0.05, min_words: int = WINDOW, seed: int = 0) -> tuple[Path, Path, dict]:
    """fit.tsv and val.tsv in `out`: val is a random `fraction` of the train rows of ≥ `min_words` words; fit is
    every other row that is neither a word span of a val row nor has one as a word span."""
    import random

    lines = (DATA / "train.tsv").read_text(encoding="utf-8").splitlines()
    header, rows = lines[0], [line.split("\t") for line in lines[1:]]
    words = [r[0].split() for r in rows]
    candidates = [i for i, w in enumerate(words) if len(w) >= max(min_words, WINDOW)]
    val = sorted(random.Random(seed).sample(candidates, int(fraction * len(candidates))))
    spans = {" ".join(words[i][a:b]) for i in val for a in range(len(words[i])) for b in range(a + 1, len(words[i]) + 1)}
    starts: dict[tuple, list[list[str]]] = {}
    for i in val:
        starts.setdefault(tuple(words[i][:WINDOW]), []).append(words[i])
    held = set(val)

    def related(i: int) -> bool:
        w = words[i]
        return " ".join(w) in spans or any(w[a:a + len(v)] == v for a in range(len(w) - WINDOW + 1)
                                           for v in starts.get(tuple(w[a:a + WINDOW]), ()))

    fit = [i for i in range(len(rows)) if i not in held and not related(i)]
    out.mkdir(parents=True, exist_ok=True)
    for name, index in (("fit.tsv", fit), ("val.tsv", val)):
        (out / name).write_text(header + "\n" + "".join("\t".join(rows[i]) + "\n" for i in index), encoding="utf-8")
    return out / "fit.tsv", out / "val.tsv", {"fit_rows": len(fit), "val_rows": len(val),
                                              "left_out_related": len(rows) - len(fit) - len(val)}


def command_line(recipe: dict, fit: Path, val: Path, out: Path, budget: float, seed: int, init_lm: str | None) -> str:
    flags = [f"--{k.replace('_', '-')} {v}" for k, v in recipe.items()]
    lm = [f"--init-lm {init_lm}"] if init_lm else []
    return " ".join(["nlp-rnn train clf", str(fit), "--val", str(val), "-o", str(out), *flags, *lm,
                     f"--max-time {budget:g}s", f"--seed {seed}", "--threads 1"])


def run_recipe(name: str, budget: float, out: Path, seed: int, clock: str, init_lm: str | None) -> dict:
    import torch

    from nlp_rnn import corpora, tasks, training
    from nlp_rnn.cli.clf_cmd import CLF_TRAINING
    from nlp_rnn.configs import recipe as with_changes

    torch.set_num_threads(1)
    if clock == "cpu":
        training.time = _CpuClock()
    recipe = RECIPES[name]
    model = {k: recipe.get(k) for k in MODEL_KEYS if k in recipe}
    data = tasks.ClfData(**{k: recipe[k] for k in DATA_KEYS if k in recipe})
    plan = tasks.ClfTokenizerPlan(**{TOKENIZER_KEYS[k]: recipe[k] for k in TOKENIZER_KEYS if k in recipe})
    cfg = with_changes(CLF_TRAINING, max_time=budget, seed=seed, **{k: recipe[k] for k in TRAIN_KEYS if k in recipe})
    run_dir = out / name
    fit, val, split = carve(out / "split")
    wall, cpu = time.monotonic(), time.process_time()
    summary = tasks.train_clf(corpora.open_labelled(fit), corpora.open_labelled(val), training.Run(run_dir), model, cfg,
                              data, plan, init_lm)
    wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    dev = score_dev(run_dir / "model")
    return {"recipe": name, "budget_s": budget, "clock": clock, "seed": seed, **dev,
            "val": summary["best"], "steps": summary["steps"], "best_step": summary["best_step"],
            "epochs": round(summary["epochs"], 2), "tokens_per_s": summary["tokens_per_s"],
            "train_cpu_s": round(cpu, 1), "train_wall_s": round(wall, 1), "cpu_share": round(cpu / max(wall, 1e-9), 2),
            "options": recipe, "init_lm": init_lm, "split": split,
            "command": command_line(recipe, fit, val, run_dir, budget, seed, init_lm)}


def score_dev(model_dir: Path) -> dict:
    from nlp_rnn import corpora, tasks
    from nlp_rnn.service import Service

    service = Service(clf=[model_dir], shipped=False)
    key, clf = service.classifier()
    dev = corpora.open_labelled(DATA / "dev.tsv")
    labels = clf.meta["labels"]
    done = service.classify(dev.texts, model=key)
    scores = tasks.classification_scores([labels.index(y) for y in dev.labels],
                                         [labels.index(r["label"]) for r in done], labels)
    params = sum(p.numel() for p in clf.model.parameters())
    return {"dev_accuracy": scores["accuracy"], "dev_macro_f1": scores["macro_f1"], "dev_examples": scores["examples"],
            "params": params, "model": str(model_dir)}


def latency(model_dir: Path, sentences: int = 300, quantize: str = "none", data: Path | None = None) -> dict:
    """Milliseconds per `Service.classify([sentence])` call over dev sentences (or the texts of `data`), one thread,
    after a warm-up: wall time, and the CPU time of the calling thread (what the call costs when the core is not
    shared; on a busy machine wall time also counts the waits for the core)."""
    import torch

    from nlp_rnn import corpora
    from nlp_rnn.service import Service

    torch.set_num_threads(1)
    service = Service(clf=[model_dir], shipped=False, quantize=quantize)
    texts = corpora.open_labelled(data or DATA / "dev.tsv").texts[:sentences]
    for t in texts[:20]:
        service.classify([t])
    wall, cpu = [], []
    for t in texts:
        start, start_cpu = time.perf_counter(), time.thread_time()
        service.classify([t])
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.thread_time() - start_cpu) * 1000)
    wall.sort()
    cpu.sort()
    return {"model": str(model_dir), "quantize": quantize, "sentences": len(texts),
            "mean_chars": round(statistics.mean(len(t) for t in texts), 1),
            "ms_median": round(statistics.median(wall), 3), "ms_mean": round(statistics.mean(wall), 3),
            "ms_p90": round(wall[int(0.9 * (len(wall) - 1))], 3), "cpu_ms_median": round(statistics.median(cpu), 3),
            "cpu_ms_mean": round(statistics.mean(cpu), 3), "cpu_ms_p90": round(cpu[int(0.9 * (len(cpu) - 1))], 3),
            "threads": torch.get_num_threads()}


def peer() -> dict:
    script = Path(__file__).with_name("sst2_tfidf.py")
    cmd = [PEER_PYTHON, str(script), "--train", str(DATA / "train.tsv"), "--dev", str(DATA / "dev.tsv")]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if out.returncode != 0:
        sys.exit(f"{shlex.join(cmd)} failed:\n{out.stderr[-2000:]}")
    line = next(l for l in out.stdout.splitlines() if l.startswith("RESULT "))
    return {"recipe": "tfidf-logreg", **json.loads(line[len("RESULT "):]), "command": shlex.join(cmd)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    r = sub.add_parser("run", help="train one recipe and score it on dev")
    r.add_argument("recipe", choices=sorted(RECIPES))
    r.add_argument("--budget", type=float, default=900, help="seconds of training (CPU or wall, see --clock)")
    r.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    r.add_argument("--seed", type=int, default=1234)
    r.add_argument("--init-lm", help="start the encoder from this character LM (checkpoint or run directory)")
    r.add_argument("--out", type=Path, default=Path("/tmp/sst2"))
    lat = sub.add_parser("latency", help="per-sentence classify latency of a trained model")
    lat.add_argument("model", type=Path)
    lat.add_argument("--quantize", default="none")
    lat.add_argument("--data", type=Path, help="labelled texts to classify (default: SST-2 dev)")
    sub.add_parser("peer", help="TF-IDF + logistic regression (sst2_tfidf.py, from its own venv)")
    a = ap.parse_args()
    if a.what == "run":
        result = run_recipe(a.recipe, a.budget, a.out, a.seed, a.clock, a.init_lm)
    elif a.what == "latency":
        result = latency(a.model, quantize=a.quantize, data=a.data)
    else:
        result = peer()
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
