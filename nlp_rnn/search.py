"""Translation search over explicit decoder state: batched greedy and batched beam search.

Beam layout: B sentences × K beams are flattened to B*K rows; finished sentences leave the batch, so work
shrinks as sentences end. Scores are sums of log-probabilities; `length_penalty` α ranks finished
hypotheses by score / ((5 + len) / 6) ** α (Wu et al. 2016), α = 0 meaning raw log-probability.
"""
from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch

from .data import bucket_batches, collate
from .errors import UsageError
from .models.fast_decode import FastDecoder
from .models.shortlist import Shortlist
from .runtime import autocast, resolve_precision
from .tokenizers import BOS, EOS


@dataclass
class Hypothesis:
    ids: list[int]
    score: float       # total log-probability, EOS included
    norm_score: float  # what beam search ranks by


def _max_lens(src_len: torch.Tensor, ratio: float, cap: int) -> torch.Tensor:
    return torch.clamp((src_len.float() * ratio).long() + 5, max=cap)


MAX_SRC_TOKENS = 250  # a longer source is cut (and flagged `truncated`): beyond it a translation degrades anyway


def _lp(length: int, alpha: float) -> float:
    return ((5 + length) / 6) ** alpha if alpha else 1.0


class RepeatGuard:
    """What a translation may not do unless its source does it too: end before it has begun, say the same word
    or run of up to `RUN` words twice in a row ("Tom likes movies movies."), or write again a run of `LOOP` words
    it has already written (a loop on long input). Words are runs of pieces that start with "▁"."""

    RUN, LOOP = 3, 4

    def __init__(self, src_tok, tgt_tok, sources: Sequence[Sequence[int]]):
        self.starts = _word_starts(tgt_tok)
        src_starts = _word_starts(src_tok)
        self.allow_repeat, self.allow_loop = [], []
        for ids in sources:
            words = _words(ids, src_starts)
            self.allow_repeat.append(any(_repeats_at(words, end) for end in range(2, len(words) + 1)))
            self.allow_loop.append(any(_loops_at(words, end, self.LOOP) for end in range(self.LOOP + 1, len(words) + 1)))

    def allows(self, row: int, ids: list[int], tok: int) -> bool:
        """May sentence `row`'s hypothesis `ids` go on with `tok`? Only a word boundary (a word start or EOS)
        completes a word, so only then is anything checked."""
        if tok == EOS and not ids:
            return False
        if tok != EOS and not self.starts[tok] or len(ids) < 2:
            return True
        words = _words(ids, self.starts)
        if not self.allow_repeat[row] and _repeats_at(words, len(words), self.RUN):
            return False
        return self.allow_loop[row] or len(words) <= self.LOOP or not _loops_at(words, len(words), self.LOOP)


_STARTS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _word_starts(tok) -> list[bool]:
    """Per id: does its piece begin a word? (A "▁" piece for sentencepiece, a space for a character vocabulary.)"""
    if tok not in _STARTS:
        pieces = [tok.id_to_piece(i) for i in range(tok.vocab_size)]
        _STARTS[tok] = [p.isspace() if tok.kind == "char" else p.startswith("\u2581") for p in pieces]
    return _STARTS[tok]


def _words(ids: Sequence[int], starts: list[bool]) -> list[tuple[int, ...]]:
    out: list[list[int]] = []
    for i in ids:
        if starts[i] or not out:
            out.append([i])
        else:
            out[-1].append(i)
    return [tuple(w) for w in out]


def _repeats_at(words: list, end: int, run: int = RepeatGuard.RUN) -> bool:
    """Do words[:end] end with the same run of 1..`run` words twice?"""
    return any(end >= 2 * n and words[end - n:end] == words[end - 2 * n:end - n] for n in range(1, run + 1))


def _loops_at(words: list, end: int, n: int) -> bool:
    """Has the run of `n` words ending at `end` occurred earlier in words[:end]?"""
    tail = words[end - n:end]
    return any(words[i:i + n] == tail for i in range(0, end - n))


def _restrict(fast_decoder, shortlist, src, src_len):
    """(the batch's shortlisted ids or None, each sentence's mask over them or None, the step function to call).
    The output layer runs over the union of the sentences' shortlists; the mask keeps each sentence to its own,
    so a sentence translates the same in any batch as alone."""
    if shortlist is None:
        return None, None, fast_decoder.step
    words = [shortlist.for_batch(src[row:row + 1, :n]) for row, n in enumerate(src_len.tolist())]  # no padding
    vocab = torch.unique(torch.cat(words))
    own = torch.full((src.size(0), vocab.numel()), float("-inf"), device=src.device)
    for row, ids in enumerate(words):
        own[row, torch.searchsorted(vocab, ids)] = 0.0
    output = fast_decoder.restricted(vocab)
    return vocab, own, lambda y, state, mem: fast_decoder.step(y, state, mem, output)


@torch.no_grad()
def greedy(model, src: torch.Tensor, src_len: torch.Tensor, max_len_ratio: float = 2.0,
           max_len: int = 256, fast_decoder: FastDecoder | None = None,
           shortlist: Shortlist | None = None, guard: RepeatGuard | None = None) -> list[Hypothesis]:
    """Pick the most likely token at every step, for the whole batch at once. Steps run through `fast_decoder`
    (built from the model when not given; build one per model and reuse it when translating batch after batch);
    with a `shortlist`, over the batch's shortlisted target words only; with a `guard`, the most likely token
    the guard allows."""
    model.eval()
    fast_decoder = fast_decoder or FastDecoder(model)
    vocab, own, step = _restrict(fast_decoder, shortlist, src, src_len)
    mem, state = model.encode(src, src_len)  # oneDNN's sequence kernel: faster than the plain one at any batch
    mem = fast_decoder.prepare(mem)
    mem.out_bias = own
    B = src.size(0)
    limits = _max_lens(src_len, max_len_ratio, max_len).tolist()
    y = torch.full((B,), BOS, dtype=torch.long, device=src.device)
    out = [[] for _ in range(B)]
    scores = [0.0] * B
    active = list(range(B))
    for t in range(max(limits)):
        logp, state, _ = step(y, state, mem)
        best, y = logp.max(-1)
        if vocab is not None:
            y = vocab[y]
        if guard is not None:
            best, y = _guarded(guard, logp, vocab, active, out, best, y)
        keep = []
        for row, (b, tok, s) in enumerate(zip(active, y.tolist(), best.tolist())):
            scores[b] += s
            if tok == EOS:
                continue
            out[b].append(tok)
            if len(out[b]) < limits[b]:
                keep.append(row)
        if len(keep) < len(active):
            if not keep:
                break
            idx = torch.tensor(keep, device=src.device)
            active = [active[r] for r in keep]
            y, state, mem = y.index_select(0, idx), state.select(idx), mem.select(idx)
    return [Hypothesis(ids, s, s) for ids, s in zip(out, scores)]


def _guarded(guard: RepeatGuard, logp, vocab, active, out, best, y):
    """Greedy's choice per row, replaced by the most likely allowed token where the guard refuses it."""
    ys, bests = y.tolist(), best.tolist()
    alt = None
    for row, b in enumerate(active):
        if guard.allows(b, out[b], ys[row]):
            continue
        if alt is None:
            alt = logp.topk(min(8, logp.size(-1)), dim=-1)
        for s, i in zip(alt[0][row].tolist(), alt[1][row].tolist()):
            tok = vocab[i].item() if vocab is not None else i
            if guard.allows(b, out[b], tok):
                ys[row], bests[row] = tok, s
                break
    return torch.tensor(bests, device=best.device), torch.tensor(ys, device=y.device)


@torch.no_grad()
def beam_search(model, src: torch.Tensor, src_len: torch.Tensor, beam: int = 5, length_penalty: float = 0.6,
                max_len_ratio: float = 2.0, max_len: int = 256, n_best: int = 1,
                fast_decoder: FastDecoder | None = None, shortlist: Shortlist | None = None,
                guard: RepeatGuard | None = None) -> list[list[Hypothesis]]:
    """Batched beam search; returns the `n_best` hypotheses of each sentence, best first. Steps run through
    `fast_decoder` (built from the model when not given); with a `shortlist`, over the batch's shortlisted
    target words only; with a `guard`, only over continuations it allows (where it allows none of the 3K
    candidates, the step goes unguarded)."""
    if beam < 1:
        raise UsageError(f"--beam must be at least 1, not {beam}")
    if not 1 <= n_best <= beam:
        raise UsageError(f"--n-best must be between 1 and the beam size ({beam}), not {n_best}")
    model.eval()
    fast_decoder = fast_decoder or FastDecoder(model)
    vocab, own, step = _restrict(fast_decoder, shortlist, src, src_len)
    words = None if vocab is None else vocab.tolist()
    K, dev = beam, src.device
    mem, state = model.encode(src, src_len)
    mem = fast_decoder.prepare(mem)
    mem.out_bias = own
    B = src.size(0)
    limits = _max_lens(src_len, max_len_ratio, max_len).tolist()
    rows = torch.arange(B, device=dev).repeat_interleave(K)
    mem, state = mem.select(rows), state.select(rows)
    # only the first beam of each sentence is live at the start (the others are copies)
    scores = torch.full((B, K), -math.inf, device=dev)
    scores[:, 0] = 0.0
    tokens = [[[] for _ in range(K)] for _ in range(B)]
    finished: list[list[Hypothesis]] = [[] for _ in range(B)]
    active = list(range(B))
    y = torch.full((B * K,), BOS, dtype=torch.long, device=dev)
    t = 0
    while active:
        logp, state, _ = step(y, state, mem)
        n, V = len(active), logp.size(-1)
        cand = (scores[:, :, None] + logp.view(n, K, V)).view(n, K * V)
        width = min((3 if guard is not None else 2) * K, cand.size(-1))  # so that K live beams survive K EOS endings
        top_s, top_i = cand.topk(width, dim=-1)
        top_s, top_i = top_s.tolist(), top_i.tolist()
        new_scores: list[float] = []  # built as a list: one tensor write per beam costs more than the step's math
        src_rows, new_y, keep_sent = [], [], []
        new_tokens = []
        for j, b in enumerate(active):
            live = _extend(top_s[j], top_i[j], V, words, tokens[j], finished[b], K, length_penalty, guard, b)
            if guard is not None and not live and not finished[b]:  # the guard left nothing: this step goes free
                live = _extend(top_s[j], top_i[j], V, words, tokens[j], finished[b], K, length_penalty, None, b)
            done = t + 1 >= limits[b] or not live
            if not done and len(finished[b]) >= n_best:
                # Stop once the best live beam, were it to end now, ranks below the n-best finished ones.
                # With α = 0 this is exact (scores only fall as beams grow); with α > 0 it is the usual heuristic.
                nth = sorted((h.norm_score for h in finished[b]), reverse=True)[n_best - 1]
                done = live[0][0] / _lp(t + 2, length_penalty) <= nth
            if done:
                if len(finished[b]) < n_best:  # ran out of length: keep the live beams as they are
                    for s, k, tok in live:
                        ids = tokens[j][k] + [tok]
                        finished[b].append(Hypothesis(ids, s, s / _lp(len(ids), length_penalty)))
                continue
            keep_sent.append(j)
            beams_tok = []
            for slot in range(K):
                s, k, tok = live[slot] if slot < len(live) else (-math.inf, live[0][1], live[0][2])
                new_scores.append(s)
                src_rows.append(j * K + k)
                new_y.append(tok)
                beams_tok.append(tokens[j][k] + [tok])
            new_tokens.append(beams_tok)
        if not keep_sent:
            break
        state = state.select(torch.tensor(src_rows, device=dev))
        if len(keep_sent) < n:  # the K rows of a sentence share its memory: move it only when sentences leave
            mem = mem.select(torch.tensor([j * K + s for j in keep_sent for s in range(K)], device=dev))
        y = torch.tensor(new_y, device=dev)
        scores = torch.tensor(new_scores, device=dev).view(len(keep_sent), K)
        tokens = new_tokens
        active = [active[j] for j in keep_sent]
        t += 1
    return [sorted(f, key=lambda h: -h.norm_score)[:n_best] for f in finished]


def _extend(scores, ids, V, words, beams, finished, K, length_penalty, guard, b) -> list[tuple[float, int, int]]:
    """One sentence's step: candidates (score, flat index) best first → finished hypotheses (appended to
    `finished`) and up to K live (score, beam, token)."""
    live: list[tuple[float, int, int]] = []
    for s, i in zip(scores, ids):
        if s == -math.inf:
            break
        k, tok = divmod(i, V)
        if words is not None:
            tok = words[tok]
        if guard is not None and not guard.allows(b, beams[k], tok):
            continue
        if tok == EOS:
            finished.append(Hypothesis(list(beams[k]), s, s / _lp(len(beams[k]) + 1, length_penalty)))
        else:
            live.append((s, k, tok))
        if len(live) == K:
            break
    return live


# ---------------------------------------------------------------------------------------------- strings in, strings out

@dataclass
class Translation:
    text: str
    score: float
    alternatives: list[tuple[str, float]]  # n-best (text, score), best first
    truncated: bool


def translate(model, src_tok, tgt_tok, lines: Sequence[str], beam: int = 1, batch_size: int = 32,
              length_penalty: float = 0.6, max_len_ratio: float = 2.0, n_best: int = 1,
              max_src_tokens: int = MAX_SRC_TOKENS, device: str | torch.device | None = None,
              precision: str = "fp32", fast_decoder: FastDecoder | None = None,
              shortlist: Shortlist | None = None, guards: bool = False) -> Iterator[tuple[int, Translation]]:
    """Translate lines in batches of similar length; yields (line index, Translation) as batches finish.
    Empty lines translate to empty lines; sources longer than `max_src_tokens` are cut and flagged.
    `device` defaults to the model's. The decoder steps run through `fast_decoder`, built here from the model
    (in bf16 when `precision` resolves to bf16) unless given: callers that translate request after request
    with one model should build it once, `FastDecoder(model, dtype)`, and pass it. A `shortlist` restricts each
    batch's search to its likely target words (`models.shortlist`); `guards` keeps each translation from
    ending empty, repeating itself or looping (`RepeatGuard`)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, not {batch_size}")
    if max_len_ratio <= 0:
        raise UsageError(f"--max-len-ratio must be positive, not {max_len_ratio}")
    src_ids, cut = [], []
    for line in lines:
        ids = src_tok.encode(line.strip())
        cut.append(len(ids) > max_src_tokens)
        src_ids.append(ids[:max_src_tokens])
    todo = [i for i, line in enumerate(lines) if line.strip()]
    for i, line in enumerate(lines):
        if not line.strip():
            yield i, Translation("", 0.0, [("", 0.0)] * n_best, False)
    lens = [len(src_ids[i]) for i in todo]
    if fast_decoder is None and todo:
        low = resolve_precision(precision, device) == "bf16"
        fast_decoder = FastDecoder(model, torch.bfloat16 if low else torch.float32)
    for group in bucket_batches(lens, lens, max_tokens=10 ** 9, seed=None, max_sentences=batch_size):
        index = [todo[g] for g in group]
        batch = collate(src_ids, None, index)
        src, src_len = batch.src.to(device), batch.src_len
        guard = RepeatGuard(src_tok, tgt_tok, [src_ids[i] for i in index]) if guards else None
        with autocast(device, precision):
            if beam == 1 and n_best == 1:
                hyps = [[h] for h in greedy(model, src, src_len, max_len_ratio, fast_decoder=fast_decoder,
                                            shortlist=shortlist, guard=guard)]
            else:
                hyps = beam_search(model, src, src_len, beam, length_penalty, max_len_ratio, n_best=n_best,
                                   fast_decoder=fast_decoder, shortlist=shortlist, guard=guard)
        for i, hs in zip(index, hyps):
            alts = [(tgt_tok.decode(h.ids), h.score) for h in hs]
            yield i, Translation(alts[0][0], alts[0][1], alts, cut[i])


def translate_all(*args, **kwargs) -> list[Translation]:
    """`translate`, collected back into input order."""
    results: dict[int, Translation] = dict(translate(*args, **kwargs))
    return [results[i] for i in range(len(results))]
