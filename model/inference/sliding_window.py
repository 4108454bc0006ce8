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

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from model.inference.cost import upscaled_size
from model.inference.forward import WindowForward

Anchor = tuple[int, int]  # (top, left) of a window in the image
Window = int | tuple[int, int]  # a square side, or (height, width)
# How overlapping windows are averaged: uniformly (the authors' and mmseg's protocol), or
# weighted by a tent (linear) or a Gaussian (sigma = side/4, as nnU-Net and MONAI) that fades
# each window toward its borders.
BLENDS = ("uniform", "linear", "gaussian")


def check_blend(blend: str) -> str:
    """`blend` if it is one of BLENDS; ValueError naming it and the valid ones otherwise."""
    if blend not in BLENDS:
        raise ValueError(f"unknown blend {blend!r}; use one of {', '.join(BLENDS)} (uniform: the paper's protocol)")
    return blend


def window_weights(blend: str, height: int, width: int) -> torch.Tensor | None:
    """h×w float32 weight of each pixel of a window when blending; None for the uniform mean."""
    if check_blend(blend) == "uniform":
        return None

    def profile(n: int) -> torch.Tensor:
        centre = torch.arange(n, dtype=torch.float64) + 0.5  # pixel centres, 0.5..n-0.5
        if blend == "linear":  # 1 in the middle, 1/n at the outermost pixels: never 0, so a
            return torch.minimum(centre, n - centre) / (n / 2)  # pixel one window covers keeps it
        return torch.exp(-0.5 * ((centre - n / 2) / (n / 4)) ** 2)

    return (profile(height)[:, None] * profile(width)[None, :]).float()


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


def merge_windows(
    logits: torch.Tensor, anchors: Sequence[Anchor], image_size: tuple[int, int], blend: str = "uniform"
) -> torch.Tensor:
    """Average overlapping window logits back into one C×H×W map.

    Args:
        logits: N×C×h×w float, one per anchor.
        anchors: (top, left) of each window, as from `tile_windows`.
        image_size: (H, W) of the tiled image.
        blend: "uniform" (the paper's), "linear" or "gaussian" (`window_weights`).
    Returns:
        C×H×W float32: per pixel, the mean (weighted by `blend`) of the logits of every window
        covering it.
    """
    weights = window_weights(blend, *logits.shape[-2:])
    if len(logits) != len(anchors):
        raise ValueError(f"{len(logits)} window logits for {len(anchors)} anchors")
    num_classes, (win_h, win_w) = logits.shape[1], logits.shape[-2:]
    height, width = image_size
    total = logits.new_zeros((num_classes, height, width), dtype=torch.float32)
    count = logits.new_zeros((1, height, width), dtype=torch.float32)
    if weights is not None:
        weights = weights.to(logits.device)
    for crop, (top, left) in zip(logits, anchors, strict=True):
        if weights is None:
            total[:, top : top + win_h, left : left + win_w] += crop
            count[:, top : top + win_h, left : left + win_w] += 1
        else:
            total[:, top : top + win_h, left : left + win_w].addcmul_(crop, weights)  # no temporary
            count[:, top : top + win_h, left : left + win_w] += weights
    if bool((count == 0).any()):
        raise ValueError("the windows do not cover the whole image; anchors and size disagree")
    return total / count
