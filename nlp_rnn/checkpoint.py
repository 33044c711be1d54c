"""Checkpoints are directories of data, never pickles:

    config.json          format, format_version, kind (lm|mt|clf), model config, tokenizers, metadata, package version
    model.safetensors    weights only
    tokenizer/           (lm, clf)   or   src_tokenizer/ + tgt_tokenizer/ (mt)
    shortlist.safetensors  (mt, optional) the lexical shortlist search may restrict the output layer to
    trainer.safetensors  optimizer tensors, RNG state, carried hidden state   } only in resumable
    trainer.json         step, epoch, data position, best score, schedule      } training checkpoints

A training run directory holds `checkpoints/step-NNNNNNN/` (resumable), the pointer files `latest` and `best`
(JSON, replaced atomically) and `model/`, the final model. `-m` accepts a checkpoint or a run directory.

Whatever is read back is untrusted. Every JSON file is capped in size and nesting and checked against a schema;
the safetensors header is checked against the model config (on the `meta` device, which allocates nothing)
before any tensor is allocated or read; no file may lead out of its checkpoint through a link; non-finite
weights are refused. Each problem is a CheckpointError naming the file and the field or tensor.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch.overrides import TorchFunctionMode

from . import __version__
from .atomic import atomic_dir, atomic_write_text
from .errors import CheckpointError, NlpRnnError, UsageError
from .limits import LIMITS
from .schema import (Anything, Bool, Choice, Fields, Int, ListOf, MapOf, Maybe, Num, Scalar, Str, Tuple, inside, parse_json,
                     read_json, regular_file, show_value, validate)
from .models import CharLM, LMConfig, Seq2Seq, Seq2SeqConfig
from .models.shortlist import Shortlist
from .models.classifier import ClassifierConfig, TextClassifier
from .tokenizers import load_tokenizer

FORMAT = "nlp-rnn"
FORMAT_VERSION = 1
CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"
SHORTLIST_FILE = "shortlist.safetensors"
MAX_SHORTLIST_ENTRIES = 1 << 24  # candidates per source id × source vocabulary: 64 MB of int32
TRAINER_TENSORS, TRAINER_JSON = "trainer.safetensors", "trainer.json"
TOKENIZER_DIRS = {"lm": ("tokenizer",), "mt": ("src_tokenizer", "tgt_tokenizer"), "clf": ("tokenizer",)}
MODELS = {"lm": (CharLM, LMConfig), "mt": (Seq2Seq, Seq2SeqConfig), "clf": (TextClassifier, ClassifierConfig)}
KIND_NAMES = {"lm": "a character language model", "mt": "a translator", "clf": "a text classifier"}

# What a file may ask for, checked before anything is allocated: generous for real models (the shipped ones
# have under 2M parameters), small enough that no file can exhaust the machine or loop for minutes.
MAX_VOCAB = int(LIMITS["vocab_size"].hi)
MAX_WIDTH = int(LIMITS["hidden"].hi)  # embed, hidden
MAX_LAYERS = int(LIMITS["layers"].hi)
MAX_CLASSES = int(LIMITS["num_classes"].hi)
MAX_LABEL_CHARS = 200
MAX_PARAMETERS = 2 ** 31        # 8 GiB of fp32 weights
MAX_HEADER_BYTES = 1 << 20      # a safetensors header; ours are a few KB
MAX_TOKENIZER_BYTES = 64 << 20  # a sentencepiece model
SIZE_FIELDS = {"vocab_size": MAX_VOCAB, "src_vocab": MAX_VOCAB, "tgt_vocab": MAX_VOCAB,
               "embed": MAX_WIDTH, "hidden": MAX_WIDTH, "layers": MAX_LAYERS, "num_classes": MAX_CLASSES}
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")


META = Fields({}, {"src_lang": Maybe(Str(64)), "tgt_lang": Maybe(Str(64)), "test_metrics": MapOf(Scalar()),
                   "command": ListOf(Str()),
                   # a classifier's class names, in the order of its outputs, and the loss weight of each class
                   "labels": ListOf(Str(MAX_LABEL_CHARS), max_len=MAX_CLASSES),
                   "class_weights": Maybe(ListOf(Num(0), max_len=MAX_CLASSES)),
                   "max_tokens": Int(1, int(LIMITS["max_tokens"].hi))}, extra=Anything())
POINTER = Fields({"path": Str(), "step": Int()}, {"score": Num(finite=False)})
TOKENIZER = Fields({"kind": Choice("char", "sentencepiece")}, {"chars": Str(MAX_VOCAB), "model": Str(255)},
                   extra=Anything())  # tokenizers.py owns the format: only what is checked here is known
PROGRESS = Fields({  # mirrors training.Progress (tests check that the two agree)
    "step": Int(), "epoch": Int(), "position": Int(), "elapsed": Num(0), "planned_steps": Int(),
    "best_score": Num(finite=False), "best_step": Int(), "evals_since_best": Int(), "bad_steps": Int(),
    "skipped_steps": Int(), "tokens": Int(), "history": ListOf(Fields({"step": Int()}, extra=Anything()))})
PARAM_GROUP = Fields(  # AdamW's, as the Trainer makes it
    {"params": ListOf(Int(0, MAX_PARAMETERS)), "lr": Num(0), "betas": Tuple(Num(0, 1), Num(0, 1)), "eps": Num(0),
     "weight_decay": Num(0)},
    {"amsgrad": Bool(), "maximize": Bool(), "foreach": Maybe(Bool()), "fused": Maybe(Bool()),
     "capturable": Choice(False), "differentiable": Choice(False), "decoupled_weight_decay": Bool()},
    extra=Scalar())
TRAINER = Fields(
    {"param_groups": ListOf(PARAM_GROUP, max_len=64), "scalars": MapOf(Num(0), key=r"\d{1,10}\.step"),
     "progress": PROGRESS},
    {"python_random": Maybe(Tuple(Choice(3), ListOf(Int(0, 2 ** 32 - 1), length=625), Maybe(Num()))),
     "train_config": MapOf(Scalar()), "carried_state": Maybe(Choice(1, 2))})
SAFETENSORS_HEADER = Fields({}, {"__metadata__": MapOf(Str())}, extra=Fields({
    "dtype": Choice(*DTYPE_BYTES), "shape": ListOf(Int(0, 2 ** 40), max_len=8),
    "data_offsets": Tuple(Int(0, 2 ** 62), Int(0, 2 ** 62))}))


def _model_schema(config_cls) -> Fields:
    """The fields of a model config dataclass: those without a default are required, sizes are bounded."""
    required, optional = {}, {}
    for f in dataclasses.fields(config_cls):
        kind = f.type if isinstance(f.type, str) else f.type.__name__
        if kind == "int":  # an int field without a bound of its own gets the widest one
            schema = Int(1, SIZE_FIELDS.get(f.name, MAX_WIDTH))
        else:
            schema = {"float": Num(), "bool": Bool(), "str": Str(64)}[kind]
        (required if f.default is dataclasses.MISSING else optional)[f.name] = schema
    return Fields(required, optional)


def validate_progress(progress, path: str | Path = TRAINER_JSON) -> dict:
    """The `progress` record of trainer.json (the fields of `training.Progress`), checked field by field;
    a CheckpointError naming `path` and the field otherwise."""
    return validate(progress, PROGRESS, Path(path), "progress")


# ---------------------------------------------------------------------------------------------- reading files

def _safetensors_header(path: Path) -> dict:
    """{name: (dtype, shape)} of a safetensors file, from its header alone, checked to describe exactly the bytes
    that follow: loading it then allocates no more than the file holds."""
    bad = f"{path}: not a safetensors file (corrupt, or a pickle, which is never loaded)"
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        n = int.from_bytes(f.read(8).ljust(8, b"\xff"), "little")
        if n > MAX_HEADER_BYTES or 8 + n > size:
            raise CheckpointError(f"{bad}: a header of {n:,} bytes in a file of {size:,} (headers are capped "
                                  f"at {MAX_HEADER_BYTES:,})")
        header = parse_json(f.read(n), path)
    header = validate(header, SAFETENSORS_HEADER, path, "header")
    header.pop("__metadata__", None)
    end = 0
    for name, t in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
        begin, stop = t["data_offsets"]
        if begin != end or stop - begin != math.prod(t["shape"]) * DTYPE_BYTES[t["dtype"]]:
            raise CheckpointError(f"{bad}: the offsets of tensor {name} do not match its shape and the tensors "
                                  f"before it")
        end = stop
    if end != size - 8 - n:
        raise CheckpointError(f"{path}: its header describes {end:,} bytes of tensors but the file holds "
                              f"{size - 8 - n:,}; refused")
    return {name: (t["dtype"], tuple(t["shape"])) for name, t in header.items()}


def _refuse_non_finite(path: Path, name: str, t: torch.Tensor) -> None:
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise CheckpointError(f"{path}: tensor {name} holds NaN or infinite values (training diverged, or the "
                              f"file is corrupt); refused")


# ---------------------------------------------------------------------------------------------- the model's shape

class _NoInit(TorchFunctionMode):
    """Skips the in-place fills (initialisers) of meta tensors: there is nothing to fill, and torch's meta
    kernels for random fills import torch._dynamo, seconds of start-up."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name.endswith("_") and not name.endswith("__"):
            target = args[0] if args else next(iter(kwargs.values()), None)
            if isinstance(target, torch.Tensor) and target.is_meta:
                return target
        return func(*args, **kwargs)


def _shape_model(kind: str, model_config) -> torch.nn.Module:
    """The model with every tensor on the `meta` device: names and shapes, no memory."""
    with torch.device("meta"), _NoInit():
        return MODELS[kind][0](model_config)


def _tensor_groups(model: torch.nn.Module) -> list[tuple[tuple[str, ...], tuple[int, ...]]]:
    """(names, shape) of each distinct tensor of the state dict; tied weights share one entry, of which the
    weights file holds one name (see `_weights`)."""
    groups: dict[int, list] = {}
    for name, t in model.state_dict(keep_vars=True).items():
        groups.setdefault(id(t), [[], tuple(t.shape)])[0].append(name)
    return [(tuple(sorted(names)), shape) for names, shape in groups.values()]


def _model_config(path: Path, config: dict):
    """The model config dataclass of a checkpoint whose config.json passed `read_config`."""
    cls = MODELS[config["kind"]][1]
    try:
        return cls(**{**getattr(cls, "ABSENT", {}), **config["model"]}).validate()
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path / CONFIG_FILE}: invalid model config ({str(e)[:200]})") from None


def _check_weights(path: Path, header: dict, model: torch.nn.Module) -> list[tuple[tuple[str, ...], str]]:
    """Match the weights file's header against the model built from config.json; returns, for each distinct
    tensor, its names in the model and its name in the file."""
    misfit = f"{path}: weights do not fit the model in {CONFIG_FILE}"
    plan, known = [], set()
    for names, shape in _tensor_groups(model):
        known.update(names)
        present = [n for n in names if n in header]
        if len(present) != 1:
            raise CheckpointError(f"{misfit}: " + (f"missing tensor {names[0]}" if not present else
                                                   f"tied tensors {', '.join(present)} stored apart"))
        dtype, got = header[present[0]]
        if got != shape:
            raise CheckpointError(f"{misfit}: size mismatch for {present[0]}: {list(got)} in the file, "
                                  f"{list(shape)} in the config")
        if dtype not in FLOAT_DTYPES:
            raise CheckpointError(f"{misfit}: tensor {present[0]} is {dtype}, not floating point")
        plan.append((names, present[0]))
    unexpected = sorted(set(header) - known)
    if unexpected:
        raise CheckpointError(f"{misfit}: unexpected tensor {unexpected[0]}")
    return plan


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # tied parameters once


# ---------------------------------------------------------------------------------------------- checkpoints

@dataclass
class Loaded:
    path: Path
    kind: str
    model: torch.nn.Module
    tokenizers: dict
    meta: dict
    shortlist: Shortlist | None = None  # translators trained since issue #19

    @property
    def tokenizer(self):
        return self.tokenizers["tokenizer"]


def save_checkpoint(path: str | Path, model: torch.nn.Module, tokenizers: dict, meta: dict | None = None,
                    trainer_tensors: dict | None = None, trainer_json: dict | None = None,
                    shortlist: Shortlist | None = None) -> Path:
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
        if shortlist is not None:
            save_file(shortlist.tensors(), str(tmp / SHORTLIST_FILE))
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
    in sorted order; loading accepts any one name of a tied group). On CUDA, cuDNN packs all RNN weights into one
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
    """config.json of a checkpoint directory, checked: format, version, kind, then every field and the model
    config's types and size bounds. Reads nothing else."""
    cfg_path = path / CONFIG_FILE
    if not cfg_path.is_file():
        raise CheckpointError(f"{path}: not an nlp-rnn checkpoint (no {CONFIG_FILE}; pass a checkpoint or run directory)")
    config = read_json(cfg_path, path)
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{cfg_path}: not an nlp-rnn checkpoint (foreign format)")
    version = config.get("format_version")
    if type(version) is not int or version < 1:
        raise CheckpointError(f"{cfg_path}: unknown format version {show_value(version)}")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{cfg_path}: written by a newer nlp-rnn (format {version}, this version reads "
                              f"up to {FORMAT_VERSION}); upgrade nlp-rnn")
    kind = config.get("kind")
    if type(kind) is not str or kind not in MODELS:
        raise CheckpointError(f"{cfg_path}: unknown model kind {show_value(kind)}")
    schema = Fields({"format": Str(), "format_version": Int(), "kind": Str(), "model": _model_schema(MODELS[kind][1])},
                    {"package_version": Str(64), "tokenizers": Fields({n: Str(255) for n in TOKENIZER_DIRS[kind]}),
                     "meta": META})
    validate(config, schema, cfg_path)
    model_config = _model_config(path, config)
    if kind == "clf":
        _check_labels(cfg_path, config.get("meta", {}), model_config.num_classes)
    return config


def _check_labels(cfg_path: Path, meta: dict, num_classes: int) -> None:
    """A classifier names each of its outputs once: `meta.labels` holds num_classes distinct, non-blank labels."""
    labels = meta.get("labels")
    if labels is None:
        raise CheckpointError(f"{cfg_path}: meta.labels: missing (a classifier records its class names)")
    if len(labels) != num_classes:
        raise CheckpointError(f"{cfg_path}: meta.labels: {len(labels)} labels for a model of {num_classes} classes")
    if len(set(labels)) != len(labels) or any(not label.strip() for label in labels):
        raise CheckpointError(f"{cfg_path}: meta.labels: the labels must be distinct and not blank")
    weights = meta.get("class_weights")
    if weights is not None and len(weights) != num_classes:
        raise CheckpointError(f"{cfg_path}: meta.class_weights: {len(weights)} weights for {num_classes} classes")


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
        inside(path, path / "model")
        return path / "model"
    for pointer in ("best", "latest"):
        target = read_pointer(path, pointer)
        if target is not None:
            return target
    raise CheckpointError(f"{path}: not an nlp-rnn checkpoint or run directory (no {CONFIG_FILE}, model/ or latest)")


def load_checkpoint(path: str | Path, kind: str | None = None, device: str | torch.device = "cpu",
                    quantize: str | None = None) -> Loaded:
    """Load weights, config and tokenizers, checking format, kind, every field, shapes and values. Never
    unpickles anything, and allocates the model only once the weights file is known to hold all of it.
    `quantize="int8"` returns an int8 copy of the model for CPU inference (see `CharLM.quantized`)."""
    if quantize not in (None, "none", "int8"):
        raise UsageError(f"--quantize must be none or int8, not {quantize!r}")
    if quantize == "int8" and torch.device(device).type != "cpu":
        raise UsageError("--quantize int8 runs on the CPU only (add --device cpu)")
    path = resolve_model_dir(path)
    config = read_config(path)
    if kind is not None and config["kind"] != kind:
        raise CheckpointError(f"{path}: this is {KIND_NAMES[config['kind']]}, but the command needs {KIND_NAMES[kind]}")
    model = _load_model(path, config)
    tokenizers = {name: _load_tokenizer(path, config, name) for name in TOKENIZER_DIRS[config["kind"]]}
    _check_vocab(path, config, tokenizers)
    shortlist = _load_shortlist(path, model.config) if (path / SHORTLIST_FILE).exists() else None
    model.to(device).eval()
    if quantize == "int8":
        model = model.quantized()
    return Loaded(path, config["kind"], model, tokenizers, config.get("meta", {}), shortlist)


def _load_shortlist(path: Path, model_config) -> Shortlist:
    """A translator's shortlist: two int32 tensors whose shapes and ids fit the model, checked before use."""
    f = path / SHORTLIST_FILE
    if not isinstance(model_config, Seq2SeqConfig):
        raise CheckpointError(f"{f}: only a translator has a shortlist")
    header = _safetensors_header(regular_file(path, SHORTLIST_FILE, "shortlist"))
    shapes = {name: shape for name, (dtype, shape) in header.items() if dtype == "I32"}
    rows, per = shapes.get("candidates", (0, 0)) if len(shapes.get("candidates", ())) == 2 else (0, 0)
    frequent = shapes.get("frequent", (0, 0))
    if set(header) != {"candidates", "frequent"} or len(frequent) != 1 or rows != model_config.src_vocab \
            or not 1 <= per * rows <= MAX_SHORTLIST_ENTRIES or not 1 <= frequent[0] <= model_config.tgt_vocab:
        raise CheckpointError(f"{f}: expected int32 tensors candidates ({model_config.src_vocab}, N) and frequent "
                              f"(M ≤ {model_config.tgt_vocab}), found {dict(header)}")
    t = load_file(str(f))
    c, fr = t["candidates"], t["frequent"]
    if int(c.min()) < -1 or int(c.max()) >= model_config.tgt_vocab or int(fr.min()) < 0 \
            or int(fr.max()) >= model_config.tgt_vocab:
        raise CheckpointError(f"{f}: target ids outside the model's vocabulary of {model_config.tgt_vocab}")
    return Shortlist(c, fr)


def _load_model(path: Path, config: dict) -> torch.nn.Module:
    """The model of a checked config, its weights checked against the header before any is allocated."""
    model_config = _model_config(path, config)
    shape = _shape_model(config["kind"], model_config)
    if _count(shape) > MAX_PARAMETERS:
        raise CheckpointError(f"{path / CONFIG_FILE}: the model config asks for {_count(shape):,} parameters "
                              f"(at most {MAX_PARAMETERS:,} are loaded)")
    weights = regular_file(path, WEIGHTS_FILE, "weights file")
    plan = _check_weights(path / WEIGHTS_FILE, _safetensors_header(weights), shape)
    try:
        tensors = load_file(str(weights))
    except SafetensorError as e:
        raise CheckpointError(f"{path / WEIGHTS_FILE}: not a safetensors file (corrupt, or a pickle, which is "
                              f"never loaded): {e}") from None
    state = {}
    for names, stored in plan:
        _refuse_non_finite(path / WEIGHTS_FILE, stored, tensors[stored])
        state.update(dict.fromkeys(names, tensors[stored]))
    model = MODELS[config["kind"]][0](model_config)
    model.load_state_dict(state, strict=True)
    return model


def _load_tokenizer(path: Path, config: dict, name: str):
    """One tokenizer of a checkpoint: its directory and files inside the checkpoint, its JSON checked."""
    sub = config.get("tokenizers", {}).get(name, name)
    if sub in ("", ".", "..") or Path(sub).name != sub or "\\" in sub:
        raise CheckpointError(f"{path / CONFIG_FILE}: tokenizer path {sub!r} points outside the checkpoint")
    tdir = inside(path, path / sub)
    if tdir.is_dir():
        for entry in tdir.iterdir():
            inside(path, entry)
    try:
        return load_tokenizer(path / sub, root=path)
    except NlpRnnError as e:
        raise CheckpointError(str(e)) from None


def _check_vocab(path: Path, config: dict, tokenizers: dict) -> None:
    m = config["model"]
    want = {"tokenizer": m.get("vocab_size"), "src_tokenizer": m.get("src_vocab"), "tgt_tokenizer": m.get("tgt_vocab")}
    for name, tok in tokenizers.items():
        if want[name] != tok.vocab_size:
            raise CheckpointError(f"{path / name}: tokenizer has {tok.vocab_size} tokens but the model expects "
                                  f"{want[name]}")


# ---------------------------------------------------------------------------------------------- trainer state

_TRAINER_TENSOR = re.compile(r"rng\.torch|optim\.(\d{1,10})\.(step|exp_avg|exp_avg_sq|max_exp_avg_sq)|state\.(\d)")


def load_trainer_state(path: Path, optimizer: torch.optim.Optimizer | None = None) -> tuple[dict, dict]:
    """Tensors and JSON of a resumable checkpoint, checked so that `Trainer.resume` can apply them: every field
    of trainer.json, the tensors' names, shapes and values against the checkpoint's model, the RNG states.
    Given the `optimizer` that will load them, its parameter groups and shapes are matched exactly."""
    path = Path(path)
    tensors_path, json_path = path / TRAINER_TENSORS, path / TRAINER_JSON
    if not tensors_path.is_file() or not json_path.is_file():
        raise CheckpointError(f"{path}: not a resumable checkpoint (no {TRAINER_TENSORS}/{TRAINER_JSON})")
    config = read_config(path)
    model_config = _model_config(path, config)
    info = read_json(json_path, path, TRAINER, "trainer state")
    real = regular_file(path, TRAINER_TENSORS, "trainer state")
    header = _safetensors_header(real)
    n_params = len(list(_shape_model(config["kind"], model_config).parameters()))
    _check_trainer_json(json_path, info, config["kind"], model_config, n_params)
    _check_trainer_tensors(tensors_path, header, info, model_config, n_params)
    if optimizer is not None:
        _check_optimizer(json_path, tensors_path, info, header, optimizer)
    try:
        tensors = load_file(str(real))
    except SafetensorError as e:
        raise CheckpointError(f"{tensors_path}: corrupt trainer state ({e})") from None
    for name, t in tensors.items():
        _refuse_non_finite(tensors_path, name, t)
    try:
        torch.Generator().set_state(tensors["rng.torch"])
    except RuntimeError:
        raise CheckpointError(f"{tensors_path}: rng.torch is not a random generator state") from None
    return tensors, info


def _check_trainer_json(path: Path, info: dict, kind: str, model_config, n_params: int) -> None:
    """What the schema cannot say: parameter ids, carried state, the Python RNG state."""
    ids = sorted(i for group in info["param_groups"] for i in group["params"])
    if ids != list(range(n_params)):
        raise CheckpointError(f"{path}: param_groups do not list each of the model's {n_params} parameters once")
    for key in info["scalars"]:
        if int(key.split(".")[0]) >= n_params:
            raise CheckpointError(f"{path}: scalars.{key} names a parameter the model does not have")
    carried = info.get("carried_state")
    if carried and (kind != "lm" or carried != (2 if model_config.cell == "lstm" else 1)):
        raise CheckpointError(f"{path}: carried_state: {carried} state tensors do not fit "
                              f"{KIND_NAMES[kind]} of cell {model_config.cell}")
    if info.get("python_random") is not None:
        version, internal, gauss = info["python_random"]
        try:
            random.Random().setstate((version, tuple(internal), gauss))
        except (ValueError, TypeError, OverflowError) as e:
            raise CheckpointError(f"{path}: python_random is not a random generator state ({e})") from None


def _check_trainer_tensors(path: Path, header: dict, info: dict, model_config, n_params: int) -> None:
    """Names, dtypes and shapes of trainer.safetensors against trainer.json and the checkpoint's model:

        rng.torch                    U8 vector (torch's CPU generator state)
        optim.<param id>.<name>      AdamW's exp_avg, exp_avg_sq (same shape), max_exp_avg_sq, step (a scalar)
        state.<i>                    carried recurrent state (layers, batch, hidden), i < carried_state
    """
    carried = info.get("carried_state") or 0
    moments: dict[int, dict] = {}
    for name, (dtype, shape) in header.items():
        m = _TRAINER_TENSOR.fullmatch(name)
        if m is None or (m[3] is not None and int(m[3]) >= carried):
            raise CheckpointError(f"{path}: unexpected tensor {name}")
        if name == "rng.torch":
            if dtype != "U8" or len(shape) != 1:
                raise CheckpointError(f"{path}: rng.torch must be a U8 vector, not {dtype} {list(shape)}")
        elif dtype not in FLOAT_DTYPES:
            raise CheckpointError(f"{path}: tensor {name} is {dtype}, not floating point")
        elif m[1] is not None:
            if int(m[1]) >= n_params:
                raise CheckpointError(f"{path}: tensor {name} names a parameter the model does not have")
            moments.setdefault(int(m[1]), {})[m[2]] = shape
        elif len(shape) != 3 or (shape[0], shape[2]) != (model_config.layers, model_config.hidden):
            raise CheckpointError(f"{path}: carried state {name} has shape {list(shape)}, not "
                                  f"[{model_config.layers}, batch, {model_config.hidden}]")
    for name in ["rng.torch"] + [f"state.{i}" for i in range(carried)]:
        if name not in header:
            raise CheckpointError(f"{path}: missing tensor {name}")
    scalar_steps = {int(key.split(".")[0]) for key in info["scalars"]}
    for pid, shapes in moments.items():
        if not {"exp_avg", "exp_avg_sq"} <= set(shapes) or ("step" not in shapes and pid not in scalar_steps):
            raise CheckpointError(f"{path}: optimizer state of parameter {pid} is incomplete "
                                  f"({', '.join(sorted(shapes))})")
        if shapes["exp_avg"] != shapes["exp_avg_sq"] or shapes.get("step", ()) not in ((), (1,)):
            raise CheckpointError(f"{path}: optimizer state of parameter {pid} has inconsistent shapes")


def _check_optimizer(json_path: Path, tensors_path: Path, info: dict, header: dict,
                     optimizer: torch.optim.Optimizer) -> None:
    """The saved state fits `optimizer`: the same group sizes, and each moment the shape of its parameter."""
    sizes, live = [len(g["params"]) for g in info["param_groups"]], [len(g["params"]) for g in optimizer.param_groups]
    if sizes != live:
        raise CheckpointError(f"{json_path}: parameter groups of sizes {sizes} do not fit this optimizer's {live}")
    shape_of = {pid: tuple(p.shape) for saved, group in zip(info["param_groups"], optimizer.param_groups)
                for pid, p in zip(saved["params"], group["params"])}
    for name, (_, shape) in header.items():
        m = _TRAINER_TENSOR.fullmatch(name)
        if m[1] is not None and m[2] != "step" and shape != shape_of[int(m[1])]:
            raise CheckpointError(f"{tensors_path}: tensor {name} has shape {list(shape)}, its parameter "
                                  f"{list(shape_of[int(m[1])])}")


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
    """The optimizer state_dict of what `load_trainer_state` returned."""
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
    run_dir = Path(run_dir)
    p = run_dir / name
    if not p.is_file():
        return None
    rel = read_json(p, run_dir, POINTER, "pointer file")["path"]
    target = (run_dir / rel).resolve()
    if os.path.isabs(rel) or run_dir.resolve() not in target.parents:
        raise CheckpointError(f"{p}: points outside the run directory")
    return target if (target / CONFIG_FILE).is_file() else None


def copy_model(src: Path, dst: Path) -> None:
    """Publish a checkpoint's weights, config and tokenizers (no trainer state) as `dst`, atomically; nothing
    reached through a link out of `src` is copied."""
    for item in src.rglob("*"):
        inside(src, item)
    with atomic_dir(dst) as tmp:
        for item in src.iterdir():
            if item.name in (TRAINER_TENSORS, TRAINER_JSON):
                continue
            if item.is_dir():
                shutil.copytree(item, tmp / item.name)
            else:
                shutil.copy2(item, tmp / item.name)
