"""Turn a finished training run into a shipped model: the chosen weights (optionally the average of the last
checkpoints) stored as fp16, its test metrics measured on those very weights, and a model card."""
from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import torch

from .atomic import atomic_dir
from .checkpoint import load_checkpoint, read_config, read_pointer, resolve_model_dir, save_checkpoint
from .corpora import iter_text_chunks, read_pairs
from .evaluate import lm_metrics, mt_scores
from .search import translate_all

MT_TEST_BEAM = 5
KEYSTROKE_LINES = 1000  # lines of held-out text typed to measure keystroke savings (top 3)
TATOEBA = ("Tatoeba English–Spanish sentence pairs (tatoeba.org and its contributors, via www.manythings.org/anki), "
           "CC-BY 2.0 FR")


def measure_test_metrics(model_dir: str | Path, recipe: dict) -> dict:
    """What a model card records: on the project's own test text (`test_*`, recomputed by the tests) and, when
    the recipe trained on Tatoeba, on the held-out Tatoeba split (`heldout_*`)."""
    loaded = load_checkpoint(model_dir, kind=recipe["kind"])
    out = _metrics(loaded, recipe, recipe["test"], "test")
    if recipe.get("heldout"):
        out.update(_metrics(loaded, recipe, recipe["heldout"], "heldout"))
    return out


def _metrics(loaded, recipe: dict, path: str, prefix: str) -> dict:
    if recipe["kind"] == "lm":
        m = lm_metrics(loaded.model, loaded.tokenizer, iter_text_chunks(path))
        out = {f"{prefix}_bits_per_char": round(m["bits_per_char"], 4),
               f"{prefix}_nats_per_char": round(m["nats_per_char"], 4), f"{prefix}_chars": m["chars"]}
        if prefix == "heldout":
            from .keystrokes import measure_file

            ks = measure_file(loaded.model, loaded.tokenizer, path, top=3, max_lines=KEYSTROKE_LINES)
            out.update({f"{prefix}_keystroke_savings": round(ks.ksr, 4), f"{prefix}_keystroke_lines": ks.lines})
        return out
    src_col, tgt_col = (0, 1) if recipe["src"] == "en" else (1, 0)
    pairs = read_pairs(path, src_col, tgt_col).pairs
    hyps = translate_all(loaded.model, loaded.tokenizers["src_tokenizer"], loaded.tokenizers["tgt_tokenizer"],
                         [s for s, _ in pairs], beam=MT_TEST_BEAM)
    scores = mt_scores([h.text for h in hyps], [t for _, t in pairs])
    return {f"{prefix}_bleu": scores["bleu"], f"{prefix}_chrf": scores["chrf"], f"{prefix}_sentences": len(pairs),
            f"{prefix}_beam": MT_TEST_BEAM, "bleu_signature": scores["signatures"]["bleu"]}


def averaged(run_dir: Path, last: int):
    """The run's best checkpoint with its weights replaced by the mean of the last `last` checkpoints it
    recorded (checkpoint averaging: a cheap ensemble of one run's nearby points)."""
    from .rundir import RunDir

    best = resolve_model_dir(run_dir)
    loaded = load_checkpoint(best)
    names = RunDir(run_dir, True).recorded()[-last:]
    states = [load_checkpoint(run_dir / "checkpoints" / n).model.state_dict() for n in names]
    mean = {k: torch.stack([s[k].float() for s in states]).mean(0) for k in states[0]}
    loaded.model.load_state_dict(mean)
    loaded.meta["averaged"] = names
    return loaded


def publish(run_dir: str | Path, dest: str | Path, recipe: dict, command: list[str], average: int = 0) -> dict:
    """Write the run's final model (or the average of its last `average` checkpoints) to `dest` as fp16, with
    its measured test metrics in config.json and a README card. Returns the metrics."""
    run_dir = Path(run_dir)
    loaded = averaged(run_dir, average) if average > 1 else load_checkpoint(resolve_model_dir(run_dir))
    meta = {**loaded.meta, "command": [_rel(a, recipe) for a in command]}
    staging = run_dir / "publish"
    if staging.exists():
        shutil.rmtree(staging)
    # fp16 on disk, widened at load
    save_checkpoint(staging, loaded.model.half(), loaded.tokenizers, meta, shortlist=loaded.shortlist)
    metrics = measure_test_metrics(staging, recipe)
    meta["test_metrics"] = metrics
    save_checkpoint(staging, load_checkpoint(staging).model.half(), loaded.tokenizers, meta, shortlist=loaded.shortlist)
    config = read_config(staging)
    with atomic_dir(Path(dest)) as tmp:
        for item in staging.iterdir():
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, tmp / item.name)
        (tmp / "README.md").write_text(model_card(recipe, config, metrics, meta["command"], run_dir),
                                       encoding="utf-8")
    shutil.rmtree(staging)
    return metrics


def model_card(recipe: dict, config: dict, metrics: dict, command: list[str], run_dir: Path) -> str:
    """The README of a shipped model: what it is, what it was trained on (with attribution), how, and how well."""
    m, meta = config["model"], config["meta"]
    summary = _summary(run_dir)
    if recipe["kind"] == "lm":
        what = f"Character-level language model ({recipe['lang']})"
        arch = f"{m['cell']} {m['layers']}×{m['hidden']}, embedding {m['embed']}"
        figures = [f"{metrics['test_bits_per_char']} bits/char on `{_rel(recipe['test'])}` ({metrics['test_chars']:,} "
                   f"characters of the project's own prose)"]
        if "heldout_bits_per_char" in metrics:
            figures.append(f"{metrics['heldout_bits_per_char']} bits/char and keystroke savings "
                           f"{metrics['heldout_keystroke_savings']:.1%} (top 3 suggestions, "
                           f"{metrics['heldout_keystroke_lines']:,} lines) on held-out Tatoeba sentences")
    else:
        what = f"Translator {recipe['src']}→{recipe['tgt']}"
        arch = (f"{m['cell']} encoder-decoder, {m['layers']} layers, hidden {m['hidden']}, embedding {m['embed']}, "
                f"{'bidirectional' if m['bidirectional'] else 'unidirectional'} encoder, attention {m['attention']}")
        figures = [f"BLEU {metrics['test_bleu']}, chrF {metrics['test_chrf']} on `{_rel(recipe['test'])}` "
                   f"({metrics['test_sentences']} sentences written for the project)"]
        if "heldout_bleu" in metrics:
            figures.append(f"BLEU {metrics['heldout_bleu']}, chrF {metrics['heldout_chrf']} on the held-out Tatoeba "
                           f"test split ({metrics['heldout_sentences']:,} pairs)")
        figures.append(f"beam {MT_TEST_BEAM}, detokenized sacreBLEU `{metrics['bleu_signature']}`")
    data = (f"{TATOEBA}, split by `nlp_rnn.tatoeba` (seed 1; pairs sharing a sentence stay on one side, and held-out "
            f"pairs with a near-duplicate in training — the same words up to case, accents, punctuation, numbers, "
            f"contractions and recurring names — move to training; DATA below is the folder `nlp-rnn demo --retrain "
            f"--data` prepares), plus the project's own `corpora/`"
            if recipe.get("heldout") else
            "the project's own `corpora/` only (demonstration quality)")
    stages = [*recipe.get("stages", []), {"name": recipe["name"], "args": command}]
    cmd = "\n".join("nlp-rnn " + " ".join(shlex.quote(_rel(_run(a), recipe)) for a in st["args"]) +
                    f" -o runs/{st['name']}" for st in stages)
    notes = "".join(f"- **{title}:** {text}\n" for title, text in recipe.get("notes", {}).items())
    robust = meta.get("robustness")
    if robust:
        notes += "- **Robustness** (`python -m benchmarks.mt_robust`, beam 5, the project's own test material): " + \
                 "; ".join(f"{k} {v}" for k, v in robust.items()) + ".\n"
    averaged_note = f" Weights: the mean of checkpoints {', '.join(meta['averaged'])}." if meta.get("averaged") else ""
    shortlist = (" + `shortlist.safetensors` (the target words search considers for each source word, counted over "
                 "the training pairs; `--full-vocab` turns it off; the metrics above search the whole vocabulary)"
                 if recipe["kind"] == "mt" else "")
    return f"""# {recipe['name']}: {what}

- **Architecture:** {arch}; {_parameters(config):,} parameters, stored as fp16 (widened to fp32 when loaded).
- **Data:** {data}.
- **Test metrics:** {'; '.join(figures)}.
- **Training:** {summary}.{averaged_note}
{notes}- **Trained by** (`nlp-rnn demo --retrain{' --data DIR' if recipe.get('heldout') else ''}` runs the same recipe):

```
{cmd}
```

Format: `config.json` + `model.safetensors` + tokenizer files{shortlist}, loadable without pickle. `tests/test_shipped.py`
recomputes the metric on the project's own test text and fails if it drifts from the value recorded here.
"""


def _summary(run_dir: Path) -> str:
    import json

    path = run_dir / "summary.json"
    if not path.is_file():
        return "see the command below"
    s = json.loads(path.read_text(encoding="utf-8"))
    best = read_pointer(run_dir, "best")
    return (f"{s['steps']:,} steps ({s['epochs']:.1f} epochs) in {s['seconds'] / 60:,.0f} minutes on this project's "
            f"2-core CPU machine, stopped by {s['stop_reason']}; the best validation checkpoint "
            f"({best.name if best else 'the last'}) was kept")


def _run(arg: str) -> str:
    """A recipe's reference to an earlier stage's run (RUN:name) as the card shows it."""
    return f"runs/{arg[4:]}" if arg.startswith("RUN:") else arg


def _rel(arg: str, recipe: dict | None = None) -> str:
    """A path as a card shows it: under corpora/, or under DATA (the folder `demo --retrain --data` prepares)."""
    from .defaults import CORPORA

    if recipe and recipe.get("data_dir"):
        arg = arg.replace(recipe["data_dir"], "DATA")
    return arg.replace(str(CORPORA), "corpora")


def _parameters(config: dict) -> int:
    from .checkpoint import MODELS

    model_cls, config_cls = MODELS[config["kind"]]
    with torch.device("meta"):
        return sum(p.numel() for p in model_cls(config_cls(**config["model"])).parameters())
