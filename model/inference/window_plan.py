"""All the windows one image needs, and how to put their logits back together.

A `WindowPlan` separates *which* windows an image needs (every view: scale × flip, each tiled
with `tile_windows`) from *who* runs them. `Predictor` runs a plan's crops itself; the service
queues them with other requests' windows and hands the logits back later:

    plan = plan_windows(image, window=512, stride=512, scales=(1.0,))   # image 1×3×H×W normalized
    logits = any_backend(plan.crops)                                     # N×C×w×w, in any batches
    probs = plan.probabilities(logits)                                   # C×H×W softmax, mean of views
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from model.inference.sliding_window import Anchor, merge_windows, resize_to_window, tile_windows


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
        return len(self.crops)

    def view_logits(self, view: View, logits: torch.Tensor) -> torch.Tensor:
        """Merge one view's window logits (its slice of all N) into C×H×W at the input size."""
        merged = merge_windows(logits[view.start : view.stop], view.anchors, view.size)
        if tuple(merged.shape[-2:]) != self.image_size:
            merged = F.interpolate(merged[None], size=self.image_size, mode="bilinear", align_corners=False)[0]
        return torch.flip(merged, dims=(2,)) if view.flip else merged

    def _check(self, logits: torch.Tensor) -> None:
        if len(logits) != self.num_windows:
            raise ValueError(f"{len(logits)} window logits for a plan of {self.num_windows} windows")

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """N×C×w×w window logits -> C×H×W float32 softmax probabilities, averaged over views."""
        self._check(logits)
        total = None
        for view in self.views:
            probs = self.view_logits(view, logits).softmax(dim=0)
            total = probs if total is None else total.add_(probs)
        assert total is not None  # a plan has at least one view
        return total / len(self.views)

    def class_ids(self, logits: torch.Tensor) -> torch.Tensor:
        """N×C×w×w window logits -> H×W int64 class ids (argmax, on the logits' device).

        With a single view the softmax is skipped: it does not change the argmax, and over
        150 classes it costs more than the merge.
        """
        if len(self.views) == 1:
            self._check(logits)
            return self.view_logits(self.views[0], logits).argmax(dim=0)
        return self.probabilities(logits).argmax(dim=0)


def plan_windows(
    image: torch.Tensor,
    window: int,
    stride: int,
    scales: Sequence[float] = (1.0,),
    flips: Sequence[bool] = (False,),
) -> WindowPlan:
    """Tile every view (scale × flip) of one normalized 1×3×H×W image into windows.

    Per view, as the official code does: mirror (if flipped), resize by the scale, upscale so
    the short side reaches the window, tile every `stride` pixels.
    """
    if image.dim() != 4 or image.shape[0] != 1:
        raise ValueError(f"plan_windows takes one 1×3×H×W image, got shape {tuple(image.shape)}")
    if not scales or not flips:
        raise ValueError("plan_windows needs at least one scale and one flip setting")
    height, width = image.shape[-2:]
    crops, views, start = [], [], 0
    for scale in scales:
        for flip in flips:
            x = torch.flip(image, dims=(3,)) if flip else image
            if scale != 1.0:
                size = (max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5)))
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            x = resize_to_window(x, window)
            view_crops, anchors = tile_windows(x, window, stride)
            crops.append(view_crops)
            views.append(View(scale, flip, (x.shape[-2], x.shape[-1]), start, start + len(view_crops), tuple(anchors)))
            start += len(view_crops)
    return WindowPlan(torch.cat(crops), tuple(views), (height, width))
