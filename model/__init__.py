"""Segmenter: Transformer for Semantic Segmentation (Strudel et al., ICCV 2021).

The public API: the names below, and the public modules `model.inference` (sliding-window
parts, attention maps), `model.outputs` (rendering), `model.options`, `model.checkpoints`,
`model.zoo`, `model.scores` (mIoU), `model.class_sets`, `model.metadata`, `model.variants`,
`model.visualization`, `model.annotations`, `model.resolve`, `model.devices` (device and
precision names, checked against this machine). `training/`, `export/`, `service/` and
`jobs/` import nothing else (an import-linter contract).

    from model import load_segmenter, read_image, Predictor, from_pretrained
    net = load_segmenter("path/to/checkpoint")   # our folder, an export's, official .pth, mmseg .pth, zoo:NAME
    logits = net(images)                         # B×3×H×W normalized -> B×C×H×W logits
    pred = Predictor(net, device="cpu")          # window size/stride from the checkpoint
    mask = pred.predict(read_image("photo.jpg")) # H×W class ids
    pred = from_pretrained("ade20k-seg-t-mask-16")  # by name: fetched once, then from the cache

Inside: `modeling/` (the nn.Modules), `checkpoints/` (every weights format), `inference/`
(image reading, sliding windows, the Predictor), `outputs.py` (every output a segmentation is
rendered as), `options.py` (the one options type), `resolve.py` (the one checkpoint resolver), and
beside them the config, the variant registry, the metadata that travels with the weights, and
pictures of masks.
"""

from importlib import import_module as _import_module
from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the names below, for readers and linters; at run time each is imported on first use
    from model.checkpoints import CheckpointError, load_pretrained_encoder, save_checkpoint
    from model.config import SegmenterConfig
    from model.errors import SegmenterError
    from model.inference import (
        DEFAULT_MAX_WINDOWS,
        IMAGE_SUFFIXES,
        PRECISIONS,
        Cancelled,
        ImageError,
        Predictor,
        Scale,
        TooManyWindows,
        WindowPlan,
        image_size,
        list_images,
        parse_scale,
        read_image,
    )
    from model.metadata import ModelMetadata
    from model.modeling import Segmenter
    from model.options import SegmentOptions
    from model.resolve import convert_checkpoint, from_pretrained, load_segmenter
    from model.variants import build_segmenter, get_variant, list_variants, variant_config
    from model.zoo import ZooError

# Where each public name lives. Imported when first used (PEP 562), so `import model` costs no torch:
# `segmenter --help` and the parsers of every command stay fast (importing torch takes seconds).
_HOMES = {
    "model.checkpoints": ("CheckpointError", "load_pretrained_encoder", "save_checkpoint"),
    "model.config": ("SegmenterConfig",),
    "model.errors": ("SegmenterError",),
    "model.inference": ("DEFAULT_MAX_WINDOWS", "IMAGE_SUFFIXES", "PRECISIONS", "Cancelled", "ImageError", "Predictor",
                        "Scale", "TooManyWindows", "WindowPlan", "image_size", "list_images", "parse_scale",
                        "read_image"),
    "model.metadata": ("ModelMetadata",),
    "model.modeling": ("Segmenter",),
    "model.options": ("SegmentOptions",),
    "model.resolve": ("convert_checkpoint", "from_pretrained", "load_segmenter"),
    "model.variants": ("build_segmenter", "get_variant", "list_variants", "variant_config"),
    "model.zoo": ("ZooError",),
}
_HOME = {name: module for module, names in _HOMES.items() for name in names}
_PUBLIC_MODULES = ("inference", "outputs", "options", "checkpoints", "zoo", "scores", "class_sets", "metadata",
                   "variants", "visualization", "annotations", "resolve", "devices")


def __getattr__(name: str):
    if name in _HOME:
        value = getattr(_import_module(_HOME[name]), name)
    elif name in _PUBLIC_MODULES:  # `import model; model.zoo.fetch(...)`, as when __init__ imported them all
        value = _import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # once: later look-ups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME, *_PUBLIC_MODULES})


try:
    __version__ = _version("segmenter")  # one version, pyproject.toml's, for the CLI and the service
except _PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [  # 29 names; everything else lives in the public modules named above
    # the model and its description
    "Segmenter", "SegmenterConfig", "ModelMetadata", "build_segmenter", "get_variant", "list_variants",
    "variant_config",
    # weights
    "load_segmenter", "from_pretrained", "save_checkpoint", "convert_checkpoint", "load_pretrained_encoder",
    # inference
    "Predictor", "SegmentOptions", "WindowPlan", "read_image", "image_size", "list_images", "parse_scale", "Scale",
    "PRECISIONS", "IMAGE_SUFFIXES", "DEFAULT_MAX_WINDOWS",
    # what goes wrong, by whose doing
    "SegmenterError", "CheckpointError", "ImageError", "TooManyWindows", "Cancelled", "ZooError",
]
