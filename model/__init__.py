"""Segmenter: Transformer for Semantic Segmentation (Strudel et al., ICCV 2021).

The public API. `training/`, `export/` and `service/` import from here only.

    from model import load_segmenter, Predictor
    net = load_segmenter("path/to/checkpoint")   # our folder, or an official checkpoint.pth
    logits = net(images)                         # B×3×H×W normalized -> B×C×H×W logits
    pred = Predictor(net, device="cpu")          # window size/stride from the checkpoint
    probs = pred.probabilities(rgb)              # H×W×3 uint8 -> C×H×W float32 softmax
    mask = pred.predict(rgb)                     # H×W class ids
"""

from model.checkpoint import read_checkpoint_description, save_checkpoint
from model.class_sets import ClassSet, default_palette, get_class_set
from model.config import SegmenterConfig
from model.encoder import resize_pos_embed
from model.loading import load_segmenter
from model.metadata import NORMALIZATIONS, ModelMetadata, normalization_stats
from model.predictor import MULTISCALE_SCALES, Predictor, class_id_dtype
from model.pretrained import load_pretrained_encoder
from model.registry import Variant, build_segmenter, get_variant, list_variants, variant_config
from model.segmenter import Segmenter
from model.sliding_window import (
    merge_windows,
    resize_to_window,
    run_windows,
    tile_windows,
    window_anchors,
)
from model.visualization import colorize, draw_legend, mask_to_image, overlay
from model.weights import CheckpointError
from model.window_plan import View, WindowPlan, plan_windows

__all__ = [
    "MULTISCALE_SCALES",
    "NORMALIZATIONS",
    "CheckpointError",
    "ClassSet",
    "ModelMetadata",
    "Predictor",
    "Segmenter",
    "SegmenterConfig",
    "Variant",
    "View",
    "WindowPlan",
    "build_segmenter",
    "class_id_dtype",
    "colorize",
    "default_palette",
    "draw_legend",
    "get_class_set",
    "get_variant",
    "list_variants",
    "load_pretrained_encoder",
    "load_segmenter",
    "mask_to_image",
    "merge_windows",
    "normalization_stats",
    "overlay",
    "plan_windows",
    "read_checkpoint_description",
    "resize_pos_embed",
    "resize_to_window",
    "run_windows",
    "save_checkpoint",
    "tile_windows",
    "variant_config",
    "window_anchors",
]
