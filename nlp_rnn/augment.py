"""Training-pair augmentation that teaches a translator what its corpus never shows: to copy names it has never
seen, to keep numbers and links (as placeholders), to cope with any letter case, and to translate several
sentences in one line.

Tatoeba, the shipped translators' data, names almost nobody but Tom and Mary, is written in sentence case, holds
one short sentence per pair (6.3 English words on average; 0.1% have 21 or more) and has numbers in 1% of its
pairs. Trained on it as it is, a translator turns "Wei" into "I", "WHERE IS THE BATHROOM?" into noise, and drops
every sentence of a paragraph after the first. Each transformation below changes a share of the pairs, the same
way on both sides, from a seeded generator, so a run is repeatable:

- names:  a name both sides share ("Tom" … "Tom") becomes a name drawn from many languages (Faker's locales):
          "Björn", "Oluwaseun", "Gabriel García Márquez", "Jean-Luc", …
- spans:  every number, URL, e-mail … both sides share becomes one placeholder ⟦n⟧ (`spans.mask_pair`), the
          form the translation pipeline gives them at inference;
- case:   the pair in lower case, ALL CAPS or without its first capital;
- concat: extra examples made of 2–4 random pairs joined into one line.
"""
from __future__ import annotations

import collections
import random
import re
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

from .spans import mask_pair, placeholder, renumber

Pair = tuple[str, str]

_CAPITALISED = re.compile(r"\b[A-ZÁÉÍÓÚÑÜ][\w'’-]*\b")
_WORD = re.compile(r"\b\w+\b")


NAME_PLACEHOLDERS = 0.1  # with spans: the share of replaced names that become a placeholder (copy practice)


@dataclass(frozen=True)
class Augmentation:
    """Shares of the training pairs each transformation changes (0 turns it off)."""

    names: float = 0.0        # of the pairs whose sides share a name
    spans: bool = False       # shared numbers, URLs, … → placeholders (needs a tokenizer with placeholders)
    case: float = 0.0         # of all pairs: lower case, ALL CAPS or first letter lowered (2 : 1 : 1)
    concat: float = 0.0       # extra examples, as a share of the corpus, of 2–4 pairs joined
    seed: int = 1

    def check(self) -> "Augmentation":
        from .limits import check

        for name in ("names", "case", "concat"):
            check("augment_share", getattr(self, name), f"--augment-{name}")
        return self

    @property
    def active(self) -> bool:
        return bool(self.names or self.spans or self.case or self.concat)

    def to_dict(self) -> dict:
        return asdict(self)


def augment(pairs: Sequence[Pair], aug: Augmentation) -> list[Pair]:
    """The pairs transformed as `aug` says, followed by the joined examples; the input is not changed."""
    if not aug.active:
        return list(pairs)
    rng = random.Random(aug.seed)
    names = NameSource(aug.seed) if aug.names else None
    common = lowercase_words(pairs) if aug.names else set()
    out = []
    for src, tgt in pairs:
        if names is not None and rng.random() < aug.names:
            src, tgt = replace_shared_names(src, tgt, common, names, rng, NAME_PLACEHOLDERS if aug.spans else 0.0)
        if aug.spans:
            src, tgt = mask_pair(src, tgt, rng)
        if aug.case and rng.random() < aug.case:
            src, tgt = recase(src, tgt, rng)
        out.append((src, tgt))
    n_joined = int(round(aug.concat * len(out)))
    return out + [join(rng.sample(out, rng.choices((2, 3, 4), (5, 3, 2))[0]), rng) for _ in range(n_joined)
                  if len(out) >= 4]


# ---------------------------------------------------------------------------------------------- names

def lowercase_words(pairs: Iterable[Pair], min_count: int = 5) -> set[str]:
    """Words written in lower case at least `min_count` times: 'No' and 'Internet' are words, 'Tom' is a name."""
    counts: collections.Counter[str] = collections.Counter()
    for src, tgt in pairs:
        counts.update(w for w in _WORD.findall(src + " " + tgt) if w.islower())
    return {w for w, n in counts.items() if n >= min_count}


def shared_names(src: str, tgt: str, common: set[str]) -> list[str]:
    """Capitalised words both sides contain whose lower-case form is not an ordinary word of the corpus."""
    a = set(_CAPITALISED.findall(src))
    return sorted((w for w in a & set(_CAPITALISED.findall(tgt))
                   if w.lower() not in common and not w.isupper() and len(w) > 1), key=len, reverse=True)


def replace_shared_names(src: str, tgt: str, common: set[str], names: "NameSource", rng: random.Random,
                         placeholder_share: float = 0.0) -> Pair:
    for old in shared_names(src, tgt, common):
        new = placeholder(rng.randint(1, 24)) if rng.random() < placeholder_share else names.draw(rng)
        pattern = re.compile(rf"\b{re.escape(old)}\b")
        if "\\" in new:
            new = new.replace("\\", "\\\\")
        src, tgt = pattern.sub(new, src), pattern.sub(new, tgt)
    return src, tgt


# Faker locales by script: mostly Latin (with their accents and hyphens), romanised Chinese and Japanese names,
# and some other scripts for copy practice through byte pieces
LATIN_LOCALES = ("en_US", "en_GB", "en_IN", "es_ES", "es_MX", "es_AR", "pt_BR", "pt_PT", "fr_FR", "de_DE",
                 "it_IT", "nl_NL", "sv_SE", "no_NO", "da_DK", "fi_FI", "pl_PL", "cs_CZ", "sk_SK", "hu_HU",
                 "ro_RO", "hr_HR", "sl_SI", "tr_TR", "et_EE", "lv_LV", "lt_LT", "ga_IE", "en_NG", "yo_NG",
                 "sw", "zu_ZA", "id_ID", "vi_VN", "az_AZ", "de_AT", "fr_CH", "en_NZ", "fil_PH", "es_CO")
ROMANISED_LOCALES = ("zh_CN", "zh_TW", "ja_JP")
OTHER_LOCALES = ("ru_RU", "uk_UA", "el_GR", "ja_JP", "zh_CN", "ko_KR", "ar_AA", "he_IL", "hi_IN", "th_TH")
ROMANISED_SHARE, OTHER_SHARE = 0.12, 0.06


class NameSource:
    """Person names from many languages and scripts, drawn from Faker's locales (seeded)."""

    def __init__(self, seed: int):
        try:
            from faker import Faker
        except ImportError:  # pragma: no cover - Faker is a dependency; a broken install says what is missing
            from .errors import UsageError

            raise UsageError("name augmentation needs the Faker package (pip install faker)") from None
        self.fakers = {loc: Faker(loc) for loc in dict.fromkeys((*LATIN_LOCALES, *ROMANISED_LOCALES, *OTHER_LOCALES))}
        for i, f in enumerate(self.fakers.values()):
            f.seed_instance(seed * 1000 + i)

    def draw(self, rng: random.Random) -> str:
        r, kind = rng.random(), rng.random()
        if r < ROMANISED_SHARE:
            fake = self.fakers[rng.choice(ROMANISED_LOCALES)]
            first, last = fake.first_romanized_name, fake.last_romanized_name
        else:
            locales = OTHER_LOCALES if r < ROMANISED_SHARE + OTHER_SHARE else LATIN_LOCALES
            fake = self.fakers[rng.choice(locales)]
            first, last = fake.first_name, fake.last_name
        name = " ".join((first() if kind < 0.6 else last() if kind < 0.75 else f"{first()} {last()}").split())
        return name.title() if name.isupper() else name  # zh_TW's romanised names come in capitals


# ---------------------------------------------------------------------------------------------- case and length

def recase(src: str, tgt: str, rng: random.Random) -> Pair:
    r = rng.random()
    if r < 0.5:
        return src.lower(), tgt.lower()
    if r < 0.75:
        return src.upper(), tgt.upper()
    return _lower_first(src), _lower_first(tgt)


def _lower_first(s: str) -> str:
    for i, ch in enumerate(s):
        if ch.isalpha():
            return s[:i] + ch.lower() + s[i + 1:]
    return s


def join(parts: Sequence[Pair], rng: random.Random) -> Pair:
    """Several pairs as one example (sentences joined by a space), placeholders renumbered so none clash."""
    used: set[int] = set()
    srcs, tgts = [], []
    for src, tgt in parts:
        src, tgt = renumber(src, tgt, used, rng)
        srcs.append(src)
        tgts.append(tgt)
    return " ".join(srcs), " ".join(tgts)
