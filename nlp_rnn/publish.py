"""Turn a finished training run into a shipped model: the final model, its test metrics, and a model card."""
from __future__ import annotations

import json
import shlex
from pathlib import Path

from .atomic import atomic_dir
from .checkpoint import CONFIG_FILE, load_checkpoint, resolve_model_dir
from .corpora import read_file_text, read_pairs
from .evaluate import lm_metrics, mt_scores
from .search import translate_all

MT_TEST_BEAM = 5


def measure_test_metrics(model_dir: str | Path, recipe: dict) -> dict:
    """The figure a model card records: bits/char on the test text, or BLEU/chrF (beam 5) on the test pairs."""
    loaded = load_checkpoint(model_dir, kind=recipe["kind"])
    if recipe["kind"] == "lm":
        m = lm_metrics(loaded.model, loaded.tokenizer, read_file_text(recipe["test"]))
        return {"test_bits_per_char": round(m["bits_per_char"], 4), "test_nats_per_char": round(m["nats_per_char"], 4),
                "test_chars": m["chars"]}
    src_col, tgt_col = (0, 1) if recipe["src"] == "en" else (1, 0)
    pairs = read_pairs(recipe["test"], src_col, tgt_col).pairs
    hyps = translate_all(loaded.model, loaded.tokenizers["src_tokenizer"], loaded.tokenizers["tgt_tokenizer"],
                         [s for s, _ in pairs], beam=MT_TEST_BEAM)
    scores = mt_scores([h.text for h in hyps], [t for _, t in pairs])
    return {"test_bleu": scores["bleu"], "test_chrf": scores["chrf"], "test_sentences": len(pairs),
            "test_beam": MT_TEST_BEAM, "bleu_signature": scores["signatures"]["bleu"]}


def publish(run_dir: str | Path, dest: str | Path, recipe: dict, command: list[str]) -> dict:
    """Copy the run's final model to `dest` (atomically) with test metrics in its config and a README card."""
    from .defaults import CORPORA

    src = resolve_model_dir(run_dir)
    command = [a.replace(str(CORPORA), "corpora") for a in command]
    metrics = measure_test_metrics(src, recipe)
    config = json.loads((src / CONFIG_FILE).read_text(encoding="utf-8"))
    config["meta"]["test_metrics"] = metrics
    config["meta"]["command"] = command
    with atomic_dir(Path(dest)) as tmp:
        for item in src.iterdir():
            if item.is_dir():
                (tmp / item.name).mkdir()
                for f in item.iterdir():
                    (tmp / item.name / f.name).write_bytes(f.read_bytes())
            elif item.name != CONFIG_FILE:
                (tmp / item.name).write_bytes(item.read_bytes())
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        (tmp / "README.md").write_text(model_card(recipe, config, metrics, command), encoding="utf-8")
    return metrics


def model_card(recipe: dict, config: dict, metrics: dict, command: list[str]) -> str:
    from .defaults import CORPORA

    recipe = {**recipe, "test": recipe["test"].replace(str(CORPORA), "corpora"),
              "args": [a.replace(str(CORPORA), "corpora") for a in recipe["args"]]}
    m, meta = config["model"], config["meta"]
    if recipe["kind"] == "lm":
        what = f"Character-level language model ({recipe['lang']})"
        arch = f"{m['cell']} {m['layers']}×{m['hidden']}, embedding {m['embed']}, dropout {m['dropout']}"
        data = f"`{recipe['args'][2]}` ({meta.get('train_chars', '?'):,} characters), validated on the dev split"
        figure = (f"{metrics['test_bits_per_char']} bits/char ({metrics['test_nats_per_char']} nats/char) "
                  f"on `{recipe['test']}` ({metrics['test_chars']:,} characters)")
    else:
        what = f"Translator {recipe['src']}→{recipe['tgt']}"
        arch = (f"{m['cell']} encoder-decoder, {m['layers']} layer(s), hidden {m['hidden']}, embedding {m['embed']}, "
                f"{'bidirectional' if m['bidirectional'] else 'unidirectional'} encoder, attention {m['attention']}")
        data = f"the English–Spanish pairs of `corpora/en-es/train.tsv` ({meta.get('train_pairs', '?'):,} pairs)"
        figure = (f"BLEU {metrics['test_bleu']}, chrF {metrics['test_chrf']} on `{recipe['test']}` "
                  f"({metrics['test_sentences']} sentences, beam {metrics['test_beam']}; sacrebleu "
                  f"`{metrics['bleu_signature']}`)")
    cmd = "nlp-rnn " + " ".join(shlex.quote(a) for a in command) + f" -o runs/{recipe['name']}"
    return f"""# {recipe['name']}: {what}

- **Architecture:** {arch}.
- **Data:** {data}. The corpora were written for nlp-rnn (see `corpora/README.md`).
- **Test metric:** {figure}.
- **Trained by** (`nlp-rnn demo --retrain` runs the same recipe):

```
{cmd}
```

then published (final model, test metric, this card) by `nlp-rnn demo --retrain -o checkpoints`. Training ran
for the time budget; the checkpoint with the best validation score (step {meta.get('step', '?')}) was kept. Format: `config.json` + `model.safetensors` + tokenizer files, loadable without pickle.
A test (`tests/test_shipped.py`) recomputes the test metric and fails if it drifts from the value recorded here.
"""
