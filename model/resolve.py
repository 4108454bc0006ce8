"""One checkpoint resolver for every entry point: the CLI, the Python API, the service, Ray, export.

    load_segmenter("runs/x/best")                  # our folder
    load_segmenter("models/demo-seg-t16-int8")     # an exported folder: the PyTorch weights behind it
    load_segmenter("checkpoint.pth")               # an official release (variant.yml beside it)
    load_segmenter("iter_160000.pth")              # an MMSegmentation file
    load_segmenter("zoo:ade20k-seg-b-mask-16")     # trained weights by name: fetched and verified once,
                                                   # then read from the cache (offline)
    predictor = from_pretrained("ade20k-seg-t-mask-16", device="cuda")   # the one-liner

`resolve_checkpoint` turns each into a checkpoint on this machine's disk; `model.checkpoints`
reads those (`load_local_checkpoint`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from model.inference import Predictor
    from model.modeling import Segmenter

# The readers (torch, timm) are imported by the functions that need them: this module's names are
# public (model.load_segmenter, EXPORTED_FORMAT) and importing it must stay cheap.
ZOO_PREFIX = "zoo:"  # zoo:NAME: an entry of the weights registry (`segmenter weights list`)
EXPORTED_FORMAT = "segmenter-onnx"  # the description `segmenter export onnx` writes (export/artifact.py)


def exported_source(folder: Path) -> str | None:
    """The checkpoint an exported folder was made from (`onnx.source`), or None for any other path."""
    from model.checkpoints.folder import META_FILE

    try:
        description = json.loads((folder / META_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(description, dict) or description.get("format") != EXPORTED_FORMAT:
        return None
    return str(description.get("onnx", {}).get("source", ""))


def resolve_checkpoint(source: str | os.PathLike) -> Path:
    """The checkpoint on this machine's disk that `source` names.

    `zoo:NAME`: fetched into the cache unless it is there (SEGMENTER_CACHE_DIR,
    SEGMENTER_WEIGHTS_MIRROR, SEGMENTER_WEIGHTS_REGISTRY). An exported folder: the checkpoint it
    was exported from (recorded relative to it, or as given, or a zoo name). Anything else as given.
    """
    from model.checkpoints import CheckpointError
    from model.zoo import fetch

    text = str(source)
    if text.startswith(ZOO_PREFIX):
        return fetch(text[len(ZOO_PREFIX):])
    path = Path(source)
    recorded = exported_source(path) if path.is_dir() else None
    if recorded is None:
        return path
    if recorded.startswith(ZOO_PREFIX):
        return resolve_checkpoint(recorded)
    for candidate in (path / recorded, Path(recorded)) if recorded else ():
        if candidate.exists() and candidate.resolve() != path.resolve():
            return resolve_checkpoint(candidate)
    raise CheckpointError(f"{path} is an exported graph whose PyTorch weights (needed here) are not beside it, "
                          f"and the checkpoint it was exported from ({recorded or 'not recorded'}) is not found; "
                          "pass that checkpoint instead")


def load_segmenter(source: str | os.PathLike) -> Segmenter:
    """A Segmenter in eval mode with `.metadata` set, from any checkpoint `resolve_checkpoint`
    names. CheckpointError (ZooError for names) says what is wrong."""
    from model.checkpoints import load_local_checkpoint

    return load_local_checkpoint(resolve_checkpoint(source))


def convert_checkpoint(source: str | os.PathLike, out: str | os.PathLike, **provenance: Any) -> Segmenter:
    """Any checkpoint `load_segmenter` reads, saved as our folder at `out` with its provenance."""
    from model.checkpoints import convert_local_checkpoint

    return convert_local_checkpoint(resolve_checkpoint(source), out, **provenance)


def from_pretrained(source: str | os.PathLike, **predictor_options: Any) -> Predictor:
    """A ready Predictor (`device=`, `precision=`, ... as Predictor takes them) for any checkpoint
    `load_segmenter` reads; a bare registry name works too (`from_pretrained("ade20k-seg-b-mask-16")`)."""
    from model.inference import Predictor

    text = str(source)
    if not text.startswith(ZOO_PREFIX) and not Path(text).exists() and "/" not in text and "\\" not in text:
        from model.zoo import load_registry
        from model.zoo.fetch import extra_registries

        if text in load_registry(extra_registries()):
            source = ZOO_PREFIX + text
    return Predictor(load_segmenter(source), **predictor_options)
