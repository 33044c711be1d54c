"""Every command documents itself: a help line for every option and argument, examples in every command's help,
shell completion from Typer, and every command named in the README."""
from __future__ import annotations

from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from nlp_rnn.cli import app

runner = CliRunner()
ROOT = typer.main.get_command(app)


def _commands(group=ROOT, prefix=()):
    for name, command in sorted(group.commands.items()):
        if hasattr(command, "commands"):  # a group (typer vendors its own click, so no isinstance)
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


COMMANDS = list(_commands())


@pytest.mark.parametrize("path,command", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_option_has_a_help_line_and_the_command_shows_examples(path, command):
    missing = [p.name for p in command.params if not (getattr(p, "help", None) or "").strip()
               and p.name not in ("help",)]
    assert not missing, f"{' '.join(path)}: options without help: {missing}"
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Examples:" in result.stdout and f"nlp-rnn {' '.join(path)}" in result.stdout


def test_shell_completion_is_offered():
    result = runner.invoke(app, ["--show-completion", "bash"], prog_name="nlp-rnn")
    assert result.exit_code == 0 and "complete -o default -F" in result.stdout


def test_every_command_appears_in_the_readme():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    for path, _ in COMMANDS:
        assert f"nlp-rnn {' '.join(path)}" in readme, " ".join(path)
