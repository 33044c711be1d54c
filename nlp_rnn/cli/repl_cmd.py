"""`nlp-rnn repl`: an interactive prompt over language models and translators (see nlp_rnn.repl)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from ..errors import UsageError
from .common import Device, Threads, examples, setup, state


def repl(
    model: Annotated[Optional[Path], typer.Option(
        "--model", "-m", metavar="PATH", help="Language model for generate/complete (default: the shipped one of "
                                              "the language being typed).")] = None,
    mt: Annotated[Optional[List[Path]], typer.Option(
        "--mt", metavar="PATH", help="Translator checkpoint; repeat for more directions (default: the shipped "
                                     "translators).")] = None,
    lang: Annotated[Optional[str], typer.Option(
        "--lang", metavar="en|es", help="Always use the shipped LM of this language (default: guess per line).")] = None,
    mode: Annotated[Optional[str], typer.Option(
        "--mode", metavar="MODE", help="translate, generate or complete (default: translate when a translator "
                                       "is available).")] = None,
    direction: Annotated[Optional[str], typer.Option(
        "--dir", metavar="SRC-TGT", help="Translation direction, e.g. es-en, or auto (guess per line).")] = None,
    threads: Threads = None,
    device: Device = "auto",
):
    """Interactive prompt: translate, generate or complete text line by line (:help inside for the commands)."""
    from ..repl import MODES, ReplSession, run_repl

    if model is not None and lang is not None:
        raise UsageError("--lang picks a shipped language model; leave it out when giving -m")
    if mode is not None and mode not in MODES:
        raise UsageError(f"--mode must be one of {', '.join(MODES)}, not {mode!r}")
    dev = setup(threads, device)
    session = ReplSession(lm_path=model, mt_paths=mt or None, lang=lang, mode=mode, direction=direction, device=dev)
    run_repl(session, debug=state.debug)


def register(app: typer.Typer) -> None:
    app.command("repl", epilog=examples("nlp-rnn repl", "nlp-rnn repl --mode complete --lang es",
                                        "printf 'Where is the station?\\n' | nlp-rnn repl"))(repl)
