"""How a translator copes with the text people paste (issues 24 and 26), on the held-out Tatoeba split and the
project's own material (benchmarks/material/), in both directions, through the application layer — or, with
`--raw`, straight through search as the translators were used before the pipeline existed.

    python -m benchmarks.mt_robust --data DATA [--mt DIR --mt DIR] [--raw] [--limit N] [--json OUT]

DATA is the folder `tatoeba.prepare` writes (test.tsv, mt-train.tsv). Each figure:
- tatoeba: BLEU/chrF, beam 5, on the test split (all of it, or the first --limit pairs);
- names: share of names.tsv sentences whose translation contains every listed name verbatim;
- spans: share of numbers.tsv sentences that keep every listed span exactly;
- caps: BLEU (lower-cased) of the test pairs written in capitals, beside the same pairs as written;
- long: BLEU of long.tsv (23–40 words) beside the Tatoeba figure;
- paragraphs: three sentences on one line (paragraphs.tsv): the share whose translation holds three sentences,
  and BLEU beside translating the sentences one by one;
- repeats / invented: share of outputs (Tatoeba test + ood) with a word said twice in a row that the source
  does not repeat, or with a word found neither in the training targets nor in the source;
- common: common.tsv words and two-word phrases translated to one of their listed renderings;
- ood: BLEU of ood.tsv (everyday text in eight domains);
- confidence: Spearman correlation of the confidence with sentence chrF on the test split, and the share of the
  sentences with chrF < 30 that fall in the lowest-confidence 10%.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

from sacrebleu.metrics import BLEU, CHRF

from nlp_rnn.corpora import read_pairs
from nlp_rnn.defaults import MT_DIRECTIONS, shipped_model

MATERIAL = Path(__file__).resolve().parent / "material"
sys.path.insert(0, str(MATERIAL))
from check import normalise  # noqa: E402  (the material's own comparison rule)

WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")


def rows(name: str) -> list[list[str]]:
    return [line.split("\t") for line in (MATERIAL / name).read_text(encoding="utf-8").splitlines() if line]


class Translator:
    """One direction, through the service (the pipeline) or, raw, through search alone."""

    def __init__(self, service, direction: str, raw: bool):
        self.service, self.direction, self.raw = service, direction, raw

    def __call__(self, lines: list[str]) -> list:
        if not self.raw:
            return self.service.translate(lines, direction=self.direction, beam=5)
        from nlp_rnn.search import translate_all

        mt = self.service.translator(self.direction)
        return translate_all(mt.model, mt.tokenizers["src_tokenizer"], mt.tokenizers["tgt_tokenizer"], lines, beam=5,
                             shortlist=mt.shortlist)


def bleu(hyps, refs, lower=False) -> float:
    return round(BLEU(lowercase=lower).corpus_score(hyps, [refs]).score, 2)


def repeated(text: str, source: str) -> bool:
    def has(t):
        w = [x.lower() for x in WORD.findall(t)]
        return any(a == b for a, b in zip(w, w[1:]))
    return has(text) and not has(source)


def invented(text: str, source: str, known: set[str]) -> bool:
    src = {w.lower() for w in WORD.findall(source)}
    return any(w.lower() not in known and w.lower() not in src for w in WORD.findall(text))


def spearman(x: list[float], y: list[float]) -> float:
    def ranks(v):
        order = sorted(range(len(v)), key=v.__getitem__)
        r = [0.0] * len(v)
        for i, j in enumerate(order):
            r[j] = i
        return r
    rx, ry = ranks(x), ranks(y)
    n = len(x)
    mx, my = sum(rx) / n, sum(ry) / n
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    return round(cov / (sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry)) ** 0.5, 4)


def measure(tr: Translator, src_col: int, data: Path, known: set[str], limit: int) -> dict:
    tgt_col = 1 - src_col
    out, start = {}, time.process_time()
    test = read_pairs(data / "test.tsv", src_col, tgt_col).pairs[:limit]
    hyp = tr([s for s, _ in test])
    refs = [t for _, t in test]
    out["tatoeba_bleu"] = bleu([h.text for h in hyp], refs)
    out["tatoeba_chrf"] = round(CHRF().corpus_score([h.text for h in hyp], [refs]).score, 2)
    caps = tr([s.upper() for s, _ in test[:1000]])
    out["caps_bleu_lc"] = bleu([h.text for h in caps], refs[:1000], lower=True)
    out["same_text_bleu_lc"] = bleu([h.text for h in hyp[:1000]], refs[:1000], lower=True)
    names = rows("names.tsv")
    got = tr([r[src_col] for r in names])
    out["names_copied"] = round(sum(all(n in g.text for n in r[2].split("|")) for g, r in zip(got, names)) / len(names), 4)
    nums = rows("numbers.tsv")
    got = tr([r[src_col] for r in nums])
    out["spans_kept"] = round(sum(all(n in g.text for n in r[2].split("|")) for g, r in zip(got, nums)) / len(nums), 4)
    long = rows("long.tsv")
    out["long_bleu"] = bleu([g.text for g in tr([r[src_col] for r in long])], [r[tgt_col] for r in long])
    paras = rows("paragraphs.tsv")
    whole = tr([r[src_col] for r in paras])
    parts = [r[2 + src_col].split(" ||| ") for r in paras]
    flat = tr([s for p in parts for s in p])
    joined, i = [], 0
    for p in parts:
        joined.append(" ".join(t.text for t in flat[i:i + len(p)]))
        i += len(p)
    out["paragraph_bleu"] = bleu([w.text for w in whole], [r[tgt_col] for r in paras])
    out["sentence_by_sentence_bleu"] = bleu(joined, [r[tgt_col] for r in paras])
    out["paragraphs_kept"] = round(sum(len(re.findall(r"[.!?](?:\s|$)", w.text)) >= 3 for w in whole) / len(paras), 4)
    ood = rows("ood.tsv")
    got_ood = tr([r[src_col] for r in ood])
    out["ood_bleu"] = bleu([g.text for g in got_ood], [r[tgt_col] for r in ood])
    both = list(zip([h.text for h in hyp] + [g.text for g in got_ood], [s for s, _ in test] + [r[src_col] for r in ood]))
    out["repeats"] = round(sum(repeated(h, s) for h, s in both) / len(both), 4)
    out["invented"] = round(sum(invented(h, s, known) for h, s in both) / len(both), 4)
    common = rows("common.tsv")
    got = tr([r[src_col] for r in common])
    ok = [normalise(g.text) in {normalise(a) for a in r[2 + tgt_col].split("|")} for g, r in zip(got, common)]
    out["common_right"] = round(sum(ok) / len(ok), 4)
    out["common_words_right"] = round(sum(o for o, r in zip(ok, common) if r[4] == "word") / 100, 4)
    if not tr.raw:
        chrf = [CHRF().sentence_score(h.text, [r]).score for h, r in zip(hyp, refs)]
        conf = [h.confidence for h in hyp]
        out["confidence_spearman"] = spearman(conf, chrf)
        low = sorted(range(len(conf)), key=conf.__getitem__)[: len(conf) // 10]
        bad = [i for i, c in enumerate(chrf) if c < 30]
        out["lowest10_catch_bad"] = round(len(set(low) & set(bad)) / max(1, len(bad)), 4)
    out["cpu_seconds"] = round(time.process_time() - start, 1)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.mt_robust", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--mt", type=Path, action="append", help="translator directories (default: the shipped ones)")
    ap.add_argument("--raw", action="store_true", help="search only: no capitals, spans, guards or confidence")
    ap.add_argument("--limit", type=int, default=10 ** 9, help="Tatoeba test pairs used (default: all)")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    import torch

    from nlp_rnn.service import Service

    torch.set_num_threads(1)
    paths = a.mt or [shipped_model(f"mt-{s}-{t}") for s, t in MT_DIRECTIONS]
    service = Service(mt=paths, shipped=False)
    train = read_pairs(a.data / "mt-train.tsv", 0, 1).pairs
    report = {"models": [str(p) for p in paths], "raw": a.raw}
    for src, tgt in MT_DIRECTIONS:
        known = {w.lower() for pair in train for w in WORD.findall(pair[1 if tgt == "es" else 0])}
        report[f"{src}-{tgt}"] = measure(Translator(service, f"{src}-{tgt}", a.raw), 0 if src == "en" else 1,
                                         a.data, known, a.limit)
        print(json.dumps({f"{src}-{tgt}": report[f"{src}-{tgt}"]}), flush=True)
    if a.json:
        a.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
