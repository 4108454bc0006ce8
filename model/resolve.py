"""One checkpoint resolver for every entry point: the CLI, the Python API, the service, Ray, export.

    load_segmenter("runs/x/best")                  # our folder
    load_segmenter("models/demo-seg-t16-int8")     # an exported folder: the PyTorch weights behind it
    load_segmenter("checkpoint.pth")               # an official release (variant.yml beside it)
    load_segmenter("iter_160000.pth")              # an MMSegmentation file
    load_segmenter("zoo:ade20k-seg-b-mask-16")     # trained weights by name: fetched and verified once,
                                                   # then read from the cache (offline)
    predictor = from_pretrained("zoo:ade20k-seg-t-mask-16", device="cuda")   # the one-liner
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from model.checkpoints import load_segmenter as load_checkpoint_file
from model.inference import Predictor
from model.modeling import Segmenter
from model.zoo import fetch

ZOO_PREFIX = "zoo:"  # zoo:NAME: an entry of the weights registry (`segmenter weights list`)


def resolve_checkpoint(source: str | os.PathLike) -> Path:
    """The local path of a checkpoint: `zoo:NAME` fetched into the cache (SEGMENTER_CACHE_DIR,
    SEGMENTER_WEIGHTS_MIRROR, SEGMENTER_WEIGHTS_REGISTRY) unless it is there already; anything
    else as given."""
    text = str(source)
    if text.startswith(ZOO_PREFIX):
        return fetch(text[len(ZOO_PREFIX):])
    return Path(source)


def load_segmenter(source: str | os.PathLike) -> Segmenter:
    """A Segmenter in eval mode with `.metadata` set, from any checkpoint `resolve_checkpoint` and
    the formats of model/checkpoints read. CheckpointError (ZooError for names) says what is wrong."""
    return load_checkpoint_file(resolve_checkpoint(source))


def from_pretrained(source: str | os.PathLike, **predictor_options: Any) -> Predictor:
    """A ready Predictor (`device=`, `precision=`, ... as Predictor takes them) for any checkpoint
    `load_segmenter` reads; a bare registry name works too (`from_pretrained("ade20k-seg-b-mask-16")`)."""
    text = str(source)
    if not text.startswith(ZOO_PREFIX) and not Path(text).exists() and "/" not in text and "\\" not in text:
        from model.zoo import load_registry
        from model.zoo.fetch import extra_registries

        if text in load_registry(extra_registries()):
            source = ZOO_PREFIX + text
    return Predictor(load_segmenter(source), **predictor_options)
