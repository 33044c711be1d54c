"""The application layer under every face: loaded models and the validated operations on them.

The CLI, the REPL and the HTTP server only parse their input, call a `Service` method, and render the plain
result it returns. Option ranges are checked here (`limits`), models are picked here (by path, by language pair,
or by the language the text is written in), and nothing here prints, reads files or knows about terminals.

    service = Service.shipped()                     # the models in checkpoints/, loaded on first use
    service.translate(["Good morning"])             # direction guessed per line → [TranslationResult]
    service.complete("Mañana por la mañ")           # suggestions from the Spanish LM
    service.classify(["Great food, slow service"])  # [{"label", "prob", "top": [...]}] from the classifier
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

from .errors import NlpRnnError, UsageError
from .limits import check

OTHER = {"en": "es", "es": "en"}
GUESS_MARGIN = 0.15  # nats/char one shipped LM must beat the other by before a language counts as guessed


@dataclass
class Slot:
    """A model known by path, loaded on first use."""

    path: Path
    kind: str
    origin: str                    # "shipped", "given", "via :load"
    key: str                       # language (lm), "src-tgt" (mt), a name (clf)
    loaded: object = None
    decoders: dict = field(default_factory=dict)  # mt: the search's FastDecoder per dtype, built once per model


@dataclass
class TranslationResult:
    source: str
    text: str
    score: float
    alternatives: list           # n-best (text, score), best first
    truncated: bool              # the source was cut to the search's length limit
    direction: str               # "en-es", or the key of a translator given by path
    guessed: bool = False        # the direction came from guessing the source's language
    attention: dict | None = None  # {"source_tokens", "target_tokens", "weights": [[...] per target token]}
    confidence: float | None = None  # in [0, 1]: how likely the translation is good (translation.Calibration)
    missing: list = field(default_factory=list)  # protected spans the model lost (put back at the end)


@dataclass
class Generation:
    """A generation about to stream: `pieces` yields characters as the model produces them."""

    lang: str | None
    unknown_chars: list[str]
    pieces: Iterator[str]


class Service:
    """Models by role and the operations every face offers. Thread-safe: one lock guards model state."""

    def __init__(self, lm: Sequence[str | Path] = (), mt: Sequence[str | Path] = (), clf: Sequence[str | Path] = (),
                 *, shipped: bool = True, device="cpu", quantize: str = "none"):
        self.device, self.quantize = device, quantize
        self.lock = threading.RLock()
        self.lms: dict[str, Slot] = {}
        self.translators: dict[str, Slot] = {}
        self.classifiers: dict[str, Slot] = {}
        self.user_lm = bool(lm)  # an LM given by path is used for every language
        self.last_direction: str | None = None  # the fallback for a line whose language cannot be told
        self.last_lang: str | None = None
        self._guess_cache: tuple[str | None, str | None] = (None, None)  # (finished words, their language)
        self._completers: dict[str, object] = {}
        for p in lm:
            self._add(p, "lm", "given")
        for p in mt:
            self._add(p, "mt", "given")
        for p in clf:
            self._add(p, "clf", "given")
        if shipped:
            self._add_shipped(lm_too=not lm, mt_too=not mt, clf_too=not clf)

    @classmethod
    def shipped(cls, device="cpu", quantize: str = "none") -> "Service":
        return cls(device=device, quantize=quantize)

    # ------------------------------------------------------------------ models
    def _add_shipped(self, lm_too: bool, mt_too: bool, clf_too: bool) -> None:
        from .defaults import LM_LANGS, MT_DIRECTIONS, shipped_model

        for lang in LM_LANGS if lm_too else ():
            if (p := shipped_model(f"lm-{lang}")) is not None:
                self.lms[lang] = Slot(p, "lm", "shipped", lang)
        for src, tgt in MT_DIRECTIONS if mt_too else ():
            if (p := shipped_model(f"mt-{src}-{tgt}")) is not None:
                self.translators[f"{src}-{tgt}"] = Slot(p, "mt", "shipped", f"{src}-{tgt}")
        for lang in LM_LANGS if clf_too else ():
            if (p := shipped_model(f"clf-{lang}")) is not None:
                self.classifiers[f"clf-{lang}"] = Slot(p, "clf", "shipped", f"clf-{lang}")

    def _add(self, path, kind: str | None, origin: str, loaded=None, fallback: str | None = None) -> Slot:
        """Register a checkpoint under the key its config says (languages, name); checks its kind, not weights.
        A translator that does not say its languages takes `fallback`, else a new `src-tgt` key."""
        from .checkpoint import KIND_NAMES, read_config, resolve_model_dir

        resolved = resolve_model_dir(Path(path).expanduser())
        config = read_config(resolved)
        if kind is not None and config["kind"] != kind:
            raise UsageError(f"{path}: this is {KIND_NAMES[config['kind']]}, not {KIND_NAMES[kind]}")
        kind = config["kind"]
        meta = config.get("meta") if isinstance(config.get("meta"), dict) else {}
        table = {"lm": self.lms, "mt": self.translators, "clf": self.classifiers}[kind]
        if kind == "mt":
            src, tgt = meta.get("src_lang"), meta.get("tgt_lang")
            key = f"{src}-{tgt}" if isinstance(src, str) and isinstance(tgt, str) and src and tgt else fallback
            n = 2
            while key is None or (key.startswith("src-tgt") and key in table and key != fallback):
                key, n = ("src-tgt" if key is None else f"src-tgt{n}"), n + (key is not None)
        elif kind == "lm":
            key = meta.get("lang") if isinstance(meta.get("lang"), str) and not self.user_lm else "given"
        else:
            key = resolved.name
        table[key] = slot = Slot(resolved, kind, origin, key, loaded)
        if kind == "lm":
            self._completers.pop(key, None)  # its states belong to the old model
        return slot

    def _load(self, slot: Slot):
        from .checkpoint import load_checkpoint

        with self.lock:
            if slot.loaded is None:
                slot.loaded = load_checkpoint(slot.path, kind=slot.kind, device=self.device, quantize=self.quantize)
            return slot.loaded

    def load_all(self) -> None:
        """Load every chosen model now (a server does, so a bad checkpoint fails at start, not on a request)."""
        for slot in (*self.translators.values(), *self.lms.values(), *self.classifiers.values()):
            self._load(slot)

    def load(self, path, fallback_direction: str | None = None) -> tuple[str, str, str]:
        """Load any checkpoint now and make it current for its role: (kind, key, a one-line report)."""
        from .checkpoint import load_checkpoint

        loaded = load_checkpoint(Path(path).expanduser(), device=self.device, quantize=self.quantize)
        with self.lock:
            if loaded.kind == "lm":
                self.lms.clear()
                self._completers.clear()
                self.user_lm = True
            table = {"lm": self.lms, "mt": self.translators, "clf": self.classifiers}[loaded.kind]
            before = set(table)
            slot = self._add(loaded.path, loaded.kind, "via :load", loaded, fallback=fallback_direction)
        if loaded.kind == "mt":
            self.last_direction = slot.key
        what = {"lm": "language model", "mt": f"translator {slot.key}", "clf": f"classifier {slot.key}"}[loaded.kind]
        replaced = " (replaces the previous one)" if loaded.kind != "lm" and slot.key in before else ""
        return loaded.kind, slot.key, f"{what} loaded from {loaded.path}{replaced}"

    def lm(self, lang: str | None = None):
        """The LM for `lang` (a given LM serves every language), loading it on first use."""
        with self.lock:
            if self.user_lm or lang is None:
                slot = self.lms.get("given") or next(iter(self.lms.values()), None)
            else:
                slot = self.lms.get(lang)
                if slot is None:
                    raise NlpRnnError(f"no language model for {lang}: the shipped lm-{lang} is missing "
                                      f"(pass -m PATH, or :load PATH in the REPL)")
            if slot is None:
                raise NlpRnnError("no language model is available (pass -m PATH, or :load PATH in the REPL)")
            return self._load(slot)

    def has_lm(self, lang: str | None = None) -> bool:
        return bool(self.lms) if self.user_lm or lang is None else lang in self.lms

    def autocompleter(self, lang: str | None, k: int = 3, beam: int = 8):
        """The one persistent Autocompleter of an LM (per k and beam): it follows the typed text incrementally."""
        from .sampling import Autocompleter

        with self.lock:
            lm = self.lm(lang)
            key = f"{lang}:{k}:{beam}"
            ac = self._completers.get(key)
            if ac is None or ac.model is not lm.model:
                ac = self._completers[key] = Autocompleter(lm.model, lm.tokenizer, k=k, beam=beam)
            return ac

    def translator(self, direction: str):
        slot = self.translators.get(direction)
        if slot is None:
            raise UsageError(self.no_translator(direction))
        return self._load(slot)

    def _fast_decoder(self, direction: str, precision: str):
        """The translator's search step over a snapshot of its weights; building one costs more than translating
        a short sentence (90 ms against 50 ms, shipped model, one core), so each model keeps its own."""
        import torch

        from .models.fast_decode import FastDecoder
        from .runtime import resolve_precision

        with self.lock:
            slot = self.translators[direction]
            model = self._load(slot).model
            low = resolve_precision(precision, next(model.parameters()).device) == "bf16"
            dtype = torch.bfloat16 if low else torch.float32
            if dtype not in slot.decoders:
                slot.decoders[dtype] = FastDecoder(model, dtype)
            return slot.decoders[dtype]

    def classifier(self, name: str | None = None, text: str = "") -> tuple[str, object]:
        """(key, loaded classifier): the one named, else the only one, else the shipped one of the language of
        `text` (clf-en, clf-es), else the first."""
        with self.lock:
            if name is not None:
                slot = self.classifiers.get(name)
                if slot is None:
                    raise UsageError(f"no classifier named {name!r}; available: "
                                     f"{', '.join(self.classifiers) or 'none (pass -m DIR)'}")
            elif not self.classifiers:
                raise UsageError("no classifier is available (pass -m DIR, or :load PATH in the REPL)")
            elif len(self.classifiers) == 1:
                slot = next(iter(self.classifiers.values()))
            else:
                lang = self.guess_language(text) if text else None
                slot = self.classifiers.get(f"clf-{lang}") or next(iter(self.classifiers.values()))
            return slot.key, self._load(slot)

    def no_translator(self, direction: str) -> str:
        if not self.translators:
            return f"no translator for {direction}: none is available (pass -m/--mt PATH)"
        return f"no translator for {direction}; available: {', '.join(self.translators)}"

    def describe(self) -> list[dict]:
        """Every model with its role, languages, size and the metrics its card records (for :info, /v1/models)."""
        from .checkpoint import read_config

        out = []
        for table in (self.translators, self.lms, self.classifiers):
            for key, slot in table.items():
                config = read_config(slot.path)
                meta = config.get("meta") or {}
                entry = {"name": slot.path.name if slot.origin == "shipped" else key, "kind": slot.kind,
                         "path": str(slot.path), "origin": slot.origin, "loaded": slot.loaded is not None,
                         "config": config.get("model", {}), "metrics": meta.get("test_metrics", {})}
                if slot.kind == "mt":
                    entry.update(src=meta.get("src_lang"), tgt=meta.get("tgt_lang"))
                elif slot.kind == "lm":
                    entry["lang"] = key if key in OTHER else None
                else:
                    entry["labels"] = meta.get("labels")
                out.append(entry)
        return out

    # ------------------------------------------------------------------ language
    def guess_language(self, text: str) -> str | None:
        """'en', 'es' or None. The shipped character LMs score the text and the lower cross-entropy wins (it works
        on one word); without them, a list of function words decides."""
        from .defaults import guess_language as by_words

        if not any(ch.isalpha() for ch in text):
            return None
        langs = [lang for lang in OTHER if lang in self.lms] if not self.user_lm else []
        if len(langs) < 2:
            return by_words(text)
        scores = {lang: _nats_per_char(self.lm(lang), text) for lang in langs}
        best, other = sorted(scores, key=scores.get)
        return best if scores[other] - scores[best] >= GUESS_MARGIN else None

    def direction_for(self, text: str, src: str | None = None, tgt: str | None = None,
                      fallback: str | None = None) -> tuple[str, bool]:
        """The translator key for one line: from src/tgt, else its guessed language, else `fallback` (the line
        before), else the last direction used."""
        if src or tgt:
            src = src or OTHER.get(tgt)
            tgt = tgt or OTHER.get(src)
            if src is None or tgt is None:
                raise UsageError("give both --src and --tgt for languages other than en and es")
            return f"{src}-{tgt}", False
        lang = self.guess_language(text)
        if lang is not None and f"{lang}-{OTHER[lang]}" in self.translators:
            return f"{lang}-{OTHER[lang]}", True
        fallback = fallback or self.last_direction or next(iter(self.translators), None)
        if fallback is None:
            raise UsageError(self.no_translator("this text"))
        return fallback, True

    # ------------------------------------------------------------------ operations
    def translate(self, lines: Sequence[str], src: str | None = None, tgt: str | None = None,
                  direction: str | None = None, beam: int = 5, n_best: int = 1, length_penalty: float = 0.6,
                  max_len_ratio: float = 2.0, batch_size: int = 32, precision: str = "fp32",
                  attention: bool = False, on_done: Callable[[int], None] | None = None,
                  shortlist: bool = True, guards: bool = True) -> list[TranslationResult]:
        """Translate lines (each its own direction unless one is given), in input order. Each line goes through
        `translation.prepare`/`finish` (capitals, protected spans) and gets a confidence; with `guards`, search
        never ends empty, repeats itself or loops. A translator saved with a shortlist searches over each
        batch's shortlisted target words unless `shortlist` is False."""
        check_translation(beam, n_best, length_penalty, max_len_ratio, batch_size)
        if direction is None and len(self.translators) == 1 and not (src or tgt):
            direction = next(iter(self.translators))
        plan, before = [], None
        for line in lines:
            plan.append((direction, False) if direction else self.direction_for(line, src, tgt, before))
            before = plan[-1][0]
        results: list[TranslationResult | None] = [None] * len(lines)
        for d in dict.fromkeys(d for d, _ in plan):
            index = [i for i, (di, _) in enumerate(plan) if di == d]
            options = dict(beam=beam, batch_size=batch_size, length_penalty=length_penalty,
                           max_len_ratio=max_len_ratio, n_best=n_best, precision=precision, shortlist=shortlist,
                           guards=guards)
            for j, result in self._translate_one_direction(d, [lines[i] for i in index], options, attention):
                i = index[j]
                result.guessed = plan[i][1]
                results[i] = result
                if on_done is not None:
                    on_done(i)
            self.last_direction = d
        return results

    def _translate_one_direction(self, d: str, lines: Sequence[str], options: dict,
                                 attention: bool) -> Iterator[tuple[int, TranslationResult]]:
        """(position, result) as batches finish: each line prepared, searched, finished and given a confidence."""
        from .search import translate as search
        from .tasks import knows_placeholders
        from .translation import Calibration, features, finish, prepare

        mt = self.translator(d)
        src_tok, tgt_tok = mt.tokenizers["src_tokenizer"], mt.tokenizers["tgt_tokenizer"]
        placeholders = bool(mt.meta.get("placeholders")) and knows_placeholders(src_tok)
        calibration = Calibration.from_dict(mt.meta.get("confidence"))
        units = [prepare(line.strip(), placeholders) for line in lines]
        shortlist = mt.shortlist if options.pop("shortlist") else None
        for j, tr in search(mt.model, src_tok, tgt_tok, [u.text for u in units], device=self.device,
                            fast_decoder=self._fast_decoder(d, options["precision"]), shortlist=shortlist, **options):
            unit = units[j]
            done = finish(unit, tr.text)
            alternatives = [(finish(unit, text).text, score) for text, score in tr.alternatives]
            confidence = None
            if unit.text:
                x = features(tr.score, len(tgt_tok.encode(tr.text)), len(src_tok.encode(unit.text)), len(done.missing))
                confidence = round(calibration(x), 4)
            att = attention_matrix(mt.model, src_tok, tgt_tok, unit.text, tr.text) if attention else None
            yield j, TranslationResult(lines[j], done.text, tr.score, alternatives, tr.truncated, d, False, att,
                                       confidence, done.missing)

    def generate(self, prompt: str = "", lang: str | None = None, length: int = 300, temperature: float = 0.8,
                 top_k: int | None = None, top_p: float | None = None, seed: int | None = None) -> Generation:
        """Continue `prompt` with the LM of its language (guessed when not given); characters stream."""
        from .sampling import generate, unknown_chars

        check_generation(length, temperature, top_k, top_p, seed)
        lang = self._lm_lang(prompt, lang)
        lm = self.lm(lang)
        return Generation(lang, unknown_chars(lm.tokenizer, prompt),
                          generate(lm.model, lm.tokenizer, prompt, length, temperature, top_k, top_p, seed))

    def complete(self, text: str, lang: str | None = None, k: int = 3, beam: int = 8,
                 next_words: bool = True) -> dict:
        """Completions of the word being typed and likely next words, from the LM of the text's language. One
        recurrent step per new character: each LM keeps one autocompleter that follows the text as it grows."""
        check("k", k)
        check("complete_beam", beam, "--beam")
        start = time.perf_counter()
        lang = self._lm_lang(text, lang)
        with self.lock:
            ac = self.autocompleter(lang, k, beam)
            ac.update(text)
            result = ac.suggest(next_words=next_words)
        for kind in ("completions", "next_words"):  # a suggestion that would show as 0% helps nobody
            result[kind] = [s for s in result[kind] if s["prob"] >= 0.005]
        return {**result, "lang": lang, "seconds": round(time.perf_counter() - start, 6)}

    def classify(self, texts: Sequence[str], top: int = 1, model: str | None = None,
                 batch_size: int = 64) -> list[dict]:
        """The label of each text, in input order: {"text", "label", "prob", "top": [{"label", "prob"}, ...] (the
        `top` most likely labels, best first; fewer when the model has fewer), "model"}. Without `model`, each text
        goes to the classifier `classifier()` picks for it. A text is cut to the tokens the model trained on
        (`max_tokens` of its checkpoint); an empty one gets the model's answer for no text at all."""
        from .tasks import Encoded, classify_encoded

        check("top", top)
        check("batch_size_infer", batch_size, "--batch-size")
        plan = [self.classifier(model, text)[0] for text in texts] if model is None and len(self.classifiers) > 1 \
            else [self.classifier(model)[0]] * len(texts)
        results: list[dict | None] = [None] * len(texts)
        for key in dict.fromkeys(plan):
            index = [i for i, k in enumerate(plan) if k == key]
            _, clf = self.classifier(key)
            labels = clf.meta["labels"]
            encoded = Encoded([texts[i] for i in index], clf.tokenizer, int(clf.meta.get("max_tokens", 400)))
            proba = classify_encoded(clf.model, encoded, batch_size, self.device)
            probs, ids = proba.topk(min(top, len(labels)), dim=-1)
            for j, i in enumerate(index):
                ranked = [{"label": labels[c], "prob": round(float(p), 6)} for p, c in zip(probs[j], ids[j].tolist())]
                results[i] = {"text": texts[i], "label": ranked[0]["label"], "prob": ranked[0]["prob"], "top": ranked,
                              "model": key}
        return results

    def score(self, text, lang: str = "en", dynamic_lr: float = 0.0) -> dict:
        """Cross-entropy of a text (a string or an iterable of chunks) under the LM of `lang`; with `dynamic_lr`,
        that of dynamic evaluation (on a copy: the loaded model is not changed)."""
        from .evaluate import lm_metrics

        lm = self.lm(lang)
        return lm_metrics(lm.model, lm.tokenizer, text, dynamic_lr=dynamic_lr)

    def lm_language(self, text: str) -> str | None:
        """The language whose LM should read `text` (None: a given LM reads everything). Guessed again only when
        a word has been finished, so typing a word costs no extra model runs."""
        return self._lm_lang(text, None)

    def _lm_lang(self, text: str, lang: str | None) -> str | None:
        if lang is not None:
            if not self.user_lm and lang not in self.lms and lang not in OTHER:
                raise UsageError(f"--lang must be one of {', '.join(OTHER)}, not {lang!r}")
            return lang  # a shipped language whose LM is missing: `lm` says so
        if self.user_lm:
            return None
        words = text[: max(text.rfind(" "), 0)]  # the finished words
        if self._guess_cache[0] != words:
            self._guess_cache = (words, self.guess_language(text) if text.strip() else None)
        guessed = self._guess_cache[1]
        lang = guessed or (self.last_lang if self.last_lang in self.lms else next(iter(self.lms), None))
        self.last_lang = lang
        return lang


# ---------------------------------------------------------------------------------------------- checks and helpers

def check_translation(beam: int, n_best: int, length_penalty: float, max_len_ratio: float, batch_size: int) -> None:
    check("beam", beam)
    check("n_best", n_best, "--n-best")
    if n_best > beam:
        raise UsageError(f"--n-best must be between 1 and --beam ({beam}), not {n_best}")
    check("length_penalty", length_penalty)
    check("max_len_ratio", max_len_ratio)
    check("batch_size_infer", batch_size, "--batch-size")


def check_generation(length: int, temperature: float, top_k: int | None, top_p: float | None, seed: int | None) -> None:
    check("length", length)
    check("temperature", temperature)
    check("top_k", top_k)
    check("top_p", top_p)
    check("seed", seed)


def _nats_per_char(loaded, text: str) -> float:
    """Mean cross-entropy of `text` after a line break, the context every line of a corpus starts from."""
    import torch

    from .evaluate import summed_nll

    tok = loaded.tokenizer
    ids = (tok.encode("\n") or [1]) + tok.encode(text[:200])
    with torch.no_grad():
        x = torch.tensor([ids])
        logits, _ = loaded.model(x[:, :-1])
        nll = summed_nll(logits[0], x[0, 1:]) / (len(ids) - 1)
    return nll if math.isfinite(nll) else math.inf


def attention_matrix(model, src_tok, tgt_tok, source: str, target: str) -> dict | None:
    """Where the decoder looked while writing `target`: teacher-forced decoder steps over the translation,
    one row of source weights per target token. None for a model without attention."""
    import torch

    from .search import MAX_SRC_TOKENS
    from .tokenizers import BOS, EOS

    if getattr(model.config, "attention", "none") == "none":
        return None
    src_ids = src_tok.encode(source.strip())[:MAX_SRC_TOKENS] + [EOS]
    tgt_ids = tgt_tok.encode(target)[:MAX_SRC_TOKENS]
    with torch.no_grad():
        src = torch.tensor([src_ids], device=next(model.parameters()).device)
        mem, state = model.encode(src, torch.tensor([len(src_ids)]))
        rows, y = [], torch.tensor([BOS], device=src.device)
        for t in tgt_ids + [EOS]:
            _, state, weights = model.step(y, state, mem)
            rows.append([round(float(w), 4) for w in weights[0]])
            y = torch.tensor([t], device=src.device)
    pieces = lambda tok, ids: [tok.id_to_piece(i) if i != EOS else "</s>" for i in ids]  # noqa: E731
    return {"source_tokens": pieces(src_tok, src_ids), "target_tokens": pieces(tgt_tok, tgt_ids + [EOS]),
            "weights": rows}
