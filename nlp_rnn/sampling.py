"""Language-model generation and autocomplete.

Both feed the prompt once and then advance the recurrent state one character per step; nothing is re-run.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import torch

from .errors import UsageError
from .models.stepper import Stepper
from .runtime import small_batch_kernels
from .tokenizers import SPECIALS, UNK


def check_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    if not temperature > 0:
        raise UsageError(f"--temperature must be greater than 0, not {temperature}")
    if top_k is not None and top_k < 1:
        raise UsageError(f"--top-k must be at least 1, not {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise UsageError(f"--top-p must be in (0, 1], not {top_p}")


def sample(logp: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one token per row from log-probabilities (B, V), after temperature, top-k and nucleus filtering."""
    logits = logp / temperature
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = torch.softmax(sorted_logits, -1)
        # drop a token when the tokens before it already cover top_p (the first token always stays)
        drop = (probs.cumsum(-1) - probs) >= top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = torch.softmax(logits, -1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


def unknown_chars(tokenizer, text: str) -> list[str]:
    """Characters of `text` that the tokenizer maps to unk (so callers can warn about them)."""
    return sorted({ch for ch in text if tokenizer.encode(ch) == [UNK]})


def _start_ids(tokenizer, prompt: str) -> list[int]:
    ids = tokenizer.encode(prompt)
    if not ids:  # no prompt: start as if after a line break, when the vocabulary has one
        ids = tokenizer.encode("\n") or [UNK]
    return ids


@torch.no_grad()
def generate(model, tokenizer, prompt: str = "", length: int = 200, temperature: float = 0.8,
             top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
             greedy: bool = False) -> Iterator[str]:
    """Yield generated text a character at a time (streaming). The same seed gives the same text.

    The prompt goes through the fused recurrent kernel once; then each character costs one `Stepper` step.
    Without top-k/top-p, sampling is Gumbel-max over noise drawn in blocks: exact, and one op per character.
    """
    check_sampling(temperature, top_k, top_p)
    if length < 0:
        raise UsageError(f"--length must be 0 or more, not {length}")
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator(device=device)
    if seed is not None:
        gen.manual_seed(seed)
    else:
        gen.seed()
    pieces = [tokenizer.decode([i]) for i in range(tokenizer.vocab_size)]
    step = Stepper(model)
    filtered = top_k is not None or (top_p is not None and top_p < 1)
    with small_batch_kernels():
        ids = torch.tensor([_start_ids(tokenizer, prompt)], device=device)
        logits, state = model(ids)
        logits = logits[:, -1].float()
        noise = None
        for n in range(length):
            if greedy:
                tok = logits.argmax(-1)
            elif filtered:
                tok = sample(logits, temperature, top_k, top_p, gen)
            else:
                if n % 256 == 0:
                    u = torch.rand(256, logits.size(-1), generator=gen, device=device).clamp_(1e-10, 1 - 1e-7)
                    noise = -temperature * torch.log(-torch.log(u))  # argmax(l/T + g) = argmax(l + T·g)
                tok = (logits + noise[n % 256]).argmax(-1)
            t = int(tok)
            yield pieces[t]
            logits, state = step(tok, state)


# ---------------------------------------------------------------------------------------------- autocomplete

def is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch in "'’"


@dataclass
class Suggestion:
    text: str
    prob: float


class Autocompleter:
    """Suggests completions of the word being typed and the words that may follow, one RNN step per keystroke.

    `update(text)` accepts the whole text typed so far; it steps only over what changed (backspace pops saved
    states), so calling it on every keystroke costs one model step. `suggest()` runs a small beam search over
    characters up to the next word boundary.
    """

    def __init__(self, model, tokenizer, k: int = 3, beam: int = 8, max_chars: int = 24, history: int = 4096):
        if k < 1 or beam < 1:
            raise UsageError("--k and --beam must be at least 1")
        self.model, self.tok, self.k, self.beam, self.max_chars = model.eval(), tokenizer, k, max(beam, k), max_chars
        self.history = history
        self.device = next(model.parameters()).device
        self.word_ids = torch.tensor([is_word_char(tokenizer.decode([i])) if i >= len(SPECIALS) else False
                                      for i in range(tokenizer.vocab_size)], device=self.device)
        self.stepper = Stepper(model)
        self.text = ""
        self._stack: list = []  # (logp, state) after each character of self.text
        self._start = None

    @torch.no_grad()
    def _initial(self):
        if self._start is None:
            with small_batch_kernels():
                ids = torch.tensor([_start_ids(self.tok, "")], device=self.device)
                logits, state = self.model(ids)
            self._start = (torch.log_softmax(logits[:, -1].float(), -1), state)
        return self._start

    def _step(self, toks: torch.Tensor, state):
        logits, state = self.stepper(toks, state)
        return torch.log_softmax(logits, -1), state

    def _top(self):
        return self._stack[-1] if self._stack else self._initial()

    @torch.no_grad()
    def update(self, text: str) -> None:
        common = 0
        limit = min(len(text), len(self.text), len(self._stack))
        while common < limit and text[common] == self.text[common]:
            common += 1
        del self._stack[common:]
        if len(text) - common > self.history:  # a large paste: start from its tail
            common, self._stack = len(text) - self.history, []
        logp, state = self._top()
        with small_batch_kernels():
            for ch in text[common:]:
                ids = self.tok.encode(ch) or [UNK]
                for i in ids:
                    logp, state = self._step(torch.tensor([i], device=self.device), state)
                self._stack.append((logp, state))
        if len(self._stack) > self.history:
            del self._stack[: len(self._stack) - self.history]
        self.text = text

    def feed(self, chars: str) -> None:
        self.update(self.text + chars)

    def partial_word(self) -> str:
        i = len(self.text)
        while i > 0 and is_word_char(self.text[i - 1]):
            i -= 1
        return self.text[i:]

    @torch.no_grad()
    def _complete(self, logp, state, prefix: str, k: int) -> list[Suggestion]:
        """Beam search over characters until a non-word character; probabilities include that boundary."""
        from .models.rnn import select_state

        finished: list[tuple[float, str]] = []
        beams = [(0.0, "")]  # (log-prob, chars)
        for depth in range(self.max_chars + 1):
            lp = logp.float()
            # a beam ends here with the probability that the next character is a boundary
            p_word = torch.logsumexp(lp.masked_fill(~self.word_ids, float("-inf")), -1)
            p_end = torch.log1p(-p_word.exp().clamp(max=1 - 1e-7))
            for (score, text), pe in zip(beams, p_end.tolist()):
                if prefix + text:
                    finished.append((score + pe, prefix + text))
            if depth == self.max_chars:
                break
            cand = (torch.tensor([b[0] for b in beams], device=self.device)[:, None] +
                    lp.masked_fill(~self.word_ids, float("-inf")))
            top = torch.topk(cand.flatten(), min(self.beam, cand.numel()))
            best_done = sorted((s for s, _ in finished), reverse=True)
            floor = best_done[k - 1] if len(best_done) >= k else -math.inf
            keep = [(v, int(i)) for v, i in zip(top.values.tolist(), top.indices.tolist()) if v > floor]
            if not keep:
                break
            V = cand.size(1)
            rows = torch.tensor([i // V for _, i in keep], device=self.device)
            toks = torch.tensor([i % V for _, i in keep], device=self.device)
            beams = [(v, beams[i // V][1] + self.tok.decode([i % V])) for v, i in keep]
            state = select_state(state, rows)
            logp, state = self._step(toks, state)
        best: dict[str, float] = {}
        for s, t in finished:
            best[t] = max(best.get(t, -math.inf), s)
        ranked = sorted(best.items(), key=lambda x: -x[1])[:k]
        return [Suggestion(t, math.exp(s)) for t, s in ranked]

    def suggest(self, next_words: bool = True) -> dict:
        """`completions` of the word being typed and `next_words` after the best completion."""
        with small_batch_kernels():
            logp, state = self._top()
            partial = self.partial_word()
            completions = self._complete(logp, state, partial, self.k)
            following: list[Suggestion] = []
            if next_words and completions:
                rest = completions[0].text[len(partial):] + " "
                for ch in rest:
                    for i in self.tok.encode(ch) or [UNK]:
                        logp, state = self._step(torch.tensor([i], device=self.device), state)
                following = self._complete(logp, state, "", self.k)
        return {"completions": [vars(s) for s in completions], "next_words": [vars(s) for s in following]}
