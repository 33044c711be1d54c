"""Scores: cross-entropy per character for language models; BLEU, chrF and TER (sacrebleu) for translators."""
from __future__ import annotations

import math
from typing import Sequence

import torch

from .tokenizers import UNK

LN2 = math.log(2)


@torch.no_grad()
def lm_nll(model, ids: torch.Tensor, rows: int = 1, bptt: int = 256) -> tuple[float, int]:
    """Summed negative log-likelihood (nats) of predicting ids[1:] from what precedes them, state carried
    through the text in order. `rows > 1` splits the text into that many parallel streams (faster, and each
    stream restarts its state), which training uses for its periodic validation."""
    model.eval()
    device = next(model.parameters()).device
    n = ids.numel()
    if n < 2:
        return 0.0, 0
    rows = max(1, min(rows, (n - 1) // 2))
    per = (n - 1) // rows if rows > 1 else n - 1
    total, count = 0.0, 0
    streams = [ids[r * per: r * per + per + 1] for r in range(rows)] if rows > 1 else [ids]
    width = min(len(s) for s in streams)
    x_all = torch.stack([s[:width] for s in streams]).to(device)
    state = None
    for start in range(0, width - 1, bptt):
        end = min(start + bptt, width - 1)
        logits, state = model(x_all[:, start:end], state)
        y = x_all[:, start + 1:end + 1]
        total += float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)).float(),
                                                         y.reshape(-1), reduction="sum"))
        count += y.numel()
    return total, count


def lm_metrics(model, tokenizer, text: str, rows: int = 1) -> dict:
    """nats/char, bits/char and perplexity over `text`, plus how many characters fell outside the vocabulary."""
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    nll, count = lm_nll(model, ids, rows=rows)
    nats = nll / max(1, count)
    return {"nats_per_char": nats, "bits_per_char": nats / LN2, "perplexity": math.exp(min(nats, 700)),
            "chars": count, "unk_chars": int((ids[1:] == UNK).sum())}


def mt_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict:
    """Corpus BLEU, chrF and TER with sacrebleu's default settings and their signatures."""
    from sacrebleu.metrics import BLEU, CHRF, TER

    out, sigs = {}, {}
    for name, metric in (("bleu", BLEU()), ("chrf", CHRF()), ("ter", TER())):
        score = metric.corpus_score(list(hypotheses), [list(references)])
        out[name] = round(score.score, 2)
        sigs[name] = str(metric.get_signature())
    out["signatures"] = sigs
    return out
