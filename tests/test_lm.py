"""The character language model learns, generates reproducibly, completes words, and scores text correctly."""
from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st
from typer.testing import CliRunner

from nlp_rnn.checkpoint import load_checkpoint
from nlp_rnn.cli import app
from nlp_rnn.evaluate import lm_metrics
from nlp_rnn.sampling import Autocompleter, generate, sample

from helpers import LM_TEXT, train_tiny_lm

runner = CliRunner()


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("lm") / "run"
    train_tiny_lm(run, "lstm")
    return run


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_each_cell_memorizes_a_short_text(tmp_path, cell):
    summary = train_tiny_lm(tmp_path / cell, cell)
    assert summary["final"]["val_nats_per_char"] < 0.7  # unigram entropy of this text is ~2.8 nats
    loaded = load_checkpoint(tmp_path / cell)
    text = "".join(generate(loaded.model, loaded.tokenizer, "the quick", 60, greedy=True))
    assert text.startswith(" brown fox jumps over the lazy dog. the quick")


def test_same_seed_same_text(lm_dir):
    loaded = load_checkpoint(lm_dir)
    a = "".join(generate(loaded.model, loaded.tokenizer, "the", 80, temperature=1.5, seed=7))
    b = "".join(generate(loaded.model, loaded.tokenizer, "the", 80, temperature=1.5, seed=7))
    c = "".join(generate(loaded.model, loaded.tokenizer, "the", 80, temperature=1.5, seed=8))
    assert a == b and len(a) == 80
    assert a != c


def test_generate_cli_streams_and_is_reproducible(lm_dir):
    args = ["generate", "-m", str(lm_dir), "--prompt", "the qu", "--length", "40", "--seed", "3"]
    first, second = runner.invoke(app, args), runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert first.stdout == second.stdout
    assert first.stdout.startswith("the qu") and len(first.stdout.rstrip("\n")) == 46


def test_unknown_prompt_characters_warn_not_crash(lm_dir):
    result = runner.invoke(app, ["generate", "-m", str(lm_dir), "--prompt", "zebra 😀 Ω", "--length", "10", "--seed", "1"])
    assert result.exit_code == 0
    assert "warning" in result.stderr and "😀" in result.stderr


def test_top_k_and_top_p_restrict_sampling():
    logp = torch.log_softmax(torch.tensor([[4.0, 3.0, 0.0, -1.0, -2.0]]), -1)
    g = torch.Generator().manual_seed(0)
    assert {int(sample(logp, 1.0, top_k=2, generator=g)) for _ in range(200)} <= {0, 1}
    # the first token alone has p ≈ 0.70, so top-p 0.5 keeps only it
    assert {int(sample(logp, 1.0, top_p=0.5, generator=g)) for _ in range(50)} == {0}


def test_complete_finishes_a_word_from_the_training_text(lm_dir):
    result = runner.invoke(app, ["complete", "-m", str(lm_dir), "the quick br", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["completions"][0]["text"] == "brown"
    assert 0 < out["completions"][0]["prob"] <= 1
    assert out["next_words"][0]["text"] == "fox"


def test_autocomplete_is_incremental(lm_dir):
    loaded = load_checkpoint(lm_dir)
    ac = Autocompleter(loaded.model, loaded.tokenizer)
    calls = []
    real_step = ac.stepper
    ac.stepper = lambda *a: calls.append(1) or real_step(*a)
    ac.update("the lazy d")
    assert len(calls) == len("the lazy d")
    calls.clear()
    ac.update("the lazy do")  # one more keystroke: one model step
    assert len(calls) == 1
    calls.clear()
    ac.update("the lazy d")  # backspace: no step at all
    assert calls == []
    assert ac.suggest(next_words=False)["completions"][0]["text"] == "dog"


def test_eval_lm_matches_an_independent_computation(lm_dir, tmp_path):
    text = "the lazy dog jumps over the quick brown fox. the end"
    f = tmp_path / "held.txt"
    f.write_text(text, encoding="utf-8")
    result = runner.invoke(app, ["eval", "lm", "-m", str(lm_dir), str(f), "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    loaded = load_checkpoint(lm_dir)
    ids = torch.tensor([loaded.tokenizer.encode(text)])
    with torch.no_grad():
        logits, _ = loaded.model(ids[:, :-1])
        nll = torch.nn.functional.cross_entropy(logits[0], ids[0, 1:]).item()
    assert got["nats_per_char"] == pytest.approx(nll, rel=1e-5)
    assert got["bits_per_char"] == pytest.approx(nll / math.log(2), rel=1e-5)
    assert got["perplexity"] == pytest.approx(math.exp(nll), rel=1e-5)
    assert got["chars"] == len(text) - 1 and got["unk_chars"] == 0


def test_eval_lm_counts_characters_outside_the_vocabulary(lm_dir):
    loaded = load_checkpoint(lm_dir)
    m = lm_metrics(loaded.model, loaded.tokenizer, "the ZZ dog")
    assert m["unk_chars"] == 2


def test_dynamic_evaluation_adapts_to_a_repeated_text_and_leaves_the_model_alone(lm_dir, tmp_path):
    """`eval lm --dynamic` reports the adapted score beside the static one; text the model has never seen, repeated,
    becomes cheaper as the model learns it while reading, and the loaded model is not changed."""
    f = tmp_path / "new.txt"
    f.write_text("a red hen ate green corn by the barn. " * 20, encoding="utf-8")
    loaded = load_checkpoint(lm_dir)
    before = {k: v.clone() for k, v in loaded.model.state_dict().items()}
    static = lm_metrics(loaded.model, loaded.tokenizer, f.read_text())["nats_per_char"]
    adapted = lm_metrics(loaded.model, loaded.tokenizer, f.read_text(), dynamic_lr=0.3)["nats_per_char"]
    assert adapted < static - 0.3
    assert all(torch.equal(before[k], v) for k, v in loaded.model.state_dict().items())
    result = runner.invoke(app, ["eval", "lm", "-m", str(lm_dir), str(f), "--dynamic", "--dynamic-lr", "0.3", "--json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert got["nats_per_char"] == pytest.approx(static, rel=1e-5)
    assert got["dynamic_nats_per_char"] == pytest.approx(adapted, rel=1e-5) and got["dynamic_lr"] == 0.3


def test_dynamic_evaluation_predicts_before_it_learns(lm_dir):
    """Within the first window nothing has been learnt yet: the dynamic score equals the static one."""
    loaded = load_checkpoint(lm_dir)
    text = "the lazy dog jumps over the quick brown fox."
    static = lm_metrics(loaded.model, loaded.tokenizer, text)["nats_per_char"]
    assert lm_metrics(loaded.model, loaded.tokenizer, text, dynamic_lr=0.3)["nats_per_char"] == pytest.approx(static, rel=1e-5)


def test_dynamic_evaluation_refuses_an_int8_model(lm_dir):
    loaded = load_checkpoint(lm_dir, quantize="int8")
    with pytest.raises(ValueError, match="int8"):
        lm_metrics(loaded.model, loaded.tokenizer, "the lazy dog", dynamic_lr=0.1)


def test_train_lm_cli_writes_a_usable_run(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(LM_TEXT, encoding="utf-8")
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "lm", str(corpus), "-o", str(out), "--max-steps", "30", "--hidden", "32",
                                 "--embed", "8", "--batch-size", "4", "--bptt", "16", "--eval-every", "10", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["steps"] == 30 and summary["stop_reason"] == "max_steps"
    history = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    evals = [h for h in history if h["event"] == "EvalEvent"]
    assert [e["step"] for e in evals] == [10, 20, 30]
    assert evals[-1]["metrics"]["val_nats_per_char"] < evals[0]["metrics"]["val_nats_per_char"]
    assert (out / "model" / "model.safetensors").is_file()
    assert runner.invoke(app, ["train", "lm", str(corpus), "-o", str(out), "--max-steps", "1"]).exit_code == 2


def test_max_time_budget_stops_training(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(LM_TEXT, encoding="utf-8")
    result = runner.invoke(app, ["train", "lm", str(corpus), "-o", str(tmp_path / "r"), "--max-time", "1s",
                                 "--hidden", "16", "--embed", "8", "--batch-size", "2", "--bptt", "8", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["stop_reason"] == "max_time" and summary["seconds"] < 5


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(typed=st.text(max_size=40))
def test_complete_takes_any_unicode(lm_dir, typed):
    """Random text (emoji, combining marks, control characters) gives suggestions or nothing, never a crash."""
    loaded = _loaded(lm_dir)
    ac = Autocompleter(loaded.model, loaded.tokenizer, k=2, beam=3, max_chars=6)
    ac.update(typed)
    out = ac.suggest()
    for s in out["completions"] + out["next_words"]:
        assert isinstance(s["text"], str) and 0 <= s["prob"] <= 1


_cache = {}


def _loaded(path):
    if path not in _cache:
        _cache[path] = load_checkpoint(path)
    return _cache[path]


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_int8_stepper_follows_the_fp32_model(cell, monkeypatch):
    torch.manual_seed(0)
    from nlp_rnn.models import CharLM, LMConfig
    from nlp_rnn.models import stepper

    monkeypatch.setattr(stepper, "INT8_MIN_WEIGHTS", 0)  # quantize even this tiny model's matrices
    model = CharLM(LMConfig(vocab_size=30, cell=cell, layers=2, hidden=32, embed=8)).eval()
    q = model.quantized()
    s32, s8, a, b = stepper.Stepper(model), stepper.Stepper(q), None, None
    assert s8.q_hh[1] is not None and s8.q_ih[1] is not None and s8.q_head is not None
    for t in [3, 5, 7, 9, 11, 13]:
        la, a = s32(torch.tensor([t]), a)
        lb, b = s8(torch.tensor([t]), b)
        assert torch.allclose(la, lb, atol=0.05)
    x = torch.randint(0, 30, (2, 12))
    assert torch.allclose(model(x)[0], q(x)[0], atol=0.05)


def test_quantized_lm_generates_and_scores_close_to_fp32(lm_dir, tmp_path):
    f = tmp_path / "held.txt"
    f.write_text(LM_TEXT[:200], encoding="utf-8")
    fp32 = json.loads(runner.invoke(app, ["eval", "lm", "-m", str(lm_dir), str(f), "--json"]).stdout)
    res = runner.invoke(app, ["eval", "lm", "-m", str(lm_dir), str(f), "--json", "--quantize", "int8"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["bits_per_char"] == pytest.approx(fp32["bits_per_char"], abs=0.05)
    res = runner.invoke(app, ["generate", "-m", str(lm_dir), "--prompt", "the quick", "--length", "30",
                              "--temperature", "0.01", "--quantize", "int8"])
    assert res.exit_code == 0 and res.stdout.startswith("the quick brown fox"), res.output
    bad = runner.invoke(app, ["generate", "-m", str(lm_dir), "--quantize", "int4"])
    assert bad.exit_code == 2 and "--quantize must be none or int8" in bad.output
