"""Everything needed to continue a run as if it never stopped, saved beside the weights.

`train_state.pt` (inside the checkpoint folder, written in the same atomic step) holds the
optimizer, the AMP scaler, the iteration, the best mIoU, every RNG state (torch, CUDA, numpy,
python) and the number of processes. The data loader's position needs no file of its own: it
is iteration × run.accumulation micro-batches into a stream seeded by (seed, epoch, index)
(training/batches.py). Only tensors and plain values: read back with weights_only=True.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATE_FILE = "train_state.pt"


def rng_state(device: torch.device) -> dict[str, Any]:
    """This process's RNG states. Of CUDA's, only `device`'s: under torchrun each process advances
    its own GPU's generator (every process is seeded alike, so rank 0's serves them all)."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
    }


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if isinstance(state["cuda"], torch.Tensor) and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
    elif state["cuda"] and device.type == "cuda":  # saved by earlier versions: a list, every GPU's
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


def pack_state(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None, iteration: int,
               best_miou: float, world_size: int, device: torch.device) -> bytes:
    buffer = io.BytesIO()
    torch.save({"optimizer": optimizer.state_dict(), "scaler": scaler.state_dict() if scaler else None,
                "iteration": iteration, "best_miou": best_miou, "rng": rng_state(device), "world_size": world_size},
               buffer)
    return buffer.getvalue()


def load_state(folder: Path) -> dict[str, Any]:
    path = folder / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {folder} is a model checkpoint, not a resumable training state")
    return torch.load(path, map_location="cpu", weights_only=True)
