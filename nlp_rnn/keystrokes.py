"""How many keystrokes the character-LM autocomplete saves a person typing (`nlp-rnn eval complete`).

A simulated user types each line left to right, starting fresh at the line's start (the LM state after a line
break); empty lines are skipped. Before every keystroke the suggester is asked for the text typed so far and
shows its top `top` words:

* inside a word, completions of the partial word (whole words, the typed part included);
* where the partial word is empty (line start, after a space or after punctuation such as "¿"), predictions of
  the next word: the Autocompleter's completions of an empty partial word, i.e. next words for the current
  state. (Its `next_words` field looks one word further, past the best completion, so it is not used here.)

A word is a maximal run of `is_word_char` characters (letters and digits of any script, apostrophes), compared
exactly, case included. If the intended word is shown and accepting it inserts at least two characters (so it
saves at least one), the user accepts: ONE keystroke inserts the rest of the word, plus the following space when
the line has a space there (a keyboard's automatic space; before punctuation or at the line end none is added).
Otherwise the user types the next character: one keystroke. Backspace never happens.

    KSR = 1 - keystrokes / characters      (characters: the lines' lengths, line breaks not counted)

Word completion accuracy: over words of 2+ characters, is the word in the top-1 / top-k after its first
character is typed (asked even when the user had accepted the word before typing it; such extra asks are not
timed). Next-word accuracy: at each word start right after a space, is the upcoming word in the top-1 / top-k.
Latency: wall time (`perf_counter`) of one suggester call (Autocompleter `update` + `suggest`) per keystroke,
and its CPU time (`process_time`), which other programs on a busy machine do not inflate.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .corpora import iter_lines
from .errors import CorpusError, UsageError
from .sampling import Autocompleter, is_word_char

Suggester = Callable[[str], list[str]]  # text typed so far -> suggested whole words, best first


@dataclass
class KeystrokeReport:
    top: int
    lines: int
    characters: int
    keystrokes: int
    accepted: int  # suggestions accepted (each one keystroke)
    ksr: float
    completion_words: int  # words of 2+ characters
    completion_top1: float
    completion_topk: float
    next_word_positions: int  # word starts right after a space
    next_word_top1: float
    next_word_topk: float
    latency_p50_ms: float
    latency_p95_ms: float
    cpu_p50_ms: float
    cpu_p95_ms: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Tally:
    lines: int = 0
    characters: int = 0
    keystrokes: int = 0
    accepted: int = 0
    completion: list[int] = field(default_factory=lambda: [0, 0, 0])  # words, top-1 hits, top-k hits
    next_word: list[int] = field(default_factory=lambda: [0, 0, 0])
    latencies: list[float] = field(default_factory=list)  # seconds, wall
    cpu_times: list[float] = field(default_factory=list)  # seconds, CPU


def _hit(counts: list[int], word: str, shown: list[str]) -> None:
    counts[0] += 1
    counts[1] += word in shown[:1]
    counts[2] += word in shown


def _word_bounds(line: str, i: int) -> tuple[int, int]:
    """Start and end of the word the cursor at `i` is in, at the start of, or right after."""
    start, end = i, i
    while start > 0 and is_word_char(line[start - 1]):
        start -= 1
    while end < len(line) and is_word_char(line[end]):
        end += 1
    return start, end


def _type_line(line: str, suggest: Suggester, top: int, tally: _Tally) -> None:
    i = 0
    while i < len(line):
        t0, c0 = time.perf_counter(), time.process_time()
        shown = suggest(line[:i])[:top]
        tally.latencies.append(time.perf_counter() - t0)
        tally.cpu_times.append(time.process_time() - c0)
        start, end = _word_bounds(line, i)
        word = line[start:end]
        if word and i == start and start > 0 and line[start - 1] == " ":
            _hit(tally.next_word, word, shown)
        if i == start + 1 and len(word) >= 2:
            _hit(tally.completion, word, shown)
        space = end < len(line) and line[end] == " "
        tally.keystrokes += 1
        if word and word in shown and (end - i) + space >= 2:
            if i == start and len(word) >= 2:  # the jump skips the after-first-character position: ask there too
                _hit(tally.completion, word, suggest(line[: start + 1])[:top])
            tally.accepted += 1
            i = end + space
        else:
            i += 1


def _percentile_ms(sorted_seconds: list[float], p: float) -> float:
    if not sorted_seconds:
        return 0.0
    rank = max(1, math.ceil(p / 100 * len(sorted_seconds)))  # nearest-rank percentile
    return 1000 * sorted_seconds[rank - 1]


def simulate(lines: Iterable[str], suggest: Suggester, top: int = 3, max_lines: int | None = None) -> KeystrokeReport:
    """Type `lines` (an iterable, consumed lazily) with `suggest`; `max_lines` counts non-empty lines."""
    if top < 1:
        raise UsageError(f"--top must be at least 1, not {top}")
    if max_lines is not None and max_lines < 1:
        raise UsageError(f"--max-lines must be at least 1, not {max_lines}")
    tally = _Tally()
    for line in lines:
        if max_lines is not None and tally.lines >= max_lines:
            break
        if not line:
            continue
        tally.lines += 1
        tally.characters += len(line)
        _type_line(line, suggest, top, tally)

    def rate(hits: int, n: int) -> float:
        return hits / n if n else 0.0

    lat, cpu = sorted(tally.latencies), sorted(tally.cpu_times)
    (cw, c1, ck), (nw, n1, nk) = tally.completion, tally.next_word
    return KeystrokeReport(
        top=top, lines=tally.lines, characters=tally.characters, keystrokes=tally.keystrokes,
        accepted=tally.accepted, ksr=1 - rate(tally.keystrokes, tally.characters) if tally.characters else 0.0,
        completion_words=cw, completion_top1=rate(c1, cw), completion_topk=rate(ck, cw),
        next_word_positions=nw, next_word_top1=rate(n1, nw), next_word_topk=rate(nk, nw),
        latency_p50_ms=_percentile_ms(lat, 50), latency_p95_ms=_percentile_ms(lat, 95),
        cpu_p50_ms=_percentile_ms(cpu, 50), cpu_p95_ms=_percentile_ms(cpu, 95))


def autocompleter_suggester(completer: Autocompleter) -> Suggester:
    """The Autocompleter as a suggester: one incremental `update` and one `suggest` per call, as the REPL does
    while typing (`next_words=False`: the completions of an empty partial word are already the next words)."""
    def suggest(text: str) -> list[str]:
        completer.update(text)
        return [c["text"] for c in completer.suggest(next_words=False)["completions"]]
    return suggest


def read_lines(path: str | Path) -> Iterator[str]:
    """A text file's lines (UTF-8, NFC, without line breaks), streamed; file problems are CorpusErrors."""
    return (text for _, text in iter_lines(path))


def measure_file(model, tokenizer, path: str | Path, top: int = 3, max_lines: int | None = None,
                 beam: int = 8) -> KeystrokeReport:
    """Keystroke savings of a loaded character LM on the lines of a text file (see the module docstring)."""
    if top < 1:  # checked before the Autocompleter, whose own message names --k
        raise UsageError(f"--top must be at least 1, not {top}")
    completer = Autocompleter(model, tokenizer, k=top, beam=beam)
    report = simulate(read_lines(path), autocompleter_suggester(completer), top, max_lines)
    if not report.lines:
        raise CorpusError(path, "no text to type (the file has no non-empty lines)")
    return report
