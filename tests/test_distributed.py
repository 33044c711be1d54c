"""Data-parallel training on CPU (gloo over loopback): two processes match one, and a dead rank stops the run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from helpers import LM_TEXT, PAIRS, write_pairs_tsv

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without distributed")

LM = ["--hidden", "32", "--embed", "8", "--batch-size", "4", "--bptt", "16", "--dropout", "0", "--max-steps", "12",
      "--eval-every", "12", "--threads", "1", "--seed", "3", "--precision", "fp32", "--deterministic", "--device", "cpu"]
MT = ["--hidden", "32", "--embed", "16", "--layers", "1", "--dropout", "0", "--tokenizer-type", "char",
      "--batch-tokens", "256", "--max-steps", "8", "--eval-every", "8", "--threads", "1", "--seed", "3",
      "--precision", "fp32", "--label-smoothing", "0", "--deterministic", "--device", "cpu"]


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _single(args):
    return subprocess.run([sys.executable, "-m", "nlp_rnn", "--quiet", *args], capture_output=True, text=True,
                          env=_env(), timeout=300)


def _torchrun(args, nproc=2, **kw):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "nlp_rnn", "--quiet", *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
                            start_new_session=True, **kw)


def _same_weights(a: Path, b: Path, atol: float):
    wa, wb = load_file(str(a / "model" / "model.safetensors")), load_file(str(b / "model" / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], atol=atol, rtol=0, msg=k)


def test_two_processes_train_the_same_lm_as_one(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(LM_TEXT * 3, encoding="utf-8")
    one = _single(["train", "lm", str(corpus), "-o", str(tmp_path / "one"), *LM])
    assert one.returncode == 0, one.stderr
    two = _torchrun(["train", "lm", str(corpus), "-o", str(tmp_path / "two"), *LM])
    out, err = two.communicate(timeout=300)
    assert two.returncode == 0, err
    _same_weights(tmp_path / "one", tmp_path / "two", atol=1e-5)


def test_two_processes_train_the_same_translator_as_one(tmp_path):
    tsv = write_pairs_tsv(tmp_path / "p.tsv", PAIRS * 4)
    args = ["train", "mt", "--pairs", str(tsv), "--val-pairs", str(tsv), *MT]
    one = _single([*args, "-o", str(tmp_path / "one")])
    assert one.returncode == 0, one.stderr
    two = _torchrun([*args, "-o", str(tmp_path / "two")])
    out, err = two.communicate(timeout=300)
    assert two.returncode == 0, err
    _same_weights(tmp_path / "one", tmp_path / "two", atol=1e-5)


def test_a_killed_rank_stops_the_run_instead_of_hanging(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(LM_TEXT * 3, encoding="utf-8")
    args = [a if a != "12" else "1000000" for a in LM]
    proc = _torchrun(["train", "lm", str(corpus), "-o", str(tmp_path / "run"), *args, "--save-every", "5"])
    try:
        deadline = time.monotonic() + 300
        while not (tmp_path / "run" / "latest").exists():  # both ranks are training
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        workers = subprocess.run(["pgrep", "-f", "-P", str(proc.pid), "nlp_rnn"], capture_output=True, text=True)
        pids = [int(p) for p in workers.stdout.split()]
        assert len(pids) == 2
        os.kill(pids[-1], signal.SIGKILL)
        start = time.monotonic()
        out, err = proc.communicate(timeout=120)  # bounded: the others must not wait forever
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode != 0
    assert time.monotonic() - start < 120
    assert "Signal 9" in err or "SIGKILL" in err or "exitcode" in err
