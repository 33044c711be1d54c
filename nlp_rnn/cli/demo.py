"""`nlp-rnn demo`: the shipped models at work in seconds; `--retrain` rebuilds them from corpora/."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.panel import Panel
from rich.table import Table

from ..errors import UsageError
from . import STARTED
from .common import Json, Threads, examples, info, out_console, print_json, setup, state, styled, warn

DEMO_SENTENCES = {
    ("en", "es"): ["Where is the train station?", "I would like a cup of coffee, please.",
                   "The hidden state works like a short memory."],
    ("es", "en"): ["¿Dónde está la estación de tren?", "Mañana vamos a la playa con mis hermanos.",
                   "La red aprende a predecir el siguiente carácter."],
}
DEMO_PROMPTS = {"en": "The old lighthouse keeper", "es": "Había una vez"}
DEMO_TYPING = {"en": "The network learns from exam", "es": "Mañana por la mañ"}


def demo(
    retrain: Annotated[bool, typer.Option(
        "--retrain", help="Retrain every shipped model (with --data: from the Tatoeba pairs; without: from "
                          "corpora/ alone, demonstration quality only).")] = False,
    out: Annotated[Optional[Path], typer.Option("-o", "--out", help="With --retrain: where to write the models "
                                                                  "(each replaces only a model nlp-rnn wrote).")] = None,
    data: Annotated[Optional[Path], typer.Option(
        "--data", help="With --retrain: a folder holding the Tatoeba English–Spanish pairs (spa.txt from "
                       "https://www.manythings.org/anki/).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the generated paragraphs.")] = 1,
    as_json: Json = False,
    threads: Threads = None,
):
    """Translate both ways, generate a paragraph, complete a phrase, and show the models' test metrics."""
    if retrain:
        return _retrain(out, data)
    if out is not None or data is not None:
        raise UsageError("-o and --data go with --retrain")
    from ..service import Service

    service = Service.shipped(device=setup(threads, "cpu"))
    report: dict = {"translations": [], "generated": {}, "completions": {}, "metrics": []}
    for (src, tgt), sentences in DEMO_SENTENCES.items():
        for t in service.translate(sentences, direction=f"{src}-{tgt}", beam=5):
            report["translations"].append({"direction": f"{src}→{tgt}", "source": t.source, "translation": t.text})
    for lang in ("en", "es"):
        gen = service.generate(DEMO_PROMPTS[lang], lang, 240, temperature=0.7, seed=seed)
        report["generated"][lang] = DEMO_PROMPTS[lang] + "".join(gen.pieces)
        report["completions"][lang] = {"typed": DEMO_TYPING[lang], **service.complete(DEMO_TYPING[lang], lang)}
    report["metrics"] = [{"model": m["name"], **m["metrics"]} for m in service.describe()]
    report["seconds"] = round(time.monotonic() - STARTED, 2)  # the whole command, imports and loading included
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


def _retrain(out: Optional[Path], data: Optional[Path]) -> None:
    """Run every recipe through this same CLI, then publish each final model with its metrics and card."""
    from ..atomic import make_parents
    from ..defaults import CORPORA, recipes
    from ..publish import publish
    from ..tatoeba import find_tsv, prepare
    from . import app

    if out is None:
        raise UsageError("--retrain needs -o DIR (the shipped models are only replaced if you name checkpoints/)")
    source = find_tsv(data) if data is not None else None
    if source is None:
        warn("no --data: retraining on corpora/ alone gives demonstration quality only (pass --data DIR with the "
             "Tatoeba spa.txt for the real models)")
    make_parents(out / "x")
    total = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=".nlp-rnn-retrain-", dir=out) as runs:
        prepared = prepare(source, Path(runs) / "data", CORPORA) if source is not None else None
        plan = recipes(data=prepared)
        for recipe in plan:
            for stage in [*recipe.get("stages", []), recipe]:  # earlier stages train what a later one starts from
                args = [str(Path(runs) / a[4:]) if a.startswith("RUN:") else a for a in stage["args"]]
                info(f"── {stage['name']}: nlp-rnn {' '.join(args[:2])} …")
                app(args=(["--quiet"] if state.quiet else []) + args + ["-o", str(Path(runs) / stage["name"])],
                    prog_name="nlp-rnn", standalone_mode=False)
            run_dir = Path(runs) / recipe["name"]
            metrics = publish(run_dir, out / recipe["name"], recipe, recipe["args"], average=recipe.get("average", 0))
            info(f"   {recipe['name']}: {metrics}")
    info(f"retrained {len(plan)} models into {out} in {time.perf_counter() - total:.0f} s")


def register(app: typer.Typer) -> None:
    app.command("demo", epilog=examples("nlp-rnn demo", "nlp-rnn demo --json",
                                        "nlp-rnn demo --retrain --data ~/tatoeba -o checkpoints"))(demo)
