"""Scores: cross-entropy per character for language models; BLEU, chrF and TER (sacrebleu) for translators."""
from __future__ import annotations

import copy
import math
from typing import Iterable, Sequence

import torch

from .tokenizers import UNK

LN2 = math.log(2)


@torch.no_grad()
def summed_nll(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100) -> float:
    """Σ −log p(target) over every position of `logits` (..., V) and `targets` (...), in fp32; positions whose
    target is `ignore_index` (padding) do not count. The one place scores and validation losses are summed."""
    return float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1),
                                                   ignore_index=ignore_index, reduction="sum"))


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
    streams = [ids[r * per: r * per + per + 1] for r in range(rows)] if rows > 1 else [ids]
    width = min(len(s) for s in streams)
    x_all = torch.stack([s[:width] for s in streams]).to(device)
    total, count, _ = _score_windows(model, x_all, None, bptt)
    return total, count


@torch.no_grad()
def _score_windows(model, x_all: torch.Tensor, state, bptt: int):
    """Summed NLL of x_all[:, 1:] given what precedes, in windows of `bptt` inputs, state carried in and out."""
    total, count = 0.0, 0
    width = x_all.size(1)
    for start in range(0, width - 1, bptt):
        end = min(start + bptt, width - 1)
        logits, state = model(x_all[:, start:end], state)
        y = x_all[:, start + 1:end + 1]
        total += summed_nll(logits, y)
        count += y.numel()
    return total, count, state


def lm_nll_stream(model, id_chunks: Iterable[Sequence[int]], bptt: int = 256,
                  dynamic_lr: float = 0.0) -> tuple[float, int, int]:
    """`lm_nll` with one stream over ids that arrive in chunks (a file read piece by piece): the same windows
    and the same carried state as over the whole text at once, in memory bounded by one chunk. Returns the
    summed NLL, the number of predictions, and how many predicted ids were `unk`. With `dynamic_lr`, the score
    is that of dynamic evaluation (`_adapt_windows`) on a copy of the model; `model` itself is never changed."""
    if dynamic_lr:
        model, bptt = _adaptable_copy(model), DYNAMIC_BPTT
        windows = lambda m, x, s, b: _adapt_windows(m, x, s, b, dynamic_lr)  # noqa: E731
    else:
        model.eval()
        windows = _score_windows
    device = next(model.parameters()).device
    total, count, unk, state = 0.0, 0, 0, None
    left = torch.zeros(0, dtype=torch.long)  # ids not yet scored as targets; left[0] is the next input
    first = True
    for chunk in id_chunks:
        ids = torch.as_tensor(chunk, dtype=torch.long)
        if not ids.numel():
            continue
        unk += int((ids[1:] == UNK).sum()) if first else int((ids == UNK).sum())
        first = False
        ids = torch.cat([left, ids])
        full = (ids.numel() - 1) // bptt * bptt  # windows of exactly bptt inputs, as the whole text would have
        if full:
            nll, n, state = windows(model, ids[:full + 1].unsqueeze(0).to(device), state, bptt)
            total, count = total + nll, count + n
        left = ids[full:]
    if left.numel() > 1:
        nll, n, state = windows(model, left.unsqueeze(0).to(device), state, bptt)
        total, count = total + nll, count + n
    return total, count, unk


DYNAMIC_BPTT = 128  # characters read between two updates of dynamic evaluation


def _adaptable_copy(model):
    """A copy of the model to adapt while reading: inference mode (no dropout), but the recurrent kernel keeps
    what backward needs, which it does only in training mode."""
    if any(type(m).__module__.startswith("torch.ao.") for m in model.modules()):
        raise ValueError("dynamic evaluation needs a model with float weights (not --quantize int8)")
    adapted = copy.deepcopy(model).eval()
    adapted.rnn.train()
    return adapted


def _adapt_windows(model, x_all: torch.Tensor, state, bptt: int, lr: float):
    """Dynamic evaluation (Krause et al. 2018, its SGD form): each window is scored first, then the model takes
    one SGD step on it, so it adapts to the text as it reads it; every prediction is made before its own
    character is learnt from. Summed NLL, count and state, as `_score_windows`."""
    params = [p for p in model.parameters() if p.requires_grad]
    total, count = 0.0, 0
    for start in range(0, x_all.size(1) - 1, bptt):
        end = min(start + bptt, x_all.size(1) - 1)
        y = x_all[:, start + 1:end + 1]
        with torch.enable_grad():
            logits, state = model(x_all[:, start:end], state)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), y.reshape(-1))
            grads = torch.autograd.grad(loss, params)
        total += summed_nll(logits.detach(), y)
        count += y.numel()
        with torch.no_grad():
            torch._foreach_add_(params, grads, alpha=-lr)
        state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
    return total, count, state


def lm_metrics(model, tokenizer, text: str | Iterable[str], rows: int = 1, dynamic_lr: float = 0.0) -> dict:
    """nats/char, bits/char and perplexity over `text`, plus how many characters fell outside the vocabulary.
    `text` may be one string or an iterable of chunks (`corpora.iter_text_chunks(path)`), scored as one stream
    with the state carried across chunks, so a file of any size is scored in bounded memory (rows must be 1).
    `dynamic_lr` > 0: the score of dynamic evaluation at that step size (see `_adapt_windows`)."""
    if dynamic_lr and isinstance(text, str):
        text = [text]  # read as a stream, like a file
    if isinstance(text, str):
        ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
        nll, count = lm_nll(model, ids, rows=rows)
        unk = int((ids[1:] == UNK).sum())
    else:
        if rows != 1:
            raise ValueError("a text given in chunks is scored as one stream (rows=1)")
        nll, count, unk = lm_nll_stream(model, (tokenizer.encode(chunk) for chunk in text), dynamic_lr=dynamic_lr)
    nats = nll / max(1, count)
    return {"nats_per_char": nats, "bits_per_char": nats / LN2, "perplexity": math.exp(min(nats, 700)),
            "chars": count, "unk_chars": unk}


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
