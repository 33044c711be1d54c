"""The REPL: ReplSession (modes, commands, :load, interruption, incremental suggestions), the prompt_toolkit edge
through a pipe input, and the `repl` command. Tiny models are trained once per module in a temporary directory."""
from __future__ import annotations

import io
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from nlp_rnn.errors import CheckpointError, UsageError
from nlp_rnn.repl import COMMANDS, ReplSession, _answer, history_file, run_repl

TEXT = "the cat sat on the mat. the dog ran to the park. a bird sang in the tree. " * 30
PAIRS = [("el gato", "the cat"), ("el perro", "the dog"), ("una casa", "a house"), ("yo como", "i eat")] * 8


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run fastest on one thread (and do not fight other tests for cores)."""
    was = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(was)


@pytest.fixture(scope="module")
def models(tmp_path_factory, one_thread):
    from nlp_rnn.tasks import LMData, TokenizerPlan, train_lm, train_mt
    from nlp_rnn.training import TrainConfig

    root = tmp_path_factory.mktemp("repl-models")
    cfg = dict(eval_every=40, warmup=1)
    lm_opts = dict(hidden=32, embed=8, dropout=0.0)
    train_lm(TEXT, TEXT[:300], root / "lm", lm_opts, TrainConfig(max_steps=40, **cfg), LMData(batch_size=4, bptt=16))
    train_lm(TEXT.upper(), TEXT[:300].upper(), root / "lm2", lm_opts, TrainConfig(max_steps=2, **cfg),
             LMData(batch_size=4, bptt=16))
    mt_opts = dict(hidden=16, embed=8, layers=1, dropout=0.0)
    char = TokenizerPlan(kind="char")
    mt_cfg = TrainConfig(max_steps=10, eval_every=10, warmup=1)
    train_mt(PAIRS, PAIRS[:4], root / "mt", mt_opts, mt_cfg, char, max_tokens=64, meta={"src_lang": "es", "tgt_lang": "en"})
    flipped = [(b, a) for a, b in PAIRS]
    train_mt(flipped, flipped[:4], root / "mt2", mt_opts, mt_cfg, char, max_tokens=64,
             meta={"src_lang": "en", "tgt_lang": "es"})
    train_mt(PAIRS, PAIRS[:4], root / "mt3", mt_opts, mt_cfg, char, max_tokens=64)  # says no languages
    return SimpleNamespace(root=root, lm=root / "lm", lm2=root / "lm2", mt=root / "mt", mt2=root / "mt2", mt3=root / "mt3")


@pytest.fixture
def session(models):
    return ReplSession(lm_path=models.lm, mt_paths=[models.mt], shipped=False, seed=0, length=30)


def one_line(text: str) -> str:
    assert text.endswith("\n") and text.count("\n") == 1, repr(text)
    return text[:-1]


# ---------------------------------------------------------------------------------------------- construction

def test_defaults_follow_the_models(models):
    s = ReplSession(lm_path=models.lm, mt_paths=[models.mt], shipped=False)
    assert (s.mode, s.direction, s.directions()) == ("translate", "es-en", ["es-en"])
    assert s.prompt_text() == "translate es-en> "
    only_lm = ReplSession(lm_path=models.lm, shipped=False)
    assert only_lm.mode == "generate" and only_lm.direction is None and only_lm.prompt_text() == "generate> "
    both = ReplSession(lm_path=models.lm, mt_paths=[models.mt, models.mt2], shipped=False, mode="complete")
    assert both.mode == "complete" and both.direction == "auto" and both.directions() == ["es-en", "en-es"]


def test_bad_construction_is_a_typed_error(models, tmp_path):
    with pytest.raises(UsageError):
        ReplSession(lm_path=models.mt, shipped=False)  # a translator given as the LM
    with pytest.raises(UsageError):
        ReplSession(mt_paths=[models.lm], shipped=False)
    with pytest.raises(CheckpointError):
        ReplSession(lm_path=tmp_path / "nope", shipped=False)
    with pytest.raises(UsageError):
        ReplSession(lm_path=models.lm, mt_paths=[models.mt], shipped=False, direction="fr-de")
    with pytest.raises(UsageError):
        ReplSession(lm_path=models.lm, shipped=False, mode="dance")
    with pytest.raises(UsageError):
        ReplSession(lm_path=models.lm, shipped=False, temperature=0)


def test_shipped_models_come_from_defaults(models, tmp_path, monkeypatch):
    ship = tmp_path / "checkpoints"
    ship.mkdir()
    shutil.copytree(models.lm / "model", ship / "lm-en")
    shutil.copytree(models.mt / "model", ship / "mt-es-en")
    shutil.copytree(models.mt2 / "model", ship / "mt-en-es")
    monkeypatch.setenv("NLP_RNN_CHECKPOINTS", str(ship))
    s = ReplSession()
    assert s.mode == "translate" and s.direction == "auto" and sorted(s.directions()) == ["en-es", "es-en"]
    assert one_line(s.run("el gato")).startswith("[es-en] ")  # auto: the language is guessed per line
    assert one_line(s.run("the cat is here")).startswith("[en-es] ")
    assert s.run(":mode generate") == "mode generate\n"
    assert s.run("the").startswith("the")
    missing = ReplSession(lang="es")  # no shipped Spanish LM here: the session still starts
    assert missing.mode == "translate"
    assert missing.run(":mode generate").startswith("mode generate (no language model")
    hint = one_line(missing.run("hola"))
    assert hint.startswith("error:") and "lm-es" in hint
    with pytest.raises(UsageError):
        ReplSession(lang="xx")


# ---------------------------------------------------------------------------------------------- modes

def test_translate_mode(session, models):
    from nlp_rnn.checkpoint import load_checkpoint
    from nlp_rnn.search import translate_all

    out = one_line(session.run("el gato"))
    mt = load_checkpoint(models.mt, kind="mt")
    want = translate_all(mt.model, mt.tokenizers["src_tokenizer"], mt.tokenizers["tgt_tokenizer"], ["el gato"], beam=5)
    assert out == want[0].text
    assert session.run(":beam 1") == "beam 1\n"
    greedy = translate_all(mt.model, mt.tokenizers["src_tokenizer"], mt.tokenizers["tgt_tokenizer"], ["el gato"], beam=1)
    assert one_line(session.run("el gato")) == greedy[0].text
    assert session.run("   ") == ""  # blank lines do nothing


def test_generate_mode_streams_a_character_at_a_time(session, models):
    from nlp_rnn.sampling import generate

    assert session.run(":mode generate") == "mode generate\n"
    pieces = list(session.handle("the ca"))
    assert pieces[0] == "the ca" and pieces[-1] == "\n"
    body = pieces[1:-1]
    assert len(body) == 30 and all(len(p) <= 1 for p in body)
    lm = session.lm()
    assert "".join(body) == "".join(generate(lm.model, lm.tokenizer, "the ca", 30, 0.8, None, None, 0))
    assert session.run("the ca") == "".join(pieces)  # :seed makes it repeatable
    session.run(":seed off")
    session.run(":len 5")
    assert len(list(session.handle("t"))) == 1 + 5 + 1
    assert session.run("x").startswith("(characters outside the model's vocabulary")


def test_complete_mode(session):
    from nlp_rnn.sampling import Autocompleter

    assert session.run(":mode complete") == "mode complete\n"
    out = session.run("the ca")
    lines = out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("completions: ") and lines[1].startswith("next words: ")
    lm = session.lm()
    ac = Autocompleter(lm.model, lm.tokenizer, k=session.k)
    ac.update("the ca")
    want = ac.suggest()
    assert lines[0] == "completions: " + ", ".join(f"{x['text']} ({x['prob']:.1%})" for x in want["completions"])
    assert all(w.split(" (")[0].startswith("ca") for w in lines[0][len("completions: "):].split(", "))


def test_literal_colon_lines_are_text(session):
    session.run(":mode generate")
    out = session.run("::hi")
    assert "\n:hi" in out and "unknown command" not in out  # ':' is not in the vocabulary: a note, then the text


# ---------------------------------------------------------------------------------------------- commands

GOOD = [
    (":temp 1.5", "temperature", 1.5), (":temp 0.01", "temperature", 0.01),
    (":topk 10", "top_k", 10), (":topk 0", "top_k", None), (":topk off", "top_k", None),
    (":topp 0.9", "top_p", 0.9), (":topp 1", "top_p", 1.0), (":topp off", "top_p", None),
    (":beam 1", "beam", 1), (":beam 8", "beam", 8), (":len 1", "length", 1), (":len 500", "length", 500),
    (":mode generate", "mode", "generate"), (":mode c", "mode", "complete"), (":MODE Translate", "mode", "translate"),
    (":dir es-en", "direction", "es-en"), (":dir es→en", "direction", "es-en"), (":dir auto", "direction", "auto"),
    (":seed 7", "seed", 7), (":seed off", "seed", None), (":temperature 2", "temperature", 2.0),
]


@pytest.mark.parametrize("line,attr,value", GOOD)
def test_good_commands_change_settings(session, line, attr, value):
    out = one_line(session.run(line))
    assert getattr(session.settings, attr) == value
    assert out and "error" not in out


BAD = [":temp 0", ":temp -1", ":temp abc", ":temp nan", ":temp inf", ":temp 1 2",
       ":topk -1", ":topk 2.5", ":topk many", ":topp 0", ":topp 1.5", ":topp -0.1", ":topp x",
       ":beam 0", ":beam -3", ":beam x", ":len 0", ":len -1", ":len 1e3", ":seed x",
       ":mode dance", ":dir fr-de", ":dir xx", ":frobnicate", ":", ":load",
       ":load /definitely/not/here", ":help me", ":help temp 2"]


@pytest.mark.parametrize("line", BAD)
def test_bad_commands_hint_on_one_line_and_keep_the_session(session, line):
    before = vars(session.settings).copy()
    out = one_line(session.run(line))
    assert out
    assert vars(session.settings) == before
    assert not session.done
    assert one_line(session.run("el gato")) is not None  # still translating


def test_hints_name_the_command(session):
    assert ":temp" in session.run(":temp 0")
    assert ":help" in session.run(":frobnicate")
    assert "es-en" in session.run(":dir fr-de")  # says what is available
    assert session.run(":load /nope").startswith("error: ")


def test_bare_setting_commands_show_the_value(session):
    assert session.run(":temp") == "temperature 0.8\n"
    assert session.run(":topk") == "top-k off\n"
    assert session.run(":beam") == "beam 5\n"
    assert session.run(":dir").startswith("direction es-en")
    assert one_line(session.run(":mode")).startswith("mode translate")


def test_help_info_quit(session, models):
    helptext = session.run(":help")
    for name in COMMANDS:
        assert f":{name}" in helptext
    assert session.run(":?") == helptext
    assert one_line(session.run(":help temp")).startswith(":temp X")
    assert one_line(session.run(":help :load")).startswith(":load PATH")
    info = session.run(":info")
    assert "translate" in info and str(models.lm) in info and str(models.mt) in info and "temperature 0.8" in info
    assert "not loaded yet" in info
    session.run("el gato")
    assert "loaded)" in session.run(":info")
    assert not session.done
    assert session.run(":quit") == ""
    assert session.done
    assert ReplSession(lm_path=models.lm, shipped=False).run(":q") == "" 


def test_load_language_model(session, models):
    session.run(":mode generate")
    first = session.lm()
    out = one_line(session.run(f":load {models.lm2}"))
    assert "language model" in out and str(models.lm2) in out
    assert session.lm() is not first
    assert session.lm().tokenizer.encode("A") != [1]  # the upper-case model is now the one in use
    assert session.run("THE").startswith("THE")
    assert session.suggestions("TH")["completions"] is not None


def test_load_translator_registers_its_direction(session, models):
    out = one_line(session.run(f":load {models.mt2}"))
    assert "en-es" in out
    assert session.directions() == ["es-en", "en-es"] and session.direction == "en-es"
    assert session.run(":dir es-en") == "direction es-en\n"
    assert session.run(":dir en-es") == "direction en-es\n"
    assert session.run(":dir auto") == "direction auto\n"
    # a translator without languages in its meta replaces the current direction's
    session.run(":dir es-en")
    old = session.translator("es-en")
    out = one_line(session.run(f":load '{models.mt3}'"))
    assert "es-en" in out and "replaces" in out
    assert session.translator("es-en") is not old and session.directions() == ["es-en", "en-es"]
    assert one_line(session.run("el gato")) is not None


def test_load_without_any_translator_then_translate(models):
    s = ReplSession(lm_path=models.lm, shipped=False)
    assert s.run(":mode translate").startswith("mode translate (no translator")
    assert one_line(s.run("el gato")).startswith("error: no translator")
    assert one_line(s.run(":dir es-en")).startswith("no translator")
    s.run(f":load {models.mt3}")  # no languages and no current direction
    assert s.directions() == ["src-tgt"] and s.direction == "src-tgt"
    assert one_line(s.run("el gato")) is not None


def test_load_wrong_things(session, models, tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    for path in (tmp_path, tmp_path / "missing", models.root / "lm" / "log.jsonl"):
        out = one_line(session.run(f":load {path}"))
        assert out.startswith("error: ")
    assert session.directions() == ["es-en"]


# ---------------------------------------------------------------------------------------------- interruption

def test_consumer_interrupts_streaming_and_session_survives(session):
    session.run(":mode generate")
    session.run(":len 1000")
    was = torch.backends.mkldnn.enabled
    it = session.handle("the")
    got = []
    with pytest.raises(KeyboardInterrupt):
        for piece in it:
            got.append(piece)
            if len(got) == 6:
                raise KeyboardInterrupt  # what Ctrl-C does to the loop that prints
    it.close()
    assert len(got) == 6
    assert torch.backends.mkldnn.enabled == was  # the generator's context was unwound
    session.run(":len 12")
    assert len(list(session.handle("the"))) == 1 + 12 + 1
    assert one_line(session.run(":mode translate")) and one_line(session.run("el gato")) is not None


class _Hooked:
    """A stepper whose calls go through a hook; everything else is the real stepper's."""

    def __init__(self, real, hook):
        self._real, self._hook = real, hook

    def __call__(self, *args, **kwargs):
        return self._hook(self._real, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._real, name)


def route_steps(monkeypatch, model, hook):
    """Send every recurrent step through hook(real, *args): whether the library steps with `model.step` or with
    the fast `Stepper` that sampling builds. Patch before an Autocompleter is made (it keeps its stepper)."""
    from nlp_rnn import sampling

    monkeypatch.setattr(model, "step", _Hooked(model.step, hook))
    real_stepper = sampling.Stepper
    monkeypatch.setattr(sampling, "Stepper", lambda *a, **kw: _Hooked(real_stepper(*a, **kw), hook))


def test_interrupt_inside_the_model_stops_only_the_generation(session, monkeypatch):
    session.run(":mode generate")
    session.run(":len 500")
    calls = {"n": 0}

    def hook(real, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 10:
            raise KeyboardInterrupt  # Ctrl-C arrives while torch is busy
        return real(*args, **kwargs)

    route_steps(monkeypatch, session.lm().model, hook)
    written: list[str] = []
    _answer(session, "the", written.append, debug=False)
    text = "".join(written)
    assert calls["n"] == 10
    assert text.startswith("the") and text.endswith("\n(stopped)\n") and len(text) < 100
    written.clear()
    session.run(":len 20")
    _answer(session, "the", written.append, debug=False)
    text = "".join(written)
    assert "(stopped)" not in text and text.startswith("the") and text.endswith("\n") and len(text) <= 3 + 20 + 1


def test_unexpected_errors_are_one_line(session, monkeypatch):
    def boom(text):
        raise RuntimeError("kaput")
        yield  # pragma: no cover

    monkeypatch.setattr(session, "_translate", boom)
    written: list[str] = []
    _answer(session, "el gato", written.append, debug=False)
    assert "".join(written) == "error: unexpected RuntimeError: kaput\n"
    with pytest.raises(RuntimeError):
        _answer(session, "el gato", written.append, debug=True)


# ---------------------------------------------------------------------------------------------- as you type

def test_suggestions_step_once_per_keystroke(session, monkeypatch):
    from nlp_rnn.sampling import Autocompleter

    lm = session.lm()
    counts = {"steps": 0, "searching": False}

    def hook(real, *args, **kwargs):
        if not counts["searching"]:
            counts["steps"] += 1
        return real(*args, **kwargs)

    route_steps(monkeypatch, lm.model, hook)
    ac = session.autocompleter()
    real_search = ac._complete

    def search(*a, **kw):  # the beam search over the next characters is not part of keeping up with the text
        counts["searching"] = True
        try:
            return real_search(*a, **kw)
        finally:
            counts["searching"] = False

    monkeypatch.setattr(ac, "_complete", search)

    def typed(text: str) -> int:
        counts["steps"] = 0
        session.suggestions(text)
        return counts["steps"]

    assert typed("the c") == 5
    assert typed("the ca") == 1
    assert typed("the cat") == 1
    assert typed("the cat ") == 1
    assert typed("the cat") == 0  # backspace pops a saved state
    assert typed("the cap") == 1  # an edit of the last character: one pop, one step
    assert session.autocompleter() is ac
    fresh = Autocompleter(lm.model, lm.tokenizer, k=session.k)
    fresh.update("the cap")
    assert session.suggestions("the cap") == fresh.suggest(next_words=False)


def test_complete_input_for_the_menu(session):
    names = [c[0] for c in session.complete_input(":m")]
    assert names == [":mode"]
    assert {c[0] for c in session.complete_input(":")} == {f":{n}" for n in COMMANDS}
    assert session.complete_input(":mode g") == [("generate", -1, "")]
    assert [c[0] for c in session.complete_input(":dir ")] == ["es-en", "auto"]
    words = session.complete_input("the ca")
    assert words and all(w.startswith("ca") and start == -2 for w, start, _ in words)
    assert session.complete_input("the ") == []  # after a space only on request (Tab)
    assert all(start == 0 for _, start, _ in session.complete_input("the ", explicit=True))
    assert ReplSession(mt_paths=[session.service.translators["es-en"].path], shipped=False).complete_input("the ca") == []


# ---------------------------------------------------------------------------------------------- prompt_toolkit

def drive(session, keys: str, tmp_path, history=None) -> str:
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import create_output

    buf = io.StringIO()
    with create_pipe_input() as inp:
        inp.send_text(keys)
        run_repl(session, input=inp, output=create_output(stdout=buf),
                 history_path=history if history is not None else tmp_path / "history")
    return buf.getvalue()


def test_end_to_end_through_prompt_toolkit(session, tmp_path):
    from nlp_rnn.sampling import generate

    out = drive(session, ":mode generate\n:len 8\nhello\n:temp zero\n:quit\n", tmp_path)
    assert "mode generate\n" in out and "length 8\n" in out
    lm = session.lm()
    want = "".join(generate(lm.model, lm.tokenizer, "hello", 8, 0.8, None, None, 0))  # the session's seed is 0
    assert "\nhello" + want + "\n" in out.replace("\r", "")  # the prompt, then the streamed continuation
    assert ":temp needs a positive number" in out
    assert session.done
    history = (tmp_path / "history").read_text()
    assert "+:mode generate" in history and "+hello" in history


def test_ctrl_d_exits_and_ctrl_c_clears_the_line(session, tmp_path):
    out = drive(session, "el gato\nnever sent\x03:beam 2\n\x04", tmp_path)
    assert "beam 2\n" in out and session.settings.beam == 2
    assert not session.done  # left by Ctrl-D, not :quit
    history = (tmp_path / "history").read_text()
    assert "+el gato" in history and "never sent" not in history


def test_history_location_and_fallback(session, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert history_file() == tmp_path / "data" / "nlp-rnn" / "history"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/dir")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert history_file() == tmp_path / "home" / ".local" / "share" / "nlp-rnn" / "history"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    out = drive(session, ":beam 3\n:quit\n", tmp_path, history=history_file())
    assert "beam 3" in out and history_file().is_file()
    blocker = tmp_path / "file"
    blocker.write_text("")
    out = drive(ReplSession(lm_path=session.service.lms["given"].path, shipped=False), ":len 3\n:quit\n", tmp_path,
                history=blocker / "sub" / "history")  # cannot be created: history stays in memory
    assert "length 3" in out


# ---------------------------------------------------------------------------------------------- the command

@pytest.fixture
def cli():
    import typer
    from typer.testing import CliRunner

    from nlp_rnn.cli import App
    from nlp_rnn.cli import repl_cmd

    app = typer.Typer(cls=App)

    @app.callback()
    def root():
        pass

    repl_cmd.register(app)
    return lambda args, input="": CliRunner().invoke(app, args, input=input)


def test_repl_command_reads_piped_lines(cli, models):
    r = cli(["repl", "-m", str(models.lm), "--mt", str(models.mt), "--mode", "generate", "--device", "cpu"],
            input=":len 4\nthe\n:mode translate\nel gato\n:quit\nnot reached\n")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0] == "length 4" and lines[1].startswith("the") and len(lines[1]) <= 7
    assert lines[2] == "mode translate" and len(lines) == 4


def test_repl_command_errors_are_one_line(cli, models):
    for args in (["repl", "-m", str(models.lm), "--lang", "es"], ["repl", "-m", str(models.lm), "--mode", "x"],
                 ["repl", "-m", str(models.mt)], ["repl", "--mt", str(models.mt), "--dir", "fr-de"]):
        r = cli(args)
        assert r.exit_code in (1, 2), (args, r.output)
        assert "error:" in r.output and "Traceback" not in r.output


def test_prompt_toolkit_is_imported_only_inside_run_repl():
    import ast

    tree = ast.parse((Path(__file__).resolve().parent.parent / "nlp_rnn" / "repl.py").read_text())
    edge = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "run_repl")
    inside = {id(n) for n in ast.walk(edge)}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            for name in names:
                top = name.split(".")[0]
                assert top not in ("typer", "rich", "click"), name
                if top == "prompt_toolkit":
                    assert id(node) in inside, f"line {node.lineno}: prompt_toolkit outside run_repl"
