"""What a request will cost, known from the image's size alone, before a pixel is decoded.

Sliding-window inference resizes each view (scale × flip) of an image, upscales it until its
short side reaches the window, and tiles it. The work therefore grows with (window / short side)²
for thin images — a 20000×2 PNG of a few hundred bytes becomes 1 600 000×160 pixels and 10 000
windows of a 160-pixel model — and with the 12 views of multi-scale. `estimate_cost` computes
the windows and the memory from the same geometry `plan_windows` uses, so the service, the CLI
and the Predictor can refuse a request before doing any of that work.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# Windows one request may cut by default: far more than a photo needs at a model's test scale
# (docs/reliability.md: Cost of a request), far less than an elongated or huge image asks for.
DEFAULT_MAX_WINDOWS = 256


class TooManyWindows(ValueError):
    """A request would need more windows than allowed; the message says how many and what to change."""

    def __init__(self, message: str, windows: int, limit: int) -> None:
        super().__init__(message)
        self.windows, self.limit = windows, limit


def rescale_factor(height: int, width: int, test_scale: tuple[int, int] | None) -> float:
    """mmcv's keep-ratio rescale into (long, short): the factor making the image as large as fits
    with long side <= long and short side <= short (up or down); 1 without a test scale."""
    if test_scale is None:
        return 1.0
    long_edge, short_edge = max(test_scale), min(test_scale)
    return min(long_edge / max(height, width), short_edge / min(height, width))


def scaled_size(height: int, width: int, factor: float) -> tuple[int, int]:
    """(H, W) resized by `factor`, rounded as mmcv rounds (at least 1 pixel)."""
    if factor == 1.0:
        return height, width
    return max(1, int(height * factor + 0.5)), max(1, int(width * factor + 0.5))


def upscaled_size(height: int, width: int, window: int) -> tuple[int, int]:
    """(H, W) after upscaling so the short side reaches the window (unchanged if it already does).

    The official code's arithmetic, so sizes agree with it to the pixel.
    """
    if min(height, width) >= window:
        return height, width
    if height < width:
        return window, int(width / height * window)
    return int(height / width * window), window


def view_geometry(height: int, width: int, window: int, factor: float, upscale: bool
                  ) -> tuple[tuple[int, int], tuple[int, int]]:
    """((view H, W), (window H, W)) of one view of an H×W image resized by `factor`.

    `upscale` (official protocol): a view whose short side is below the window is upscaled to
    it, so windows are always window×window. Otherwise (mmseg) such a view runs as smaller
    windows: min(window, side) along each side.
    """
    size = scaled_size(height, width, factor)
    if upscale:
        return upscaled_size(*size, window), (window, window)
    return size, (min(window, size[0]), min(window, size[1]))


def windows_along(size: int, window: int, stride: int) -> int:
    """Window positions along one side of `size` >= window pixels (the last one flush with the end)."""
    return math.ceil((size - window) / stride) + 1


@dataclass(frozen=True)
class WindowCost:
    """The work and memory of one image's sliding-window inference.

    windows: windows over all views; largest_view: (H, W) of the largest tiled view;
    bytes: estimated peak bytes of the request's tensors (decoded and normalized image, window
    crops, window logits, merged views) — where the memory of a request goes; image_size: the
    H×W it was estimated (and checked) for.
    """

    windows: int
    largest_view: tuple[int, int]
    bytes: int
    image_size: tuple[int, int] = (0, 0)  # (H, W) of the image it was estimated for


# What the merge holds besides the window logits: per view, a band of merged rows (at least
# MERGE_MIN_ROWS rows, about MERGE_BYTES), and a strip of output rows. model/inference/merge.py
# merges by these sizes; they live here so that this module stays free of torch.
MERGE_BYTES = 32 * 2**20
MERGE_MIN_ROWS = 16


def estimate_cost(height: int, width: int, window: int, stride: int, num_classes: int,
                  scales: Sequence[float] = (1.0,), flips: int = 1, factor: float = 1.0,
                  upscale: bool = True, patch_size: int | None = None) -> WindowCost:
    """The cost of `plan_windows` on an H×W image (flips: 1 plain, 2 with mirrored views;
    factor: the test-scale rescale made first; upscale: the protocol, see `view_geometry`;
    patch_size: window logits are on the patch grid, 1/p² of the window — None: full size)."""
    base = scaled_size(height, width, factor)
    geometry = [view_geometry(*base, window, s, upscale) for s in scales]
    per_view = [windows_along(h, wh, stride) * windows_along(w, ww, stride) for (h, w), (wh, ww) in geometry]
    windows = flips * sum(per_view)
    largest = max((size for size, _ in geometry), key=lambda hw: hw[0] * hw[1])
    floats = 4
    image = height * width * 3 + base[0] * base[1] * 3 * floats  # uint8 decode + the normalized float copy
    window_pixels = flips * sum(n * wh * ww for n, (_, (wh, ww)) in zip(per_view, geometry, strict=True))
    logit_cells = flips * sum(n * _cells(wh, patch_size) * _cells(ww, patch_size)
                              for n, (_, (wh, ww)) in zip(per_view, geometry, strict=True))
    crops_and_logits = (window_pixels * 3 + logit_cells * num_classes) * floats
    # The merge: per view a band of merged rows (and their counts), kept while the strips walk it;
    # one strip of output rows resized (values and softmax); the answer (int64 ids, float confidence).
    bands = flips * sum(min(h, max(MERGE_MIN_ROWS, MERGE_BYTES // (floats * num_classes * w))) * w
                        for (h, w), _ in geometry) * (num_classes + 1) * floats
    strip = 2 * floats * num_classes * width * max(1, MERGE_BYTES // (2 * floats * num_classes * width))
    merged = bands + min(strip, 2 * floats * num_classes * height * width) + height * width * 12
    return WindowCost(windows, largest, image + crops_and_logits + merged, (height, width))


def _cells(side: int, patch_size: int | None) -> int:
    return side if not patch_size else math.ceil(side / patch_size)


def check_windows(cost: WindowCost, limit: int | None, height: int, width: int, multiscale: bool,
                  window: int) -> None:
    """Raise TooManyWindows when `cost` is over `limit` (None: no limit), saying what to change."""
    if limit is None or cost.windows <= limit:
        return
    ratio = max(height, width) / min(height, width)
    advice = []
    if ratio > 4:
        advice.append(f"the image is {width}×{height} ({ratio:,.0f}:1): its short side is upscaled to the "
                      f"{window}-pixel window, so a thin image costs as much as a huge one; crop it to a less "
                      "elongated shape")
    else:
        advice.append("send a smaller image")
    if multiscale:
        advice.append("turn multi-scale off (it runs 12 views)")
    raise TooManyWindows(f"the image would need {cost.windows:,} windows of {window}×{window} pixels "
                         f"(about {cost.bytes / 2**30:.1f} GiB); the limit is {limit:,} per image: "
                         + "; or ".join(advice), cost.windows, limit)
