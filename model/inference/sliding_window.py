"""Sliding-window inference, as three reusable parts: tile, run, merge.

    crops, anchors = tile_windows(image, window, stride)       # one image -> N windows
    logits = run_windows(forward, crops, batch_size)           # any WindowForward, in batches
    full = merge_windows(logits, anchors, image.shape[-2:])    # N windows -> one image

`Predictor`, evaluation, the export parity checks and the service (which batches windows of
many requests together) all use these same functions. Windows follow the official code:
anchors every `stride` pixels, the last window flush with the bottom/right border, overlapping
logits summed and divided by how many windows covered each pixel (`blend="uniform"`, the
paper's protocol). `blend="linear"` or `"gaussian"` instead weights each window's pixels down
toward its borders, so the answer does not jump where a window's coverage ends: on the demo
models it removes most of the seam and gains 0.02-1.4 mIoU (docs/benchmarks.md: Seams).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from model.inference.cost import upscaled_size
from model.inference.forward import WindowForward

# The merge part lives with the merge of patch-grid logits (merge.py): one averaging loop.
from model.inference.merge import BLENDS, Anchor, check_blend, merge_windows, window_weights

__all__ = ["BLENDS", "Anchor", "Window", "check_blend", "merge_windows", "resize_to_window", "run_windows",
           "tile_windows", "window_anchors", "window_weights"]

Window = int | tuple[int, int]  # a square side, or (height, width)


def _sides(window: Window) -> tuple[int, int]:
    return (window, window) if isinstance(window, int) else (int(window[0]), int(window[1]))


def window_anchors(height: int, width: int, window: Window, stride: int) -> list[Anchor]:
    """Top-left corners of the windows covering a height×width image (both sides >= window)."""
    win_h, win_w = _sides(window)
    if height < win_h or width < win_w:
        raise ValueError(
            f"image {height}×{width} is smaller than the window {win_h}×{win_w}; resize it first "
            "(see resize_to_window)"
        )
    # A stride longer than the window would leave gaps (a side the window spans whole has one position).
    for size, win in ((height, win_h), (width, win_w)):
        if stride < 1 or (size > win and stride > win):
            raise ValueError(f"stride must be in 1..{win} (the window), got {stride}")

    def starts(size: int, win: int) -> list[int]:
        return [s for s in range(0, size, stride) if s < size - win] + [size - win]

    return [(top, left) for top in starts(height, win_h) for left in starts(width, win_w)]


def resize_to_window(image: torch.Tensor, window: int) -> torch.Tensor:
    """Upscale B×C×H×W so that its short side is at least `window` (official behaviour).

    Images already large enough are returned unchanged; the aspect ratio is kept.
    """
    height, width = image.shape[-2:]
    size = upscaled_size(height, width, window)
    if size == (height, width):
        return image
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False)


def tile_windows(image: torch.Tensor, window: Window, stride: int) -> tuple[torch.Tensor, list[Anchor]]:
    """Cut one image into windows.

    Args:
        image: 3×H×W (or 1×3×H×W) float, H and W >= window.
        window: a square side, or (height, width).
    Returns:
        (crops, anchors): crops N×3×h×w (views stacked into a new tensor), anchors the
        (top, left) of each crop.
    """
    if image.dim() == 4:
        if image.shape[0] != 1:
            raise ValueError("tile_windows takes one image; loop over a batch")
        image = image[0]
    height, width = image.shape[-2:]
    anchors = window_anchors(height, width, window, stride)
    win_h, win_w = _sides(window)
    crops = torch.stack([image[:, t : t + win_h, l : l + win_w] for t, l in anchors])
    return crops, anchors


def run_windows(forward: WindowForward, crops: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Run N×3×w×w crops through `forward` (a model, an ONNX Runtime runner...) in batches.

    Returns N×C×w×w float32 logits on the crops' device.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    outputs = [forward(crops[i : i + batch_size]).float() for i in range(0, len(crops), batch_size)]
    return torch.cat(outputs)
