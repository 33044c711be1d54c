"""Hostile checkpoints: a tampered config, header, value, JSON file or link fails fast with a CheckpointError that
names the file and the field or tensor, and nothing a file merely claims is ever allocated."""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import random
import re
import shutil
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from nlp_rnn import checkpoint
from nlp_rnn.schema import MAX_JSON_BYTES
from nlp_rnn.checkpoint import (MAX_HEADER_BYTES, SIZE_FIELDS, copy_model, load_checkpoint,
                                load_trainer_state, read_pointer, save_checkpoint, unflatten_optimizer,
                                validate_progress)
from nlp_rnn.cli import app
from nlp_rnn.errors import CheckpointError
from nlp_rnn.models import CharLM, LMConfig, Seq2Seq, Seq2SeqConfig
from nlp_rnn.tokenizers import CharTokenizer, SentencePieceTokenizer
from nlp_rnn.training import Progress

from helpers import LM_TEXT, PAIRS, train_tiny_lm

runner = CliRunner()


# ---------------------------------------------------------------------------------------------- makers

def _lm_checkpoint(tmp_path: Path, **config) -> Path:
    tok = CharTokenizer.build(["hello world"])
    torch.manual_seed(0)
    model = CharLM(LMConfig(vocab_size=tok.vocab_size, hidden=16, embed=8, **config))
    return save_checkpoint(tmp_path / "ck", model, {"tokenizer": tok})


def _mt_checkpoint(tmp_path: Path, tokenizer=None) -> Path:
    tok = tokenizer or CharTokenizer.build([a + b for a, b in PAIRS])
    torch.manual_seed(0)
    model = Seq2Seq(Seq2SeqConfig(src_vocab=tok.vocab_size, tgt_vocab=tok.vocab_size, hidden=16, embed=8, layers=1))
    return save_checkpoint(tmp_path / "mt", model, {"src_tokenizer": tok, "tgt_tokenizer": tok})


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A real run directory (LSTM, so two carried state tensors) with a resumable checkpoint."""
    run = tmp_path_factory.mktemp("trained") / "run"
    train_tiny_lm(run, steps=3)
    return run


@pytest.fixture
def run(tmp_path, trained_run) -> Path:
    shutil.copytree(trained_run, tmp_path / "run", symlinks=True)
    return tmp_path / "run"


def _latest(run: Path) -> Path:
    return run / json.loads((run / "latest").read_text())["path"]


def _edit(path: Path, fn) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    fn(data)
    path.write_text(_dumps(data), encoding="utf-8")


def _nested(depth: int) -> str:
    """A placeholder that `_dumps` writes as arrays nested `depth` deep (too deep for json.dumps itself)."""
    return f"@nested:{depth}@"


def _dumps(data) -> str:
    return re.sub(r'"@nested:(\d+)@"', lambda m: "[" * int(m[1]) + "]" * int(m[1]), json.dumps(data))


def _split_safetensors(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def _join_safetensors(path: Path, header, data: bytes) -> None:
    head = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(len(head).to_bytes(8, "little") + head + data)


def _with(header: dict, **fields) -> dict:
    """The header with some fields of head.bias's entry replaced."""
    return {**header, "head.bias": {**header["head.bias"], **fields}}


def _edit_tensors(path: Path, fn) -> None:
    tensors = load_file(str(path))
    fn(tensors)
    save_file(tensors, str(path))


def _optimizer(model: torch.nn.Module) -> torch.optim.Optimizer:
    """AdamW grouped as the Trainer groups it."""
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embedding" not in n)]
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}])


def _message_names(e: pytest.ExceptionInfo, name: str) -> None:
    assert name in str(e.value), str(e.value)


# ---------------------------------------------------------------------------------------------- 6: size

@pytest.mark.parametrize("edit, message", [
    ({"hidden": 40_000}, r"model\.hidden: must be from 1 to 16,384, not 40,000"),
    ({"layers": 100_000}, r"model\.layers: must be from 1 to 64"),
    ({"vocab_size": 10 ** 12}, r"model\.vocab_size: must be from 1 to 1,000,000"),
    ({"vocab_size": 1_000_000, "embed": 16_384, "hidden": 16_384, "layers": 8}, "asks for .* parameters"),
    ({"embed": 4096, "hidden": 4096, "layers": 8}, "weights do not fit the model in config.json"),  # 3.2 GB
])
def test_a_config_asking_for_a_huge_model_fails_before_allocating_it(tmp_path, monkeypatch, edit, message):
    ck = _lm_checkpoint(tmp_path)
    _edit(ck / "config.json", lambda c: c["model"].update(edit))
    built = []
    real_init = CharLM.__init__

    def spy(self, config):
        real_init(self, config)
        built.append(self.embedding.weight.device.type)

    monkeypatch.setattr(CharLM, "__init__", spy)
    monkeypatch.setattr(checkpoint, "load_file", lambda *a, **k: pytest.fail("tensors were read"))
    start = time.monotonic()
    with pytest.raises(CheckpointError, match=message) as e:
        load_checkpoint(ck)
    assert time.monotonic() - start < 10
    assert set(built) <= {"meta"}  # the shape was worked out on the meta device, nothing real was built
    _message_names(e, "config.json")


def test_a_translator_config_is_bounded_too(tmp_path):
    ck = _mt_checkpoint(tmp_path)
    _edit(ck / "config.json", lambda c: c["model"].update(src_vocab=2 ** 40))
    with pytest.raises(CheckpointError, match=r"config.json: model\.src_vocab: must be from 1 to 1,000,000"):
        load_checkpoint(ck)


def test_every_size_of_the_model_configs_has_a_bound():
    for cls in (LMConfig, Seq2SeqConfig):
        for f in dataclasses.fields(cls):
            assert f.type != "int" or f.name in SIZE_FIELDS, f"{cls.__name__}.{f.name}"


def test_a_header_claiming_more_than_the_file_holds_is_refused_unread(tmp_path, monkeypatch):
    ck = _lm_checkpoint(tmp_path)
    header, data = _split_safetensors(ck / "model.safetensors")
    _edit(ck / "config.json", lambda c: c["model"].update(hidden=4096))
    # the header agrees with the config, but the file holds a few KB instead of 4096 x 4096 x ... floats
    offset = 0
    for name in sorted(header):
        if name == "__metadata__":
            continue
        shape = [4096 if d == 16 else 3 * 4096 if d == 48 else d for d in header[name]["shape"]]
        size = math.prod(shape) * 4
        header[name].update(shape=shape, data_offsets=[offset, offset + size])
        offset += size
    _join_safetensors(ck / "model.safetensors", header, data)
    monkeypatch.setattr(checkpoint, "load_file", lambda *a, **k: pytest.fail("tensors were read"))
    with pytest.raises(CheckpointError, match=r"model.safetensors: its header describes [\d,]+ bytes of tensors "
                                              r"but the file holds [\d,]+"):
        load_checkpoint(ck)


@pytest.mark.parametrize("tamper, message", [
    (lambda h, d: (h, d + b"\0" * 64), "describes [0-9,]+ bytes of tensors but the file holds"),
    (lambda h, d: (h, d[:-4]), "describes [0-9,]+ bytes of tensors but the file holds"),
    (lambda h, d: (b" " * (MAX_HEADER_BYTES + 8), d), "not a safetensors file.*capped"),
    (lambda h, d: (b"[" * 100_000, d), "nest more than"),
    (lambda h, d: (b"[1, 2]", d), "header: must be an object, not an array"),
    (lambda h, d: (_with(h, dtype="F8_E4M3"), d), r"header\.head\.bias\.dtype: must be one of"),
    (lambda h, d: (_with(h, dtype="I32"), d), "tensor head.bias is I32, not floating point"),
    (lambda h, d: (_with(h, shape=[-1]), d), r"head\.bias\.shape\[0\]: must be from 0"),
    (lambda h, d: (_with(h, data_offsets=[0, 4]), d), "offsets of tensor"),
    (lambda h, d: ({k: v for k, v in h.items() if k != "head.bias"}, d), "offsets of tensor|describes"),
])
def test_a_tampered_weights_header_is_refused(tmp_path, tamper, message):
    ck = _lm_checkpoint(tmp_path)
    header, data = _split_safetensors(ck / "model.safetensors")
    _join_safetensors(ck / "model.safetensors", *tamper(header, data))
    with pytest.raises(CheckpointError, match=message) as e:
        load_checkpoint(ck)
    _message_names(e, "model.safetensors")


@pytest.mark.parametrize("tamper, message", [
    (lambda t: t.pop("head.bias"), "missing tensor head.bias"),
    (lambda t: t.update(evil=torch.zeros(3)), "unexpected tensor evil"),
    (lambda t: t.update({"head.bias": torch.zeros(5)}), r"size mismatch for head.bias: \[5\] in the file"),
])
def test_weights_that_do_not_fit_the_config_are_refused(tmp_path, tamper, message):
    ck = _lm_checkpoint(tmp_path)
    _edit_tensors(ck / "model.safetensors", tamper)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(ck)


def test_half_precision_weights_still_load(tmp_path):
    ck = _lm_checkpoint(tmp_path)
    _edit_tensors(ck / "model.safetensors", lambda t: t.update({k: v.half() for k, v in t.items()}))
    loaded = load_checkpoint(ck)
    assert loaded.model.head.weight.dtype == torch.float32


def test_tied_weights_stored_once_load_and_stay_tied(tmp_path):
    tok = CharTokenizer.build(["hello world"])
    model = CharLM(LMConfig(vocab_size=tok.vocab_size, hidden=16, embed=16, tie_weights=True))
    save_checkpoint(tmp_path / "ck", model, {"tokenizer": tok})
    loaded = load_checkpoint(tmp_path / "ck").model
    assert loaded.head.weight is loaded.embedding.weight
    assert torch.equal(loaded.head.weight, model.head.weight)


# ---------------------------------------------------------------------------------------------- 12: values

@pytest.mark.parametrize("name", ["head.bias", "rnn.weight_hh_l0", "embedding.weight"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path, name, value):
    ck = _lm_checkpoint(tmp_path)
    _edit_tensors(ck / "model.safetensors", lambda t: t[name].view(-1).__setitem__(3, value))
    with pytest.raises(CheckpointError, match=f"model.safetensors: tensor {name} holds NaN or infinite values"):
        load_checkpoint(ck)


def test_non_finite_weights_through_the_cli(tmp_path):
    ck = _lm_checkpoint(tmp_path)
    _edit_tensors(ck / "model.safetensors", lambda t: t["head.weight"].fill_(float("nan")))
    result = runner.invoke(app, ["generate", "-m", str(ck), "--prompt", "he", "--length", "5"])
    assert result.exit_code == 1
    assert "tensor head.weight holds NaN" in result.stderr
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1


def test_non_finite_optimizer_state_is_refused(run):
    ck = _latest(run)
    _edit_tensors(ck / "trainer.safetensors", lambda t: t["optim.1.exp_avg_sq"].view(-1).__setitem__(0, float("nan")))
    with pytest.raises(CheckpointError, match="trainer.safetensors: tensor optim.1.exp_avg_sq holds NaN"):
        load_trainer_state(ck)


# ---------------------------------------------------------------------------------------------- 13: JSON

@pytest.mark.parametrize("edit, message", [
    (lambda c: c["model"].update(hidden="16"), r"model\.hidden: must be a whole number, not a string"),
    (lambda c: c["model"].update(hidden=16.0), r"model\.hidden: must be a whole number, not a number"),
    (lambda c: c["model"].update(hidden=True), r"model\.hidden: must be a whole number, not a boolean"),
    (lambda c: c["model"].update(tie_weights=1), r"model\.tie_weights: must be true or false"),
    (lambda c: c["model"].update(dropout="0.1"), r"model\.dropout: must be a number, not a string"),
    (lambda c: c["model"].update(dropout=float("nan")), r"model\.dropout: must be a finite number"),
    (lambda c: c["model"].update(dropout=2.0), r"invalid model config \(dropout must be in \[0, 1\)"),
    (lambda c: c["model"].update(dropout=10 ** 400), r"invalid model config \(dropout must be in \[0, 1\), not 10{20}"),
    (lambda c: c["model"].update(hidden=10 ** 400), r"model\.hidden: must be from 1 to 16,384, not 10,000,000,[0,]+\.\.\.$"),
    (lambda c: c["model"].update(cell=["gru"]), r"model\.cell: must be a string, not an array"),
    (lambda c: c["model"].pop("vocab_size"), r"model\.vocab_size: missing"),
    (lambda c: c["model"].update(heads=8), r"model\.heads: unknown field"),
    (lambda c: c.pop("model"), r"model: missing"),
    (lambda c: c.update(model=[1, 2]), r"model: must be an object, not an array"),
    (lambda c: c.update(meta=[]), r"meta: must be an object"),
    (lambda c: c["meta"].update(test_metrics=[1]), r"meta\.test_metrics: must be an object"),
    (lambda c: c["meta"].update(src_lang=5), r"meta\.src_lang: must be a string"),
    (lambda c: c["meta"].update(command="train"), r"meta\.command: must be an array"),
    (lambda c: c.update(tokenizers=["tokenizer"]), r"tokenizers: must be an object"),
    (lambda c: c.update(tokenizers={"tokenizer": 7}), r"tokenizers\.tokenizer: must be a string"),
    (lambda c: c.update(tokenizers={"tok": "tokenizer"}), r"tokenizers\.tokenizer: missing"),
    (lambda c: c["tokenizers"].update(tok="tokenizer"), r"tokenizers\.tok: unknown field"),
    (lambda c: c.update(package_version=1), r"package_version: must be a string"),
    (lambda c: c.update(extra=1), r"extra: unknown field"),
    (lambda c: c.update(format_version="1"), r'unknown format version "1"'),
    (lambda c: c.update(format_version=True), r"unknown format version true"),
    (lambda c: c.update(kind=["lm"]), r'unknown model kind \["lm"\]'),
    (lambda c: c["meta"].update(deep=_nested(10_000)), r"nest more than 32 deep"),
])
def test_a_tampered_config_names_the_file_and_the_field(tmp_path, edit, message):
    ck = _lm_checkpoint(tmp_path)
    _edit(ck / "config.json", edit)
    with pytest.raises(CheckpointError, match=message) as e:
        load_checkpoint(ck)
    _message_names(e, str(ck / "config.json"))


@pytest.mark.parametrize("text, message", [
    ("5", "foreign format"), ("[]", "foreign format"), ("null", "foreign format"), ('"nlp-rnn"', "foreign format"),
    ("{" * 50_000, "corrupt .not valid JSON"), ("[" * 50_000, "nest more than"),
    ('{"format": "nlp-rnn", "format_version": 1e999}', "unknown format version"),
])
def test_a_config_that_is_not_an_object_is_refused(tmp_path, text, message):
    ck = _lm_checkpoint(tmp_path)
    (ck / "config.json").write_text(text)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(ck)


def test_an_oversized_or_binary_json_file_is_refused_unparsed(tmp_path, monkeypatch):
    ck = _lm_checkpoint(tmp_path)
    _edit(ck / "config.json", lambda c: c["meta"].update(blob="x" * (MAX_JSON_BYTES + 1)))
    monkeypatch.setattr(json, "loads", lambda *a, **k: pytest.fail("parsed"))
    with pytest.raises(CheckpointError, match="config.json: larger than 16 MiB"):
        load_checkpoint(ck)
    monkeypatch.undo()
    (ck / "config.json").write_bytes(b'{"format": "\xff\xfe"}')
    with pytest.raises(CheckpointError, match="config.json: corrupt .not UTF-8"):
        load_checkpoint(ck)


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.clear(), r"trainer.json: param_groups: missing"),
    (lambda t: t["progress"].pop("step"), r"trainer.json: progress\.step: missing"),
    (lambda t: t["progress"].update(step="3"), r"progress\.step: must be a whole number, not a string"),
    (lambda t: t["progress"].update(step=-1), r"progress\.step: must be from 0"),
    (lambda t: t["progress"].update(position=True), r"progress\.position: must be a whole number, not a boolean"),
    (lambda t: t["progress"].update(elapsed=float("nan")), r"progress\.elapsed: must be a finite number"),
    (lambda t: t["progress"].update(best_score=None), r"progress\.best_score: must be a number, not null"),
    (lambda t: t["progress"].update(speed=1), r"progress\.speed: unknown field"),
    (lambda t: t["progress"].update(history=[5]), r"progress\.history\[0\]: must be an object"),
    (lambda t: t["progress"].update(history=[{"bleu": 1}]), r"progress\.history\[0\]\.step: missing"),
    (lambda t: t["progress"].update(history=[{"step": True}]), r"progress\.history\[0\]\.step: must be a whole number"),
    (lambda t: t.update(progress=[]), r"progress: must be an object, not an array"),
    (lambda t: t.update(param_groups={}), r"param_groups: must be an array, not an object"),
    (lambda t: t["param_groups"][0].update(lr="fast"), r"param_groups\[0\]\.lr: must be a number"),
    (lambda t: t["param_groups"][0].update(params=[0, 0]), r"param_groups do not list each of the model's \d+ "),
    (lambda t: t["param_groups"][0]["params"].append(99), r"param_groups do not list each"),
    (lambda t: t["param_groups"][0].update(params="0"), r"param_groups\[0\]\.params: must be an array"),
    (lambda t: t["param_groups"][0].update(betas=[0.9]), r"param_groups\[0\]\.betas: must hold 2 items"),
    (lambda t: t["param_groups"][0].update(capturable=True), r"param_groups\[0\]\.capturable: must be one of false"),
    (lambda t: t.update(scalars={"x.step": 1}), r"scalars\.x\.step: unexpected field name"),
    (lambda t: t.update(scalars={"0.step": "1"}), r"scalars\.0\.step: must be a number"),
    (lambda t: t.update(scalars={"7.step": 1}), r"scalars\.7\.step names a parameter the model does not have"),
    (lambda t: t.update(python_random=7), r"python_random: must be an array"),
    (lambda t: t.update(python_random=[3, [1, 2], None]), r"python_random\[1\]: must hold 625 items"),
    (lambda t: t["python_random"][1].__setitem__(624, 10 ** 6), r"python_random is not a random generator state"),
    (lambda t: t.update(carried_state=3), r"carried_state: must be one of 1, 2"),
    (lambda t: t.update(carried_state=1), r"carried_state: 1 state tensors do not fit .* of cell lstm"),
    (lambda t: t.update(carried_state=None), r"unexpected tensor state\.0"),
    (lambda t: t.update(train_config=[]), r"train_config: must be an object"),
    (lambda t: t.update(extra=True), r"trainer.json: extra: unknown field"),
    (lambda t: t.update(progress=_nested(5000)), r"nest more than 32 deep"),
])
def test_tampered_trainer_state_names_the_file_and_the_field(run, edit, message):
    ck = _latest(run)
    _edit(ck / "trainer.json", edit)
    with pytest.raises(CheckpointError, match=message):
        load_trainer_state(ck)


@pytest.mark.parametrize("text", ["5", "[]", "null", '"x"', "{" * 10_000, "{}"])
def test_trainer_state_that_is_not_a_record_is_refused(run, text):
    ck = _latest(run)
    (ck / "trainer.json").write_text(text)
    with pytest.raises(CheckpointError, match="trainer.json"):
        load_trainer_state(ck)


@pytest.mark.parametrize("tamper, message", [
    (lambda t: t.pop("rng.torch"), "missing tensor rng.torch"),
    (lambda t: t.update({"rng.torch": torch.zeros(10, dtype=torch.uint8)}), "rng.torch is not a random generator"),
    (lambda t: t.update({"rng.torch": torch.zeros(5056)}), "rng.torch must be a U8 vector"),
    (lambda t: t.update(evil=torch.zeros(1)), "unexpected tensor evil"),
    (lambda t: t.update({"optim.99.exp_avg": torch.zeros(1)}), "optim.99.exp_avg names a parameter the model does not"),
    (lambda t: t.pop("optim.0.exp_avg_sq"), "optimizer state of parameter 0 is incomplete"),
    (lambda t: t.update({"optim.0.exp_avg": torch.zeros(2, 2)}), "state of parameter 0 has inconsistent shapes"),
    (lambda t: t.update({"optim.0.step": torch.zeros(1, dtype=torch.int64)}), "optim.0.step is I64, not floating point"),
    (lambda t: t.update({"state.0": torch.zeros(1, 4, 7)}), r"state.0 has shape \[1, 4, 7\], not \[1, batch, 64\]"),
    (lambda t: t.pop("state.1"), "missing tensor state.1"),
])
def test_tampered_trainer_tensors_are_refused(run, tamper, message):
    ck = _latest(run)
    _edit_tensors(ck / "trainer.safetensors", tamper)
    with pytest.raises(CheckpointError, match=message) as e:
        load_trainer_state(ck)
    _message_names(e, "trainer.")


def test_trainer_state_is_matched_against_the_optimizer_that_resumes(run):
    ck = _latest(run)
    model = load_checkpoint(ck).model
    tensors, info = load_trainer_state(ck, optimizer=_optimizer(model))
    opt = _optimizer(model)
    opt.load_state_dict(unflatten_optimizer(tensors, info))
    assert Progress(**validate_progress(info["progress"])).step == 3
    # the first two parameters of a group trade their moments: each file alone is consistent, the pair is not
    group = info["param_groups"][0]["params"]
    _edit(ck / "trainer.json", lambda t: t["param_groups"][0].update(params=[group[1], group[0], *group[2:]]))
    load_trainer_state(ck)  # nothing to compare against without the optimizer
    with pytest.raises(CheckpointError, match=r"trainer.safetensors: tensor optim\.\d\.exp_avg has shape"):
        load_trainer_state(ck, optimizer=_optimizer(model))
    one_group = torch.optim.AdamW(model.parameters())
    with pytest.raises(CheckpointError, match=r"groups of sizes \[\d+, \d+\] do not fit this optimizer's \[\d+\]"):
        load_trainer_state(ck, optimizer=one_group)


def test_validate_progress_mirrors_the_trainers_progress_record():
    assert set(checkpoint.PROGRESS.required) == {f.name for f in dataclasses.fields(Progress)}
    record = dataclasses.asdict(Progress(step=5, history=[{"step": 5, "val_bleu": 3.1}]))
    assert validate_progress(record) == record
    with pytest.raises(CheckpointError, match=r"run/trainer.json: progress\.tokens: must be a whole number"):
        validate_progress({**record, "tokens": "many"}, "run/trainer.json")


@pytest.mark.parametrize("text, message", [
    ("5", "must be an object, not a number"), ("[]", "must be an object, not an array"),
    ("null", "must be an object"), ('"checkpoints/step-0000003"', "must be an object"),
    ('{"path": 5, "step": 3}', r"path: must be a string"), ('{"step": 3}', "path: missing"),
    ('{"path": "checkpoints/step-0000003"}', "step: missing"),
    ('{"path": "checkpoints/step-0000003", "step": 3, "x": 1}', "x: unknown field"),
    ('{"path": "/etc", "step": 3}', "points outside the run directory"),
    ('{"path": "../..", "step": 3}', "points outside the run directory"),
    ("[" * 10_000, "nest more than"),
])
def test_a_tampered_pointer_file_is_refused(run, text, message):
    (run / "latest").write_text(text)
    with pytest.raises(CheckpointError, match=message) as e:
        read_pointer(run, "latest")
    _message_names(e, str(run / "latest"))
    shutil.rmtree(run / "model")
    (run / "best").unlink()
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(run)


def test_resuming_from_tampered_trainer_state_is_a_one_line_error(run, tmp_path):
    corpus, val = tmp_path / "c.txt", tmp_path / "v.txt"
    corpus.write_text(LM_TEXT, encoding="utf-8")
    val.write_text(LM_TEXT[:200], encoding="utf-8")
    _edit(_latest(run) / "trainer.json", lambda t: t["progress"].update(step="3"))
    same_run = ["--cell", "lstm", "--hidden", "64", "--embed", "16", "--layers", "1", "--dropout", "0",
                "--batch-size", "4", "--bptt", "32", "--val", str(val)]  # as helpers.train_tiny_lm trained it
    result = runner.invoke(app, ["train", "lm", str(corpus), "-o", str(run), "--resume", "--max-steps", "5", *same_run])
    assert result.exit_code == 1, result.output
    assert "progress" in result.stderr and "trainer.json" in result.stderr
    assert "Traceback" not in result.output


# ---------------------------------------------------------------------------------------------- 14: links

def _link_outside(ck: Path, rel: str, outside: Path) -> None:
    """Move `ck/rel` out of the checkpoint and leave a symbolic link to it behind."""
    shutil.move(str(ck / rel), str(outside))
    (ck / rel).symlink_to(outside, target_is_directory=outside.is_dir())


@pytest.mark.parametrize("rel", ["model.safetensors", "config.json", "tokenizer", "tokenizer/tokenizer.json"])
def test_a_link_out_of_the_checkpoint_is_refused(tmp_path, rel):
    ck = _lm_checkpoint(tmp_path)
    _link_outside(ck, rel, tmp_path / "elsewhere")
    with pytest.raises(CheckpointError, match="leads outside") as e:
        load_checkpoint(ck)
    _message_names(e, str(ck / rel))


def test_links_that_stay_inside_the_checkpoint_are_followed(tmp_path):
    ck = _lm_checkpoint(tmp_path)
    shutil.move(str(ck / "tokenizer" / "tokenizer.json"), str(ck / "vocab.json"))
    (ck / "tokenizer" / "tokenizer.json").symlink_to("../vocab.json")
    assert load_checkpoint(ck).tokenizer.encode("hello") == CharTokenizer.build(["hello world"]).encode("hello")


def test_a_sentencepiece_model_linked_out_of_the_checkpoint_is_refused(tmp_path):
    sp = SentencePieceTokenizer.train([a for a, _ in PAIRS] + [b for _, b in PAIRS], vocab_size=60)
    ck = _mt_checkpoint(tmp_path, sp)
    load_checkpoint(ck)
    _link_outside(ck, "src_tokenizer/spm.model", tmp_path / "spm.model")
    with pytest.raises(CheckpointError, match="leads outside"):
        load_checkpoint(ck)


@pytest.mark.parametrize("rel", ["trainer.json", "trainer.safetensors"])
def test_trainer_state_linked_out_of_the_checkpoint_is_refused(run, tmp_path, rel):
    ck = _latest(run)
    _link_outside(ck, rel, tmp_path / rel)
    with pytest.raises(CheckpointError, match="leads outside"):
        load_trainer_state(ck)


def test_run_directory_links_out_are_refused(run, tmp_path):
    _link_outside(run, "model", tmp_path / "other-model")
    with pytest.raises(CheckpointError, match="leads outside"):
        load_checkpoint(run)
    _link_outside(run, "latest", tmp_path / "other-latest")
    with pytest.raises(CheckpointError, match="leads outside"):
        read_pointer(run, "latest")


def test_publishing_a_checkpoint_copies_nothing_from_outside(tmp_path):
    ck = _lm_checkpoint(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    (ck / "tokenizer" / "notes.txt").symlink_to(secret)
    with pytest.raises(CheckpointError, match="leads outside"):
        copy_model(ck, tmp_path / "published")
    assert not (tmp_path / "published").exists()


# ---------------------------------------------------------------------------------------------- fuzzing

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=16)


def _paths(value, prefix=()):
    """Every place in a JSON document, as a tuple of keys and indices."""
    yield prefix
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield from _paths(child, prefix + (key,))


def _mutate(doc, data):
    """`doc` with one place replaced by random JSON, deleted, or buried under deep nesting."""
    doc = copy.deepcopy(doc)
    paths = [p for p in _paths(doc) if not (len(p) > 2 and p[:2] == ("python_random", 1))] or [()]
    path = data.draw(st.sampled_from(paths))
    how = data.draw(st.sampled_from(["replace", "delete", "nest"]))
    new = data.draw(JSON) if how == "replace" else _nested(data.draw(st.integers(2, 3000)))
    if not path:
        return new
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if how == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = new
    return doc


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_mutation_of_config_json_loads_or_is_a_checkpoint_error(tmp_path, data):
    ck = tmp_path / "ck"
    if not ck.exists():
        _lm_checkpoint(tmp_path)
        (tmp_path / "original.json").write_text((ck / "config.json").read_text())
    original = json.loads((tmp_path / "original.json").read_text())
    (ck / "config.json").write_text(_dumps(_mutate(original, data)))
    try:
        loaded = load_checkpoint(ck)
    except CheckpointError:
        return
    assert isinstance(loaded.meta, dict)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_mutation_of_trainer_json_resumes_or_is_a_checkpoint_error(run, data):
    ck = _latest(run)
    original = run / "original-trainer.json"
    if not original.exists():
        shutil.copy(ck / "trainer.json", original)
    (ck / "trainer.json").write_text(_dumps(_mutate(json.loads(original.read_text()), data)))
    model = CharLM(LMConfig(**json.loads((ck / "config.json").read_text())["model"]))
    try:
        tensors, info = load_trainer_state(ck, optimizer=_optimizer(model))
    except CheckpointError:
        return
    # what Trainer.resume does with it must then work
    _optimizer(model).load_state_dict(unflatten_optimizer(tensors, info))
    Progress(**info["progress"])
    if info.get("python_random"):
        version, internal, gauss = info["python_random"]
        random.Random().setstate((version, tuple(internal), gauss))


POINTERS = JSON | st.fixed_dictionaries({"path": JSON | st.sampled_from(["checkpoints/step-0000003", "..", "/", "."]),
                                          "step": JSON}, optional={"score": JSON})


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pointer=POINTERS)
def test_any_pointer_file_reads_or_is_a_checkpoint_error(run, pointer):
    (run / "latest").write_text(json.dumps(pointer))
    try:
        target = read_pointer(run, "latest")
    except CheckpointError:
        return
    assert target is None or run.resolve() in target.parents


# ---------------------------------------------------------------------------------------------- shortlists

def _with_shortlist(ck: Path, candidates: torch.Tensor, frequent: torch.Tensor) -> Path:
    save_file({"candidates": candidates, "frequent": frequent}, str(ck / "shortlist.safetensors"))
    return ck


@pytest.mark.parametrize("make, message", [
    (lambda v: (torch.full((v, 4), v + 5, dtype=torch.int32), torch.arange(3, dtype=torch.int32)),
     "outside the model's vocabulary"),
    (lambda v: (torch.zeros((v, 4), dtype=torch.int32), torch.tensor([-3], dtype=torch.int32)),
     "outside the model's vocabulary"),
    (lambda v: (torch.zeros((v + 1, 4), dtype=torch.int32), torch.arange(3, dtype=torch.int32)),
     "expected int32 tensors"),
    (lambda v: (torch.zeros((v, 4)), torch.arange(3, dtype=torch.int32)), "expected int32 tensors"),
    (lambda v: (torch.zeros((v, 4), dtype=torch.int32), torch.arange(v + 1, dtype=torch.int32)),
     "expected int32 tensors"),
])
def test_a_bad_shortlist_is_refused_naming_its_file(tmp_path, make, message):
    ck = _mt_checkpoint(tmp_path)
    vocab = json.loads((ck / "config.json").read_text())["model"]["src_vocab"]
    _with_shortlist(ck, *make(vocab))
    with pytest.raises(CheckpointError, match=message) as e:
        load_checkpoint(ck)
    assert "shortlist.safetensors" in str(e.value)


def test_a_shortlist_beside_a_language_model_is_refused(tmp_path):
    ck = _with_shortlist(_lm_checkpoint(tmp_path), torch.zeros((5, 2), dtype=torch.int32),
                         torch.arange(2, dtype=torch.int32))
    with pytest.raises(CheckpointError, match="only a translator"):
        load_checkpoint(ck)
