"""Loading state dicts into modules, with errors that name the problem and the fix."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from model.checkpoints.errors import CheckpointError


def _preview(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def load_weights_strict(module: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Copy `state` into `module`, requiring exactly the module's keys and shapes.

    Raises CheckpointError listing missing keys, unexpected keys and shape mismatches, so a
    checkpoint for another architecture is never half-loaded silently.
    """
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_preview(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_preview(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatch: {_preview(mismatched, 4)}")
    if problems:
        raise CheckpointError(
            f"{source} does not match the architecture it declares ({'; '.join(problems)}). "
            "Check that the checkpoint and its config/variant file belong together."
        )
    module.load_state_dict(dict(state), strict=True)


def torch_load_safely(path: Path) -> dict:
    """torch.load with weights_only=True: tensors and plain values only, never pickled code."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"no file at {path}") from None
    except Exception as exc:  # noqa: BLE001 - re-raised with the reason and the fix
        raise CheckpointError(
            f"{path} cannot be read as a weights-only PyTorch file ({type(exc).__name__}: {exc}). "
            "Files that need arbitrary pickled objects are refused for safety; re-save the "
            "state_dict with torch.save(model.state_dict(), path)."
        ) from exc
