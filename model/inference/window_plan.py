"""All the windows one image needs, and how to put their logits back together.

A `WindowPlan` separates *which* windows an image needs (every view: scale × flip, each tiled
with `tile_windows`) from *who* runs them. `Predictor` runs a plan's windows itself; the service
queues them with other requests' windows and hands the logits back later:

    plan = plan_windows(image, window=512, stride=512, scales=(1.0,))   # image 1×3×H×W normalized
    logits = [any_forward(g) for g in plan.groups]                       # N×C×gh×gw each, any batches
    mask = plan.class_ids(logits)                                        # H×W, argmax of the mean of views

Windows of the same shape form one group (one tensor): under the official protocol every window
is window×window, so there is one group; under mmseg's, a view smaller than the window runs as
smaller windows, in a group of their own.

Window logits are on the model's patch grid (`window_logits`: 1/p² of the pixels; logits at
the window's size work too). Memory: the answer is computed a strip of output rows at a time
from the window rows that strip needs (`merge`), so nothing of C×H×W is held at full size — not
the image (150 classes at 4032×3024 would be 7 GB), not a merged view — only a strip.

Both steps take `should_stop`, checked between views and strips: a request that has ended
(deadline, client gone) stops there with `Cancelled` and releases what it holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from model.inference.cost import scaled_size, view_geometry
from model.inference.grid_argmax import view_class_ids
from model.inference.merge import (
    Anchor,
    Cancelled,
    StopCheck,
    ViewRows,
    check_blend,
    stop_if,
    strip_rows,
    view_strip,
)
from model.inference.sliding_window import tile_windows
from model.inference.window_logits import LogitsGrid

__all__ = ["Cancelled", "StopCheck", "View", "WindowPlan", "plan_windows"]

Logits = torch.Tensor | Sequence[torch.Tensor]  # one tensor per group (a bare tensor: one group)


@dataclass(frozen=True)
class View:
    """One scaled (and maybe mirrored) copy of the image, tiled into `groups[group][start:stop]`."""

    scale: float
    flip: bool
    size: tuple[int, int]  # (H, W) of the tiled copy: after the test-scale and view resize (and upscale)
    window: tuple[int, int]  # (h, w) of its windows
    group: int
    start: int
    stop: int
    anchors: tuple[Anchor, ...]


@dataclass(frozen=True)
class WindowPlan:
    groups: tuple[torch.Tensor, ...]  # per window shape: N×3×h×w float, normalized, views in order
    views: tuple[View, ...]
    image_size: tuple[int, int]  # (H, W) of the input image: the size of the answer
    blend: str = "uniform"  # how overlapping windows are averaged (`merge_windows`)
    grid: LogitsGrid = LogitsGrid()  # how window logits become pixels (the model's patch grid)

    @property
    def num_windows(self) -> int:
        return sum(view.stop - view.start for view in self.views)

    def without_crops(self) -> WindowPlan:
        """The same plan without its windows' pixels (after they ran), to merge without holding them."""
        return dataclasses.replace(self, groups=tuple(g[:0] for g in self.groups))

    def _groups(self, logits: Logits) -> Sequence[torch.Tensor]:
        groups = (logits,) if isinstance(logits, torch.Tensor) else logits
        counts = [max((v.stop for v in self.views if v.group == g), default=0) for g in range(len(self.groups))]
        if [len(g) for g in groups] != counts:
            raise ValueError(f"window logits {[len(g) for g in groups]} do not match the plan's groups {counts}")
        return groups

    def view_rows(self, view: View, logits: Logits) -> ViewRows:
        """One view's merged logits, computed a band of rows at a time (`merge.ViewRows`)."""
        crops = self._groups(logits)[view.group][view.start : view.stop]
        return ViewRows(crops, view.anchors, view.window, view.size, self.grid, self.blend)

    def merged(self, view: View, logits: Logits) -> torch.Tensor:
        """One view's window logits averaged into C×h×w at the view's size (whole: for tests and tools)."""
        return self.view_rows(view, logits).rows(0, view.size[0])

    def view_logits(self, view: View, logits: Logits) -> torch.Tensor:
        """One view's logits as C×H×W at the input size (mirrored back if the view was flipped)."""
        return view_strip(self.view_rows(view, logits), view.flip, self.image_size, 0, self.image_size[0])

    def probabilities(self, logits: Logits, should_stop: StopCheck | None = None) -> torch.Tensor:
        """Window logits (per group) -> C×H×W float32 softmax probabilities, averaged over views."""
        views = [self.view_rows(view, logits) for view in self.views]
        height, width = self.image_size
        num_classes = views[0].num_classes
        out = views[0].logits.new_empty((num_classes, height, width), dtype=torch.float32)
        rows = strip_rows(num_classes, width)
        for top in range(0, height, rows):
            stop_if(should_stop)
            out[:, top : top + rows] = self._mean_probabilities(views, top, min(height, top + rows))
        return out

    def class_ids(self, logits: Logits, should_stop: StopCheck | None = None) -> torch.Tensor:
        """Window logits (per group) -> H×W int64 class ids (on the logits' device).

        The argmax of the view logits resized to the input size (one view), or of the mean of
        their softmax probabilities (several views), a band of rows at a time. With a single view
        the softmax is skipped (it does not change the argmax) and only the classes that can win
        are computed at pixels (`grid_argmax.view_class_ids`).
        """
        if len(self.views) == 1:
            (view,) = self.views
            return view_class_ids(self.view_rows(view, logits), view.flip, self.image_size, should_stop)
        return self._strips(logits, should_stop, with_confidence=False)[0]

    def class_ids_and_confidence(self, logits: Logits, should_stop: StopCheck | None = None
                                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """(H×W int64 class ids, H×W float32 probability of that class): the argmax and the max
        of the probabilities `probabilities` returns, computed a strip of rows at a time."""
        return self._strips(logits, should_stop)

    def _mean_probabilities(self, views: list[ViewRows], top: int, bottom: int) -> torch.Tensor:
        strip = sum(view_strip(rows, v.flip, self.image_size, top, bottom).softmax(dim=0)
                    for rows, v in zip(views, self.views, strict=True))
        return strip / len(views)  # divided as `probabilities` does, so float ties fall alike

    def _strips(self, logits: Logits, should_stop: StopCheck | None, with_confidence: bool = True
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """argmax (and, `with_confidence`, max) of the mean softmax of the views, resized, a strip
        of rows at a time."""
        views = []
        for view in self.views:
            stop_if(should_stop)
            views.append(self.view_rows(view, logits))
        height, width = self.image_size
        rows = strip_rows(views[0].num_classes, width)
        device = views[0].logits.device
        ids = torch.empty((height, width), dtype=torch.int64, device=device)
        confidence = torch.empty((height, width), dtype=torch.float32, device=device) if with_confidence else None
        for top in range(0, height, rows):
            stop_if(should_stop)
            bottom = min(height, top + rows)
            mean = self._mean_probabilities(views, top, bottom)
            if confidence is None:  # max, not argmax: ~10× faster over the leading dimension on CPU
                ids[top:bottom] = mean.max(dim=0).indices
            else:
                best = mean.max(dim=0)
                ids[top:bottom], confidence[top:bottom] = best.indices, best.values
        return ids, confidence


def plan_windows(
    image: torch.Tensor,
    window: int,
    stride: int,
    scales: Sequence[float] = (1.0,),
    flips: Sequence[bool] = (False,),
    should_stop: StopCheck | None = None,
    upscale: bool = True,
    output_size: tuple[int, int] | None = None,
    blend: str = "uniform",
    grid: LogitsGrid | None = None,
) -> WindowPlan:
    """Tile every view (scale × flip) of one normalized 1×3×H×W image into windows.

    Per view: mirror (if flipped), resize by the scale, then as the official code upscale so the
    short side reaches the window (`upscale`), or as mmseg use smaller windows on a smaller
    view; tile every `stride` pixels. `output_size`: the size of the answer, when `image` was
    resized from the original (the test scale); default its own size. `blend`: how the merge
    averages overlapping windows (`merge_windows`). `grid`: how the window forward's logits map to
    pixels (the model's `metadata.logits_grid`; default: logits at the window's size).
    `model.inference.cost` computes the same geometry from the size alone.
    """
    if image.dim() != 4 or image.shape[0] != 1:
        raise ValueError(f"plan_windows takes one 1×3×H×W image, got shape {tuple(image.shape)}")
    if not scales or not flips:
        raise ValueError("plan_windows needs at least one scale and one flip setting")
    check_blend(blend)
    grid = grid or LogitsGrid()
    height, width = image.shape[-2:]
    crops: dict[tuple[int, int], list[torch.Tensor]] = {}  # window shape -> its views' crops
    views = []
    for scale in scales:
        for flip in flips:
            stop_if(should_stop)
            size, win = view_geometry(height, width, window, scale, upscale)
            x = torch.flip(image, dims=(3,)) if flip else image
            # Two resizes, as the official code: the scale, then the upscale to the window; each is
            # skipped when it changes nothing.
            for step in (scaled_size(height, width, scale), size):
                if tuple(x.shape[-2:]) != step:
                    x = F.interpolate(x, size=step, mode="bilinear", align_corners=False)
            view_crops, anchors = tile_windows(x, win, stride)
            group = crops.setdefault(win, [])
            start = sum(len(c) for c in group)
            group.append(view_crops)
            views.append(View(scale, flip, size, win, list(crops).index(win), start, start + len(view_crops),
                              tuple(anchors)))
    return WindowPlan(tuple(torch.cat(c) for c in crops.values()), tuple(views), output_size or (height, width),
                      blend, grid)
