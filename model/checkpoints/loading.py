"""`load_local_checkpoint`: every checkpoint format on this machine's disk (model/resolve.py adds
exported folders and `zoo:NAME`, and is what callers use: `model.load_segmenter`)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

from model.checkpoints.errors import CheckpointError
from model.checkpoints.folder import META_FILE, WEIGHTS_FILE, load_checkpoint
from model.checkpoints.mmseg import is_mmseg_state, load_mmseg_checkpoint
from model.checkpoints.official import VARIANT_FILE, load_official_checkpoint
from model.checkpoints.restricted_pickle import load_restricted
from model.checkpoints.state_dict import torch_load_safely
from model.modeling.segmenter import Segmenter


def load_local_checkpoint(path: str | os.PathLike) -> Segmenter:
    """Load a Segmenter in eval mode, with `.metadata` (classes, normalization, window) set.

    Accepts:
        - our checkpoint folder (`segmenter.json` + `model.safetensors`), or either file in it;
        - an official release `checkpoint.pth` (with `variant.yml` beside it), or its folder;
        - an MMSegmentation Segmenter checkpoint `.pth` (architecture read off its tensors): a
          model-zoo file, a published 1.x file or an mmengine Runner checkpoint (`iter_N.pth`).
    Raises:
        CheckpointError naming what is missing or wrong.
    """
    p = Path(path)
    if not p.exists():
        raise CheckpointError(
            f"no checkpoint at {p}; pass a checkpoint folder (segmenter.json + model.safetensors) "
            "or an official checkpoint.pth with its variant.yml"
        )
    if p.is_file() and p.name in (META_FILE, WEIGHTS_FILE):
        p = p.parent
    if p.is_dir():
        if (p / META_FILE).is_file():
            return load_checkpoint(p)
        if (p / "checkpoint.pth").is_file():
            return _load_pth(p / "checkpoint.pth")
        runs = [p / name for name in ("best", "last") if (p / name / META_FILE).is_file()]
        if runs:
            raise CheckpointError(f"{p} is a training run folder, not a checkpoint; pass "
                                  + " or ".join(str(r) for r in runs) + " (best: the best validation mIoU)")
        raise CheckpointError(
            f"{p} is a folder without {META_FILE} (our format) or checkpoint.pth (official format)"
        )
    if p.suffix in (".pth", ".pt"):
        return _load_pth(p)
    raise CheckpointError(
        f"{p} is not a checkpoint this package reads: expected a folder with {META_FILE}, "
        f"or an official .pth with {VARIANT_FILE} beside it"
    )


def _load_pth(path: Path) -> Segmenter:
    """An official checkpoint when variant.yml is beside it, else an mmseg one if its keys say so.

    Files `weights_only=True` refuses (mmengine Runner checkpoints hold mmengine objects) are
    read with the restricted unpickler: their tensors, never their code.
    """
    if (path.parent / VARIANT_FILE).is_file():
        return load_official_checkpoint(path)
    try:
        data = torch_load_safely(path)
    except CheckpointError as refused:
        try:
            data = load_restricted(path)
        except (ValueError, pickle.UnpicklingError, KeyError, EOFError):
            raise refused from None
        if not is_mmseg_state(data):
            raise refused from None
    if is_mmseg_state(data):
        return load_mmseg_checkpoint(data, path)
    return load_official_checkpoint(path, data)  # raises: variant.yml is missing
