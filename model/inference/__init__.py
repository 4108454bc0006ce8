"""Running a model on images: reading them, planning windows, any backend, merging back.

images.py (the one image reader), cost.py (windows and memory, known from the size alone),
forward.py (the WindowForward contract and its torch implementation), sliding_window.py
(tile / run / merge), window_logits.py (window logits on the patch grid, and the step that makes
pixels of them), merge.py (window logits back into an image's answer, a strip of rows at a time),
grid_argmax.py (one view's class ids from the patch grid, only the classes that can win),
window_plan.py (every window of one image, runnable by anyone), predictor.py (numpy in, numpy out).
"""

from importlib import import_module as _import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the names below, for readers and linters; at run time each is imported on first use
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
    from model.inference.sliding_window import (
        BLENDS,
        merge_windows,
        resize_to_window,
        run_windows,
        tile_windows,
        window_anchors,
    )
    from model.inference.window_logits import LogitsGrid, upsample_window_logits
    from model.inference.window_plan import Cancelled, View, WindowPlan, plan_windows

# Where each name lives, imported on first use (PEP 562) as in model/__init__.py: constants such as
# DEFAULT_MAX_WINDOWS cost no torch import, for command-line parsers.
_HOMES = {
    "attention": ("AttentionMaps", "ImageAttention", "attention_maps", "attention_picture", "image_attention"),
    "cost": ("DEFAULT_MAX_WINDOWS", "TooManyWindows", "WindowCost", "estimate_cost"),
    "forward": ("PRECISIONS", "TorchForward", "WindowForward", "precision_dtype"),
    "images": ("IMAGE_FORMATS", "IMAGE_SUFFIXES", "ImageError", "image_size", "list_images", "read_image"),
    "predictor": ("MAX_SCALE", "MULTISCALE_SCALES", "Predictor", "Scale", "class_id_dtype", "parse_scale"),
    "merge": ("BLENDS", "merge_windows"),
    "sliding_window": ("resize_to_window", "run_windows", "tile_windows", "window_anchors"),
    "window_logits": ("LogitsGrid", "upsample_window_logits"),
    "window_plan": ("Cancelled", "View", "WindowPlan", "plan_windows"),
}
_HOME = {name: module for module, names in _HOMES.items() for name in names}


_SUBMODULES = ("attention", "cost", "forward", "grid_argmax", "images", "merge", "predictor", "resize",
               "sliding_window", "window_logits", "window_plan")


def __getattr__(name: str):
    if name in _HOME:
        value = getattr(_import_module(f"{__name__}.{_HOME[name]}"), name)
    elif name in _SUBMODULES:  # `import model.inference; model.inference.merge`, as when all were imported
        value = _import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME, *_SUBMODULES})


__all__ = [
    "BLENDS", "DEFAULT_MAX_WINDOWS", "LogitsGrid", "upsample_window_logits",
    "IMAGE_FORMATS", "MAX_SCALE", "IMAGE_SUFFIXES", "MULTISCALE_SCALES", "PRECISIONS",
    "AttentionMaps",
    "ImageAttention", "attention_picture", "image_attention",
    "Cancelled", "ImageError", "Predictor", "Scale", "TooManyWindows", "TorchForward", "View", "WindowCost",
    "WindowForward", "WindowPlan", "attention_maps", "class_id_dtype", "estimate_cost", "image_size", "list_images",
    "merge_windows", "parse_scale", "plan_windows", "precision_dtype", "read_image", "resize_to_window",
    "run_windows", "tile_windows", "window_anchors",
]
