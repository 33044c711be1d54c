"""The pretrained models in checkpoints/ still load and still reach the test metric their model cards record."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from nlp_rnn.cli import app
from nlp_rnn.defaults import checkpoints_dir, recipes
from nlp_rnn.publish import measure_test_metrics as measure

SHIPPED = {r["name"]: r for r in recipes()}
runner = CliRunner()


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_model_reproduces_its_recorded_metric(name):
    path = checkpoints_dir() / name
    assert (path / "config.json").is_file(), f"shipped model {name} is missing"
    recorded = json.loads((path / "config.json").read_text(encoding="utf-8"))["meta"]["test_metrics"]
    card = (path / "README.md").read_text(encoding="utf-8")
    now = measure(path, SHIPPED[name])
    if "test_bleu" in recorded:
        assert now["test_bleu"] == pytest.approx(recorded["test_bleu"], abs=0.5)
        assert now["test_chrf"] == pytest.approx(recorded["test_chrf"], abs=0.5)
        assert f"BLEU {recorded['test_bleu']}" in card
    else:
        assert now["test_bits_per_char"] == pytest.approx(recorded["test_bits_per_char"], abs=0.01)
        assert f"{recorded['test_bits_per_char']} bits/char" in card


def test_shipped_models_fit_the_size_budget():
    size = lambda d: sum(f.stat().st_size for f in d.rglob("*") if f.is_file())  # noqa: E731
    assert size(checkpoints_dir()) <= 80 * 1024 * 1024
    for name in SHIPPED:
        if name.startswith("mt-"):
            assert size(checkpoints_dir() / name) <= 30 * 1024 * 1024, name


def test_translate_picks_the_shipped_model_by_language():
    result = runner.invoke(app, ["translate", "¿Dónde está la estación?", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["translations"][0]["translation"].strip()
    explicit = runner.invoke(app, ["translate", "¿Dónde está la estación?", "--src", "es", "--tgt", "en", "--json"])
    assert json.loads(explicit.stdout)["translations"] == out["translations"]
    ambiguous = runner.invoke(app, ["translate", "12345", "--json"])  # no language to tell: a default, not a failure
    assert ambiguous.exit_code == 0 and json.loads(ambiguous.stdout)["translations"][0]["direction"]


def test_each_line_is_translated_from_its_own_language():
    lines = ["Hello", "Hola", "Gracias", "Good morning", "Tengo hambre.", "3:30"]
    result = runner.invoke(app, ["translate", "--json", "--beam", "1"], input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    got = [t["direction"] for t in json.loads(result.stdout)["translations"]]
    assert got[:5] == ["en-es", "es-en", "es-en", "en-es", "es-en"]
    assert got[5] == got[4]  # a line with no language to tell takes the direction of the line before


def test_generate_and_complete_use_the_shipped_lm_of_a_language():
    result = runner.invoke(app, ["generate", "--lang", "es", "--prompt", "La red", "--length", "40", "--seed", "1"])
    assert result.exit_code == 0 and result.stdout.startswith("La red")
    result = runner.invoke(app, ["complete", "--lang", "en", "The hidden sta", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["completions"]


def test_demo_runs_offline_on_the_shipped_models():
    result = runner.invoke(app, ["demo", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert len(report["translations"]) == 6 and all(t["translation"] for t in report["translations"])
    assert set(report["generated"]) == {"en", "es"}
    assert {m["model"] for m in report["metrics"]} == set(SHIPPED)
