"""The interactive REPL behind `nlp-rnn repl`.

`ReplSession` is the whole behaviour and needs no terminal: it holds the models (loaded lazily, on first use) and
the settings, and turns each input line into an iterator of output strings, so generation streams a character at
a time and a consumer can stop it between two characters. `suggestions(text)` serves as-you-type completion from
one persistent `Autocompleter`, so each keystroke costs one recurrent step.

`run_repl` is the thin prompt_toolkit edge (prompt, history, completion menu, Ctrl-C/Ctrl-D); prompt_toolkit is
imported only inside it.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from .errors import NlpRnnError, UsageError
from .limits import LIMITS, check

MODES = ("translate", "generate", "complete", "classify")  # a prefix picks the first that matches: c → complete
AUTO = "auto"

# name → (argument, one-line description); the order is the order of :help
COMMANDS = {
    "help": ("[COMMAND]", "show this help, or one command's"),
    "mode": ("translate|generate|complete|classify", "what a plain line does"),
    "dir": ("SRC-TGT|auto", "translation direction, e.g. es-en (auto: guess the language of each line)"),
    "temp": ("X", "sampling temperature, greater than 0"),
    "topk": ("N|off", "sample only from the N most likely characters (0 or off: no limit)"),
    "topp": ("X|off", "nucleus sampling: the smallest set of characters holding X of the probability, 0 < X <= 1"),
    "beam": ("N", "beam size of translation (1: greedy)"),
    "len": ("N", "characters to generate"),
    "seed": ("N|off", "fix the random seed of generation (off: a new sample each time)"),
    "load": ("PATH", "load a checkpoint: a language model, a translator for its direction, or a classifier"),
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


def _hint(text: str) -> str:
    return text.rstrip("\n") + "\n"


def normalize_direction(text: str) -> str:
    """'es-en', 'es→en', 'es>en', 'es_en', 'es en', 'ES-EN' → 'es-en'."""
    t = text.strip().lower()
    for sep in ("→", "->", ">", "_", "/", " "):
        t = t.replace(sep, "-")
    return "-".join(p for p in t.split("-") if p)


class ReplSession:
    """Settings and the meaning of every REPL line over a `Service` (which holds the models); no terminal.

    lm_path: a language model checkpoint or run directory, or None for the shipped LMs (the one of the language
        being typed, or of `lang` when given). mt_paths: translator checkpoints, each registered for the direction
        its meta records, or None for the shipped translators. clf_paths: classifiers for :mode classify (None:
        the shipped ones, if any). `shipped=False` never looks at the shipped models.
    Paths are checked at once (a bad path is a UsageError/CheckpointError here); weights load on first use.
    """

    def __init__(self, lm_path: str | Path | None = None, mt_paths: Sequence[str | Path] | None = None, *,
                 clf_paths: Sequence[str | Path] | None = None, lang: str | None = None, shipped: bool = True, mode: str | None = None,
                 direction: str | None = None, device="cpu", temperature: float = 0.8, top_k: int | None = None,
                 top_p: float | None = None, beam: int = 5, length: int = 200, seed: int | None = None, k: int = 5):
        from .defaults import LM_LANGS
        from .service import Service, check_generation

        self.k = k
        self.done = False
        check_generation(length, temperature, top_k, top_p, seed)
        check("beam", beam)
        self.settings = Settings(temperature=temperature, top_k=top_k, top_p=top_p, beam=beam, length=length,
                                 seed=seed)
        if lang is not None and lang not in LM_LANGS:
            raise UsageError(f"--lang must be one of {', '.join(LM_LANGS)}, not {lang!r}")
        self.lang = lang  # None: the language of what is typed picks the shipped LM
        self.service = Service(lm=[lm_path] if lm_path is not None else [], mt=list(mt_paths or []),
                               clf=list(clf_paths or []), shipped=shipped, device=device)
        self.classifier: str | None = None  # the classifier :load made current (None: the service picks)
        if direction is not None:
            d = normalize_direction(direction)
            if d != AUTO and d not in self.service.translators:
                raise UsageError(self._no_direction(d))
            self.settings.direction = d
        elif len(self.service.translators) == 1:
            self.settings.direction = next(iter(self.service.translators))
        elif self.service.translators:
            self.settings.direction = AUTO
        if mode is not None:
            m = self._match_mode(mode)
            if m is None:
                raise UsageError(f"--mode must be one of {', '.join(MODES)}, not {mode!r}")
            self.settings.mode = m
        elif clf_paths and lm_path is None and not mt_paths:
            self.settings.mode = "classify"
        elif self.service.translators and not (lm_path is not None and not mt_paths):
            self.settings.mode = "translate"
        else:
            self.settings.mode = "generate"

    # ------------------------------------------------------------------------------------------ models

    def _lang(self, text: str = "") -> str | None:
        return self.lang or self.service.lm_language(text)

    def lm(self, text: str = ""):
        """The language model (`checkpoint.Loaded`) for `text`, loading it on first use."""
        return self.service.lm(self._lang(text))

    def has_lm(self) -> bool:
        return self.service.has_lm(self.lang)

    def directions(self) -> list[str]:
        return list(self.service.translators)

    def translator(self, direction: str):
        return self.service.translator(direction)

    def _no_direction(self, d: str) -> str:
        if not self.service.translators:
            return f"no translator for {d!r}: none is available (pass --mt PATH or :load PATH)"
        return f"no translator for {d!r}; available: {', '.join(self.service.translators)}, auto"

    def load(self, path: str | Path) -> str:
        """Load any checkpoint now; returns a one-line report. An LM replaces the current one; a translator is
        registered for the direction in its meta (or replaces the current direction's) and becomes current."""
        current = self.settings.direction if self.settings.direction not in (None, AUTO) else None
        kind, key, report = self.service.load(path, fallback_direction=current)
        if kind == "mt":
            self.settings.direction = key
            report += f"; direction is now {key}"
        elif kind == "clf":
            self.classifier = key
        return report

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
        return hits[0] if hits else None

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
            elif self.settings.mode == "classify":
                yield from self._classify(text)
            else:
                yield from self._complete(text)
        except NlpRnnError as e:
            yield _hint(f"error: {e}")

    def _translate(self, text: str) -> Iterator[str]:
        direction = self.settings.direction
        if direction is None or not self.service.translators:
            raise UsageError("no translator is available (pass --mt PATH, or :load PATH)")
        auto = direction == AUTO
        tr = self.service.translate([text.strip()], direction=None if auto else direction,
                                    beam=self.settings.beam)[0]
        yield (f"[{tr.direction}] " if auto else "") + tr.text + "\n"
        if tr.truncated:
            from .search import MAX_SRC_TOKENS

            yield f"(the line was very long: only its first {MAX_SRC_TOKENS} tokens were translated)\n"

    def _generate(self, text: str) -> Iterator[str]:
        s = self.settings
        gen = self.service.generate(text, self._lang(text), s.length, s.temperature, s.top_k, s.top_p, s.seed)
        if gen.unknown_chars:
            yield f"(characters outside the model's vocabulary are read as <unk>: {''.join(gen.unknown_chars)!r})\n"
        yield text
        yield from gen.pieces
        yield "\n"

    def _complete(self, text: str) -> Iterator[str]:
        result = self.suggestions(text, next_words=True)
        for title, key in (("completions", "completions"), ("next words", "next_words")):
            shown = ", ".join(f"{x['text']} ({x['prob']:.1%})" for x in result[key]) or "(none)"
            yield f"{title}: {shown}\n"

    def _classify(self, text: str) -> Iterator[str]:
        """'positive (97.3%)'; with more than two labels, the runners-up follow."""
        result = self.service.classify([text.strip()], top=3, model=self.classifier)[0]
        others = ", ".join(f"{t['label']} {t['prob']:.1%}" for t in result["top"][1:])
        yield f"{result['label']} ({result['prob']:.1%})" + (f"; then {others}" if len(result["top"]) > 2 else "") + "\n"

    # ------------------------------------------------------------------------------------------ as you type

    def autocompleter(self, text: str = ""):
        """The persistent Autocompleter over the LM of what is being typed (created on first use)."""
        return self.service.autocompleter(self._lang(text), self.k)

    def suggestions(self, text: str, next_words: bool = False) -> dict:
        """{"completions": [...], "next_words": [...]} for the text typed so far, from the LM of its language.
        Incremental: the recurrent state follows `text` from keystroke to keystroke (one step per new character,
        none for a backspace)."""
        r = self.service.complete(text, self._lang(text), k=self.k, next_words=next_words)
        return {"completions": r["completions"], "next_words": r["next_words"]}

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
            values = {"mode": list(MODES), "dir": self.directions() + ([AUTO] if self.service.translators else []),
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
        yield "Type a line to translate, continue (generate), complete or classify it, depending on the mode.\n"
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
        if m == "translate" and not self.service.translators:
            note = " (no translator yet: :load PATH)"
        elif m == "classify":
            note = "" if self.service.classifiers else " (no classifier yet: :load PATH)"
        elif m != "translate" and not self.has_lm():
            note = " (no language model yet: :load PATH)"
        yield f"mode {m}{note}\n"

    def _cmd_dir(self, arg: str) -> Iterator[str]:
        if not arg:
            yield (f"direction {self.settings.direction or '(none)'}; "
                   f"available: {', '.join(self.service.translators) or 'none'}\n")
            return
        d = normalize_direction(arg)
        if (d == AUTO and self.service.translators) or d in self.service.translators:
            self.settings.direction = d
            yield f"direction {d}\n"
        else:
            yield _hint(self._no_direction(arg))

    def _setting(self, arg: str, name: str, attr: str, limit: str, kind, off: bool = False) -> Iterator[str]:
        """Show a setting, or set it from `arg` when it parses and lies in its range (`limits`); else one hint."""
        label = {"temperature": "temperature", "top_k": "top-k", "top_p": "top-p"}.get(attr, attr)
        parts = arg.split()
        if not parts:
            v = getattr(self.settings, attr)
            yield f"{label} {'off' if v is None else v}\n"
            return
        if off and len(parts) == 1 and parts[0].lower() in ("off", "0"):
            v = None
        else:
            try:
                if len(parts) != 1:
                    raise ValueError
                v = check(limit, kind(parts[0]))
            except (ValueError, UsageError):
                r = LIMITS[limit]
                yield _hint(f":{name} needs {r.text()}{' or off' if off else ''}, e.g. :{name} {r.example}; "
                            f"not {arg!r}")
                return
        setattr(self.settings, attr, v)
        yield f"{label} {'off' if v is None else v}\n"

    def _cmd_temp(self, arg):
        return self._setting(arg, "temp", "temperature", "temperature", float)

    def _cmd_topk(self, arg):
        return self._setting(arg, "topk", "top_k", "top_k", int, off=True)

    def _cmd_topp(self, arg):
        return self._setting(arg, "topp", "top_p", "top_p", float, off=True)

    def _cmd_beam(self, arg):
        return self._setting(arg, "beam", "beam", "beam", int)

    def _cmd_len(self, arg):
        return self._setting(arg, "len", "length", "length", int)

    def _cmd_seed(self, arg):
        return self._setting(arg, "seed", "seed", "seed", int, off=True)

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
        for m in self.service.describe():
            where = m.get("lang") or (f"{m['src']}-{m['tgt']}" if m.get("src") else "")
            role = f"{m['kind']} {where}".strip()
            labels = f"; labels {', '.join(m['labels'])}" if m.get("labels") else ""
            yield (f"{role:<12} {m['path']} ({m['origin']}, {'loaded' if m['loaded'] else 'not loaded yet'}"
                   f"{labels})\n")
        if not self.service.translators:
            yield "translators  none\n"
        yield (f"settings     temperature {s.temperature}, top-k {s.top_k or 'off'}, "
               f"top-p {'off' if s.top_p is None else s.top_p}, beam {s.beam}, length {s.length}, "
               f"seed {'off' if s.seed is None else s.seed}\n")
        yield f"device       {self.service.device}\n"

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
