"""Where a model runs: the one check of a device name against this machine, for every entry point
(`--device`, `run.device`, a models file's `device:`), so that asking for a GPU that is not there is
one message naming what was asked, what exists and what to pass, not a CUDA traceback.

    device = check_device("cuda:1")                   # "cuda:1", or DeviceError naming cuda:0 ...
    device = check_device("auto", "run.device={}", auto=True)   # "cuda" on a GPU host, else "cpu"
    parse_device("cuda:1", "device: {}")              # the name only, whatever this machine has
    with placing(device):                             # out of GPU memory: DeviceError, not a traceback
        predictor = Predictor(net, device=device)

torch is imported only to look at the machine, never for "cpu": command-line parsers use this
module (and PRECISION_NAMES) without paying for torch's start-up.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from model.errors import SegmenterError

# The names --precision offers; model.inference.PRECISIONS maps them to torch dtypes.
PRECISION_NAMES = ("fp32", "fp16", "bf16")

_NAME = re.compile(r"(cpu|cuda|cuda:(\d+))")


class DeviceError(SegmenterError, ValueError):
    """A device name that is not one, or a device this machine does not have (or has no memory on)."""


def cuda_devices() -> list[str]:
    """This machine's CUDA devices by name (cuda:0, cuda:1, ...); none without a GPU or a driver."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return [f"cuda:{i}" for i in range(count)]


def parse_device(value: str, spelled: str = "--device {}", *, auto: bool = False,
                 gpu_names: tuple[str, ...] = ()) -> str:
    """`value` if it is a device name (cpu, cuda, cuda:N; auto when `auto`; `gpu_names`), whatever
    this machine has (a models file is checked where it is written, served elsewhere). DeviceError
    naming the valid names otherwise; `spelled` as for check_device."""
    names = [*(["auto"] if auto else []), "cpu", "cuda", *gpu_names]
    if not (value in names or (isinstance(value, str) and _NAME.fullmatch(value))):
        option = spelled.split("{}")[0].rstrip(" =:")
        raise DeviceError(f"{option} must be {', '.join(names)} or cuda:N, got {value!r}")
    return value


def check_device(value: str, spelled: str = "--device {}", *, auto: bool = False,
                 gpu_names: tuple[str, ...] = ()) -> str:
    """`value` checked against this machine: the name to give torch ("auto" resolved to cuda or cpu).

    `spelled` writes a device as the caller's user does ("--device {}", "run.device={}",
    "device: {}"), for the message; `auto` accepts "auto"; `gpu_names` are further names that
    need a CUDA GPU (export check's "tensorrt"). DeviceError names the valid names, or what this
    machine has and what to pass instead.
    """
    parse_device(value, spelled, auto=auto, gpu_names=gpu_names)
    if value == "cpu":
        return value
    gpus = cuda_devices()
    if value == "auto":
        return "cuda" if gpus else "cpu"
    asked = spelled.format(value)
    if not gpus:
        instead = spelled.format("cpu") + (f" (or {spelled.format('auto')})" if auto else "")
        raise DeviceError(f"{asked} asks for a CUDA GPU, but this machine has no CUDA device (available: cpu); "
                          f"use {instead}")
    index = _NAME.fullmatch(value).group(2) if value not in gpu_names else None
    if index is not None and int(index) >= len(gpus):
        raise DeviceError(f"{asked} asks for CUDA device {index}, but this machine has {len(gpus)} "
                          f"({', '.join(gpus)}); use {spelled.format(gpus[0])} or another of them, or "
                          f"{spelled.format('cpu')}")
    return value


@contextmanager
def placing(device: str, spelled: str = "--device {}") -> Iterator[None]:
    """Around putting a model on `device`: running out of GPU memory there is a DeviceError that
    says so and what to do, instead of torch's traceback."""
    import torch

    try:
        yield
    except torch.cuda.OutOfMemoryError as exc:  # torch.OutOfMemoryError from torch 2.5 on; the same class
        first_line = str(exc).splitlines()[0] if str(exc) else "out of memory"
        raise DeviceError(f"{spelled.format(device)}: out of GPU memory while loading the model ({first_line}); "
                          f"free the GPU (nvidia-smi lists what holds it), use a smaller model or another GPU, "
                          f"or {spelled.format('cpu')}") from exc
