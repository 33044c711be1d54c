"""`nlp-rnn repl`: an interactive prompt over a language model and translators (see nlp_rnn.repl)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..errors import UsageError
from .common import DEVICE, THREADS, setup, state


def repl(
    model: Optional[Path] = typer.Option(None, "--model", "-m", metavar="PATH",
                                         help="Language model for generate/complete (default: the shipped one)."),
    mt: Optional[List[Path]] = typer.Option(None, "--mt", metavar="PATH",
                                            help="Translator checkpoint; repeat for more directions "
                                                 "(default: the shipped translators)."),
    lang: Optional[str] = typer.Option(None, "--lang", metavar="en|es", help="Language of the shipped LM to use without -m: en or es."),
    mode: Optional[str] = typer.Option(None, "--mode", metavar="MODE", help="translate, generate or complete "
                                                            "(default: translate when a translator is available)."),
    direction: Optional[str] = typer.Option(None, "--dir", metavar="SRC-TGT", help="Translation direction, e.g. es-en, or auto."),
    threads: Optional[int] = THREADS,
    device: str = DEVICE,
):
    """Interactive prompt: translate, generate or complete text line by line (:help inside for the commands)."""
    from ..repl import MODES, ReplSession, run_repl

    if model is not None and lang is not None:
        raise UsageError("--lang picks a shipped language model; leave it out when giving -m")
    if mode is not None and mode not in MODES:
        raise UsageError(f"--mode must be one of {', '.join(MODES)}, not {mode!r}")
    dev = setup(threads, device)
    session = ReplSession(lm_path=model, mt_paths=mt or None, lang=lang or "en", mode=mode, direction=direction,
                          device=dev)
    run_repl(session, debug=state.debug)


def register(app: typer.Typer) -> None:
    app.command("repl")(repl)
