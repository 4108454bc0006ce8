"""Segmenter: Transformer for Semantic Segmentation (Strudel et al., ICCV 2021).

The public API. `training/`, `export/` and `service/` import from here only.

    from model import load_segmenter, read_image, Predictor, from_pretrained
    net = load_segmenter("path/to/checkpoint")   # our folder, an export's, official .pth, mmseg .pth, zoo:NAME
    logits = net(images)                         # B×3×H×W normalized -> B×C×H×W logits
    pred = Predictor(net, device="cpu")          # window size/stride from the checkpoint
    mask = pred.predict(read_image("photo.jpg")) # H×W class ids
    pred = from_pretrained("ade20k-seg-t-mask-16")  # by name: fetched once, then from the cache

Inside: `modeling/` (the nn.Modules), `checkpoints/` (every weights format), `inference/`
(image reading, sliding windows, the Predictor), `outputs.py` (every output a segmentation is
rendered as: a public module, `from model.outputs import render`), and beside them the config,
the variant registry, the metadata that travels with the weights, and pictures of masks.
"""

from importlib.metadata import PackageNotFoundError, version

from model.annotations import class_annotations, coco_document, coco_rle, polygons, rasterize
from model.checkpoints import (
    CheckpointError,
    convert_checkpoint,
    file_sha256,
    load_pretrained_encoder,
    read_checkpoint_description,
    save_checkpoint,
)
from model.class_sets import DATASETS, ClassSet, default_palette, get_class_set
from model.config import SegmenterConfig
from model.errors import SegmenterError
from model.inference import (
    DEFAULT_MAX_WINDOWS,
    IMAGE_FORMATS,
    IMAGE_SUFFIXES,
    MULTISCALE_SCALES,
    PRECISIONS,
    AttentionMaps,
    Cancelled,
    ImageAttention,
    ImageError,
    Predictor,
    Scale,
    TooManyWindows,
    TorchForward,
    View,
    WindowCost,
    WindowForward,
    WindowPlan,
    attention_maps,
    attention_picture,
    class_id_dtype,
    estimate_cost,
    image_attention,
    image_size,
    list_images,
    merge_windows,
    parse_scale,
    plan_windows,
    precision_dtype,
    read_image,
    resize_to_window,
    run_windows,
    tile_windows,
    window_anchors,
)
from model.metadata import NORMALIZATIONS, ModelMetadata, normalization_stats
from model.metrics import IGNORE_INDEX, ConfusionMatrix, SegmentationScores
from model.modeling import Segmenter, resize_pos_embed
from model.registry import Variant, build_segmenter, get_variant, list_variants, variant_config
from model.resolve import ZOO_PREFIX, from_pretrained, load_segmenter, resolve_checkpoint
from model.visualization import (
    colorize,
    draw_legend,
    heatmap,
    heatmap_grid,
    mask_to_image,
    overlay,
    transparent_classes,
)
from model.zoo import ZooEntry, ZooError, default_cache_dir, fetch, load_registry

try:
    __version__ = version("segmenter")  # one version, pyproject.toml's, for the CLI and the service
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "IGNORE_INDEX",
    "ConfusionMatrix",
    "SegmentationScores",
    "AttentionMaps",
    "ImageAttention",
    "attention_maps",
    "attention_picture",
    "image_attention",
    "DEFAULT_MAX_WINDOWS",
    "DATASETS",
    "IMAGE_FORMATS",
    "IMAGE_SUFFIXES",
    "MULTISCALE_SCALES",
    "NORMALIZATIONS",
    "PRECISIONS",
    "Cancelled",
    "CheckpointError",
    "ClassSet",
    "ImageError",
    "ModelMetadata",
    "Predictor",
    "Scale",
    "Segmenter",
    "SegmenterConfig",
    "SegmenterError",
    "TooManyWindows",
    "TorchForward",
    "Variant",
    "View",
    "WindowCost",
    "WindowForward",
    "WindowPlan",
    "ZooEntry",
    "ZooError",
    "build_segmenter",
    "class_annotations",
    "class_id_dtype",
    "coco_document",
    "coco_rle",
    "colorize",
    "convert_checkpoint",
    "default_cache_dir",
    "default_palette",
    "draw_legend",
    "estimate_cost",
    "fetch",
    "file_sha256",
    "get_class_set",
    "get_variant",
    "heatmap",
    "heatmap_grid",
    "image_size",
    "list_images",
    "list_variants",
    "load_registry",
    "load_pretrained_encoder",
    "load_segmenter",
    "from_pretrained",
    "resolve_checkpoint",
    "ZOO_PREFIX",
    "mask_to_image",
    "merge_windows",
    "normalization_stats",
    "overlay",
    "parse_scale",
    "plan_windows",
    "polygons",
    "precision_dtype",
    "rasterize",
    "read_checkpoint_description",
    "read_image",
    "resize_pos_embed",
    "resize_to_window",
    "run_windows",
    "save_checkpoint",
    "tile_windows",
    "variant_config",
    "window_anchors",
    "transparent_classes",
]
