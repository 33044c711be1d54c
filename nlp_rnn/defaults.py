"""The pretrained models shipped in `checkpoints/`, and picking one by language."""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from .errors import UsageError

LM_LANGS = ("en", "es")
MT_DIRECTIONS = (("en", "es"), ("es", "en"))


def checkpoints_dir() -> Path:
    """$NLP_RNN_CHECKPOINTS, else the checkout's `checkpoints/`, else the copy installed under sys.prefix."""
    env = os.environ.get("NLP_RNN_CHECKPOINTS")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent.parent / "checkpoints"
    if here.is_dir():
        return here
    return Path(sys.prefix) / "share" / "nlp-rnn" / "checkpoints"


def shipped_model(name: str) -> Path | None:
    """checkpoints/NAME when it is there (a checkout or an install may lack some models)."""
    path = checkpoints_dir() / name
    return path if (path / "config.json").is_file() else None


def default_lm(lang: str) -> Path:
    if lang not in LM_LANGS:
        raise UsageError(f"--lang must be one of {', '.join(LM_LANGS)} for the shipped language models, not {lang!r}")
    return _existing(checkpoints_dir() / f"lm-{lang}")


def default_mt(src: str, tgt: str) -> Path:
    if (src, tgt) not in MT_DIRECTIONS:
        raise UsageError(f"no shipped translator for {src}→{tgt}; shipped: "
                         f"{', '.join(f'{a}→{b}' for a, b in MT_DIRECTIONS)} (or pass -m DIR)")
    return _existing(checkpoints_dir() / f"mt-{src}-{tgt}")


def _existing(path: Path) -> Path:
    if not (path / "config.json").is_file():
        raise UsageError(f"shipped model {path} is missing; pass -m DIR or reinstall nlp-rnn")
    return path


_ES_WORDS = set("el la los las de que y en un una es por para con no se del al lo como más pero está están "
                "qué dónde cómo cuándo muy también hay son yo tú usted nosotros".split())
_EN_WORDS = set("the a an of to and in is are was were it that this for on with you i he she we they not "
                "what where how when do does be have has can will my your".split())


def guess_language(text: str) -> str | None:
    """'es', 'en' or None: a few function words and Spanish letters are enough for one sentence."""
    words = re.findall(r"[\w']+", text.lower())
    es = sum(w in _ES_WORDS for w in words) + 2 * len(re.findall(r"[¿¡ñáéíóúü]", text.lower()))
    en = sum(w in _EN_WORDS for w in words)
    if es == en:
        return None
    return "es" if es > en else "en"


def pick_direction(text: str, src: str | None, tgt: str | None) -> tuple[str, str]:
    """Fill in whichever of --src/--tgt is missing, guessing the source language from the text."""
    other = {"en": "es", "es": "en"}
    if src is None:
        src = guess_language(text) if tgt is None else other.get(tgt)
        if src is None:
            raise UsageError("could not tell the language of the input; pass --src en|es (and --tgt) or -m DIR")
    if tgt is None:
        tgt = other.get(src)
        if tgt is None:
            raise UsageError(f"no shipped translator from {src!r}; pass --tgt or -m DIR")
    return src, tgt


# ---------------------------------------------------------------------------------------------- recipes

def _corpora_dir() -> Path:
    """The checkout's `corpora/`, else the copy a (non-editable) install puts under sys.prefix."""
    here = Path(__file__).resolve().parent.parent / "corpora"
    return here if here.is_dir() else Path(sys.prefix) / "share" / "nlp-rnn" / "corpora"


CORPORA = _corpora_dir()


# The shipped models' training settings. With the Tatoeba pairs (`demo --retrain --data DIR`): the models in
# checkpoints/. Without them: the same shapes, smaller, on corpora/ alone (demonstration quality, 10 minutes).
MT_SEED = 1
# The translators train in two stages. The base: a plain translator, 6 epochs on the pairs as they are.
MT_BASE_ARGS = ["--tokenizer-type", "unigram", "--vocab-size", "8000", "--cell", "lstm", "--attention", "luong",
                "--layers", "2", "--hidden", "384", "--embed", "256", "--dropout", "0.3", "--label-smoothing", "0.1",
                "--batch-tokens", "2048", "--lr", "2e-3", "--eval-every", "1000", "--keep", "4", "--epochs", "6",
                "--seed", str(MT_SEED), "--threads", "1"]
# Then 2 epochs more on augmented pairs (augment.py), its vocabularies grown by placeholders and byte pieces:
# it learns to copy names and protected spans, to read any letter case and several sentences at once.
MT_AUGMENTATION = dict(names=0.5, spans=True, case=0.1, concat=0.15)
MT_ARGS = ["--init-from", "RUN:base", "--byte-fallback", "--placeholders",
           "--augment-names", str(MT_AUGMENTATION["names"]), "--augment-case", str(MT_AUGMENTATION["case"]),
           "--augment-concat", str(MT_AUGMENTATION["concat"]), "--batch-tokens", "2048", "--lr", "1e-3",
           "--warmup", "200", "--epochs", "2", "--eval-every", "500", "--keep", "2", "--seed", str(MT_SEED),
           "--threads", "1"]
LM_ARGS = ["--cell", "gru", "--layers", "1", "--hidden", "512", "--embed", "64", "--dropout", "0.1",
           "--bptt", "128", "--batch-size", "64", "--eval-every", "500", "--epochs", "4", "--seed", "1",
           "--threads", "1"]
OFFLINE_MT_ARGS = ["--tokenizer-type", "unigram", "--vocab-size", "1000", "--cell", "lstm", "--attention", "luong",
                   "--layers", "1", "--hidden", "256", "--embed", "128", "--dropout", "0.3", "--batch-tokens", "1024",
                   "--lr", "3e-3", "--eval-every", "200", "--max-time", "3m", "--seed", "1", "--threads", "2"]
OFFLINE_LM_ARGS = ["--cell", "gru", "--layers", "1", "--hidden", "384", "--embed", "48", "--dropout", "0.2",
                   "--bptt", "128", "--batch-size", "32", "--lr", "3e-3", "--eval-every", "200", "--max-time", "90s",
                   "--seed", "1", "--threads", "2"]
AVERAGE_LAST = 1  # averaging the last 2 or 3 checkpoints measured worse on dev than the best one (BENCHMARKS.md)


def recipes(corpora: Path | None = None, data: dict | None = None) -> list[dict]:
    """How every shipped model is trained: `nlp-rnn` arguments (without `-o`), the project's own test file it is
    scored on (recomputed by the tests) and, with Tatoeba `data` (from `tatoeba.prepare`), the held-out split."""
    c = Path(corpora or CORPORA)
    own_pairs = str(c / "en-es" / "test.tsv")
    prepared = {"data_dir": str(data["dir"])} if data else {}  # shown as DATA in the model cards
    out = []
    for lang in LM_LANGS:
        if data:
            train, val, heldout, args = data[f"lm_{lang}_train"], data[f"lm_{lang}_dev"], data[f"lm_{lang}_test"], LM_ARGS
        else:
            train, val, heldout, args = c / f"prose-{lang}" / "train.txt", c / f"prose-{lang}" / "dev.txt", None, OFFLINE_LM_ARGS
        out.append({"name": f"lm-{lang}", "kind": "lm", "lang": lang, "test": str(c / f"prose-{lang}" / "test.txt"),
                    "heldout": str(heldout) if heldout else None, **prepared,
                    "args": ["train", "lm", str(train), "--val", str(val), *args]})
    for src, tgt in MT_DIRECTIONS:
        cols = ["--src-col", "1", "--tgt-col", "0"] if src == "es" else []
        pairs, val = (data["mt_train"], data["mt_dev"]) if data else (c / "en-es" / "train.tsv", c / "en-es" / "dev.tsv")
        name = f"mt-{src}-{tgt}"
        common = ["train", "mt", "--pairs", str(pairs), "--val-pairs", str(val), *cols, "--src-lang", src,
                  "--tgt-lang", tgt]
        stages = [{"name": f"{name}-base", "args": [*common, *MT_BASE_ARGS]}] if data else []
        args = [*common, *[a.replace("RUN:base", f"RUN:{name}-base") for a in MT_ARGS]] if data else \
            [*common, *OFFLINE_MT_ARGS]
        out.append({"name": name, "kind": "mt", "src": src, "tgt": tgt, "test": own_pairs,
                    "heldout": str(data["mt_test"]) if data else None, "average": AVERAGE_LAST if data else 0,
                    **prepared, "stages": stages, "args": args})
    return out
