"""A names dev set: the dev pairs whose two sides name Tom or Mary, with those names swapped for other people's
names drawn from Faker's locales under a seed of its own (not the training seed), so a translator that only learnt
to copy "Tom" is caught. Used to choose between translator runs; the project's own names test set
(benchmarks/material/names.tsv) is what the figures in BENCHMARKS.md are measured on.

    python -m benchmarks.names_dev DEV.tsv OUT.tsv [--seed 999] [--max 500]
"""
from __future__ import annotations

import argparse
import random
import re

from nlp_rnn.augment import NameSource
from nlp_rnn.corpora import read_pairs


def swap(pairs, seed: int, limit: int) -> list[tuple[str, str, str]]:
    rng, names = random.Random(seed), NameSource(seed)
    out = []
    for en, es in pairs:
        used = [n for n in ("Tom", "Mary") if re.search(rf"\b{n}\b", en) and re.search(rf"\b{n}\b", es)]
        if not used:
            continue
        new = []
        for old in used:
            name = names.draw(rng)
            while name in new:
                name = names.draw(rng)
            en, es = (re.sub(rf"\b{old}\b", name.replace("\\", "\\\\"), s) for s in (en, es))
            new.append(name)
        out.append((en, es, "|".join(new)))
        if len(out) >= limit:
            break
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.names_dev", description=__doc__.split("\n\n")[0])
    ap.add_argument("dev")
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=999)
    ap.add_argument("--max", type=int, default=500)
    a = ap.parse_args(argv)
    rows = swap(read_pairs(a.dev, 0, 1).pairs, a.seed, a.max)
    with open(a.out, "w", encoding="utf-8") as f:
        f.writelines("\t".join(r) + "\n" for r in rows)
    print(f"{len(rows)} pairs written to {a.out}")


if __name__ == "__main__":
    main()
