"""Checkpoints are directories of data, never pickles:

    config.json          format, format_version, kind (lm|mt), model config, tokenizers, metadata, package version
    model.safetensors    weights only
    tokenizer/           (lm)   or   src_tokenizer/ + tgt_tokenizer/ (mt)
    trainer.safetensors  optimizer tensors, RNG state, carried hidden state   } only in resumable
    trainer.json         step, epoch, data position, best score, schedule      } training checkpoints

A training run directory holds `checkpoints/step-NNNNNNN/` (resumable), the pointer files `latest` and `best`
(JSON, replaced atomically) and `model/`, the final model. `-m` accepts a checkpoint or a run directory.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file

from . import __version__
from .atomic import atomic_dir, atomic_write_text
from .errors import CheckpointError, NlpRnnError, UsageError
from .models import CharLM, LMConfig, Seq2Seq, Seq2SeqConfig
from .tokenizers import load_tokenizer

FORMAT = "nlp-rnn"
FORMAT_VERSION = 1
CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"
TRAINER_TENSORS, TRAINER_JSON = "trainer.safetensors", "trainer.json"
TOKENIZER_DIRS = {"lm": ("tokenizer",), "mt": ("src_tokenizer", "tgt_tokenizer")}
MODELS = {"lm": (CharLM, LMConfig), "mt": (Seq2Seq, Seq2SeqConfig)}
KIND_NAMES = {"lm": "a character language model", "mt": "a translator"}


@dataclass
class Loaded:
    path: Path
    kind: str
    model: torch.nn.Module
    tokenizers: dict
    meta: dict

    @property
    def tokenizer(self):
        return self.tokenizers["tokenizer"]


def save_checkpoint(path: str | Path, model: torch.nn.Module, tokenizers: dict, meta: dict | None = None,
                    trainer_tensors: dict | None = None, trainer_json: dict | None = None) -> Path:
    """Write a checkpoint directory atomically: a crash leaves the previous one (if any) untouched."""
    path = Path(path)
    kind = model.kind
    names = TOKENIZER_DIRS[kind]
    if set(tokenizers) != set(names):
        raise ValueError(f"a {kind} checkpoint needs tokenizers {names}, got {sorted(tokenizers)}")
    config = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind, "package_version": __version__,
              "model": model.config.to_dict(), "tokenizers": {n: n for n in names}, "meta": meta or {}}
    with atomic_dir(path) as tmp:
        save_file(_weights(model), str(tmp / WEIGHTS_FILE), metadata={"format": FORMAT})
        for n in names:
            (tmp / n).mkdir()
            tokenizers[n].save(tmp / n)
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        if trainer_tensors is not None:
            save_file({k: v.detach().contiguous().cpu() for k, v in trainer_tensors.items()}, str(tmp / TRAINER_TENSORS))
            (tmp / TRAINER_JSON).write_text(json.dumps(trainer_json or {}, indent=1) + "\n", encoding="utf-8")
    return path


def _weights(model: torch.nn.Module) -> dict:
    """The state dict as CPU tensors with storage of their own, each tied parameter once (under its first name
    in sorted order, the one safetensors' `load_model` expects). On CUDA, cuDNN packs all RNN weights into one
    flat buffer; safetensors refuses such partial views, so every distinct tensor is copied out."""
    copies, out, state = {}, {}, model.state_dict()
    for name in sorted(state):
        t = state[name]
        key = (t.data_ptr(), t.dtype, tuple(t.shape), t.stride())
        if key not in copies:
            copies[key] = name
            out[name] = t.detach().to("cpu", copy=True).contiguous()
    return out


def read_config(path: Path) -> dict:
    cfg_path = path / CONFIG_FILE
    if not cfg_path.is_file():
        raise CheckpointError(f"{path}: not an nlp-rnn checkpoint (no {CONFIG_FILE}; pass a checkpoint or run directory)")
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise CheckpointError(f"{cfg_path}: corrupt (not valid JSON)") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{cfg_path}: not an nlp-rnn checkpoint (foreign format)")
    version = config.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{cfg_path}: unknown format version {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{cfg_path}: written by a newer nlp-rnn (format {version}, this version reads "
                              f"up to {FORMAT_VERSION}); upgrade nlp-rnn")
    if config.get("kind") not in MODELS:
        raise CheckpointError(f"{cfg_path}: unknown model kind {config.get('kind')!r}")
    return config


def resolve_model_dir(path: str | Path) -> Path:
    """A checkpoint directory, or a run directory's final model (`model/`, else `best`, else `latest`)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such model directory")
    if not path.is_dir():
        raise CheckpointError(f"{path}: expected a model directory, found a file")
    if (path / CONFIG_FILE).exists():
        return path
    if (path / "model" / CONFIG_FILE).exists():
        return path / "model"
    for pointer in ("best", "latest"):
        target = read_pointer(path, pointer)
        if target is not None:
            return target
    raise CheckpointError(f"{path}: not an nlp-rnn checkpoint or run directory (no {CONFIG_FILE}, model/ or latest)")


def load_checkpoint(path: str | Path, kind: str | None = None, device: str | torch.device = "cpu",
                    quantize: str | None = None) -> Loaded:
    """Load weights, config and tokenizers, checking format, kind and shapes. Never unpickles anything.
    `quantize="int8"` returns an int8 copy of the model for CPU inference (see `CharLM.quantized`)."""
    if quantize not in (None, "none", "int8"):
        raise UsageError(f"--quantize must be none or int8, not {quantize!r}")
    if quantize == "int8" and torch.device(device).type != "cpu":
        raise UsageError("--quantize int8 runs on the CPU only (add --device cpu)")
    path = resolve_model_dir(path)
    config = read_config(path)
    if kind is not None and config["kind"] != kind:
        raise CheckpointError(f"{path}: this is {KIND_NAMES[config['kind']]}, but the command needs {KIND_NAMES[kind]}")
    model_cls, config_cls = MODELS[config["kind"]]
    try:
        model = model_cls(config_cls(**config["model"]))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path / CONFIG_FILE}: invalid model config ({e})") from None
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"{weights}: missing weights file")
    try:
        load_model(model, str(weights), strict=True, device="cpu")
    except SafetensorError as e:
        raise CheckpointError(f"{weights}: not a safetensors file (corrupt, or a pickle, which is never loaded): {e}") from None
    except RuntimeError as e:
        first = next((line.strip() for line in str(e).splitlines() if "size mismatch" in line or "Missing" in line
                      or "Unexpected" in line), str(e).splitlines()[0] if str(e) else "mismatch")
        raise CheckpointError(f"{weights}: weights do not fit the model in {CONFIG_FILE}: {first}") from None
    tokenizers = {}
    for name in TOKENIZER_DIRS[config["kind"]]:
        sub = config.get("tokenizers", {}).get(name, name)
        tdir = (path / sub).resolve()
        if not isinstance(sub, str) or tdir.parent != path.resolve():
            raise CheckpointError(f"{path / CONFIG_FILE}: tokenizer path {sub!r} points outside the checkpoint")
        try:
            tokenizers[name] = load_tokenizer(tdir)
        except NlpRnnError as e:
            raise CheckpointError(str(e)) from None
    _check_vocab(path, config, tokenizers)
    model.to(device).eval()
    if quantize == "int8":
        model = model.quantized()
    return Loaded(path, config["kind"], model, tokenizers, config.get("meta", {}))


def _check_vocab(path: Path, config: dict, tokenizers: dict) -> None:
    m = config["model"]
    want = {"tokenizer": m.get("vocab_size"), "src_tokenizer": m.get("src_vocab"), "tgt_tokenizer": m.get("tgt_vocab")}
    for name, tok in tokenizers.items():
        if want[name] != tok.vocab_size:
            raise CheckpointError(f"{path / name}: tokenizer has {tok.vocab_size} tokens but the model expects {want[name]}")


def load_trainer_state(path: Path) -> tuple[dict, dict]:
    """Tensors and JSON of a resumable checkpoint."""
    tensors_path, json_path = path / TRAINER_TENSORS, path / TRAINER_JSON
    if not tensors_path.is_file() or not json_path.is_file():
        raise CheckpointError(f"{path}: not a resumable checkpoint (no {TRAINER_TENSORS}/{TRAINER_JSON})")
    try:
        tensors = load_file(str(tensors_path))
        info = json.loads(json_path.read_text(encoding="utf-8"))
    except (SafetensorError, ValueError) as e:
        raise CheckpointError(f"{path}: corrupt trainer state ({e})") from None
    return tensors, info


# ---------------------------------------------------------------------------------------------- optimizer

def flatten_optimizer(state: dict) -> tuple[dict, dict]:
    """An optimizer state_dict as safetensors-ready tensors plus JSON (no pickle)."""
    tensors, scalars = {}, {}
    for pid, entry in state["state"].items():
        for name, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{name}"] = value
            else:
                scalars[f"{pid}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: dict, info: dict) -> dict:
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    for key, value in info.get("scalars", {}).items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    return {"state": state, "param_groups": info["param_groups"]}


# ---------------------------------------------------------------------------------------------- run directories

def write_pointer(run_dir: Path, name: str, target: Path, **info) -> None:
    atomic_write_text(run_dir / name, json.dumps({"path": str(target.relative_to(run_dir)), **info}) + "\n")


def read_pointer(run_dir: Path, name: str) -> Path | None:
    """The checkpoint a pointer file names, or None when there is none (or it names a vanished directory)."""
    p = run_dir / name
    if not p.is_file():
        return None
    try:
        rel = json.loads(p.read_text(encoding="utf-8"))["path"]
    except (ValueError, KeyError, TypeError):
        raise CheckpointError(f"{p}: corrupt pointer file") from None
    target = (run_dir / rel).resolve()
    if run_dir.resolve() not in target.parents:
        raise CheckpointError(f"{p}: points outside the run directory")
    return target if (target / CONFIG_FILE).is_file() else None


def copy_model(src: Path, dst: Path) -> None:
    """Publish a checkpoint's weights, config and tokenizers (no trainer state) as `dst`, atomically."""
    with atomic_dir(dst) as tmp:
        for item in src.iterdir():
            if item.name in (TRAINER_TENSORS, TRAINER_JSON):
                continue
            if item.is_dir():
                shutil.copytree(item, tmp / item.name)
            else:
                shutil.copy2(item, tmp / item.name)
