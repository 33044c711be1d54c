"""The text classifier as a user meets it: `train clf` on every data layout, `classify`, `eval clf`, the REPL's
classify mode and `Service.classify`; bad input gives one error line naming the file; resume and signals behave as
for the other models. A tiny classifier learns two invented classes in seconds and then separates them perfectly."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from nlp_rnn import corpora, tasks
from nlp_rnn.checkpoint import load_checkpoint
from nlp_rnn.cli import app
from nlp_rnn.cli.common import state
from nlp_rnn.errors import CheckpointError, UsageError
from nlp_rnn.service import Service

runner = CliRunner()

# Two invented classes: "fizz" texts are made of z-words, "buzz" texts of k-words. Nothing else tells them apart.
FIZZ = ["zub", "zab", "zib", "zob", "zeb"]
BUZZ = ["kel", "kal", "kil", "kol", "kul"]
TINY = ["--hidden", "16", "--embed", "8", "--dropout", "0", "--lr", "0.01", "--warmup", "5", "--batch-size", "8",
        "--precision", "fp32", "--threads", "1", "--device", "cpu", "--seed", "3"]


def invented(n: int, seed: int = 0, classes=(("fizz", FIZZ), ("buzz", BUZZ))) -> list[tuple[str, str]]:
    """n (text, label) examples per class, each text 2-5 words of its class's vocabulary."""
    rng = random.Random(seed)
    rows = [(" ".join(rng.choice(words) for _ in range(rng.randint(2, 5))), label)
            for _ in range(n) for label, words in classes]
    rng.shuffle(rows)
    return rows


def write_tsv(path: Path, rows, header: str | None = "text\tlabel") -> Path:
    path.write_text((header + "\n" if header else "") + "".join(f"{t}\t{y}\n" for t, y in rows), encoding="utf-8")
    return path


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def ok(result):
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def error_line(result, code: int, *needles) -> str:
    """The CLI's contract: one `error:` line on stderr naming the problem, nothing on stdout, the right code."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == "" and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "unexpected" not in lines[0], result.stderr
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])
    return lines[0]


def meta(run: Path) -> dict:
    return json.loads((run / "model" / "config.json").read_text(encoding="utf-8"))["meta"]


@pytest.fixture(autouse=True)
def _fresh_cli_state(monkeypatch):
    monkeypatch.delenv("NLP_RNN_DEBUG", raising=False)
    monkeypatch.setattr(state, "debug", False)
    monkeypatch.setattr(state, "quiet", False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny classifier trained through the CLI on the invented classes (the model the later tests use)."""
    d = tmp_path_factory.mktemp("clf")
    data = write_tsv(d / "train.tsv", invented(24))
    val = write_tsv(d / "val.tsv", invented(6, seed=1))
    ok(cli("train", "clf", data, "--val", val, "-o", d / "run", "--epochs", "12", "--eval-every", "20", *TINY))
    return d / "run"


# ---------------------------------------------------------------------------------------------- learning

def test_a_tiny_classifier_separates_two_invented_classes_perfectly(trained, tmp_path):
    summary = json.loads((trained / "summary.json").read_text())
    assert summary["best"]["val_accuracy"] == 1.0 and summary["best"]["val_macro_f1"] == 1.0
    m = meta(trained)
    assert m["labels"] == ["buzz", "fizz"] and m["label_counts"] == {"buzz": 24, "fizz": 24}
    assert m["task"] == "clf" and m["class_weights"] is None
    unseen = write_tsv(tmp_path / "test.tsv", invented(15, seed=7))
    figures = json.loads(ok(cli("eval", "clf", "-m", trained, unseen, "--json")).stdout)
    assert figures["accuracy"] == 1.0 and figures["macro_f1"] == 1.0 and figures["examples"] == 30
    assert figures["confusion"] == [[15, 0], [0, 15]]


# ---------------------------------------------------------------------------------------------- data layouts

def _layout(tmp: Path, kind: str, rows) -> tuple[list, list]:
    """Write `rows` in one layout; returns (the data arguments, extra flags)."""
    if kind == "tsv-header":
        return [write_tsv(tmp / "d.tsv", rows)], []
    if kind == "tsv-no-header":
        return [write_tsv(tmp / "d.tsv", rows, header=None)], []
    if kind == "tsv-named-columns":  # columns in another order, picked by header name
        (tmp / "d.tsv").write_text("id\tverdict\tbody\n" + "".join(f"{i}\t{y}\t{t}\n" for i, (t, y) in enumerate(rows)),
                                   encoding="utf-8")
        return [tmp / "d.tsv"], ["--text-col", "body", "--label-col", "verdict"]
    if kind == "tsv-numbered-columns":
        (tmp / "d.tsv").write_text("".join(f"{y}\t{t}\n" for t, y in rows), encoding="utf-8")
        return [tmp / "d.tsv"], ["--text-col", "1", "--label-col", "0"]
    if kind == "csv":  # quoted fields with commas inside
        (tmp / "d.csv").write_text("review,sentiment\n" + "".join(f'"{t}, {t}",{y}\n' for t, y in rows), encoding="utf-8")
        return [tmp / "d.csv"], []
    if kind == "jsonl":
        (tmp / "d.jsonl").write_text("".join(json.dumps({"body": t, "y": y}) + "\n" for t, y in rows), encoding="utf-8")
        return [tmp / "d.jsonl"], ["--text-field", "body", "--label-field", "y"]
    if kind == "folder":  # the IMDB layout: one subfolder per class, one .txt file per example
        for i, (t, y) in enumerate(rows):
            (tmp / "d" / y).mkdir(parents=True, exist_ok=True)
            (tmp / "d" / y / f"{i}.txt").write_text(t + "\nsecond line\n", encoding="utf-8")
        (tmp / "d" / "README").write_text("not an example", encoding="utf-8")
        return [tmp / "d"], []
    assert kind == "dataset-json"
    datasets = pytest.importorskip("datasets")
    datasets.config.HF_DATASETS_CACHE = str(tmp / "hf-cache")
    (tmp / "d.jsonl").write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows), encoding="utf-8")
    return [], ["--dataset", "json", "--data-files", tmp / "d.jsonl"]


@pytest.mark.parametrize("kind", ["tsv-header", "tsv-no-header", "tsv-named-columns", "tsv-numbered-columns", "csv",
                                  "jsonl", "folder", "dataset-json"])
def test_every_data_layout_trains_with_its_labels(tmp_path, kind):
    rows = invented(10)
    data, flags = _layout(tmp_path, kind, rows)
    ok(cli("train", "clf", *data, *flags, "-o", tmp_path / "run", "--max-steps", "2", "--val-fraction", "0.2", *TINY))
    m = meta(tmp_path / "run")
    assert m["labels"] == ["buzz", "fizz"]
    assert m["train_examples"] + m["val_examples"] == 20 and m["val_examples"] == 4  # 2 of each label held out
    loaded = load_checkpoint(tmp_path / "run")
    assert loaded.kind == "clf" and loaded.model.config.num_classes == 2


def test_the_reader_keeps_texts_and_labels_exactly(tmp_path):
    rows = invented(3)
    for kind in ("tsv-header", "tsv-no-header", "csv", "jsonl", "folder"):
        sub = tmp_path / kind
        sub.mkdir()
        data, flags = _layout(sub, kind, rows)
        opts = {"text_field": "body", "label_field": "y"} if kind == "jsonl" else {}
        c = corpora.open_labelled(data[0], **opts)
        got = sorted(zip(c.texts, c.labels))
        want = sorted((f"{t}, {t}" if kind == "csv" else f"{t} second line" if kind == "folder" else t, y)
                      for t, y in rows)
        assert got == want, kind


# ---------------------------------------------------------------------------------------------- bad input

def test_an_unknown_label_column_names_the_file_and_the_columns(tmp_path):
    data = write_tsv(tmp_path / "d.tsv", invented(5))
    r = cli("train", "clf", data, "-o", tmp_path / "run", "--label-col", "stars", *TINY)
    error_line(r, 1, "d.tsv:1:", "no column named 'stars'", "columns: text, label", "--label-col")
    assert not (tmp_path / "run").exists()


def test_one_class_only_is_refused(tmp_path):
    data = write_tsv(tmp_path / "d.tsv", [(t, "fizz") for t, _ in invented(5)])
    error_line(cli("train", "clf", data, "-o", tmp_path / "run", *TINY), 1, "d.tsv", "only one label ('fizz')")


def test_empty_texts_are_dropped_and_counted_and_no_text_at_all_is_an_error(tmp_path):
    rows = invented(6)
    data = tmp_path / "d.tsv"
    data.write_text("text\tlabel\n\tfizz\n   \tbuzz\n" + "".join(f"{t}\t{y}\n" for t, y in rows) + "kel\t \n",
                    encoding="utf-8")
    r = ok(cli("train", "clf", data, "-o", tmp_path / "run", "--max-steps", "1", *TINY))
    assert "2 blank_text, 1 blank_label dropped" in r.stderr
    assert meta(tmp_path / "run")["train_examples"] + meta(tmp_path / "run")["val_examples"] == 12
    empty = tmp_path / "empty.tsv"
    empty.write_text("text\tlabel\n\tfizz\n \tbuzz\n", encoding="utf-8")
    error_line(cli("train", "clf", empty, "-o", tmp_path / "run2", *TINY), 1, "empty.tsv", "no usable examples",
               "2 blank_text")


def test_a_validation_label_unseen_in_training_is_refused(tmp_path):
    data = write_tsv(tmp_path / "d.tsv", invented(5))
    val = write_tsv(tmp_path / "v.tsv", invented(2) + [("zub kel", "fuzz")])
    error_line(cli("train", "clf", data, "--val", val, "-o", tmp_path / "run", *TINY), 1, "v.tsv",
               "validation label 'fuzz' never occurs in the training data")


def test_eval_refuses_a_label_the_model_never_saw_naming_the_line(trained, tmp_path):
    data = write_tsv(tmp_path / "t.tsv", invented(2) + [("zub zab", "fuzz")])
    error_line(cli("eval", "clf", "-m", trained, data), 1, "t.tsv:6:", "label 'fuzz' is not one the model knows",
               "buzz, fizz")


def test_bad_flags_fail_before_anything_is_read(tmp_path):
    missing = tmp_path / "missing.tsv"
    error_line(cli("train", "clf", missing, "-o", tmp_path / "r", "--class-weights", "some"), 2, "--class-weights")
    error_line(cli("train", "clf", missing, "-o", tmp_path / "r", "--pooling", "min"), 2, "pooling")
    error_line(cli("train", "clf", "-o", tmp_path / "r"), 2, "no training data")
    error_line(cli("train", "clf", missing, "-o", tmp_path / "r"), 2, "missing.tsv", "no such file")


# ---------------------------------------------------------------------------------------------- class weights

def test_class_weights_auto_weighs_the_rare_class_up(tmp_path):
    rows = invented(30, classes=(("fizz", FIZZ),)) + invented(6, seed=2, classes=(("buzz", BUZZ),))
    data = write_tsv(tmp_path / "d.tsv", rows)
    ok(cli("train", "clf", data, "-o", tmp_path / "auto", "--max-steps", "1", "--class-weights", "auto", *TINY))
    m = meta(tmp_path / "auto")
    n_buzz, n_fizz = m["label_counts"]["buzz"], m["label_counts"]["fizz"]
    n = n_buzz + n_fizz
    assert n_fizz == 27 and n_buzz == 5  # 10% of each label held out
    assert m["class_weights"] == pytest.approx([n / (2 * n_buzz), n / (2 * n_fizz)], rel=1e-5)
    # the weights reach the loss: the same batch scores differently with and without them
    loaded = load_checkpoint(tmp_path / "auto")
    encoded = tasks.Encoded(["zub zab", "kel", "kal kil"], loaded.tokenizer, 50)
    plain = encoded.batch([0, 1, 2], [1, 0, 0])
    weighted = encoded.batch([0, 1, 2], [1, 0, 0], torch.tensor(m["class_weights"]))
    assert not torch.isclose(loaded.model.loss(plain)[0], loaded.model.loss(weighted)[0])
    ok(cli("train", "clf", data, "-o", tmp_path / "none", "--max-steps", "1", *TINY))
    assert meta(tmp_path / "none")["class_weights"] is None


# ---------------------------------------------------------------------------------------------- resume and signals

def test_an_interrupted_run_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path, monkeypatch):
    from nlp_rnn import training

    data = write_tsv(tmp_path / "d.tsv", invented(12))
    args = ["--quiet", "train", "clf", data, "--max-steps", "12", "--eval-every", "4", "--deterministic", *TINY]
    ok(cli(*args, "-o", tmp_path / "whole"))
    after_step = training.Trainer._after_step

    def interrupt_at_7(self, loss):
        after_step(self, loss)
        if self.progress.step == 7:
            self.signals.received = signal.SIGINT  # as if Ctrl-C arrived during step 7
    monkeypatch.setattr(training.Trainer, "_after_step", interrupt_at_7)
    error_line(cli(*args, "-o", tmp_path / "broken"), 130, "interrupted at step 7", "--resume")
    monkeypatch.setattr(training.Trainer, "_after_step", after_step)
    error_line(cli(*args, "-o", tmp_path / "broken", "--resume", "--hidden", "24"), 2, "--hidden 24 (the run has 16)")
    ok(cli(*args, "-o", tmp_path / "broken", "--resume"))
    a, b = load_file(str(tmp_path / "whole/model/model.safetensors")), load_file(str(tmp_path / "broken/model/model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_sigterm_saves_a_checkpoint_and_exits_143(tmp_path):
    data = write_tsv(tmp_path / "d.tsv", invented(12))
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "nlp_rnn", "--quiet", "train", "clf", str(data), "-o", str(run),
                             "--max-steps", "1000000", "--save-every", "5", *TINY], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "NLP_RNN_DEBUG": "0"})
    try:
        deadline = time.monotonic() + 300
        while not ((run / "latest").exists() and json.loads((run / "latest").read_text() or "{}").get("step", 0) >= 5):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, err
    assert len(err.strip().splitlines()) == 1 and "--resume" in err and "Traceback" not in err
    latest = json.loads((run / "latest").read_text())
    assert load_checkpoint(run / latest["path"], kind="clf").meta["step"] == latest["step"] >= 5


# ---------------------------------------------------------------------------------------------- classify

def test_classify_one_text_stdin_and_files_line_for_line(trained, tmp_path):
    line = ok(cli("classify", "-m", trained, "zub zab zib")).stdout
    label, prob = line.rstrip("\n").split("\t")
    assert label == "fizz" and 0.5 < float(prob) <= 1
    two = ok(cli("classify", "-m", trained, "kel kal", "--top", "2")).stdout.rstrip("\n").split("\t")
    assert two[0] == "buzz" and two[2] == "fizz" and float(two[1]) + float(two[3]) == pytest.approx(1, abs=2e-4)
    piped = ok(runner.invoke(app, ["classify", "-m", str(trained)], input="kol kul\n\nzeb zob\n")).stdout
    assert [x.split("\t")[0] for x in piped.splitlines()] == ["buzz", piped.splitlines()[1].split("\t")[0], "fizz"]
    assert len(piped.splitlines()) == 3  # the blank line still gets its line
    src = tmp_path / "in.txt"
    src.write_text("zub\nkel kil\nzab zab\n", encoding="utf-8")
    ok(cli("classify", "-m", trained, "-i", src, "-o", tmp_path / "out.tsv"))
    assert [x.split("\t")[0] for x in (tmp_path / "out.tsv").read_text().splitlines()] == ["fizz", "buzz", "fizz"]
    payload = json.loads(ok(cli("classify", "-m", trained, "-i", src, "--json", "--top", "5")).stdout)
    assert payload["texts"] == 3 and [r["label"] for r in payload["results"]] == ["fizz", "buzz", "fizz"]
    assert all(len(r["top"]) == 2 for r in payload["results"])  # --top beyond the labels gives every label


def test_classify_never_writes_over_its_input_or_a_file_it_did_not_make(trained, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("zub\n", encoding="utf-8")
    error_line(cli("classify", "-m", trained, "-i", src, "-o", src), 2, "also an input")
    assert src.read_text() == "zub\n"
    other = tmp_path / "other.txt"
    other.write_text("keep me\n", encoding="utf-8")
    error_line(cli("classify", "-m", trained, "-i", src, "-o", other), 2, "other.txt")
    assert other.read_text() == "keep me\n"
    error_line(cli("classify", "-m", trained, "zub", "-i", src), 2, "not both")
    error_line(cli("classify", "-m", trained, "zub", "--top", "0"), 2, "--top")
    lm_like = tmp_path / "nothing"
    lm_like.mkdir()
    error_line(cli("classify", "-m", lm_like, "zub"), 1, "not an nlp-rnn checkpoint")


# ---------------------------------------------------------------------------------------------- eval clf

def test_eval_figures_match_a_hand_count(trained, tmp_path):
    """Texts the model labels right, some of them given the other label: figures counted by hand.

        true \\ predicted   buzz  fizz        buzz: precision 3/4, recall 3/5, F1 2/3
        buzz                 3     2         fizz: precision 4/6, recall 4/5, F1 8/11
        fizz                 1     4         accuracy 7/10, macro-F1 (2/3 + 8/11) / 2 = 23/33
    """
    fizz = ["zub zab zib zob", "zeb zub zab", "zob zob zib zab", "zab zeb zub", "zib zub zob zeb", "zub zib zab"]
    buzz = ["kel kal kil kol", "kul kel kal", "kol kol kil kal", "kal kul kel"]
    rows = ([(t, "fizz") for t in fizz[:4]] + [(t, "buzz") for t in fizz[4:]] + [(t, "buzz") for t in buzz[:3]]
            + [(buzz[3], "fizz")])
    data = write_tsv(tmp_path / "hand.tsv", rows)
    s = json.loads(ok(cli("eval", "clf", "-m", trained, data, "--json")).stdout)
    assert s["labels"] == ["buzz", "fizz"] and s["examples"] == 10
    assert s["confusion"] == [[3, 2], [1, 4]]
    assert s["accuracy"] == 0.7 and s["macro_f1"] == round(23 / 33, 4)
    assert s["per_label"]["buzz"] == {"precision": 0.75, "recall": 0.6, "f1": round(2 / 3, 4), "support": 5}
    assert s["per_label"]["fizz"] == {"precision": round(4 / 6, 4), "recall": 0.8, "f1": round(8 / 11, 4),
                                      "support": 5}
    table = ok(cli("eval", "clf", "-m", trained, data)).stdout
    matrix = table[table.index("confusion matrix"):]
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in matrix.splitlines() if line.startswith("│ ")]
    assert cells == [["buzz", "3", "2"], ["fizz", "1", "4"]]
    assert "0.697" in table


def test_eval_plot_draws_a_png(trained, tmp_path):
    pytest.importorskip("matplotlib")
    data = write_tsv(tmp_path / "t.tsv", invented(3))
    ok(cli("eval", "clf", "-m", trained, data, "--plot", tmp_path / "cm.png", "--json"))
    assert (tmp_path / "cm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    error_line(cli("eval", "clf", "-m", trained, data, "--plot", data), 2, "also an input")


# ---------------------------------------------------------------------------------------------- service and REPL

def test_service_classify_ranks_labels_for_each_text(trained):
    service = Service(clf=[trained], shipped=False)
    results = service.classify(["zub zob", "kel", ""], top=2)
    assert [r["label"] for r in results[:2]] == ["fizz", "buzz"]
    for r in results:
        assert [t["label"] for t in r["top"]][0] == r["label"] and len(r["top"]) == 2
        assert r["top"][0]["prob"] >= r["top"][1]["prob"] and sum(t["prob"] for t in r["top"]) == pytest.approx(1, abs=1e-5)
    assert results[2]["text"] == "" and results[2]["label"] in ("fizz", "buzz")  # an empty text still gets an answer
    assert len(service.classify(["zub"], top=1)[0]["top"]) == 1
    with pytest.raises(UsageError, match="--top"):
        service.classify(["zub"], top=0)
    with pytest.raises(UsageError, match="no classifier named 'nope'"):
        service.classify(["zub"], model="nope")
    with pytest.raises(UsageError, match="no classifier is available"):
        Service(shipped=False).classify(["zub"])
    entry = next(m for m in service.describe() if m["kind"] == "clf")
    assert entry["labels"] == ["buzz", "fizz"]


def test_the_repl_classifies_a_line_in_classify_mode(trained):
    from nlp_rnn.repl import ReplSession

    session = ReplSession(clf_paths=[trained], shipped=False)
    assert session.mode == "classify" and session.prompt_text() == "classify> "
    out = session.run("zub zab zeb")
    assert out.startswith("fizz (") and out.endswith("%)\n")
    assert session.run("kol kul").startswith("buzz (")
    assert session.run(":mode c") == "mode complete (no language model yet: :load PATH)\n"  # c is still complete
    assert session.run(":mode cl") == "mode classify\n"
    assert "labels buzz, fizz" in session.run(":info")
    empty = ReplSession(shipped=False, mode="classify")
    assert empty.run("zub").startswith("error: no classifier is available")
    assert empty.run(f":load {trained}").startswith("classifier")
    assert empty.run("zub zub").startswith("fizz (")


# ---------------------------------------------------------------------------------------------- corpus figures, checkpoints

def test_summarize_labelled_reports_class_counts_and_imbalance(tmp_path):
    rows = invented(12, classes=(("fizz", FIZZ),)) + invented(3, seed=4, classes=(("buzz", BUZZ),))
    data = write_tsv(tmp_path / "d.tsv", rows + [("", "fizz")])
    report = corpora.summarize_labelled(data, samples=2)
    assert report["kind"] == "labelled" and report["class_counts"] == {"fizz": 12, "buzz": 3}
    assert report["examples"] == 15 and report["imbalance"] == 4.0 and report["majority_share"] == 0.8
    assert report["dropped"] == {"blank_text": 1} and len(report["samples"]) == 2
    assert "--class-weights auto" in report["hint"]
    balanced = corpora.summarize_labelled(write_tsv(tmp_path / "b.tsv", invented(4)))
    assert balanced["imbalance"] == 1.0 and "hint" not in balanced


def test_a_classifier_checkpoint_must_name_each_of_its_classes(trained, tmp_path):
    import shutil

    copy = tmp_path / "ck"
    shutil.copytree(trained / "model", copy)
    config = json.loads((copy / "config.json").read_text())
    for labels, message in ((["buzz"], "1 labels for a model of 2 classes"), (["a", "a"], "distinct"),
                            (None, "meta.labels: missing"), ([1, 2], "must be a string")):
        edited = {**config, "meta": {**config["meta"], "labels": labels}}
        if labels is None:
            del edited["meta"]["labels"]
        (copy / "config.json").write_text(json.dumps(edited))
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(copy)
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="this is a text classifier, but the command needs a translator"):
        load_checkpoint(copy, kind="mt")
