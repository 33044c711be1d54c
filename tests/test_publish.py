"""Publishing a run as a shipped model: fp16 weights that load and translate as before, checkpoint averaging,
measured metrics in config.json and a card that credits its data."""
from __future__ import annotations

import json

from safetensors import safe_open

from nlp_rnn import tasks
from nlp_rnn.checkpoint import load_checkpoint
from nlp_rnn.publish import publish
from nlp_rnn.search import translate_all
from nlp_rnn.tatoeba import split_pairs
from nlp_rnn.training import TrainConfig

from helpers import LM_TEXT, PAIRS, train_tiny_lm, write_pairs_tsv


def test_a_translator_is_published_in_fp16_with_its_metrics_and_card(tmp_path):
    run = tmp_path / "run"
    model = dict(cell="lstm", attention="luong", hidden=32, embed=16, layers=1, dropout=0.0, label_smoothing=0.0)
    tasks.train_mt(PAIRS, PAIRS, run, model, TrainConfig(lr=1e-2, warmup=5, max_steps=60, eval_every=20, keep=3,
                                                         precision="fp32"),
                   tasks.TokenizerPlan(kind="char"), max_tokens=512)
    test = write_pairs_tsv(tmp_path / "test.tsv")
    recipe = {"name": "mt-en-es", "kind": "mt", "src": "en", "tgt": "es", "test": str(test), "heldout": str(test)}
    metrics = publish(run, tmp_path / "ship", recipe, ["train", "mt", "--pairs", "x.tsv"], average=2)
    with safe_open(str(tmp_path / "ship" / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {__import__("torch").float16}
    shipped = load_checkpoint(tmp_path / "ship")
    assert next(shipped.model.parameters()).dtype.is_floating_point
    config = json.loads((tmp_path / "ship" / "config.json").read_text())
    assert config["meta"]["test_metrics"] == metrics and "heldout_bleu" in metrics
    assert len(config["meta"]["averaged"]) == 2
    card = (tmp_path / "ship" / "README.md").read_text()
    assert f"BLEU {metrics['test_bleu']}" in card and "tatoeba.org" in card and "fp16" in card
    assert shipped.shortlist is not None and "shortlist.safetensors" in card  # the run's shortlist travels with it
    hyp = translate_all(shipped.model, shipped.tokenizers["src_tokenizer"], shipped.tokenizers["tgt_tokenizer"],
                        [PAIRS[0][0]], beam=5)[0].text
    assert hyp  # the fp16 copy still translates


def test_a_language_model_card_reports_keystroke_savings(tmp_path):
    run = tmp_path / "run"
    train_tiny_lm(run, steps=40)
    text = tmp_path / "held.txt"
    text.write_text(LM_TEXT[:400].replace(". ", ".\n"), encoding="utf-8")
    recipe = {"name": "lm-en", "kind": "lm", "lang": "en", "test": str(text), "heldout": str(text)}
    metrics = publish(run, tmp_path / "ship", recipe, ["train", "lm", "c.txt"])
    assert 0 <= metrics["heldout_keystroke_savings"] < 1 and metrics["test_bits_per_char"] > 0
    assert "keystroke savings" in (tmp_path / "ship" / "README.md").read_text()


def test_the_tatoeba_split_keeps_shared_sentences_on_one_side():
    words = "red blue green black white small big old new warm cold early late loud quiet".split()
    pairs = [("Go.", "Ve."), ("Go.", "Vete."), ("Run!", "¡Corre!"), ("Run away!", "¡Corre!"),
             ("Tom's tall.", "Tom es alto."), ("Mary is tall!", "María es alta."),   # near-duplicates: name, 's
             ("I have 3 dogs.", "Tengo 3 perros."), ("I have 12 dogs", "Tengo doce perros.")] + \
            [(f"The {a} {b} house.", f"La casa {a} {b}.") for a in words for b in words[:3]]
    parts = split_pairs(pairs, seed=3, test=5, dev=5)
    where = {p: name for name, rows in parts.items() for p in rows}
    assert where[("Go.", "Ve.")] == where[("Go.", "Vete.")]
    assert where[("Run!", "¡Corre!")] == where[("Run away!", "¡Corre!")]
    for a, b in ((("Tom's tall.", "Tom es alto."), ("Mary is tall!", "María es alta.")),
                 (("I have 3 dogs.", "Tengo 3 perros."), ("I have 12 dogs", "Tengo doce perros."))):
        assert "train" in (where[a], where[b])  # near-duplicates are never held out apart from their twin
    assert sum(len(v) for v in parts.values()) == len(pairs) and len(parts["test"]) >= 4 and len(parts["dev"]) >= 4
