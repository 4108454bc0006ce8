"""All the windows one image needs, and how to put their logits back together.

A `WindowPlan` separates *which* windows an image needs (every view: scale × flip, each tiled
with `tile_windows`) from *who* runs them. `Predictor` runs a plan's crops itself; the service
queues them with other requests' windows and hands the logits back later:

    plan = plan_windows(image, window=512, stride=512, scales=(1.0,))   # image 1×3×H×W normalized
    logits = any_forward(plan.crops)                                     # N×C×w×w, in any batches
    mask = plan.class_ids(logits)                                        # H×W, argmax of the mean of views

Memory: the class ids are computed a strip of output rows at a time, so a large photo never
holds C×H×W logits at its full size (150 classes at 4032×3024 would be 7 GB), only the merged
views (about the windows' own size) and one strip.

Both steps take `should_stop`, checked between views and strips: a request that has ended
(deadline, client gone) stops there with `Cancelled` and releases what it holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from model.inference.cost import scaled_size
from model.inference.sliding_window import Anchor, merge_windows, resize_to_window, tile_windows

StopCheck = Callable[[], bool]
# Output rows resized at once: enough for vectorised work, little memory (C×rows×W floats).
_STRIP_BYTES = 32 * 2**20


class Cancelled(Exception):
    """The caller asked to stop (its request ended); the work was abandoned between two steps."""


def _stop_if(should_stop: StopCheck | None) -> None:
    if should_stop is not None and should_stop():
        raise Cancelled("the request ended; its remaining work was dropped")


@dataclass(frozen=True)
class View:
    """One scaled (and maybe mirrored) copy of the image, tiled into `crops[start:stop]`."""

    scale: float
    flip: bool
    size: tuple[int, int]  # (H, W) of the tiled copy: after scaling and upscaling to the window
    start: int
    stop: int
    anchors: tuple[Anchor, ...]


@dataclass(frozen=True)
class WindowPlan:
    crops: torch.Tensor  # N×3×w×w float, normalized, every view's windows in order
    views: tuple[View, ...]
    image_size: tuple[int, int]  # (H, W) of the input image

    @property
    def num_windows(self) -> int:
        return self.views[-1].stop

    def without_crops(self) -> WindowPlan:
        """The same plan without its crops (after they ran), to merge without holding them."""
        return dataclasses.replace(self, crops=self.crops[:0])

    def _check(self, logits: torch.Tensor) -> None:
        if len(logits) != self.num_windows:
            raise ValueError(f"{len(logits)} window logits for a plan of {self.num_windows} windows")

    def merged(self, view: View, logits: torch.Tensor) -> torch.Tensor:
        """One view's window logits (its slice of all N) averaged into C×h×w at the view's size."""
        return merge_windows(logits[view.start : view.stop], view.anchors, view.size)

    def view_logits(self, view: View, logits: torch.Tensor) -> torch.Tensor:
        """One view's logits as C×H×W at the input size (mirrored back if the view was flipped)."""
        merged = self.merged(view, logits)
        if tuple(merged.shape[-2:]) != self.image_size:
            merged = F.interpolate(merged[None], size=self.image_size, mode="bilinear", align_corners=False)[0]
        return torch.flip(merged, dims=(2,)) if view.flip else merged

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """N×C×w×w window logits -> C×H×W float32 softmax probabilities, averaged over views."""
        self._check(logits)
        total = None
        for view in self.views:
            probs = self.view_logits(view, logits).softmax(dim=0)
            total = probs if total is None else total.add_(probs)
        assert total is not None  # a plan has at least one view
        return total / len(self.views)

    def class_ids(self, logits: torch.Tensor, should_stop: StopCheck | None = None) -> torch.Tensor:
        """N×C×w×w window logits -> H×W int64 class ids (on the logits' device).

        The argmax of the view logits resized to the input size (one view), or of the mean of
        their softmax probabilities (several views), computed a strip of rows at a time. With a
        single view the softmax is skipped: it does not change the argmax.
        """
        self._check(logits)
        merged = []
        for view in self.views:
            _stop_if(should_stop)
            merged.append(self.merged(view, logits))
        del logits  # only the merged views are needed from here on
        height, width = self.image_size
        num_classes = merged[0].shape[0]
        rows = max(1, _STRIP_BYTES // (4 * num_classes * width * (2 if len(merged) > 1 else 1)))
        ids = torch.empty((height, width), dtype=torch.int64, device=merged[0].device)
        for top in range(0, height, rows):
            _stop_if(should_stop)
            bottom = min(height, top + rows)
            if len(merged) == 1:
                strip = _view_strip(merged[0], self.views[0].flip, self.image_size, top, bottom)
            else:
                strip = sum(_view_strip(m, v.flip, self.image_size, top, bottom).softmax(dim=0)
                            for m, v in zip(merged, self.views, strict=True))
            ids[top:bottom] = strip.argmax(dim=0)
        return ids


def _view_strip(merged: torch.Tensor, flip: bool, size: tuple[int, int], top: int, bottom: int) -> torch.Tensor:
    """Rows top..bottom of a merged view resized to `size` (bilinear, align_corners=False, as
    F.interpolate), mirrored back if flipped: C×(bottom-top)×W."""
    out_h, out_w = size
    in_h, in_w = merged.shape[-2:]
    if (in_h, in_w) == size:
        strip = merged[:, top:bottom]
    else:
        # Height: output row y samples source row (y + 0.5)·in/out - 0.5, clamped at the borders.
        # In float32 with a float32 scale, as PyTorch's kernel computes the weights.
        scale = torch.tensor(in_h / out_h, dtype=torch.float32, device=merged.device)
        y = (torch.arange(top, bottom, dtype=torch.float32, device=merged.device) + 0.5) * scale - 0.5
        y = y.clamp(min=0)
        lower = y.floor().long().clamp(max=in_h - 1)
        upper = (lower + 1).clamp(max=in_h - 1)
        weight = (y - lower).to(merged.dtype).view(1, -1, 1)
        first, last = int(lower[0]), int(upper[-1]) + 1
        # Width: the standard kernel on just the source rows this strip needs (height unchanged).
        rows = F.interpolate(merged[None, :, first:last], size=(last - first, out_w), mode="bilinear",
                             align_corners=False)[0]
        strip = rows[:, lower - first] * (1 - weight) + rows[:, upper - first] * weight
    return torch.flip(strip, dims=(2,)) if flip else strip


def plan_windows(
    image: torch.Tensor,
    window: int,
    stride: int,
    scales: Sequence[float] = (1.0,),
    flips: Sequence[bool] = (False,),
    should_stop: StopCheck | None = None,
) -> WindowPlan:
    """Tile every view (scale × flip) of one normalized 1×3×H×W image into windows.

    Per view, as the official code does: mirror (if flipped), resize by the scale, upscale so
    the short side reaches the window, tile every `stride` pixels. `model.inference.cost`
    computes the same geometry from the size alone.
    """
    if image.dim() != 4 or image.shape[0] != 1:
        raise ValueError(f"plan_windows takes one 1×3×H×W image, got shape {tuple(image.shape)}")
    if not scales or not flips:
        raise ValueError("plan_windows needs at least one scale and one flip setting")
    height, width = image.shape[-2:]
    crops, views, start = [], [], 0
    for scale in scales:
        for flip in flips:
            _stop_if(should_stop)
            x = torch.flip(image, dims=(3,)) if flip else image
            size = scaled_size(height, width, scale)
            if size != (height, width):
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            x = resize_to_window(x, window)
            view_crops, anchors = tile_windows(x, window, stride)
            crops.append(view_crops)
            views.append(View(scale, flip, (x.shape[-2], x.shape[-1]), start, start + len(view_crops), tuple(anchors)))
            start += len(view_crops)
    return WindowPlan(torch.cat(crops), tuple(views), (height, width))
