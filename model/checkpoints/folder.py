"""Our checkpoint format: a folder with safetensors weights and a JSON description.

    CKPT/
      model.safetensors   the Segmenter state_dict (fp32 or as saved), no pickle anywhere
      segmenter.json      {"format": "segmenter", "version": 1, "config": {...}, "metadata": {...}}

`config` is `SegmenterConfig.to_dict()` (the architecture), `metadata` is
`ModelMetadata.to_dict()` (classes, palette, normalization, window, stride, provenance).
Writes are atomic: the folder is written beside the target and renamed into place, so a crash
leaves either the previous checkpoint or the new one, never a mix.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from model.checkpoints.errors import CheckpointError
from model.checkpoints.state_dict import load_weights_strict
from model.config import SegmenterConfig
from model.metadata import ModelMetadata
from model.modeling.segmenter import Segmenter

WEIGHTS_FILE = "model.safetensors"
META_FILE = "segmenter.json"
FORMAT_NAME = "segmenter"
FORMAT_VERSION = 1


def _apply_umask(folder: Path) -> None:
    """Give the folder and its files the permissions a plain mkdir/open would have."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for f in folder.iterdir():
        f.chmod(0o666 & ~umask)


def save_checkpoint(net: Segmenter, path: str | os.PathLike, metadata: ModelMetadata | None = None,
                    extra_files: Mapping[str, bytes] | None = None,
                    previous_to: str | os.PathLike | None = None) -> Path:
    """Write `net` (and its metadata) to the folder `path`, replacing it atomically.

    Args:
        net: the model; its `metadata` is used when `metadata` is not given.
        path: target folder.
        metadata: classes, normalization, window... (required if `net.metadata` is None).
        extra_files: more files for the folder (e.g. a training state), written in the same
            atomic step so they always match the weights beside them.
        previous_to: where the folder being replaced goes (renamed, not copied), instead of
            being deleted: a crash at any point then leaves a whole checkpoint at `path` or at
            `previous_to`. Must not exist yet.
    Returns:
        The folder written.
    """
    metadata = metadata or net.metadata
    if metadata is None:
        raise ValueError("save_checkpoint needs metadata: pass metadata= or set net.metadata")
    if metadata.num_classes != net.num_classes:
        raise ValueError(
            f"metadata names {metadata.num_classes} classes but the model outputs {net.num_classes}"
        )
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if previous_to is not None and Path(previous_to).exists():
        raise FileExistsError(f"{previous_to} already exists; the checkpoint {target} replaces would overwrite it")
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        state = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
        save_file(state, tmp / WEIGHTS_FILE, metadata={"format": FORMAT_NAME})
        description = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "config": net.config.to_dict(),
            "metadata": metadata.to_dict(),
        }
        (tmp / META_FILE).write_text(json.dumps(description, indent=2) + "\n")
        for name, content in (extra_files or {}).items():
            if name in (WEIGHTS_FILE, META_FILE) or "/" in name:
                raise ValueError(f"extra file name {name!r} is reserved or not a plain file name")
            (tmp / name).write_bytes(content)
        _apply_umask(tmp)  # mkdtemp makes 0700: others (a service user, a container) could not read it
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if previous_to is not None:
            old = Path(previous_to)
            old.parent.mkdir(parents=True, exist_ok=True)
        else:
            old = target.with_name(f".{target.name}.old")
            if old.exists():
                shutil.rmtree(old)
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        if previous_to is None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def read_checkpoint_description(path: str | os.PathLike) -> tuple[SegmenterConfig, ModelMetadata]:
    """Architecture and metadata of one of our checkpoints, without loading the weights."""
    folder = Path(path)
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise CheckpointError(f"{folder} is not a Segmenter checkpoint folder: {META_FILE} is missing")
    try:
        description = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{meta_path} is not valid JSON ({exc})") from None
    if description.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{meta_path} is not a Segmenter description (format {description.get('format')!r})")
    if description.get("version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{meta_path} has format version {description['version']}, newer than this code "
            f"({FORMAT_VERSION}); upgrade the segmenter package"
        )
    try:
        config = SegmenterConfig.from_dict(description["config"])
        # The patch grid of the model's window logits, as its config says (older folders lack it).
        metadata = ModelMetadata.from_dict(description["metadata"]).replace(
            patch_size=config.patch_size, output_resize=config.output_resize)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{meta_path} is invalid: {exc}") from None
    if metadata.num_classes != config.num_classes:
        raise CheckpointError(
            f"{meta_path}: metadata lists {metadata.num_classes} classes but config.num_classes is {config.num_classes}"
        )
    return config, metadata


def load_checkpoint(path: str | os.PathLike) -> Segmenter:
    """Load one of our checkpoint folders into a Segmenter in eval mode, with `.metadata` set."""
    folder = Path(path)
    if not folder.exists():
        raise CheckpointError(f"no checkpoint at {folder}")
    config, metadata = read_checkpoint_description(folder)
    weights_path = folder / WEIGHTS_FILE
    if not weights_path.is_file():
        raise CheckpointError(f"{folder} has {META_FILE} but no {WEIGHTS_FILE}")
    try:
        state = load_file(weights_path)
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{weights_path} is not a readable safetensors file ({exc})") from None
    net = Segmenter(config, metadata=metadata)
    load_weights_strict(net, state, str(weights_path))
    return net.eval()

