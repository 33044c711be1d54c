"""The language model's regularisers act in training only, keep the fused kernels' function, and still learn;
the fast `Stepper` follows fp32 and int8 models; the k-fold benchmark's splits partition the text."""
from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings, strategies as st

from benchmarks.lm_folds import complement, fold_texts, folds, spread_holdout, train_val
from nlp_rnn.batch import LMBatch
from nlp_rnn.models import CharLM, LMConfig
from nlp_rnn.models import stepper as stepper_module
from nlp_rnn.models.lm import locked_dropout
from nlp_rnn.models.stepper import Stepper

REGULARISED = dict(input_dropout=0.2, layer_dropout=0.3, dropout=0.3, weight_drop=0.5, embed_dropout=0.1)


def _model(cell="lstm", layers=2, **kw) -> CharLM:
    torch.manual_seed(0)
    return CharLM(LMConfig(vocab_size=20, cell=cell, layers=layers, hidden=24, embed=8, **kw))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_inference_ignores_the_regularisers(cell):
    plain, regular = _model(cell), _model(cell, **REGULARISED)
    assert plain.state_dict().keys() == regular.state_dict().keys()  # checkpoints keep their tensor names
    regular.load_state_dict(plain.state_dict())
    x = torch.randint(0, 20, (3, 11))
    a, sa = plain.eval()(x)
    b, sb = regular.eval()(x)
    assert torch.equal(a, b)
    assert torch.equal(regular(x)[0], b)  # no randomness left at inference


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_layer_by_layer_training_computes_the_fused_function(cell):
    """With vanishing DropConnect and dropout between layers, the per-layer kernel calls give the fused result,
    and the returned state continues the sequence as the fused kernel's does."""
    fused = _model(cell, dropout=0.0)
    split = _model(cell, weight_drop=1e-9, layer_dropout=1e-9, dropout=0.0)
    split.load_state_dict(fused.state_dict())
    x = torch.randint(0, 20, (2, 9))
    fused.train(), split.train()
    a, sa = fused(x[:, :5])
    b, sb = split(x[:, :5])
    assert torch.allclose(a, b, atol=1e-5)
    a2, _ = fused(x[:, 5:], sa)
    b2, _ = split(x[:, 5:], sb)
    assert torch.allclose(a2, b2, atol=1e-5)


def test_locked_dropout_keeps_one_mask_for_all_time_steps():
    torch.manual_seed(1)
    out = locked_dropout(torch.ones(4, 30, 16), 0.5, training=True)
    assert set(out.unique().tolist()) == {0.0, 2.0}  # kept units are scaled by 1 / (1 - p)
    assert torch.equal(out, out[:, :1].expand_as(out))
    assert 0 < (out == 0).float().mean() < 1
    x = torch.randn(2, 3, 4)
    assert torch.equal(locked_dropout(x, 0.5, training=False), x)


def test_weight_drop_masks_the_recurrent_weights_anew_each_batch_without_changing_them():
    model = _model("gru", layers=1, weight_drop=0.5, dropout=0.0).train()
    before = model.rnn.weight_hh_l0.detach().clone()
    x = torch.randint(0, 20, (2, 12))
    a, _ = model(x)
    b, _ = model(x)
    assert not torch.allclose(a, b)
    a.sum().backward()
    assert model.rnn.weight_hh_l0.grad is not None and model.rnn.weight_hh_l0.grad.abs().sum() > 0
    assert torch.equal(model.rnn.weight_hh_l0.detach(), before)


def test_embed_dropout_drops_whole_characters():
    model = _model("gru", layers=1, embed_dropout=0.5, dropout=0.0).train()
    seen = []
    model.rnn.register_forward_hook(lambda mod, inputs, out: seen.append(inputs[0].detach()))
    x = torch.tensor([[3, 5, 3, 5, 3, 7, 7, 3]] * 2)
    for _ in range(20):
        model(x)
    emb = model.embedding.weight.detach()
    for e in seen:  # every occurrence of a character is dropped, or none is
        for ch in (3, 5, 7):
            rows = e[x == ch]
            assert torch.allclose(rows, torch.zeros_like(rows)) or torch.allclose(rows, (2 * emb[ch]).expand_as(rows))
    assert any(torch.allclose(e[x == 3], torch.zeros_like(e[x == 3])) for e in seen)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_regularised_model_still_learns_a_text(cell):
    text = "the quick brown fox jumps over the lazy dog. " * 20
    vocab = sorted(set(text))
    ids = torch.tensor([vocab.index(c) for c in text])
    model = CharLM(LMConfig(vocab_size=len(vocab), cell=cell, layers=2, hidden=64, embed=16,
                            input_dropout=0.1, layer_dropout=0.1, dropout=0.1, weight_drop=0.2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    rows = ids[: len(ids) // 4 * 4].reshape(4, -1)
    state = None
    for step in range(120):
        start = (step * 24) % (rows.size(1) - 25)
        batch = LMBatch(rows[:, start:start + 24], rows[:, start + 1:start + 25])
        loss, state = model.train().loss(batch, None if start == 0 else state)
        state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        logits, _ = model(ids[None, :-1])
        nats = torch.nn.functional.cross_entropy(logits[0], ids[1:]).item()
    assert nats < 0.5  # the unigram entropy of this text is ~2.8 nats


@pytest.mark.parametrize("field", ["dropout", "input_dropout", "layer_dropout", "weight_drop", "embed_dropout"])
def test_dropout_rates_must_be_probabilities(field):
    with pytest.raises(ValueError, match=field):
        LMConfig(vocab_size=10, **{field: 1.0}).validate()
    with pytest.raises(ValueError, match=field):
        LMConfig(vocab_size=10, **{field: -0.1}).validate()


def test_a_config_saved_before_the_regularisers_existed_still_builds_the_model():
    old = {"vocab_size": 81, "cell": "gru", "embed": 48, "hidden": 384, "layers": 1, "dropout": 0.2, "tie_weights": False}
    model = CharLM(LMConfig(**old))
    assert model.config.weight_drop == 0 and model.config.input_dropout == 0


# ---------------------------------------------------------------------------------------------- the fast step

@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_stepper_follows_the_fp32_model(cell):
    model = _model(cell, **REGULARISED).eval()
    step, state, ids = Stepper(model), None, torch.randint(0, 20, (1, 10))
    logits, _ = model(ids)
    for t in range(ids.size(1)):
        out, state = step(ids[:, t], state)
        assert torch.allclose(out, logits[:, t], atol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_stepper_of_an_int8_model_uses_int8_and_follows_the_int8_forward(cell, monkeypatch):
    monkeypatch.setattr(stepper_module, "INT8_MIN_WEIGHTS", 0)  # quantize even this tiny model's matrices
    q = _model(cell).eval().quantized()
    step = Stepper(q)
    assert all(m is not None for m in step.q_hh) and step.q_ih[1] is not None and step.q_head is not None
    assert not any(k.startswith("_") for k in vars(q) if "stepper" in k)  # nothing hidden on the model
    ids, state = torch.randint(0, 20, (1, 8)), None
    logits, _ = q(ids)
    for t in range(ids.size(1)):
        out, state = step(ids[:, t], state)
    assert torch.allclose(out, logits[:, -1], atol=0.02)


def test_stepper_of_an_fp32_model_stays_fp32():
    assert Stepper(_model("gru")).q_hh == [None, None]


# ---------------------------------------------------------------------------------------------- fold splits

@settings(max_examples=50, deadline=None)
@given(text=st.text(alphabet="ab \n", min_size=10, max_size=3000), k=st.integers(2, 6))
def test_folds_cover_the_text_once_in_order(text, k):
    spans = folds(text, k)
    assert len(spans) == k and spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(a <= b for a, b in spans) and all(spans[i][1] == spans[i + 1][0] for i in range(k - 1))
    for i in range(k):
        train, test = fold_texts(text, k, i)
        assert len(train) + len(test) == len(text) and test == text[spans[i][0]:spans[i][1]]


@settings(max_examples=100, deadline=None)
@given(n=st.integers(10, 5_000_000), fraction=st.floats(0.01, 0.5), blocks=st.integers(1, 20))
def test_spread_holdout_is_disjoint_spread_and_sized(n, fraction, blocks):
    spans = spread_holdout(n, fraction, blocks)
    held = sum(b - a for a, b in spans)
    assert 1 <= len(spans) <= blocks
    assert all(0 <= a < b <= n for a, b in spans)
    assert all(spans[i][1] <= spans[i + 1][0] for i in range(len(spans) - 1))
    assert abs(held - n * fraction) <= len(spans) + 2
    rest = complement(n, spans)
    assert held + sum(b - a for a, b in rest) == n
    if len(spans) > 1:  # validation reaches both halves of the text, not only its end
        assert spans[0][1] <= n / 2 <= spans[-1][0]


def test_train_val_holds_out_blocks_from_the_whole_text():
    text = "".join(f"line {i:05d}\n" for i in range(20_000))
    fit, val = train_val(text, 0.05)
    assert len(fit) + len(val) == len(text) and abs(len(val) - 0.05 * len(text)) < 20
    assert "line 01" in val and "line 18" in val  # from the first tenth of the text to the last


# ---------------------------------------------------------------------------------------------- the command line

def test_train_lm_flags_set_the_regularisers_and_refuse_a_rate_of_one(tmp_path):
    from typer.testing import CliRunner

    from nlp_rnn.cli import app

    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat on the mat and the dog sat on the log.\n" * 200, encoding="utf-8")
    runner = CliRunner()
    args = ["train", "lm", str(corpus), "--max-steps", "2", "--hidden", "16", "--embed", "8", "--batch-size", "4",
            "--bptt", "16", "--threads", "1"]
    done = runner.invoke(app, [*args, "-o", str(tmp_path / "run"), "--input-dropout", "0.1", "--layer-dropout", "0.2",
                               "--weight-drop", "0.3", "--embed-dropout", "0.05"])
    assert done.exit_code == 0, done.output
    model = json.loads((tmp_path / "run" / "model" / "config.json").read_text())["model"]
    assert (model["input_dropout"], model["layer_dropout"], model["weight_drop"], model["embed_dropout"]) == \
        (0.1, 0.2, 0.3, 0.05)
    refused = runner.invoke(app, [*args, "-o", str(tmp_path / "bad"), "--weight-drop", "1"])
    assert refused.exit_code == 2 and "weight_drop" in refused.output
    assert not (tmp_path / "bad").exists()


# ---------------------------------------------------------------------------------------------- sized by the corpus

@pytest.mark.parametrize("config", [dict(cell="gru"), dict(cell="lstm", layers=2), dict(cell="rnn", layers=3),
                                    dict(cell="gru", embed=24, tie_weights=True)])
def test_lm_parameters_counts_the_models_weights(config):
    from nlp_rnn.model_configs import lm_parameters

    c = LMConfig(vocab_size=37, hidden=24, embed=config.pop("embed", 8), **config)
    assert lm_parameters(c) == sum(p.numel() for p in CharLM(c).parameters())


def _trained_config(tmp_path, name: str, text: str, hidden: int, **options) -> tuple[dict, list[str]]:
    from nlp_rnn import tasks
    from nlp_rnn.training import Notice, Run, TrainConfig

    said = []
    run = Run(tmp_path / name, on_event=lambda e: said.append(e.text) if isinstance(e, Notice) else None)
    tasks.train_lm(text, None, run, dict(cell="gru", hidden=hidden, embed=4, **options),
                   TrainConfig(max_steps=1, precision="fp32"), tasks.LMData(batch_size=2, bptt=8))
    return json.loads((tmp_path / name / "model" / "config.json").read_text())["model"], said


def test_a_small_corpus_gets_the_stronger_regularisation_and_says_so(tmp_path):
    from nlp_rnn.model_configs import SMALL_CORPUS_REGULARISATION as SMALL

    text = "the cat sat on the mat.\n" * 40  # ~900 characters for a model of ~3,000 weights
    model, said = _trained_config(tmp_path, "small", text, hidden=24)
    assert (model["dropout"], model["weight_drop"]) == (SMALL["dropout"], SMALL["weight_drop"])
    assert any("characters per weight" in m and "--weight-drop 0.1" in m for m in said)


def test_a_large_corpus_keeps_the_plain_default_and_a_set_flag_wins(tmp_path):
    text = "the cat sat on the mat and the dog sat on the log.\n" * 400  # 20,000 characters, ~400 weights
    model, _ = _trained_config(tmp_path, "large", text, hidden=4)
    assert (model["dropout"], model["weight_drop"]) == (LMConfig.dropout, LMConfig.weight_drop)
    model, said = _trained_config(tmp_path, "set", text[:900], hidden=24, dropout=0.05)
    assert (model["dropout"], model["weight_drop"]) == (0.05, LMConfig.weight_drop)
    assert not any("characters per weight" in m for m in said)
