"""Check the hand-written evaluation material in this folder and the training glossary beside it.

Run from anywhere: ``python benchmarks/material/check.py``. Stdlib only; prints one line per file and exits 1
with every problem listed (file, line, cause) if any check fails. ``normalise`` is the comparison that
``common.tsv``'s acceptable answers are meant for; evaluators should import it rather than write their own.
"""
from __future__ import annotations

import re
import sys
import unicodedata
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

HERE = Path(__file__).resolve().parent
GLOSSARY = HERE.parent.parent / "corpora" / "en-es" / "glossary.tsv"

# file -> (columns, items); the ood domains and common kinds are checked separately
TSV = {"names.tsv": (3, 200), "numbers.tsv": (3, 200), "paragraphs.tsv": (4, 80), "long.tsv": (2, 80),
       "ood.tsv": (3, 240), "common.tsv": (5, 200)}
OOD_DOMAINS = ("chat", "email", "news", "recipe", "review", "travel", "health", "tech")
LEADING = "¿¡\"'«“ \t"
TRAILING = ".,;:!?…\"'»” \t"


def normalise(text: str) -> str:
    """Lower-case, NFC, leading ¿¡ and quotes and final punctuation stripped: how short answers are compared."""
    return unicodedata.normalize("NFC", text).strip(LEADING).rstrip(TRAILING).strip(LEADING).lower()


def read_rows(path: Path, columns: int, problems: list[str]) -> list[list[str]]:
    """Rows of a headerless TSV; a wrong column count, empty field, stray space or non-NFC text is a problem."""
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        cells = line.split("\t")
        where = f"{path.name}:{n}"
        if len(cells) != columns:
            problems.append(f"{where}: {len(cells)} columns, expected {columns}")
            continue
        if any(not c or c != c.strip() for c in cells):
            problems.append(f"{where}: empty field or leading/trailing space")
        if unicodedata.normalize("NFC", line) != line:
            problems.append(f"{where}: text is not NFC")
        rows.append(cells)
    return rows


def check_spans(name: str, rows: list[list[str]], problems: list[str]) -> None:
    """Every |-separated span of the third column occurs verbatim in both the English and the Spanish side."""
    for n, (en, es, spans) in enumerate(rows, 1):
        for span in spans.split("|"):
            for side, text in (("English", en), ("Spanish", es)):
                if span not in text:
                    problems.append(f"{name}:{n}: span {span!r} missing from the {side} side")
    if name == "names.tsv":
        for n, (en, es, _) in enumerate(rows, 1):
            if re.search(r"\b(Tom|Mary)\b", en + " " + es):
                problems.append(f"{name}:{n}: uses Tom or Mary, which the training data is full of")


def check_paragraphs(rows: list[list[str]], problems: list[str]) -> None:
    """Three sentences a side, and the sentences joined by single spaces give back the paragraph exactly."""
    for n, (en, es, en_s, es_s) in enumerate(rows, 1):
        for side, para, joined in (("English", en, en_s), ("Spanish", es, es_s)):
            parts = joined.split(" ||| ")
            if len(parts) != 3:
                problems.append(f"paragraphs.tsv:{n}: {len(parts)} {side} sentences, expected 3")
            elif " ".join(parts) != para:
                problems.append(f"paragraphs.tsv:{n}: {side} sentences do not join back into the paragraph")


def check_long(rows: list[list[str]], problems: list[str]) -> None:
    """Each English sentence has 21-40 words."""
    for n, (en, _) in enumerate(rows, 1):
        words = len(en.split())
        if not 21 <= words <= 40:
            problems.append(f"long.tsv:{n}: {words} English words, expected 21-40")


def check_ood(rows: list[list[str]], problems: list[str]) -> None:
    """Thirty lines for each of the eight domains, and no other domain."""
    counts = Counter(r[2] for r in rows)
    for domain in sorted(set(counts) | set(OOD_DOMAINS)):
        if domain not in OOD_DOMAINS or counts[domain] != 30:
            problems.append(f"ood.tsv: domain {domain!r} has {counts[domain]} lines, expected 30 of each of "
                            f"{', '.join(OOD_DOMAINS)}")


def check_common(rows: list[list[str]], problems: list[str]) -> None:
    """100 words and 100 phrases; each side is among its own acceptable answers; no source repeats."""
    kinds = Counter(r[4] for r in rows)
    if kinds != Counter({"word": 100, "phrase": 100}):
        problems.append(f"common.tsv: kinds {dict(kinds)}, expected 100 word and 100 phrase")
    for n, (en, es, ok_en, ok_es, kind) in enumerate(rows, 1):
        if normalise(en) not in {normalise(a) for a in ok_en.split("|")}:
            problems.append(f"common.tsv:{n}: {en!r} is not among its own acceptable English answers")
        if normalise(es) not in {normalise(a) for a in ok_es.split("|")}:
            problems.append(f"common.tsv:{n}: {es!r} is not among its own acceptable Spanish answers")
        if kind == "word" and len(en.split()) != 1 or kind == "phrase" and len(en.split()) != 2:
            problems.append(f"common.tsv:{n}: {en!r} does not have the word count of a {kind}")
    for col, side in ((0, "English"), (1, "Spanish")):
        repeated = [k for k, v in Counter(normalise(r[col]) for r in rows).items() if v > 1]
        if repeated:
            problems.append(f"common.tsv: {side} side repeated: {', '.join(repeated)}")


def benchmark_texts(tables: dict[str, list[list[str]]]) -> set[str]:
    """Every test item and every paragraph sentence, normalised, in both languages."""
    texts = set()
    for name in ("names.tsv", "numbers.tsv", "long.tsv", "ood.tsv", "common.tsv"):
        texts.update(normalise(c) for row in tables.get(name, []) for c in row[:2])
    for row in tables.get("paragraphs.tsv", []):
        texts.update(normalise(s) for s in row[2].split(" ||| ") + row[3].split(" ||| "))
    return texts


def check_glossary(path: Path, tables: dict[str, list[list[str]]], problems: list[str]) -> tuple[int, int]:
    """No glossary side equals a test item (common.tsv above all); no English entry twice.

    Returns (entries, entries sharing a side with an acceptable answer of common.tsv): such entries are
    allowed (they teach a neighbour, not the test input) and counted so the figure can be watched.
    """
    rows = read_rows(path, 2, problems)
    held_out = benchmark_texts(tables)
    common = tables.get("common.tsv", [])
    common_sides = {normalise(r[0]) for r in common} | {normalise(r[1]) for r in common}
    accepted = {normalise(a) for r in common for a in r[2].split("|") + r[3].split("|")}
    near = 0
    for n, (en, es) in enumerate(rows, 1):
        for side, text in (("English", en), ("Spanish", es)):
            if normalise(text) in common_sides:
                problems.append(f"{path.name}:{n}: {side} {text!r} is a line of common.tsv (held out)")
            elif normalise(text) in held_out:
                problems.append(f"{path.name}:{n}: {side} {text!r} is a test item of benchmarks/material")
        near += normalise(en) in accepted or normalise(es) in accepted
    repeated = [k for k, v in Counter(normalise(r[0]) for r in rows).items() if v > 1]
    if repeated:
        problems.append(f"{path.name}: English entries repeated: {', '.join(repeated)}")
    return len(rows), near


def srt_cues(text: str) -> list[tuple[str, str, list[str]]]:
    """(number, timing, text lines) of each cue of an SRT file."""
    blocks = [b.splitlines() for b in text.strip().split("\n\n")]
    return [(b[0], b[1], b[2:]) for b in blocks]


def check_srt(problems: list[str]) -> int:
    """Same cue numbers, timings and lines per cue; every cue's text translated; tags kept."""
    src, ref = (srt_cues((HERE / f).read_text(encoding="utf-8")) for f in ("talk.srt", "talk.es.srt"))
    if len(src) != len(ref):
        problems.append(f"talk.es.srt: {len(ref)} cues, talk.srt has {len(src)}")
    for (n1, t1, l1), (n2, t2, l2) in zip(src, ref):
        if (n1, t1, len(l1)) != (n2, t2, len(l2)):
            problems.append(f"talk.es.srt: cue {n2} differs in number, timing or line count from cue {n1}")
        if l1 == l2 or tags("\n".join(l1)) != tags("\n".join(l2)):
            problems.append(f"talk.es.srt: cue {n2} untranslated or with different tags")
    if len(src) < 12:
        problems.append(f"talk.srt: {len(src)} cues, expected at least 12")
    return len(src)


def tags(text: str) -> list[str]:
    """The markup tags of a subtitle line, in order (<i>, </i>, <v Ana>, <b>…)."""
    return re.findall(r"<[^>]+>", text)


def check_vtt(problems: list[str]) -> int:
    """Header, NOTE block, cue identifiers, timings with settings and tags identical; cue text translated."""
    src, ref = ((HERE / f).read_text(encoding="utf-8").split("\n\n") for f in ("talk.vtt", "talk.es.vtt"))
    if len(src) != len(ref) or src[:2] != ref[:2]:
        problems.append("talk.es.vtt: header or NOTE block or number of blocks differs from talk.vtt")
    cues = 0
    for b1, b2 in zip(src[2:], ref[2:]):
        l1, l2 = b1.splitlines(), b2.splitlines()
        timing = next(i for i, line in enumerate(l1) if "-->" in line)
        cues += 1
        if l1[:timing + 1] != l2[:timing + 1] or len(l1) != len(l2):
            problems.append(f"talk.es.vtt: cue {l1[timing]!r} changed its identifier, timing or line count")
        if l1[timing + 1:] == l2[timing + 1:] or tags(b1) != tags(b2):
            problems.append(f"talk.es.vtt: cue {l1[timing]!r} untranslated or with different tags")
    return cues


def md_skeleton(line: str) -> str:
    """What translation must not change on a Markdown line: its block marker, code, URLs and table shape."""
    marker = re.match(r"^(#+ |[-*] |\d+\. |> |\| |```|!\[)?", line).group(0)
    code = re.findall(r"`[^`]+`", line)
    urls = re.findall(r"\]\(([^)]+)\)", line)
    return f"{marker}|{line.count('|')}|{code}|{urls}"


def check_md(problems: list[str]) -> int:
    """Line for line the same skeleton; fenced code identical; prose lines translated."""
    src, ref = ((HERE / f).read_text(encoding="utf-8").splitlines() for f in ("doc.md", "doc.es.md"))
    if len(src) != len(ref):
        problems.append(f"doc.es.md: {len(ref)} lines, doc.md has {len(src)}")
    fenced = False
    for n, (a, b) in enumerate(zip(src, ref), 1):
        fenced ^= a.startswith("```")
        if md_skeleton(a) != md_skeleton(b) or (fenced or a.startswith("```")) and a != b:
            problems.append(f"doc.es.md:{n}: structure, code or link URL differs from doc.md")
    return len(src)


class Skeleton(HTMLParser):
    """Collects the tag sequence with untranslatable attributes, script/style bodies and the text nodes."""

    KEEP = ("href", "src", "class", "charset", "id")

    RAW = ("script", "style", "pre")

    def __init__(self) -> None:
        super().__init__()
        self.tags, self.code, self.text, self._raw = [], [], [], 0

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, tuple((k, v) for k, v in attrs if k in self.KEEP)))
        self._raw += tag in self.RAW

    def handle_endtag(self, tag):
        self.tags.append(("/" + tag, ()))
        self._raw -= tag in self.RAW

    def handle_data(self, data):
        if data.strip():
            (self.code if self._raw else self.text).append(data.strip())


def check_html(problems: list[str]) -> int:
    """Same tags and kept attributes in the same order; script, style and code identical; text translated."""
    src, ref = Skeleton(), Skeleton()
    src.feed((HERE / "page.html").read_text(encoding="utf-8"))
    ref.feed((HERE / "page.es.html").read_text(encoding="utf-8"))
    if src.tags != ref.tags:
        problems.append("page.es.html: tags or their href/src/class attributes differ from page.html")
    if src.code != ref.code:
        problems.append("page.es.html: script, style or code block differs from page.html")
    same = [t for t, u in zip(src.text, ref.text) if t == u and not re.fullmatch(r"[\w.@:/-]+", t)]
    if same or len(src.text) != len(ref.text):
        problems.append(f"page.es.html: text nodes left untranslated or missing: {same}")
    return len(src.tags)


def main() -> int:
    problems: list[str] = []
    tables = {}
    for name, (columns, items) in TSV.items():
        rows = tables[name] = read_rows(HERE / name, columns, problems)
        if len(rows) != items:
            problems.append(f"{name}: {len(rows)} items, expected {items}")
    check_spans("names.tsv", tables["names.tsv"], problems)
    check_spans("numbers.tsv", tables["numbers.tsv"], problems)
    check_paragraphs(tables["paragraphs.tsv"], problems)
    check_long(tables["long.tsv"], problems)
    check_ood(tables["ood.tsv"], problems)
    check_common(tables["common.tsv"], problems)
    for name, rows in tables.items():
        print(f"{name}: {len(rows)} items")
    entries, near = check_glossary(GLOSSARY, tables, problems)
    print(f"glossary.tsv: {entries} entries, none equal to a test item; {near} share a side with an "
          "acceptable answer of common.tsv (allowed)")
    print(f"talk.srt/talk.es.srt: {check_srt(problems)} cues; talk.vtt/talk.es.vtt: {check_vtt(problems)} cues; "
          f"doc.md/doc.es.md: {check_md(problems)} lines; page.html/page.es.html: {check_html(problems)} tags")
    for p in problems:
        print("FAIL " + p)
    print("all checks passed" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
