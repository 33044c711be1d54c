"""The interactive REPL behind `nlp-rnn repl`.

`ReplSession` is the whole behaviour and needs no terminal: it holds the models (loaded lazily, on first use) and
the settings, and turns each input line into an iterator of output strings, so generation streams a character at
a time and a consumer can stop it between two characters. `suggestions(text)` serves as-you-type completion from
one persistent `Autocompleter`, so each keystroke costs one recurrent step.

`run_repl` is the thin prompt_toolkit edge (prompt, history, completion menu, Ctrl-C/Ctrl-D); prompt_toolkit is
imported only inside it.
"""
from __future__ import annotations

import math
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from .errors import NlpRnnError, UsageError

MODES = ("translate", "generate", "complete")
AUTO = "auto"

# name → (argument, one-line description); the order is the order of :help
COMMANDS = {
    "help": ("[COMMAND]", "show this help, or one command's"),
    "mode": ("translate|generate|complete", "what a plain line does"),
    "dir": ("SRC-TGT|auto", "translation direction, e.g. es-en (auto: guess the language of each line)"),
    "temp": ("X", "sampling temperature, greater than 0"),
    "topk": ("N|off", "sample only from the N most likely characters (0 or off: no limit)"),
    "topp": ("X|off", "nucleus sampling: the smallest set of characters holding X of the probability, 0 < X <= 1"),
    "beam": ("N", "beam size of translation (1: greedy)"),
    "len": ("N", "characters to generate"),
    "seed": ("N|off", "fix the random seed of generation (off: a new sample each time)"),
    "load": ("PATH", "load a checkpoint: a language model, or a translator for its direction"),
    "info": ("", "models and settings"),
    "quit": ("", "leave (Ctrl-D does too)"),
}
ALIASES = {"q": "quit", "exit": "quit", "h": "help", "?": "help", "temperature": "temp", "length": "len",
           "direction": "dir", "top_k": "topk", "top-k": "topk", "top_p": "topp", "top-p": "topp"}


@dataclass
class Settings:
    mode: str = "translate"
    direction: str | None = None  # a key of the translators, or AUTO
    temperature: float = 0.8
    top_k: int | None = None
    top_p: float | None = None
    beam: int = 5
    length: int = 200
    seed: int | None = None


class _Slot:
    """A model known by path, loaded on first use."""

    def __init__(self, path: Path | None, origin: str, loaded=None, missing: str | None = None):
        self.path, self.origin, self.loaded, self.missing = path, origin, loaded, missing

    def describe(self) -> str:
        if self.path is None:
            return self.missing or "none"
        state = "loaded" if self.loaded is not None else "not loaded yet"
        return f"{self.path} ({self.origin}, {state})"


def _hint(text: str) -> str:
    return text.rstrip("\n") + "\n"


def normalize_direction(text: str) -> str:
    """'es-en', 'es→en', 'es>en', 'es_en', 'es en', 'ES-EN' → 'es-en'."""
    t = text.strip().lower()
    for sep in ("→", "->", ">", "_", "/", " "):
        t = t.replace(sep, "-")
    return "-".join(p for p in t.split("-") if p)


class ReplSession:
    """Models, settings and the meaning of every REPL line; no terminal involved.

    lm_path: a language model checkpoint or run directory, or None for the shipped model of `lang`.
    mt_paths: translator checkpoints (each registered for the direction its meta records as src_lang/tgt_lang),
        or None for the shipped translators. `shipped=False` never looks at the shipped models.
    Paths are checked at once (a bad path is a UsageError/CheckpointError here); weights load on first use.
    """

    def __init__(self, lm_path: str | Path | None = None, mt_paths: Sequence[str | Path] | None = None, *,
                 lang: str = "en", shipped: bool = True, mode: str | None = None, direction: str | None = None,
                 device="cpu", temperature: float = 0.8, top_k: int | None = None, top_p: float | None = None,
                 beam: int = 5, length: int = 200, seed: int | None = None, k: int = 5):
        from .defaults import LM_LANGS, MT_DIRECTIONS, default_lm, default_mt
        from .sampling import check_sampling

        self.device = device
        self.k = k
        self.done = False
        self._lock = threading.RLock()  # models and the autocompleter are shared with the completion thread
        self._ac = None
        check_sampling(temperature, top_k, top_p)
        if beam < 1 or length < 1:
            raise UsageError(f"beam and length must be at least 1, not {beam} and {length}")
        self.settings = Settings(temperature=temperature, top_k=top_k, top_p=top_p, beam=beam, length=length,
                                 seed=seed)

        # the language model
        if lm_path is not None:
            self._lm = _Slot(self._inspect(lm_path, "lm", "-m"), "given")
        elif not shipped:
            self._lm = _Slot(None, "", missing="no language model (use :load PATH)")
        else:
            if lang not in LM_LANGS:
                raise UsageError(f"--lang must be one of {', '.join(LM_LANGS)}, not {lang!r}")
            try:
                self._lm = _Slot(default_lm(lang), f"shipped {lang}")
            except UsageError as e:
                self._lm = _Slot(None, "", missing=f"{e} (or :load PATH)")

        # translators, by direction
        self._mt: dict[str, _Slot] = {}
        if mt_paths:
            for p in mt_paths:
                path = self._inspect(p, "mt", "--mt")
                key = self._direction_key(path, direction if direction not in (None, AUTO) else None)
                self._mt[key] = _Slot(path, "given")
        elif shipped:
            for src, tgt in MT_DIRECTIONS:
                try:
                    self._mt[f"{src}-{tgt}"] = _Slot(default_mt(src, tgt), "shipped")
                except UsageError:
                    pass

        if direction is not None:
            d = normalize_direction(direction)
            if d != AUTO and d not in self._mt:
                raise UsageError(self._no_direction(d))
            self.settings.direction = d
        elif len(self._mt) == 1:
            self.settings.direction = next(iter(self._mt))
        elif self._mt:
            self.settings.direction = AUTO

        if mode is not None:
            m = self._match_mode(mode)
            if m is None:
                raise UsageError(f"--mode must be one of {', '.join(MODES)}, not {mode!r}")
            self.settings.mode = m
        elif self._mt and not (lm_path is not None and not mt_paths):
            self.settings.mode = "translate"
        else:
            self.settings.mode = "generate"

    # ------------------------------------------------------------------------------------------ models

    @staticmethod
    def _inspect(path, kind: str, flag: str) -> Path:
        """Resolve a checkpoint or run directory and check its kind without loading weights."""
        from .checkpoint import KIND_NAMES, read_config, resolve_model_dir

        resolved = resolve_model_dir(Path(path).expanduser())
        config = read_config(resolved)
        if config["kind"] != kind:
            raise UsageError(f"{flag} {path}: this is {KIND_NAMES[config['kind']]}, not {KIND_NAMES[kind]}")
        return resolved

    def _direction_key(self, path: Path, fallback: str | None) -> str:
        from .checkpoint import read_config

        return self._key_from_meta(read_config(path).get("meta") or {}, fallback)

    def _key_from_meta(self, meta: dict, fallback: str | None) -> str:
        src, tgt = meta.get("src_lang"), meta.get("tgt_lang")
        if isinstance(src, str) and isinstance(tgt, str) and src and tgt:
            return normalize_direction(f"{src}-{tgt}")
        if fallback:
            return fallback
        key, n = "src-tgt", 2  # a translator that does not say its languages
        while key in self._mt:
            key, n = f"src-tgt{n}", n + 1
        return key

    def directions(self) -> list[str]:
        return list(self._mt)

    def _no_direction(self, d: str) -> str:
        if not self._mt:
            return f"no translator for {d!r}: none is available (pass --mt PATH or :load PATH)"
        return f"no translator for {d!r}; available: {', '.join(self._mt)}, auto"

    def lm(self):
        """The language model (`checkpoint.Loaded`), loading it on first use."""
        from .checkpoint import load_checkpoint

        with self._lock:
            slot = self._lm
            if slot.loaded is None:
                if slot.path is None:
                    raise NlpRnnError(slot.missing or "no language model (use :load PATH)")
                slot.loaded = load_checkpoint(slot.path, kind="lm", device=self.device)
            return slot.loaded

    def has_lm(self) -> bool:
        return self._lm.path is not None

    def translator(self, direction: str):
        from .checkpoint import load_checkpoint

        with self._lock:
            slot = self._mt.get(direction)
            if slot is None:
                raise UsageError(self._no_direction(direction))
            if slot.loaded is None:
                slot.loaded = load_checkpoint(slot.path, kind="mt", device=self.device)
            return slot.loaded

    def load(self, path: str | Path) -> str:
        """Load any checkpoint now; returns a one-line report. An LM replaces the current one; a translator is
        registered for the direction in its meta (or replaces the current direction's) and becomes current."""
        from .checkpoint import load_checkpoint

        loaded = load_checkpoint(Path(path).expanduser(), device=self.device)
        with self._lock:
            if loaded.kind == "lm":
                self._lm = _Slot(loaded.path, "via :load", loaded)
                self._ac = None  # its states belong to the old model
                return f"language model loaded from {loaded.path}"
            current = self.settings.direction if self.settings.direction not in (None, AUTO) else None
            key = self._key_from_meta(loaded.meta or {}, current)
            replaced = key in self._mt
            self._mt[key] = _Slot(loaded.path, "via :load", loaded)
            self.settings.direction = key
        return f"translator {key} loaded from {loaded.path}{' (replaces the previous one)' if replaced else ''}; " \
               f"direction is now {key}"

    # ------------------------------------------------------------------------------------------ settings

    @property
    def mode(self) -> str:
        return self.settings.mode

    @property
    def direction(self) -> str | None:
        return self.settings.direction

    def prompt_text(self) -> str:
        s = self.settings
        if s.mode == "translate":
            return f"translate {s.direction or '?'}> "
        return f"{s.mode}> "

    @staticmethod
    def _match_mode(text: str) -> str | None:
        t = text.strip().lower()
        hits = [m for m in MODES if m.startswith(t)] if t else []
        return hits[0] if len(hits) == 1 else None

    # ------------------------------------------------------------------------------------------ lines

    def run(self, line: str) -> str:
        """All output of one line at once (handy for tests and scripts)."""
        return "".join(self.handle(line))

    def handle(self, line: str) -> Iterator[str]:
        """The output of one input line, as pieces to write in order (generation yields a character at a time).

        Lines starting with ':' are commands; '::' escapes a literal leading ':'. A bad command or value yields
        a one-line hint; library errors yield one 'error:' line. Nothing here ends the session except :quit.
        """
        text = line.rstrip("\r\n")
        stripped = text.strip()
        if not stripped:
            return
        if stripped.startswith(":") and not stripped.startswith("::"):
            try:
                yield from self._command(stripped[1:])
            except NlpRnnError as e:
                yield _hint(f"error: {e}")
            return
        if stripped.startswith("::"):
            text = text.replace("::", ":", 1)
        try:
            if self.settings.mode == "translate":
                yield from self._translate(text)
            elif self.settings.mode == "generate":
                yield from self._generate(text)
            else:
                yield from self._complete(text)
        except NlpRnnError as e:
            yield _hint(f"error: {e}")

    def _translate(self, text: str) -> Iterator[str]:
        from .defaults import guess_language
        from .search import translate_all

        direction = self.settings.direction
        auto = direction == AUTO
        if direction is None or not self._mt:
            raise UsageError("no translator is available (pass --mt PATH, or :load PATH)")
        if auto:
            src = guess_language(text)
            choices = [d for d in self._mt if d.split("-")[0] == src] if src else []
            direction = choices[0] if choices else next(iter(self._mt))
        mt = self.translator(direction)
        tr = translate_all(mt.model, mt.tokenizers["src_tokenizer"], mt.tokenizers["tgt_tokenizer"], [text.strip()],
                           beam=self.settings.beam, device=self.device)[0]
        yield (f"[{direction}] " if auto else "") + tr.text + "\n"
        if tr.truncated:
            yield "(the line was very long: only its first 250 tokens were translated)\n"

    def _generate(self, text: str) -> Iterator[str]:
        from .sampling import generate, unknown_chars

        lm = self.lm()
        s = self.settings
        unk = unknown_chars(lm.tokenizer, text)
        if unk:
            yield f"(characters outside the model's vocabulary are read as <unk>: {''.join(unk)!r})\n"
        yield text
        yield from generate(lm.model, lm.tokenizer, text, s.length, s.temperature, s.top_k, s.top_p, s.seed)
        yield "\n"

    def _complete(self, text: str) -> Iterator[str]:
        result = self.suggestions(text, next_words=True)
        for title, key in (("completions", "completions"), ("next words", "next_words")):
            shown = ", ".join(f"{x['text']} ({x['prob']:.1%})" for x in result[key]) or "(none)"
            yield f"{title}: {shown}\n"

    # ------------------------------------------------------------------------------------------ as you type

    def autocompleter(self):
        """The one persistent Autocompleter over the current LM (created on first use)."""
        from .sampling import Autocompleter

        with self._lock:
            if self._ac is None:
                lm = self.lm()
                self._ac = Autocompleter(lm.model, lm.tokenizer, k=self.k)
            return self._ac

    def suggestions(self, text: str, next_words: bool = False) -> dict:
        """{"completions": [...], "next_words": [...]} for the text typed so far. Incremental: the recurrent state
        follows `text` from keystroke to keystroke (one step per new character, none for a backspace)."""
        with self._lock:
            ac = self.autocompleter()
            ac.update(text)
            return ac.suggest(next_words=next_words)

    def complete_input(self, text: str, explicit: bool = False) -> list[tuple[str, int, str]]:
        """What the completion menu offers for the text before the cursor: (insert, start_position, note) triples.

        Commands and their values complete after ':'; other text gets the LM's completions of the word being
        typed (after a space, the likely next words, but only when asked for with Tab: `explicit`)."""
        from .sampling import is_word_char

        body = text.lstrip()
        if body.startswith(":") and not body.startswith("::"):
            head, sep, arg = body[1:].partition(" ")
            if not sep:
                return [(":" + name, -len(body), desc) for name, (_, desc) in COMMANDS.items() if name.startswith(head)]
            name = ALIASES.get(head, head)
            arg = arg.lstrip()
            values = {"mode": list(MODES), "dir": self.directions() + ([AUTO] if self._mt else []),
                      "topk": ["off"], "topp": ["off"], "seed": ["off"]}.get(name, [])
            return [(v, -len(arg), "") for v in values if v.startswith(arg) and v != arg]
        if not self.has_lm():
            return []
        i = len(text)
        while i > 0 and is_word_char(text[i - 1]):
            i -= 1
        partial = text[i:]
        if not partial and not explicit:
            return []
        try:
            result = self.suggestions(text.replace("::", ":", 1) if body.startswith("::") else text)
        except NlpRnnError:
            return []
        return [(c["text"], -len(partial), f"{c['prob']:.0%}") for c in result["completions"] if c["text"] != partial]

    # ------------------------------------------------------------------------------------------ commands

    def _command(self, body: str) -> Iterator[str]:
        name, _, arg = body.strip().partition(" ")
        name, arg = name.lower(), arg.strip()
        name = ALIASES.get(name, name)
        if name not in COMMANDS:
            yield _hint(f"unknown command :{name}; type :help for the commands")
            return
        yield from getattr(self, f"_cmd_{name}")(arg)

    def _cmd_help(self, arg: str) -> Iterator[str]:
        if arg:  # :help temp, :help :temp
            parts = arg.split()
            name = ALIASES.get(parts[0].lstrip(":").lower(), parts[0].lstrip(":").lower())
            if len(parts) > 1 or name not in COMMANDS:
                yield _hint(f":help takes a command name, e.g. :help temp; the commands: "
                            f"{' '.join(':' + n for n in COMMANDS)}")
                return
            a, desc = COMMANDS[name]
            yield f"{f':{name} {a}'.rstrip()}  {desc}\n"
            return
        width = max(len(f":{n} {a}".rstrip()) for n, (a, _) in COMMANDS.items())
        yield "Type a line to translate, continue (generate) or complete it, depending on the mode.\n"
        for n, (a, desc) in COMMANDS.items():
            yield f"  {f':{n} {a}'.rstrip():<{width}}  {desc}\n"
        yield "  Ctrl-C stops a generation or clears the line; Ctrl-D quits; '::' starts a line with a literal ':'.\n"

    def _cmd_mode(self, arg: str) -> Iterator[str]:
        if not arg:
            yield f"mode {self.settings.mode} (one of {', '.join(MODES)})\n"
            return
        m = self._match_mode(arg)
        if m is None:
            yield _hint(f":mode takes one of {', '.join(MODES)}, not {arg!r}")
            return
        self.settings.mode = m
        note = ""
        if m == "translate" and not self._mt:
            note = " (no translator yet: :load PATH)"
        elif m != "translate" and not self.has_lm():
            note = " (no language model yet: :load PATH)"
        yield f"mode {m}{note}\n"

    def _cmd_dir(self, arg: str) -> Iterator[str]:
        if not arg:
            yield f"direction {self.settings.direction or '(none)'}; available: {', '.join(self._mt) or 'none'}\n"
            return
        d = normalize_direction(arg)
        if d == AUTO and self._mt or d in self._mt:
            self.settings.direction = d
            yield f"direction {d}\n"
        else:
            yield _hint(self._no_direction(arg))

    def _number(self, arg: str, kind, name: str, example: str, ok, off: bool = False):
        """Parse a setting's value; returns (value, None) or (None, hint)."""
        parts = arg.split()
        if off and len(parts) == 1 and parts[0].lower() == "off":
            return None, None
        try:
            if len(parts) != 1:
                raise ValueError
            v = kind(parts[0])
            if isinstance(v, float) and not math.isfinite(v) or not ok(v):
                raise ValueError
        except ValueError:
            return None, f":{name} needs {example}, not {arg!r}"
        return v, None

    def _setting(self, arg: str, name: str, attr: str, kind, example: str, ok, off: bool = False,
                 show=None) -> Iterator[str]:
        label = {"temperature": "temperature", "top_k": "top-k", "top_p": "top-p"}.get(attr, attr)
        if not arg:
            v = getattr(self.settings, attr)
            yield f"{label} {'off' if v is None else v}\n"
            return
        v, hint = self._number(arg, kind, name, example, ok, off)
        if hint:
            yield _hint(hint)
            return
        if show is not None:
            v = show(v)
        setattr(self.settings, attr, v)
        yield f"{label} {'off' if v is None else v}\n"

    def _cmd_temp(self, arg):
        return self._setting(arg, "temp", "temperature", float, "a number greater than 0, e.g. :temp 0.8",
                             lambda v: v > 0)

    def _cmd_topk(self, arg):
        return self._setting(arg, "topk", "top_k", int, "a whole number of at least 1, or 0/off, e.g. :topk 10",
                             lambda v: v >= 0, off=True, show=lambda v: v or None)

    def _cmd_topp(self, arg):
        return self._setting(arg, "topp", "top_p", float, "a number in (0, 1] or off, e.g. :topp 0.9",
                             lambda v: 0 < v <= 1, off=True)

    def _cmd_beam(self, arg):
        return self._setting(arg, "beam", "beam", int, "a whole number of at least 1, e.g. :beam 5", lambda v: v >= 1)

    def _cmd_len(self, arg):
        return self._setting(arg, "len", "length", int, "a whole number of at least 1, e.g. :len 200", lambda v: v >= 1)

    def _cmd_seed(self, arg):
        return self._setting(arg, "seed", "seed", int, "a whole number or off, e.g. :seed 42", lambda v: v >= 0,
                             off=True)

    def _cmd_load(self, arg: str) -> Iterator[str]:
        if not arg:
            yield _hint(":load needs a checkpoint or run directory, e.g. :load runs/lm")
            return
        if len(arg) >= 2 and arg[0] == arg[-1] and arg[0] in "'\"":
            arg = arg[1:-1]
        yield _hint(self.load(arg))

    def _cmd_info(self, arg: str) -> Iterator[str]:
        s = self.settings
        yield f"mode         {s.mode}\n"
        yield f"direction    {s.direction or '(none)'}\n"
        yield f"lm           {self._lm.describe()}\n"
        if not self._mt:
            yield "translators  none\n"
        for d, slot in self._mt.items():
            yield f"mt {d:<9} {slot.describe()}\n"
        yield (f"settings     temperature {s.temperature}, top-k {s.top_k or 'off'}, "
               f"top-p {'off' if s.top_p is None else s.top_p}, beam {s.beam}, length {s.length}, "
               f"seed {'off' if s.seed is None else s.seed}\n")
        yield f"device       {self.device}\n"

    def _cmd_quit(self, arg: str) -> Iterator[str]:
        self.done = True
        return iter(())


# ---------------------------------------------------------------------------------------------- prompt_toolkit edge

def history_file() -> Path:
    """$XDG_DATA_HOME/nlp-rnn/history, or ~/.local/share/nlp-rnn/history."""
    base = os.environ.get("XDG_DATA_HOME", "")
    if not os.path.isabs(base):  # the XDG spec ignores relative values
        base = os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "nlp-rnn" / "history"


def run_repl(session: ReplSession, input=None, output=None, *, history_path: str | Path | None = None,
             debug: bool = False) -> None:
    """Read lines with prompt_toolkit until :quit or Ctrl-D, writing what the session answers.

    `input`/`output` are prompt_toolkit Input/Output objects (default: the terminal). Ctrl-C during a generation
    stops it and returns to the prompt; Ctrl-C at the prompt clears the line. History persists in
    `history_path` (default `history_file()`), in memory when that cannot be written.
    """
    if input is None and output is None and not sys.stdin.isatty():
        return _run_plain(session, sys.stdin, sys.stdout, debug)

    from prompt_toolkit import PromptSession
    from prompt_toolkit.completion import Completer, Completion, PathCompleter, ThreadedCompleter
    from prompt_toolkit.document import Document
    from prompt_toolkit.history import FileHistory, InMemoryHistory
    from prompt_toolkit.output import create_output

    if output is None:
        output = create_output()

    path = Path(history_path) if history_path is not None else history_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8"):
            pass
        history = FileHistory(str(path))
    except OSError:
        history = InMemoryHistory()

    paths = PathCompleter(expanduser=True)

    class ReplCompleter(Completer):
        def get_completions(self, document, complete_event):
            text = document.text_before_cursor
            body = text.lstrip()
            if body.startswith(":load ") or body.startswith(":load\t"):
                arg = body[6:].lstrip()
                yield from paths.get_completions(Document(arg, len(arg)), complete_event)
                return
            for insert, start, note in session.complete_input(text, explicit=complete_event.completion_requested):
                yield Completion(insert, start_position=start, display_meta=note)

    prompt = PromptSession(history=history, completer=ThreadedCompleter(ReplCompleter()), complete_while_typing=True,
                           input=input, output=output)

    def write(piece: str) -> None:
        output.write(piece)
        output.flush()

    write("nlp-rnn repl: type :help for the commands, Ctrl-D to quit\n")
    while not session.done:
        try:
            line = prompt.prompt(session.prompt_text)
        except KeyboardInterrupt:  # Ctrl-C at the prompt: drop the line, ask again
            continue
        except EOFError:  # Ctrl-D on an empty line
            break
        _answer(session, line, write, debug)


def _answer(session: ReplSession, line: str, write, debug: bool) -> None:
    """Write the session's answer to one line; Ctrl-C stops it (the session stays usable)."""
    pieces = session.handle(line)
    last = "\n"
    try:
        for piece in pieces:
            if piece:
                write(piece)
                last = piece
    except KeyboardInterrupt:
        pieces.close()
        write(("" if last.endswith("\n") else "\n") + "(stopped)\n")
    except Exception as e:  # a bug: report it on one line and keep the session
        if debug:
            raise
        pieces.close()
        write(("" if last.endswith("\n") else "\n") + f"error: unexpected {type(e).__name__}: {e}\n")


def _run_plain(session: ReplSession, stdin, stdout, debug: bool) -> None:
    """Standard input is not a terminal: read lines without a prompt (`nlp-rnn repl < script`)."""

    def write(piece: str) -> None:
        stdout.write(piece)
        stdout.flush()

    for line in stdin:
        _answer(session, line, write, debug)
        if session.done:
            break
