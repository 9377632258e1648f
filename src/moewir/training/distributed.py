"""``torch.distributed`` for ``torchrun``: one process per GPU (or per CPU worker with gloo)."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

__all__ = ["DistInfo", "setup", "wrap", "mean_across_ranks", "broadcast_int", "average_gradients", "barrier", "cleanup"]


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(device_type: str) -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment (NCCL on CUDA,
    gloo otherwise); a plain single process gets ``DistInfo()``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def wrap(model: nn.Module, info: DistInfo, find_unused_parameters: bool = False) -> nn.Module:
    """``model`` in DistributedDataParallel when there are several ranks, else ``model`` itself."""
    if info.world <= 1:
        return model
    device = next(model.parameters()).device
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                   find_unused_parameters=find_unused_parameters)


def mean_across_ranks(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """All-reduced mean of ``values`` (the same on every rank)."""
    if info.world > 1:
        values = values.clone()
        dist.all_reduce(values)
        values /= info.world
    return values


def broadcast_int(value: int, info: DistInfo) -> int:
    """The main rank's ``value`` on every rank."""
    if info.world <= 1:
        return value
    tensor = torch.tensor([value], dtype=torch.int64,
                          device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.broadcast(tensor, 0)
    return int(tensor.item())


def average_gradients(parameters, info: DistInfo) -> None:
    """Average the gradients of parameters that DDP does not manage (e.g. learnt task weights)."""
    if info.world > 1:
        for p in parameters:
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= info.world


def barrier(info: DistInfo) -> None:
    if info.world > 1:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    if info.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
