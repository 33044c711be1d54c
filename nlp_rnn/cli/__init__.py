"""The `nlp-rnn` command line: verbs at the top, like git. Commands parse flags, call the library, render.

Every library error becomes one line on stderr and an exit code (2 usage, 1 runtime) through `App.invoke`;
`--debug` shows the traceback instead.
"""
from __future__ import annotations

import os
import sys
import time

STARTED = time.monotonic()  # `demo` reports the whole command's time from here

import typer
import typer.core

from .. import __version__
from ..errors import NlpRnnError
from .common import err_console, state, styled


class App(typer.core.TyperGroup):
    """The one error table: typed errors → one line and an exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except NlpRnnError as e:
            if state.debug:
                raise
            err_console.print(styled("error:", "bold red", str(e)), highlight=False, soft_wrap=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            if state.debug:
                raise
            err_console.print("interrupted", highlight=False)
            ctx.exit(130)
        except BrokenPipeError:
            ctx.exit(0)
        except Exception as e:  # a bug: still one line unless --debug
            if _is_cli_control(e) or state.debug:
                raise
            err_console.print(styled("error:", "bold red", f"unexpected {type(e).__name__}: {e} (rerun with --debug "
                                                           f"for the traceback)"), highlight=False, soft_wrap=True)
            ctx.exit(1)


def _is_cli_control(e: Exception) -> bool:
    """Exit, Abort and usage errors of click, or of the copy of click that newer typer releases vendor."""
    return type(e).__module__.split(".")[0] in ("click", "typer")


app = typer.Typer(cls=App, no_args_is_help=True, add_completion=True, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Recurrent neural networks for text: train, run, evaluate and serve character language "
                       "models, encoder-decoder translators and text classifiers.")


def _version(value: bool):
    if value:
        typer.echo(f"nlp-rnn {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output on stderr."),
):
    """nlp-rnn: character language models, encoder-decoder translators and text classifiers."""
    state.debug = debug or os.environ.get("NLP_RNN_DEBUG") == "1"
    state.quiet = quiet


from . import demo, eval_cmd, models_cmd, repl_cmd, tools, train  # noqa: E402  (commands register on `app`)

train.register(app)
models_cmd.register(app)
eval_cmd.register(app)
tools.register(app)
demo.register(app)
repl_cmd.register(app)
from . import serve_cmd; serve_cmd.register(app)  # noqa: E402, E702
from . import clf_cmd; clf_cmd.register(app)  # noqa: E402, E702


def main() -> None:
    """Console-script entry. `--debug` and `--quiet` are accepted anywhere on the line."""
    argv = sys.argv[1:]
    lifted = [a for a in argv if a in ("--debug", "--quiet")]
    rest = [a for a in argv if a not in ("--debug", "--quiet")]
    app(args=lifted + rest, prog_name="nlp-rnn")
