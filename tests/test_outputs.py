"""The output rule: nlp-rnn writes only to new paths or to what it made, locks a run while training, prunes only
the checkpoints it recorded, and never replaces an input with an output."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from nlp_rnn.atomic import atomic_dir, check_output_dir, is_ours
from nlp_rnn.cli import app
from nlp_rnn.errors import TrainingStopped, UsageError
from nlp_rnn.rundir import RunBusy, RunDir
from nlp_rnn.training import _Signals

from helpers import LM_TEXT, train_tiny_lm, write_pairs_tsv

runner = CliRunner()
LM_BUDGET = ["--max-steps", "4", "--hidden", "16", "--embed", "8", "--batch-size", "2", "--bptt", "8",
             "--eval-every", "2", "--keep", "1", "--device", "cpu"]


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def home(tmp_path):
    """A folder that looks like someone's home: nothing in it is ours."""
    h = tmp_path / "home"
    (h / ".ssh").mkdir(parents=True)
    (h / ".ssh" / "id_rsa").write_text("secret")
    (h / "Documents").mkdir()
    (h / "notes.txt").write_text("mine")
    return h


def _untouched(home):
    assert (home / ".ssh" / "id_rsa").read_text() == "secret"
    assert (home / "notes.txt").read_text() == "mine" and (home / "Documents").is_dir()


@pytest.fixture
def corpus(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text(LM_TEXT, encoding="utf-8")
    return p


# ---------------------------------------------------------------------------------------------- directories

def test_atomic_dir_refuses_a_directory_it_did_not_make(home):
    with pytest.raises(UsageError, match="not made by nlp-rnn"):
        with atomic_dir(home) as tmp:
            (tmp / "tokenizer.json").write_text("{}")
    _untouched(home)


def test_overwrite_writes_our_files_beside_theirs(home):
    with atomic_dir(home, overwrite=True) as tmp:
        (tmp / "tokenizer.json").write_text('{"kind": "char"}')
    _untouched(home)
    assert (home / "tokenizer.json").is_file()


def test_a_directory_of_ours_is_replaced_whole(tmp_path):
    d = tmp_path / "tok"
    for text in ('{"kind": "char", "v": 1}', '{"kind": "char", "v": 2}'):
        with atomic_dir(d) as tmp:
            (tmp / "tokenizer.json").write_text(text)
    assert is_ours(d) and '"v": 2' in (d / "tokenizer.json").read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["tok"]  # no swapped-out copy left behind


def test_a_file_in_the_way_and_missing_parents(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UsageError, match="not a directory"):
        check_output_dir(tmp_path / "f")
    assert check_output_dir(tmp_path / "a" / "b" / "c") == "new" and (tmp_path / "a" / "b").is_dir()


# ---------------------------------------------------------------------------------------------- training runs

def test_train_refuses_someone_elses_folder(home, corpus):
    result = cli("train", "lm", corpus, "-o", home, *LM_BUDGET)
    assert result.exit_code == 2 and "not made by nlp-rnn" in result.stderr
    _untouched(home)
    assert not (home / "log.jsonl").exists()


def test_overwrite_trains_into_it_but_prunes_only_its_own_checkpoints(home, corpus):
    mine = home / "checkpoints" / "step-0000001"
    mine.mkdir(parents=True)
    (mine / "keep.txt").write_text("user data")
    result = cli("train", "lm", corpus, "-o", home, *LM_BUDGET, "--overwrite")
    assert result.exit_code == 0, result.stderr
    _untouched(home)
    assert (mine / "keep.txt").read_text() == "user data"
    assert (home / "model" / "config.json").is_file()


def test_a_second_run_into_the_same_directory_needs_resume_or_overwrite(tmp_path, corpus):
    out = tmp_path / "runs" / "lm"  # missing parents are created
    assert cli("train", "lm", corpus, "-o", out, *LM_BUDGET).exit_code == 0
    again = cli("train", "lm", corpus, "-o", out, *LM_BUDGET)
    assert again.exit_code == 2 and "--resume" in again.stderr
    over = cli("train", "lm", corpus, "-o", out, *LM_BUDGET, "--overwrite")
    assert over.exit_code == 0, over.stderr
    log = (out / "log.jsonl").read_text().splitlines()
    assert sum('"EvalEvent"' in line for line in log) == 2  # the old run's log was replaced, not appended to


def test_a_run_directory_is_locked_while_training(tmp_path):
    run = RunDir.claim(tmp_path / "run")
    try:
        with pytest.raises(RunBusy, match="in use by another training"):
            RunDir.claim(tmp_path / "run", overwrite=True)
    finally:
        run.close()
    RunDir.claim(tmp_path / "run", overwrite=True).close()  # free again once released


def test_resume_with_a_different_model_names_the_difference(tmp_path, corpus):
    out = tmp_path / "run"
    assert cli("train", "lm", corpus, "-o", out, *LM_BUDGET, "--save-every", "1").exit_code == 0
    result = cli("train", "lm", corpus, "-o", out, *LM_BUDGET, "--hidden", "24", "--resume")
    assert result.exit_code == 2
    assert "--hidden 24 (the run has 16)" in result.stderr


def test_resume_on_a_changed_corpus_is_refused_unless_asked(tmp_path, corpus):
    out = tmp_path / "run"
    assert cli("train", "lm", corpus, "-o", out, *LM_BUDGET).exit_code == 0
    corpus.write_text(LM_TEXT[::-1], encoding="utf-8")  # the same characters, another text
    steps = ["--max-steps", "6"]
    refused = cli("train", "lm", corpus, "-o", out, *LM_BUDGET, *steps, "--resume")
    assert refused.exit_code == 2 and "corpus differs" in refused.stderr
    allowed = cli("train", "lm", corpus, "-o", out, *LM_BUDGET, *steps, "--resume", "--new-data")
    assert allowed.exit_code == 0, allowed.stderr


def test_pruning_keeps_only_recorded_checkpoints(tmp_path):
    train_tiny_lm(tmp_path / "run", steps=20)
    stranger = tmp_path / "run" / "checkpoints" / "step-0000003"
    stranger.mkdir()
    from nlp_rnn import tasks
    from nlp_rnn.training import Run, TrainConfig

    tasks.train_lm(LM_TEXT, LM_TEXT[:200], Run(tmp_path / "run", overwrite=True),
                   dict(cell="gru", hidden=16, embed=8), TrainConfig(max_steps=30, eval_every=5, keep=1),
                   tasks.LMData(batch_size=2, bptt=8))
    assert stranger.is_dir()


# ---------------------------------------------------------------------------------------------- signals

def test_a_second_signal_waits_for_the_checkpoint_being_written_then_stops_with_its_code():
    s = _Signals()
    s._handle(signal.SIGTERM, None)
    with pytest.raises(TrainingStopped) as stopped:
        with s.critical():
            s._handle(signal.SIGTERM, None)  # arrives mid-save: recorded, not raised here
            finished = True
    assert finished and stopped.value.exit_code == 143


def test_a_second_signal_outside_a_save_stops_at_once():
    s = _Signals()
    s._handle(signal.SIGINT, None)
    with pytest.raises(TrainingStopped) as stopped:
        s._handle(signal.SIGINT, None)
    assert stopped.value.exit_code == 130


def test_leftovers_of_a_killed_save_are_swept_on_resume(tmp_path, corpus):
    out = tmp_path / "run"
    assert cli("train", "lm", corpus, "-o", out, *LM_BUDGET).exit_code == 0
    (out / ".latest.abc.tmp").write_text("half")
    (out / "checkpoints" / ".step-0000009.xyz.tmp").mkdir()
    (out / "checkpoints" / ".step-0000002.old-123").mkdir()
    result = cli("train", "lm", corpus, "-o", out, *LM_BUDGET[:1], "6", *LM_BUDGET[2:], "--resume")
    assert result.exit_code == 0, result.stderr
    assert not list(out.glob(".*.tmp")) and not list((out / "checkpoints").glob(".*"))


# ---------------------------------------------------------------------------------------------- files

def test_translate_never_writes_over_its_input(tmp_path):
    f = tmp_path / "in.txt"
    f.write_text("hello\n")
    result = cli("translate", "-i", f, "-o", f, "--overwrite")
    assert result.exit_code == 2 and "also an input" in result.stderr
    assert f.read_text() == "hello\n"


def test_eval_mt_output_onto_its_reference_is_refused(tmp_path):
    pairs = write_pairs_tsv(tmp_path / "p.tsv")
    src, ref = tmp_path / "s.txt", tmp_path / "r.txt"
    src.write_text("a\n")
    ref.write_text("b\n")
    result = cli("eval", "mt", "-m", pairs.parent, "--src", src, "--ref", ref, "-o", ref)
    assert result.exit_code == 2 and "also an input" in result.stderr and ref.read_text() == "b\n"


def test_an_existing_output_file_needs_overwrite(tmp_path):
    out = tmp_path / "out.txt"
    out.write_text("precious")
    result = cli("translate", "hello", "--src", "en", "-o", out)
    assert result.exit_code == 2 and "--overwrite" in result.stderr and out.read_text() == "precious"


def test_two_trainings_at_once_on_one_directory(tmp_path, corpus):
    """The second process finds the directory locked and leaves the first one's run intact."""
    out = tmp_path / "run"
    args = [sys.executable, "-m", "nlp_rnn", "--quiet", "train", "lm", str(corpus), "-o", str(out),
            "--max-steps", "100000", "--hidden", "16", "--embed", "8", "--batch-size", "2", "--bptt", "8",
            "--device", "cpu", "--threads", "1"]
    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "log.jsonl").exists() or not (out / "log.jsonl").stat().st_size:
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        second = subprocess.run([*args, "--overwrite"], capture_output=True, text=True, timeout=120)
        assert second.returncode == 1 and "in use by another training" in second.stderr
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)
    assert first.returncode == 130
