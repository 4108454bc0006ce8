"""Running a model on images: reading them, planning windows, any backend, merging back.

images.py (the one image reader), cost.py (windows and memory, known from the size alone),
forward.py (the WindowForward contract and its torch implementation), sliding_window.py
(tile / run / merge), window_plan.py (every window of one image, runnable by anyone),
predictor.py (numpy in, numpy out).
"""

from model.inference.attention import (
    AttentionMaps,
    ImageAttention,
    attention_maps,
    attention_picture,
    image_attention,
)
from model.inference.cost import DEFAULT_MAX_WINDOWS, TooManyWindows, WindowCost, estimate_cost
from model.inference.forward import PRECISIONS, TorchForward, WindowForward, precision_dtype
from model.inference.images import IMAGE_FORMATS, IMAGE_SUFFIXES, ImageError, image_size, list_images, read_image
from model.inference.predictor import MAX_SCALE, MULTISCALE_SCALES, Predictor, Scale, class_id_dtype, parse_scale
from model.inference.sliding_window import merge_windows, resize_to_window, run_windows, tile_windows, window_anchors
from model.inference.window_plan import Cancelled, View, WindowPlan, plan_windows

__all__ = [
    "DEFAULT_MAX_WINDOWS", "IMAGE_FORMATS", "MAX_SCALE", "IMAGE_SUFFIXES", "MULTISCALE_SCALES", "PRECISIONS",
    "AttentionMaps",
    "ImageAttention", "attention_picture", "image_attention",
    "Cancelled", "ImageError", "Predictor", "Scale", "TooManyWindows", "TorchForward", "View", "WindowCost",
    "WindowForward", "WindowPlan", "attention_maps", "class_id_dtype", "estimate_cost", "image_size", "list_images",
    "merge_windows", "parse_scale", "plan_windows", "precision_dtype", "read_image", "resize_to_window",
    "run_windows", "tile_windows", "window_anchors",
]
