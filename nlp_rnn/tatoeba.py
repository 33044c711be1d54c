"""Carving the Tatoeba English–Spanish pairs into train/dev/test so that no sentence crosses a split.

Tatoeba lists several translations of one sentence as separate pairs, and many sentences again with another
name, number or contraction ("Tom is tall." / "Mary's tall."). A random split by line would put "Go." → "Ve."
in training and "Go." → "Vete." in test, so the test would score memory, not translation. Pairs that share an
English or a Spanish side (compared case- and space-insensitively) form one group, and whole groups are drawn at
random, with a fixed seed, into test, then dev; the rest is training. Then every dev or test pair with a
near-duplicate in training (the same after `near_key`: case, accents, punctuation, numbers, contractions and the
corpus's recurring names folded away) moves to training, so no held-out pair is a training pair in disguise.

The grouping and the draw are those the shipped translators and language models were first trained with (1.2% of
that test split had near-duplicates in training; moving them changed BLEU by 0.05), so their held-out figures
stay honest on the stricter split.
"""
from __future__ import annotations

import random
import re
import unicodedata
from pathlib import Path

from .corpora import read_pairs

SPLIT_SEED = 1
TEST_PAIRS = 3000
DEV_PAIRS = 2000


# Names that recur across Tatoeba's pairs (the ten most frequent people and places shared by both sides); a
# sentence differing from another only by one of them is a near-duplicate
NAMES = frozenset("tom mary john alice boston australia osaka india chicago london paris tokyo".split())
_CONTRACTIONS = {"n't": " not", "'m": " am", "'re": " are", "'ve": " have", "'ll": " will", "'d": " would",
                 "'s": " is"}
_CONTRACTION = re.compile(r"(n't|'m|'re|'ve|'ll|'d|'s)\b")


def near_key(text: str) -> str:
    """What two sentences must share to count as near-duplicates: lower case, no accents, no punctuation,
    digits as 0, English contractions expanded, the corpus's recurring names as one placeholder."""
    t = unicodedata.normalize("NFKD", text.lower().replace("’", "'"))
    t = "".join(ch for ch in t if not unicodedata.combining(ch))
    t = _CONTRACTION.sub(lambda m: _CONTRACTIONS[m.group(1)], t.replace("can't", "cannot").replace("won't", "will not"))
    words = re.findall(r"[^\W_]+", re.sub(r"\d+", "0", t))
    return " ".join("<name>" if w in NAMES else w for w in words)

def _same(text: str) -> str:
    return " ".join(text.lower().split())


def _groups(pairs: list[tuple[str, str]]) -> list[list[int]]:
    """Indices of pairs, grouped by the connected components of 'shares a side with' (union-find)."""
    parent = list(range(len(pairs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_seen: dict[tuple[int, str], int] = {}
    for i, (en, es) in enumerate(pairs):
        for key in ((0, _same(en)), (1, _same(es))):
            j = first_seen.setdefault(key, i)
            parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(pairs)):
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())


def split_pairs(pairs: list[tuple[str, str]], seed: int = SPLIT_SEED, test: int = TEST_PAIRS,
                dev: int = DEV_PAIRS) -> dict[str, list[tuple[str, str]]]:
    """{'train', 'dev', 'test'}: whole groups drawn in a seeded random order until test, then dev, are full;
    then held-out pairs with a near-duplicate in training move to training."""
    groups = _groups(pairs)
    random.Random(seed).shuffle(groups)
    out: dict[str, list[int]] = {"test": [], "dev": [], "train": []}
    for g in groups:
        name = "test" if len(out["test"]) < test else "dev" if len(out["dev"]) < dev else "train"
        out[name].extend(g)
    seen = {near_key(side) for i in out["train"] for side in pairs[i]}
    for name in ("test", "dev"):
        moved = [i for i in out[name] if near_key(pairs[i][0]) in seen or near_key(pairs[i][1]) in seen]
        out["train"] += moved
        out[name] = [i for i in out[name] if i not in set(moved)]
    return {name: [pairs[i] for i in sorted(idx)] for name, idx in out.items()}


def carve(tsv: str | Path, out_dir: str | Path, seed: int = SPLIT_SEED) -> dict[str, int]:
    """Write `train.tsv`, `dev.tsv`, `test.tsv` (english<TAB>spanish) under `out_dir`; return their sizes."""
    pairs = read_pairs(tsv, 0, 1).pairs
    splits = split_pairs(pairs, seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in splits.items():
        (out / f"{name}.tsv").write_text("".join(f"{en}\t{es}\n" for en, es in rows), encoding="utf-8")
    return {name: len(rows) for name, rows in splits.items()}


def prepare(source: str | Path, work: str | Path, corpora: str | Path) -> dict[str, Path]:
    """Everything the shipped models train on, from the Tatoeba TSV: the split, the translators' training pairs
    (Tatoeba's training split plus the project's own `corpora/en-es`, its glossary also capitalised), and for each language
    model its
    deduplicated Tatoeba side plus the project's prose, with Tatoeba's dev side to validate on."""
    work, corpora = Path(work), Path(corpora)
    sizes = carve(source, work)
    own = read_pairs(corpora / "en-es" / "train.tsv", 0, 1).pairs
    glossary = corpora / "en-es" / "glossary.tsv"
    if glossary.is_file():  # single words and set phrases, which Tatoeba's sentences never show alone: as written
        entries = read_pairs(glossary, 0, 1).pairs  # and with a capital, as a word typed on its own often has
        own += entries + [(_capital(en), _capital(es)) for en, es in entries]
    train = read_pairs(work / "train.tsv", 0, 1).pairs + own
    (work / "mt-train.tsv").write_text("".join(f"{en}\t{es}\n" for en, es in train), encoding="utf-8")
    out = {"dir": work, "sizes": sizes, "mt_train": work / "mt-train.tsv", "mt_dev": work / "dev.tsv", "mt_test": work / "test.tsv"}
    dev = read_pairs(work / "dev.tsv", 0, 1).pairs
    test = read_pairs(work / "test.tsv", 0, 1).pairs
    for col, lang in enumerate(("en", "es")):
        side = dict.fromkeys(p[col] for p in train[: len(train) - len(own)])  # unique, in corpus order
        prose = (corpora / f"prose-{lang}" / "train.txt").read_text(encoding="utf-8")
        (work / f"lm-{lang}-train.txt").write_text("\n".join(side) + "\n" + prose, encoding="utf-8")
        for name, rows in (("dev", dev), ("test", test)):
            (work / f"lm-{lang}-{name}.txt").write_text("".join(dict.fromkeys(p[col] + "\n" for p in rows)),
                                                         encoding="utf-8")
            out[f"lm_{lang}_{name}"] = work / f"lm-{lang}-{name}.txt"
        out[f"lm_{lang}_train"] = work / f"lm-{lang}-train.txt"
    return out


def _capital(text: str) -> str:
    i = next((i for i, ch in enumerate(text) if ch.isalpha()), None)
    return text if i is None else text[:i] + text[i].upper() + text[i + 1:]


def find_tsv(data_dir: str | Path) -> Path:
    """The Tatoeba English–Spanish file in a folder: `spa.txt` as manythings.org/anki ships it, or `train.tsv`."""
    from .errors import UsageError

    d = Path(data_dir)
    for name in ("spa.txt", "train.tsv", "spa-eng.tsv"):
        if (d / name).is_file():
            return d / name
    raise UsageError(f"--data {d}: no spa.txt (download spa-eng.zip from https://www.manythings.org/anki/ and "
                     f"unzip it there) or train.tsv found")
