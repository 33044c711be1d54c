"""Protected spans: the parts of a sentence a translator must copy exactly, kept out of the decoder's way.

Numbers, times, dates, prices, phone numbers, order codes, URLs, e-mail addresses, @handles, #tags, file paths
and inline code are replaced by numbered placeholders before translation and put back after it:

    "I paid $45.50 at https://shop.example/a?b=2"  →  "I paid ⟦1⟧ at ⟦2⟧"  →  "Pagué ⟦1⟧ en ⟦2⟧"
                                                                          →  "Pagué $45.50 en https://shop.example/a?b=2"

A translator trained with `--placeholders` has each placeholder as one vocabulary piece and has learnt to copy
it (training pairs whose sides share a span get the same placeholder on both sides, `mask_pair`), so a span comes
back byte for byte instead of being rewritten (`$45.50` → `$555`). Spans are found by patterns over the text —
the sentence splitter and the document formats hand over plain sentences, so this is the one place that knows
what a number looks like.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

MAX_PLACEHOLDERS = 24  # placeholders ⟦1⟧ … ⟦24⟧ are vocabulary pieces; more spans than that in one sentence stay text
OPEN, CLOSE = "\u27e6", "\u27e7"  # ⟦ ⟧: mathematical white square brackets, which ordinary text never holds


def placeholder(n: int) -> str:
    return f"{OPEN}{n}{CLOSE}"


PLACEHOLDERS = [placeholder(n) for n in range(1, MAX_PLACEHOLDERS + 1)]
PLACEHOLDER_RE = re.compile(f"{OPEN}(\\d{{1,3}}){CLOSE}")

_TRAIL = r"""(?<![.,;:!?'")\]»”’])"""  # a URL or path does not end with the sentence's punctuation
_FILE_EXT = r"(?:txt|md|csv|tsv|json|jsonl|xml|html?|css|js|ts|py|java|c|h|cpp|rs|go|rb|sh|yml|yaml|toml|ini|cfg|log" \
            r"|pdf|docx?|xlsx?|pptx?|odt|zip|gz|tar|tgz|png|jpe?g|gif|svg|mp3|mp4|wav|exe|dll|srt|vtt)"

# In priority order: where two matches overlap, the one found by the earlier pattern wins, then the longer one.
PATTERNS: list[tuple[str, re.Pattern]] = [
    ("placeholder", re.compile(f"{OPEN}[^{CLOSE}\\s]{{0,20}}{CLOSE}")),  # a literal ⟦…⟧ in the input is protected too
    ("code", re.compile(r"`[^`\n]{1,200}`")),
    ("url", re.compile(r"\b(?:https?://|ftp://|www\.)[^\s<>\"'`]+" + _TRAIL, re.I)),
    ("email", re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")),
    ("path", re.compile(r"(?<![\w/])(?:[A-Za-z]:\\[^\s<>\"'`]*|(?:~|\.{1,2})?/(?:[\w.@-]+/)*[\w.@-]+)" + _TRAIL)),
    ("file", re.compile(rf"\b[\w-]+(?:\.[\w-]+)*\.{_FILE_EXT}\b", re.I)),
    ("handle", re.compile(r"(?<![\w@])@[A-Za-z_]\w{0,38}")),
    ("tag", re.compile(r"(?<![\w#&])#\w+")),
    ("code_id", re.compile(r"\b(?=[A-Z0-9-]*\d)(?=[A-Z0-9-]*[A-Z])[A-Z0-9]+(?:-[A-Z0-9]+)+\b|"
                           r"\b(?=[A-Z]*\d)[A-Z]{1,4}\d[A-Z\d]{2,}\b")),
    ("phone", re.compile(r"(?<![\w+(])(?:\+\d{1,3}[ .-]?)?\(\d{1,4}\)[ .-]?\d{2,4}(?:[ .-]\d{2,4}){1,4}\b|"
                         r"(?<![\w+])\+\d{1,3}(?:[ .-]\d{2,4}){2,5}\b|"
                         r"(?<![\w+.,])\d{3,4}(?:[ .-]\d{2,4}){2,4}\b(?![.,]\d)")),
    ("datetime", re.compile(r"\b\d{1,4}[/.-]\d{1,2}[/.-]\d{1,4}\b|"
                            r"\b\d{1,2}:\d{2}(?::\d{2})?(?:\s?[ap]\.?m\b\.?)?", re.I)),
    ("money", re.compile(r"[$€£¥]\s?\d[\d.,]*\d|[$€£¥]\s?\d|\b\d[\d.,]*\s?(?:[$€£¥]|USD|EUR|GBP)(?!\w)")),
    ("percent", re.compile(r"\b\d[\d.,]*\d\s?%|\b\d\s?%")),
    ("number", re.compile(r"(?<![\w.,])\d+(?:[.,]\d+)*(?![\w])|(?<![\w.,])\d+(?=[a-zA-Z]{1,3}\b)(?!st|nd|rd|th)")),
]


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    kind: str
    text: str


def find_spans(text: str) -> list[Span]:
    """The protected spans of `text`, left to right, never overlapping."""
    found: list[Span] = []
    taken = [False] * len(text)
    for kind, pattern in PATTERNS:
        for m in pattern.finditer(text):
            s, e = m.span()
            if e > s and not any(taken[s:e]):
                found.append(Span(s, e, kind, m.group()))
                taken[s:e] = [True] * (e - s)
    return sorted(found, key=lambda sp: sp.start)


@dataclass
class Masked:
    """A sentence with its spans replaced by placeholders, and what each placeholder stands for."""

    text: str
    spans: dict[str, str] = field(default_factory=dict)  # placeholder → original text


def mask(text: str, keep: list[tuple[int, int]] = (), limit: int = MAX_PLACEHOLDERS) -> Masked:
    """`text` with its protected spans (and the character ranges in `keep`, e.g. a document's inline markup)
    replaced by ⟦1⟧, ⟦2⟧, … in order; past `limit` spans the rest stay as text."""
    spans = [Span(s, e, "keep", text[s:e]) for s, e in keep if e > s]
    taken = set()
    for s, e in keep:
        taken.update(range(s, e))
    spans += [sp for sp in find_spans(text) if not taken.intersection(range(sp.start, sp.end))]
    spans.sort(key=lambda sp: sp.start)
    out, table, pos = [], {}, 0
    for sp in spans[:limit]:
        ph = placeholder(len(table) + 1)
        out.append(text[pos:sp.start])
        out.append(ph)
        table[ph] = sp.text
        pos = sp.end
    out.append(text[pos:])
    return Masked("".join(out), table)


@dataclass
class Restored:
    text: str
    missing: list[str]     # spans of the source the translation lost (appended at the end, see `unmask`)
    repeated: list[str]    # spans the translation used more than once


def unmask(translation: str, masked: Masked) -> Restored:
    """Put the spans back. A placeholder the translation invented is dropped; one it lost is appended at the end,
    so every span of the source appears in the output (and the caller can lower its confidence)."""
    seen: dict[str, int] = {}
    invented = []

    def back(m: re.Match) -> str:
        ph = m.group()
        if ph not in masked.spans:
            invented.append(ph)
            return ""
        seen[ph] = seen.get(ph, 0) + 1
        return masked.spans[ph]

    text = PLACEHOLDER_RE.sub(back, translation)
    if invented:  # close the gap an invented placeholder leaves
        text = re.sub(r" +([.,;:!?)])", r"\1", re.sub(r"  +", " ", text)).strip()
    missing = [ph for ph in masked.spans if ph not in seen]
    if missing:
        text = text.rstrip() + " " + " ".join(masked.spans[ph] for ph in missing)
    return Restored(text, [masked.spans[ph] for ph in missing], [masked.spans[ph] for ph, n in seen.items() if n > 1])


# ---------------------------------------------------------------------------------------------- training pairs

def mask_pair(src: str, tgt: str, rng: random.Random) -> tuple[str, str]:
    """A training pair with every span that occurs on BOTH sides (the same text) replaced by one placeholder on
    both sides. Placeholder numbers are drawn at random, so the model learns to copy each one, not to count."""
    a, b = find_spans(src), find_spans(tgt)
    shared = sorted({sp.text for sp in a} & {sp.text for sp in b}, key=len, reverse=True)
    if not shared:
        return src, tgt
    present = {int(n) for n in PLACEHOLDER_RE.findall(src + tgt)}  # e.g. a name that became a placeholder
    free = [n for n in range(1, MAX_PLACEHOLDERS + 1) if n not in present]
    ids = rng.sample(free, min(len(shared), len(free)))
    table = {text: placeholder(n) for text, n in zip(shared, ids)}
    return _replace(src, a, table), _replace(tgt, b, table)


def _replace(text: str, spans: list[Span], table: dict[str, str]) -> str:
    out, pos = [], 0
    for sp in spans:
        if sp.text in table:
            out += [text[pos:sp.start], table[sp.text]]
            pos = sp.end
    return "".join(out) + text[pos:]


def renumber(src: str, tgt: str, used: set[int], rng: random.Random) -> tuple[str, str]:
    """The pair with its placeholders renumbered to numbers not in `used` (joining pairs into one example must
    not give two different spans the same placeholder); `used` gains the new numbers."""
    mine = sorted({int(n) for n in PLACEHOLDER_RE.findall(src + tgt)})
    free = [n for n in range(1, MAX_PLACEHOLDERS + 1) if n not in used]
    if not mine or len(free) < len(mine):
        return (src, tgt) if not mine else (PLACEHOLDER_RE.sub("", src), PLACEHOLDER_RE.sub("", tgt))
    new = dict(zip(mine, rng.sample(free, len(mine))))
    used.update(new.values())
    sub = lambda s: PLACEHOLDER_RE.sub(lambda m: placeholder(new.get(int(m.group(1)), int(m.group(1)))), s)  # noqa: E731
    return sub(src), sub(tgt)
