"""Device choice, seeds, threads and precision: the one place that touches global torch state."""
from __future__ import annotations

import contextlib
import os
import random

import torch

from .errors import UsageError

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}

# oneDNN and ideep (PyTorch's CPU kernels for bf16 products and the LSTM) each keep up to 1,024 built kernels, one
# per shape; a translator's batches bring new shapes at almost every step, so a 20-minute training run grew to
# 4.5 GB (issue #19, BENCHMARKS.md). 16 of each keep the shapes a step repeats, at no measured cost in speed.
# Both are read when the first kernel is built, so setting them at import is in time; a user's own value wins.
KERNEL_CACHE = "16"
for _name in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY"):
    os.environ.setdefault(_name, KERNEL_CACHE)


def pick_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA, then MPS, then CPU."""
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    if name not in ("cpu", "cuda", "mps"):
        raise UsageError(f"--device must be auto, cpu, cuda or mps, not {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available on this machine")
    if name == "mps" and not has_mps:
        raise UsageError("--device mps: no MPS device is available on this machine")
    if name == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 tensor cores for fp32 matrix products
    return torch.device(name)


def set_threads(n: int | None) -> None:
    """Intra-op threads for CPU work; None leaves torch's default."""
    if n is None:
        return
    if n < 1:
        raise UsageError(f"--threads must be at least 1, not {n}")
    torch.set_num_threads(n)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def set_deterministic(on: bool) -> None:
    """Bit-for-bit repeatable CPU runs (slower kernels where torch has a choice)."""
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 matrix products run natively (and so faster than fp32) on this device."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
                flags = f.read(1 << 20)
        except OSError:
            return False
        return "avx512_bf16" in flags or "amx_bf16" in flags
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """`auto` is bf16 on a CPU that multiplies bf16 natively (measured: same loss per step as fp32, 1.7-2x the
    speed on an avx512_bf16 core), else fp32 (with TF32 matrix products on CUDA: on an H100 these RNNs are
    launch-bound, and bf16 autocast ran slower than fp32 at the default batch sizes). See BENCHMARKS.md."""
    if precision == "auto":
        return "bf16" if device.type == "cpu" and native_bf16(device) else "fp32"
    if precision not in PRECISIONS:
        raise UsageError(f"--precision must be auto, fp32, bf16 or fp16, not {precision!r}")
    return precision


def autocast(device: torch.device, precision: str):
    """Mixed precision context: fp32 weights, matrix products in bf16/fp16."""
    precision = resolve_precision(precision, device)
    if precision not in PRECISIONS:
        raise UsageError(f"--precision must be fp32, bf16 or fp16, not {precision!r}")
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    if precision == "fp16" and device.type == "cpu":
        raise UsageError("--precision fp16 needs a GPU; use bf16 on the CPU")
    return torch.autocast(device.type, dtype=dtype)


@contextlib.contextmanager
def small_batch_kernels():
    """oneDNN's RNN kernels are fast for training batches and slow for one step at batch 1;
    inference steps run faster as plain matrix products, so switch oneDNN off around them."""
    was = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = was
