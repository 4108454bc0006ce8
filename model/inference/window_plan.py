"""All the windows one image needs, and how to put their logits back together.

A `WindowPlan` separates *which* windows an image needs (every view: scale × flip, each tiled
with `tile_windows`) from *who* runs them. `Predictor` runs a plan's windows itself; the service
queues them with other requests' windows and hands the logits back later:

    plan = plan_windows(image, window=512, stride=512, scales=(1.0,))   # image 1×3×H×W normalized
    logits = [any_forward(g) for g in plan.groups]                       # N×C×h×w each, any batches
    mask = plan.class_ids(logits)                                        # H×W, argmax of the mean of views

Windows of the same shape form one group (one tensor): under the official protocol every window
is window×window, so there is one group; under mmseg's, a view smaller than the window runs as
smaller windows, in a group of their own.

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

from model.inference.cost import scaled_size, view_geometry
from model.inference.sliding_window import Anchor, check_blend, merge_windows, tile_windows

StopCheck = Callable[[], bool]
# Output rows resized at once: enough for vectorised work, little memory (C×rows×W floats).
_STRIP_BYTES = 32 * 2**20
_FEW_CLASSES = 16  # up to this many classes, class ids are computed without pruning (`_argmax_resized`)


class Cancelled(Exception):
    """The caller asked to stop (its request ended); the work was abandoned between two steps."""


def _stop_if(should_stop: StopCheck | None) -> None:
    if should_stop is not None and should_stop():
        raise Cancelled("the request ended; its remaining work was dropped")


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

    def merged(self, view: View, logits: Sequence[torch.Tensor]) -> torch.Tensor:
        """One view's window logits averaged into C×h×w at the view's size."""
        return merge_windows(logits[view.group][view.start : view.stop], view.anchors, view.size, self.blend)

    def view_logits(self, view: View, logits: Logits) -> torch.Tensor:
        """One view's logits as C×H×W at the input size (mirrored back if the view was flipped)."""
        merged = self.merged(view, self._groups(logits))
        if tuple(merged.shape[-2:]) != self.image_size:
            merged = F.interpolate(merged[None], size=self.image_size, mode="bilinear", align_corners=False)[0]
        return torch.flip(merged, dims=(2,)) if view.flip else merged

    def probabilities(self, logits: Logits) -> torch.Tensor:
        """Window logits (per group) -> C×H×W float32 softmax probabilities, averaged over views."""
        self._groups(logits)
        total = None
        for view in self.views:
            probs = self.view_logits(view, logits).softmax(dim=0)
            total = probs if total is None else total.add_(probs)
        assert total is not None  # a plan has at least one view
        return total / len(self.views)

    def class_ids(self, logits: Logits, should_stop: StopCheck | None = None) -> torch.Tensor:
        """Window logits (per group) -> H×W int64 class ids (on the logits' device).

        The argmax of the view logits resized to the input size (one view), or of the mean of
        their softmax probabilities (several views), a band of rows at a time. With a single view
        the softmax is skipped (it does not change the argmax) and only the classes that can win
        are resized (`_argmax_resized`).
        """
        merged = self._merged_views(logits, should_stop)
        if len(merged) == 1:
            view = merged[0].flip(dims=(2,)) if self.views[0].flip else merged[0]
            return _argmax_resized(view, self.image_size, should_stop)
        return self._strips(merged, should_stop, with_confidence=False)[0]

    def class_ids_and_confidence(self, logits: Logits, should_stop: StopCheck | None = None
                                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """(H×W int64 class ids, H×W float32 probability of that class): the argmax and the max
        of the probabilities `probabilities` returns, computed a strip of rows at a time."""
        return self._strips(self._merged_views(logits, should_stop), should_stop)

    def _merged_views(self, logits: Logits, should_stop: StopCheck | None) -> list[torch.Tensor]:
        groups = self._groups(logits)
        merged = []
        for view in self.views:
            _stop_if(should_stop)
            merged.append(self.merged(view, groups))
        return merged

    def _strips(self, merged: list[torch.Tensor], should_stop: StopCheck | None, with_confidence: bool = True
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """argmax (and, `with_confidence`, max) of the mean softmax of the views, resized, a strip
        of rows at a time."""
        height, width = self.image_size
        num_classes = merged[0].shape[0]
        rows = max(1, _STRIP_BYTES // (8 * num_classes * width))
        ids = torch.empty((height, width), dtype=torch.int64, device=merged[0].device)
        confidence = torch.empty((height, width), dtype=torch.float32, device=merged[0].device) \
            if with_confidence else None
        for top in range(0, height, rows):
            _stop_if(should_stop)
            bottom = min(height, top + rows)
            strip = sum(_view_strip(m, v.flip, self.image_size, top, bottom).softmax(dim=0)
                        for m, v in zip(merged, self.views, strict=True))
            mean = strip / len(merged)  # divided as `probabilities` does, so float ties fall alike
            if confidence is None:  # max, not argmax: ~10× faster over the leading dimension on CPU
                ids[top:bottom] = mean.max(dim=0).indices
            else:
                best = mean.max(dim=0)
                ids[top:bottom], confidence[top:bottom] = best.indices, best.values
        return ids, confidence


def _source_rows(in_h: int, out_h: int, top: int, bottom: int, device: torch.device
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For output rows top..bottom of a bilinear resize in_h -> out_h (align_corners=False): the
    source rows below and above each, and the weight of the one above (as PyTorch computes them,
    in float32)."""
    scale = torch.tensor(in_h / out_h, dtype=torch.float32, device=device)
    y = ((torch.arange(top, bottom, dtype=torch.float32, device=device) + 0.5) * scale - 0.5).clamp(min=0)
    lower = y.floor().long().clamp(max=in_h - 1)
    return lower, (lower + 1).clamp(max=in_h - 1), y - lower


def _argmax_resized(merged: torch.Tensor, size: tuple[int, int], should_stop: StopCheck | None) -> torch.Tensor:
    """argmax over classes of `merged` (C×h×w) resized bilinearly to `size`: H×W int64.

    Exact, and cheap for real models: a bilinear value is a convex combination of the 4 source
    pixels around it, so within a cell a class can only win if its largest corner value reaches
    the best smallest-corner value of any class. Per band of output rows between two source rows,
    only the classes that can win in some cell of the band are resized (a handful, for a trained
    model; all of them, for random weights — still exact).
    """
    num_classes, in_h, in_w = merged.shape
    out_h, out_w = size
    if (in_h, in_w) == (out_h, out_w):
        return merged.max(dim=0).indices  # max().indices: argmax over a leading dim is ~10× slower on CPU
    if num_classes <= _FEW_CLASSES:
        # Little to prune, and the per-row loop below costs more in Python than it saves (16 ms
        # vs 3 for 5 classes at 640×480): whole strips of rows, resized and reduced at once.
        rows = max(1, _STRIP_BYTES // (4 * num_classes * out_w))
        if rows >= out_h:  # it all fits in one strip: the plain kernel
            resized = F.interpolate(merged[None], size=size, mode="bilinear", align_corners=False)[0]
            return resized.max(dim=0).indices
        ids = torch.empty(size, dtype=torch.int64, device=merged.device)
        for top in range(0, out_h, rows):
            _stop_if(should_stop)
            bottom = min(out_h, top + rows)
            ids[top:bottom] = _view_strip(merged, False, size, top, bottom).max(dim=0).indices
        return ids
    lower, upper, weight = _source_rows(in_h, out_h, 0, out_h, merged.device)
    ids = torch.empty(size, dtype=torch.int64, device=merged.device)
    starts = torch.searchsorted(lower, torch.arange(in_h + 1, device=merged.device)).tolist()
    upper = upper.tolist()
    for row in range(in_h):
        top, bottom = starts[row], starts[row + 1]  # the output rows between source rows row and row+1
        if top == bottom:
            continue
        if row % 64 == 0:
            _stop_if(should_stop)
        band = merged[:, [row, upper[top]]]  # C×2×w
        high, low = band.amax(dim=1), band.amin(dim=1)  # C×w
        if in_w > 1:  # cells between neighbouring columns
            high, low = torch.maximum(high[:, 1:], high[:, :-1]), torch.minimum(low[:, 1:], low[:, :-1])
        candidates = (high >= low.amax(dim=0)).any(dim=1).nonzero()[:, 0]
        rows = F.interpolate(band[candidates][None], size=(2, out_w), mode="bilinear", align_corners=False)[0]
        values = torch.lerp(rows[:, :1], rows[:, 1:], weight[top:bottom].view(1, -1, 1))  # K×rows×W
        ids[top:bottom] = candidates[values.max(dim=0).indices]
    return ids


def _view_strip(merged: torch.Tensor, flip: bool, size: tuple[int, int], top: int, bottom: int) -> torch.Tensor:
    """Rows top..bottom of a merged view resized to `size` (bilinear, align_corners=False, as
    F.interpolate), mirrored back if flipped: C×(bottom-top)×W."""
    out_h, out_w = size
    in_h, in_w = merged.shape[-2:]
    if (in_h, in_w) == size:
        strip = merged[:, top:bottom]
    else:
        lower, upper, weight = _source_rows(in_h, out_h, top, bottom, merged.device)
        weight = weight.to(merged.dtype).view(1, -1, 1)
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
    upscale: bool = True,
    output_size: tuple[int, int] | None = None,
    blend: str = "uniform",
) -> WindowPlan:
    """Tile every view (scale × flip) of one normalized 1×3×H×W image into windows.

    Per view: mirror (if flipped), resize by the scale, then as the official code upscale so the
    short side reaches the window (`upscale`), or as mmseg use smaller windows on a smaller
    view; tile every `stride` pixels. `output_size`: the size of the answer, when `image` was
    resized from the original (the test scale); default its own size. `blend`: how the merge
    averages overlapping windows (`merge_windows`).
    `model.inference.cost` computes the same geometry from the size alone.
    """
    if image.dim() != 4 or image.shape[0] != 1:
        raise ValueError(f"plan_windows takes one 1×3×H×W image, got shape {tuple(image.shape)}")
    if not scales or not flips:
        raise ValueError("plan_windows needs at least one scale and one flip setting")
    check_blend(blend)
    height, width = image.shape[-2:]
    crops: dict[tuple[int, int], list[torch.Tensor]] = {}  # window shape -> its views' crops
    views = []
    for scale in scales:
        for flip in flips:
            _stop_if(should_stop)
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
                      blend)
