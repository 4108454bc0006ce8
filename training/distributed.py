"""torchrun integration: one process per device, on one node or many (no SLURM needed)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from model.devices import DeviceError, check_device


@dataclass(frozen=True)
class Context:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(device: str, local_rank: int, world_size: int, spelled: str = "run.device={}") -> torch.device:
    """The device this process uses for `run.device` / `--device` (auto | cpu | cuda | cuda:N).

    Under torchrun each process takes cuda:LOCAL_RANK; an explicit cuda:N is for one process.
    Asking for CUDA where there is none is an error (model.devices.check_device's message, the
    device written as `spelled`), never a silent fall-back to the CPU.
    """
    device = check_device(device, spelled, auto=True)
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda":
        index = local_rank
        count = torch.cuda.device_count()
        if index >= count:  # more processes than GPUs: each needs its own
            raise DeviceError(f"{spelled.format(device)}: process {local_rank} of this host takes cuda:{local_rank}, "
                              f"but the host has {count} GPU(s) (cuda:0..cuda:{count - 1}); start at most {count} "
                              "processes per host (torchrun --nproc_per_node)")
    else:
        if world_size > 1:
            raise DeviceError(f"{spelled.format(device)} names one GPU, but torchrun started {world_size} processes; "
                              f"use {spelled.format('cuda')} (each process takes cuda:LOCAL_RANK)")
        index = int(device.split(":", 1)[1])
    return torch.device("cuda", index)


def setup(device: str = "auto", spelled: str = "run.device={}") -> Context:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK), or run alone.

    CUDA processes use NCCL and one GPU each; CPU processes use gloo. `spelled`: how the user
    wrote the device (`--device {}` for `segmenter eval`), for the message of a missing one.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank, world, spelled)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return Context(rank, world, local_rank, dev)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def mean_across(value: float, device: torch.device) -> float:
    if not dist.is_initialized():
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()


def any_across(flags: list[bool], device: torch.device) -> list[bool]:
    """Each flag OR-ed over every process: one decision all of them take at the same step."""
    if not dist.is_initialized():
        return flags
    t = torch.tensor([int(f) for f in flags], dtype=torch.int32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]
