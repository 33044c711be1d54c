"""Checkpoints are data: they round-trip, are written atomically, and refuse anything foreign or unsafe."""
from __future__ import annotations

import json
import pickle
import re
import shutil

import pytest
import torch
from typer.testing import CliRunner

from nlp_rnn.checkpoint import load_checkpoint, save_checkpoint
from nlp_rnn.cli import app
from nlp_rnn.errors import CheckpointError
from nlp_rnn.models import CharLM, LMConfig
from nlp_rnn.tokenizers import CharTokenizer

from helpers import train_tiny_mt

runner = CliRunner()


def _lm(tie=False):
    tok = CharTokenizer.build(["hello world"])
    torch.manual_seed(0)
    embed = 16 if tie else 8
    return CharLM(LMConfig(vocab_size=tok.vocab_size, hidden=16, embed=embed, tie_weights=tie)), tok


@pytest.mark.parametrize("tie", [False, True])
def test_round_trip_keeps_weights_config_and_tokenizer(tmp_path, tie):
    model, tok = _lm(tie)
    save_checkpoint(tmp_path / "ck", model, {"tokenizer": tok}, {"note": "x"})
    loaded = load_checkpoint(tmp_path / "ck")
    assert loaded.kind == "lm" and loaded.meta == {"note": "x"}
    assert loaded.model.config == model.config
    for (n, a), (_, b) in zip(model.state_dict().items(), loaded.model.state_dict().items()):
        assert torch.equal(a, b), n
    assert loaded.tokenizer.encode("hello") == tok.encode("hello")
    if tie:
        assert loaded.model.head.weight.data_ptr() == loaded.model.embedding.weight.data_ptr()


def test_a_config_saved_before_a_field_existed_reads_it_as_it_was_then(tmp_path, monkeypatch):
    """An old run's config.json lacks the regularisers added later; it must load with them off, not with whatever
    the defaults are today (a changed default would otherwise change what `--resume` of that run trains)."""
    import dataclasses

    from nlp_rnn import checkpoint, model_configs

    model, tok = _lm()
    save_checkpoint(tmp_path / "ck", model, {"tokenizer": tok})
    path = tmp_path / "ck" / "config.json"
    config = json.loads(path.read_text())
    for name in LMConfig.ABSENT:
        del config["model"][name]
    path.write_text(json.dumps(config))
    changed = dataclasses.make_dataclass("LMConfig", [("weight_drop", float, dataclasses.field(default=0.3)),
                                                      ("input_dropout", float, dataclasses.field(default=0.2))],
                                         bases=(LMConfig,))
    monkeypatch.setitem(checkpoint.MODELS, "lm", (CharLM, changed))  # today's defaults differ from the run's
    loaded = load_checkpoint(tmp_path / "ck")
    assert loaded.model.config.weight_drop == 0.0 and loaded.model.config.input_dropout == 0.0
    assert set(LMConfig.ABSENT) <= {f.name for f in dataclasses.fields(model_configs.LMConfig)}


def test_weights_packed_into_one_buffer_still_save(tmp_path):
    """On CUDA, cuDNN packs an RNN's weights into one flat buffer (the parameters become views of it), which
    safetensors refuses to save as is; the same layout is built here on the CPU."""
    model, tok = _lm()
    params = list(model.rnn.parameters())
    flat = torch.cat([p.detach().flatten() for p in params])
    offset = 0
    for p in params:
        p.data = flat[offset:offset + p.numel()].view_as(p)
        offset += p.numel()
    assert len({p.untyped_storage().data_ptr() for p in params}) == 1
    save_checkpoint(tmp_path / "ck", model, {"tokenizer": tok})
    loaded = load_checkpoint(tmp_path / "ck")
    for (n, a), (_, b) in zip(model.state_dict().items(), loaded.model.state_dict().items()):
        assert torch.equal(a, b), n


def test_translator_round_trip(tmp_path):
    train_tiny_mt(tmp_path / "run", "bahdanau", steps=3)
    loaded = load_checkpoint(tmp_path / "run")
    assert loaded.kind == "mt" and set(loaded.tokenizers) == {"src_tokenizer", "tgt_tokenizer"}
    again = load_checkpoint(loaded.path)
    for a, b in zip(loaded.model.parameters(), again.model.parameters()):
        assert torch.equal(a, b)


def test_a_crash_mid_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    model, tok = _lm()
    save_checkpoint(tmp_path / "ck", model, {"tokenizer": tok})
    before = {p.name: p.read_bytes() for p in (tmp_path / "ck").rglob("*") if p.is_file()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)

    def crash(self, directory):
        raise OSError("disk full")

    monkeypatch.setattr(CharTokenizer, "save", crash)  # weights are already written when this fires
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "ck", model, {"tokenizer": tok})
    after = {p.name: p.read_bytes() for p in (tmp_path / "ck").rglob("*") if p.is_file()}
    assert after == before
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]  # no temporary directory left behind
    load_checkpoint(tmp_path / "ck")


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_disguised_as_weights_is_refused_and_never_run(tmp_path):
    model, tok = _lm()
    ck = tmp_path / "ck"
    save_checkpoint(ck, model, {"tokenizer": tok})
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Evil(str(marker)))
    (ck / "model.safetensors").write_bytes(payload)
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        load_checkpoint(ck)
    # the same under torch's usual file names: there is no code path that unpickles them
    (ck / "model.safetensors").unlink()
    for name in ("pytorch_model.bin", "model.pt"):
        torch.save({"x": _Evil(str(marker))}, ck / name)
    with pytest.raises(CheckpointError, match="missing weights file"):
        load_checkpoint(ck)
    assert not marker.exists()


def _saved(tmp_path):
    model, tok = _lm()
    save_checkpoint(tmp_path / "ck", model, {"tokenizer": tok})
    return tmp_path / "ck"


def _edit_config(ck, fn):
    cfg = json.loads((ck / "config.json").read_text())
    fn(cfg)
    (ck / "config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.update(format_version=99), "newer nlp-rnn"),
    (lambda c: c.update(format="fairseq"), "foreign format"),
    (lambda c: c["model"].update(hidden=32), "do not fit"),
    (lambda c: c["model"].update(cell="transformer"), "invalid model config"),
    (lambda c: c.update(tokenizers={"tokenizer": "../../etc"}), "outside the checkpoint"),
])
def test_bad_checkpoints_fail_with_a_clear_message(tmp_path, edit, message):
    ck = _saved(tmp_path)
    _edit_config(ck, edit)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(ck)


def test_missing_pieces(tmp_path):
    ck = _saved(tmp_path)
    shutil.rmtree(ck / "tokenizer")
    with pytest.raises(CheckpointError, match="missing tokenizer file"):
        load_checkpoint(ck)
    (ck / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(ck)
    with pytest.raises(CheckpointError, match="no such model directory"):
        load_checkpoint(tmp_path / "nowhere")


def test_wrong_kind_through_the_cli(tmp_path):
    ck = _saved(tmp_path)
    result = runner.invoke(app, ["translate", "-m", str(ck), "hello"])
    assert result.exit_code in (1, 2)  # the CLI may check the kind itself (a usage error) before loading
    assert re.search(r"is a character language model, (but the command needs|not) a translator", result.stderr)
    assert "Traceback" not in result.output
