"""Data-parallel training with PyTorch's own engine: `torchrun` starts the processes, gloo (CPU) or NCCL (GPU)
averages gradients, and only rank 0 evaluates, logs and writes checkpoints.

    torchrun --nproc_per_node=2 -m nlp_rnn train lm corpus.txt -o runs/lm ...

Every rank builds the same global batch and trains on its own share of it (`shard`), so a run on N processes
takes the same optimizer steps as a one-process run with the same global batch.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
from torch import nn

from .errors import UsageError


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: torch.device, timeout_s: float = 300) -> Dist:
    """Join the process group torchrun describes in the environment (a no-op for one process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not torch.distributed.is_available():
        raise UsageError("this torch build has no distributed support")
    backend = "nccl" if device.type == "cuda" else "gloo"
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise UsageError(f"{os.environ.get('LOCAL_WORLD_SIZE', world)} processes on this machine but "
                             f"{torch.cuda.device_count()} GPU(s): start one process per GPU, or use --device cpu")
        torch.cuda.set_device(local_rank)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return Dist(torch.distributed.get_rank(), torch.distributed.get_world_size(), local_rank)


def shutdown() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


class LossModule(nn.Module):
    """DDP synchronises gradients of what runs through its `forward`; the models train through `loss`."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch, state=None):
        return self.model.loss(batch, state)


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(LossModule(model), device_ids=ids)


def agree(flag: bool, dist_on: bool, any_rank: bool = True) -> bool:
    """The same decision on every rank: true if any rank (or, with any_rank=False, every rank) says so."""
    if not dist_on:
        return flag
    t = torch.tensor([1.0 if flag else 0.0])
    if torch.distributed.get_backend() == "nccl":
        t = t.cuda()
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX if any_rank else torch.distributed.ReduceOp.MIN)
    return bool(t.item() > 0.5)
