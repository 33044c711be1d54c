"""The layering the README promises, checked in fresh interpreters: the library never imports a face's stack,
the command line stays quick (no torch for --help, no heavy optional stacks on import), and attention never
looks at padding."""
from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import torch

import nlp_rnn

FACES = ("nlp_rnn.cli", "nlp_rnn.repl", "nlp_rnn.server")
FACE_STACKS = ("typer", "click", "rich", "prompt_toolkit", "fastapi", "starlette", "uvicorn")


def _fresh(code: str) -> list[str]:
    """Run `code` in a new interpreter; it prints a JSON list, which is returned."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _library_modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(nlp_rnn.__path__, "nlp_rnn.")]
    return [n for n in names if not n.startswith(FACES) and n != "nlp_rnn.__main__"]


def test_the_library_imports_no_face():
    modules = _library_modules()
    assert "nlp_rnn.service" in modules and "nlp_rnn.training" in modules
    loaded = _fresh(f"import importlib, json, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
                    f"print(json.dumps([s for s in {FACE_STACKS!r} if s in sys.modules]))")
    assert loaded == []


def test_importing_the_cli_leaves_the_heavy_stacks_alone():
    heavy = ("torch", "datasets", "sacrebleu", "prompt_toolkit", "fastapi", "starlette", "uvicorn")
    loaded = _fresh(f"import json, sys\nimport nlp_rnn.cli\nprint(json.dumps([s for s in {heavy!r} if s in sys.modules]))")
    assert loaded == []


def test_no_help_page_imports_torch():
    code = """
import json, sys
import typer.main
from nlp_rnn.cli import app

def paths(group, prefix=()):
    for name, command in sorted(group.commands.items()):
        yield (*prefix, name)
        if hasattr(command, "commands"):
            yield from paths(command, (*prefix, name))

shown = 0
for p in paths(typer.main.get_command(app)):
    try:
        app(args=[*p, "--help"], prog_name="nlp-rnn", standalone_mode=False)
    except SystemExit:
        pass
    shown += 1
print(json.dumps([shown, "torch" in sys.modules]))
"""
    shown, torch_loaded = _fresh(code)
    assert shown >= 12 and not torch_loaded


def test_attention_gives_padding_no_weight():
    from nlp_rnn.models import Seq2Seq, Seq2SeqConfig

    torch.manual_seed(0)
    for attention in ("luong", "bahdanau"):
        model = Seq2Seq(Seq2SeqConfig(src_vocab=20, tgt_vocab=20, hidden=16, embed=8, layers=1,
                                      attention=attention)).eval()
        src = torch.tensor([[5, 6, 7, 8, 3], [5, 6, 3, 0, 0]])  # the second sentence is padded
        lengths = torch.tensor([5, 3])
        with torch.no_grad():
            mem, state = model.encode(src, lengths)
            y = torch.tensor([2, 2])
            for _ in range(3):
                logp, state, weights = model.step(y, state, mem)
                assert torch.all(weights[1, 3:] == 0)
                assert torch.allclose(weights.sum(-1), torch.ones(2))
                y = logp.argmax(-1)
