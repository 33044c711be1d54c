"""`nlp-rnn demo`: the shipped models at work in seconds; `--retrain` rebuilds them from corpora/."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Optional

import typer
from rich.panel import Panel
from rich.table import Table

from ..errors import UsageError
from .common import JSON, THREADS, info, out_console, print_json, setup, state, styled

DEMO_SENTENCES = {
    ("en", "es"): ["Where is the train station?", "I would like a cup of coffee, please.",
                   "The hidden state works like a short memory."],
    ("es", "en"): ["¿Dónde está la estación de tren?", "Mañana vamos a la playa con mis hermanos.",
                   "La red aprende a predecir el siguiente carácter."],
}
DEMO_PROMPTS = {"en": "The old lighthouse keeper", "es": "Había una vez"}
DEMO_TYPING = {"en": "The network learns from exam", "es": "Mañana por la mañ"}


def demo(
    retrain: bool = typer.Option(False, "--retrain", help="Retrain every shipped model from corpora/ (about 10 minutes)."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="With --retrain: where to write the models."),
    seed: int = typer.Option(1, "--seed"),
    as_json: bool = JSON,
    threads: Optional[int] = THREADS,
):
    """Translate both ways, generate a paragraph, complete a phrase, and show the models' test metrics."""
    if retrain:
        return _retrain(out)
    if out is not None:
        raise UsageError("-o goes with --retrain")
    from ..checkpoint import load_checkpoint
    from ..defaults import default_lm, default_mt
    from ..sampling import Autocompleter, generate
    from ..search import translate_all

    dev = setup(threads, "cpu")
    report: dict = {"translations": [], "generated": {}, "completions": {}, "metrics": []}
    start = time.perf_counter()
    for (src, tgt), sentences in DEMO_SENTENCES.items():
        loaded = load_checkpoint(default_mt(src, tgt), kind="mt", device=dev)
        hyps = translate_all(loaded.model, loaded.tokenizers["src_tokenizer"], loaded.tokenizers["tgt_tokenizer"],
                             sentences, beam=5)
        for s, h in zip(sentences, hyps):
            report["translations"].append({"direction": f"{src}→{tgt}", "source": s, "translation": h.text})
        report["metrics"].append({"model": f"mt-{src}-{tgt}", **loaded.meta.get("test_metrics", {})})
    for lang in ("en", "es"):
        loaded = load_checkpoint(default_lm(lang), kind="lm", device=dev)
        prompt = DEMO_PROMPTS[lang]
        report["generated"][lang] = prompt + "".join(generate(loaded.model, loaded.tokenizer, prompt, 240,
                                                              temperature=0.7, seed=seed))
        ac = Autocompleter(loaded.model, loaded.tokenizer, k=3)
        ac.update(DEMO_TYPING[lang])
        report["completions"][lang] = {"typed": DEMO_TYPING[lang], **ac.suggest()}
        report["metrics"].append({"model": f"lm-{lang}", **loaded.meta.get("test_metrics", {})})
    report["seconds"] = round(time.perf_counter() - start, 2)
    if as_json:
        print_json(report)
        return
    _render(report)


def _render(report: dict) -> None:
    t = Table(title="Translation (shipped models, beam 5)", show_lines=False)
    t.add_column("")
    t.add_column("source")
    t.add_column("translation")
    for r in report["translations"]:
        t.add_row(r["direction"], r["source"], r["translation"])
    out_console.print(t)
    for lang, text in report["generated"].items():
        out_console.print(Panel(text.strip(), title=f"Generated ({lang}, temperature 0.7)", expand=False))
    for lang, c in report["completions"].items():
        comps = ", ".join(f"{s['text']} {s['prob']:.0%}" for s in c["completions"])
        nxt = ", ".join(f"{s['text']} {s['prob']:.0%}" for s in c["next_words"])
        out_console.print(styled("Typing", "bold", f"{c['typed']!r} → completions: {comps}; next words: {nxt}"))
    m = Table(title="Shipped models on the corpora's test splits")
    for col in ("model", "BLEU", "chrF", "bits/char"):
        m.add_column(col, justify="right" if col != "model" else "left")
    for r in report["metrics"]:
        m.add_row(r["model"], str(r.get("test_bleu", "")), str(r.get("test_chrf", "")), str(r.get("test_bits_per_char", "")))
    out_console.print(m)
    out_console.print(f"done in {report['seconds']} s — try `nlp-rnn repl`, or `nlp-rnn --help`")


def _retrain(out: Optional[Path]) -> None:
    """Run every recipe through this same CLI, then publish each final model with its metrics and card."""
    from ..defaults import recipes
    from ..publish import publish
    from . import app

    if out is None:
        raise UsageError("--retrain needs -o DIR (the shipped models are only replaced if you name checkpoints/)")
    if not out.parent.is_dir():
        raise UsageError(f"-o {out}: parent directory {out.parent} does not exist")
    out.mkdir(exist_ok=True)
    total = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="nlp-rnn-retrain-", dir=out) as runs:
        for recipe in recipes():
            run_dir = Path(runs) / recipe["name"]
            args = (["--quiet"] if state.quiet else []) + recipe["args"] + ["-o", str(run_dir)]
            info(f"── {recipe['name']}: nlp-rnn {' '.join(recipe['args'][:2])} … ({recipe['args'][recipe['args'].index('--max-time') + 1]})")
            app(args=args, prog_name="nlp-rnn", standalone_mode=False)
            metrics = publish(run_dir, out / recipe["name"], recipe, recipe["args"])
            info(f"   {recipe['name']}: {metrics}")
    info(f"retrained {len(recipes())} models into {out} in {time.perf_counter() - total:.0f} s")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
