"""Window logits back into one image's answer, a band of rows at a time.

Each view (scale × flip) of an image was tiled into windows; each window's logits are on the
model's patch grid (`window_logits`). A view's merged logits at a pixel are the mean (or the
`blend`-weighted mean) over the windows covering it of their logits upsampled to pixels, and
the answer is that map resized to the image (bilinear, align_corners=False) — argmax, or the
mean of the views' softmax probabilities. All of it is linear up to the softmax, so it is
computed for a strip of output rows at a time from just the window rows that strip needs:
nothing the size of C×H×W (the view or the image at full size) is ever held, only a strip.
`merge_windows` is the same merge over a whole image, for logits at the windows' own size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from model.inference.cost import MERGE_BYTES, MERGE_MIN_ROWS
from model.inference.window_logits import LogitsGrid, window_rows
from model.logits_grid import bilinear_sources

StopCheck = Callable[[], bool]
Anchor = tuple[int, int]  # (top, left) of a window in the image
# How overlapping windows are averaged: uniformly (the authors' and mmseg's protocol), or
# weighted by a tent (linear) or a Gaussian (sigma = side/4, as nnU-Net and MONAI) that fades
# each window toward its borders.
BLENDS = ("uniform", "linear", "gaussian")


def check_blend(blend: str) -> str:
    """`blend` if it is one of BLENDS; ValueError naming it and the valid ones otherwise."""
    if blend not in BLENDS:
        raise ValueError(f"unknown blend {blend!r}; use one of {', '.join(BLENDS)} (uniform: the paper's protocol)")
    return blend


def blend_profile(blend: str, n: int) -> torch.Tensor:
    """n float64 weights along one side of a window: a window's weights are the outer product of
    its two sides' profiles (all ones for the uniform mean)."""
    centre = torch.arange(n, dtype=torch.float64) + 0.5  # pixel centres, 0.5..n-0.5
    if check_blend(blend) == "uniform":
        return torch.ones(n, dtype=torch.float64)
    if blend == "linear":  # 1 in the middle, 1/n at the outermost pixels: never 0, so a
        return torch.minimum(centre, n - centre) / (n / 2)  # pixel one window covers keeps it
    return torch.exp(-0.5 * ((centre - n / 2) / (n / 4)) ** 2)


def window_weights(blend: str, height: int, width: int) -> torch.Tensor | None:
    """h×w float32 weight of each pixel of a window when blending; None for the uniform mean."""
    if check_blend(blend) == "uniform":
        return None
    return (blend_profile(blend, height)[:, None] * blend_profile(blend, width)[None, :]).float()


# Output rows resized at once: enough for vectorised work, little memory (C×rows×W floats). The
# request cost estimate (cost.py, torch-free) counts the same sizes.
STRIP_BYTES = MERGE_BYTES
_FEW_CLASSES = 16  # up to this many classes, class ids are computed without pruning (`argmax_resized`)
_BAND_ROWS = 64  # view rows merged at once when the pruned argmax walks a view row by row
_MIN_BAND = MERGE_MIN_ROWS  # view rows merged at least at once (`ViewRows.rows`), however small the strips


class Cancelled(Exception):
    """The caller asked to stop (its request ended); the work was abandoned between two steps."""


def stop_if(should_stop: StopCheck | None) -> None:
    if should_stop is not None and should_stop():
        raise Cancelled("the request ended; its remaining work was dropped")


class ViewRows:
    """One view's merged logits, computed on demand for a band of rows from its windows' logits.

    Args:
        logits: N×C×gh×gw, one per anchor (patch grid, or already at the window's size).
        anchors: (top, left) of each window in the view.
        window: (h, w) of the windows; size: (H, W) of the view.
    """

    def __init__(self, logits: torch.Tensor, anchors: tuple[Anchor, ...], window: tuple[int, int],
                 size: tuple[int, int], grid: LogitsGrid, blend: str = "uniform") -> None:
        if len(logits) != len(anchors):
            raise ValueError(f"{len(logits)} window logits for {len(anchors)} anchors")
        grid.check(tuple(logits.shape[-2:]), window)
        self.logits, self.anchors, self.window, self.size, self.grid = logits, anchors, window, size, grid
        self.blend = blend
        self.weights = window_weights(blend, *window)
        self._band: tuple[int, torch.Tensor] | None = None  # (first row, C×rows×W) merged last
        if self.weights is not None:
            self.weights = self.weights.to(logits.device)

    @property
    def num_classes(self) -> int:
        return self.logits.shape[1]

    def rows(self, top: int, bottom: int) -> torch.Tensor:
        """C×(bottom-top)×W float32: the view's merged logits for rows top..bottom.

        Merged a band ahead (about STRIP_BYTES, at least _MIN_BAND rows) and kept: strips walk a
        view top to bottom, each needing the rows just after the last ones (and one row again).
        """
        cached = self._band
        if cached is not None and cached[0] <= top and bottom <= cached[0] + cached[1].shape[1]:
            return cached[1][:, top - cached[0] : bottom - cached[0]]
        ahead = max(bottom - top, _MIN_BAND, STRIP_BYTES // (4 * self.num_classes * self.size[1]))
        band = self._merge(top, min(self.size[0], top + ahead))
        self._band = (top, band)
        return band[:, : bottom - top]

    def _merge(self, top: int, bottom: int) -> torch.Tensor:
        win_h, win_w = self.window
        width = self.size[1]
        covering = [(crop, t, left) for crop, (t, left) in zip(self.logits, self.anchors, strict=True)
                    if max(top, t) < min(bottom, t + win_h)]
        if len(covering) == 1 and win_w == width and covering[0][1] <= top and bottom <= covering[0][1] + win_h:
            # One window covers the whole band (a single window, or no overlap here): its rows are
            # the mean, without a sum and a division.
            crop, t, _ = covering[0]
            return window_rows(crop, self.window, top - t, bottom - t, self.grid).float()
        total = self.logits.new_zeros((self.num_classes, bottom - top, width), dtype=torch.float32)
        count = self.logits.new_zeros((1, bottom - top, width), dtype=torch.float32)
        for crop, t, left in covering:
            first, last = max(top, t), min(bottom, t + win_h)
            band = window_rows(crop, self.window, first - t, last - t, self.grid).float()  # C×R×w
            target = total[:, first - top : last - top, left : left + win_w]
            cover = count[:, first - top : last - top, left : left + win_w]
            if self.weights is None:
                target += band
                cover += 1
            else:
                target.addcmul_(band, self.weights[first - t : last - t])  # in place, no temporary
                cover += self.weights[first - t : last - t]
        if bool((count == 0).any()):
            raise ValueError("the windows do not cover the whole view; anchors and size disagree")
        return total / count


def merge_windows(
    logits: torch.Tensor, anchors: Sequence[Anchor], image_size: tuple[int, int], blend: str = "uniform"
) -> torch.Tensor:
    """Average overlapping window logits back into one C×H×W map (`ViewRows` over the whole image).

    Args:
        logits: N×C×h×w float, one per anchor (at the windows' size).
        anchors: (top, left) of each window, as from `tile_windows`.
        image_size: (H, W) of the tiled image.
        blend: "uniform" (the paper's), "linear" or "gaussian" (`window_weights`).
    Returns:
        C×H×W float32: per pixel, the mean (weighted by `blend`) of the logits of every window
        covering it.
    """
    window = tuple(logits.shape[-2:])
    return ViewRows(logits, tuple(anchors), window, tuple(image_size), LogitsGrid(), blend).rows(0, image_size[0])


def view_strip(view: ViewRows, flip: bool, size: tuple[int, int], top: int, bottom: int) -> torch.Tensor:
    """Rows top..bottom of a view's merged logits resized to `size` (bilinear, align_corners=False,
    as F.interpolate), mirrored back if the view was flipped: C×(bottom-top)×W."""
    out_h, out_w = size
    in_h, in_w = view.size
    if (in_h, in_w) == size:
        strip = view.rows(top, bottom)
    else:
        lower, upper, weight = bilinear_sources(in_h, out_h, top, bottom, view.logits.device)
        first, last = int(lower[0]), int(upper[-1]) + 1
        band = view.rows(first, last)  # only the view rows this strip needs
        weight = weight.view(1, -1, 1)
        # Width: the standard kernel on just those rows (height unchanged), then a lerp per row.
        rows = F.interpolate(band[None], size=(last - first, out_w), mode="bilinear", align_corners=False)[0]
        strip = rows[:, lower - first] * (1 - weight) + rows[:, upper - first] * weight
    return torch.flip(strip, dims=(2,)) if flip else strip


def strip_rows(num_classes: int, width: int) -> int:
    """Output rows per strip: about STRIP_BYTES of C×rows×W float32 (8 bytes: value and softmax)."""
    return max(1, STRIP_BYTES // (8 * num_classes * width))


def argmax_resized(view: ViewRows, flip: bool, size: tuple[int, int], should_stop: StopCheck | None
                   ) -> torch.Tensor:
    """argmax over classes of one view's merged logits resized bilinearly to `size`: H×W int64.

    Exact, and cheap for real models: a bilinear value is a convex combination of the 4 source
    pixels around it, so within a cell a class can only win if its largest corner value reaches
    the best smallest-corner value of any class. Per band of output rows between two source rows,
    only the classes that can win in some cell of the band are resized (a handful, for a trained
    model; all of them, for random weights — still exact).
    """
    num_classes, (in_h, in_w), (out_h, out_w) = view.num_classes, view.size, size
    device = view.logits.device
    ids = torch.empty(size, dtype=torch.int64, device=device)
    if (in_h, in_w) == size or num_classes <= _FEW_CLASSES:
        # Nothing to resize, or little to prune (the per-row loop below costs more in Python than
        # it saves for a few classes): whole strips at once. max().indices: argmax over a leading
        # dimension is ~10× slower on CPU.
        rows = strip_rows(num_classes, out_w)
        for top in range(0, out_h, rows):
            stop_if(should_stop)
            bottom = min(out_h, top + rows)
            ids[top:bottom] = view_strip(view, flip, size, top, bottom).max(dim=0).indices
        return ids
    lower, upper, weight = bilinear_sources(in_h, out_h, 0, out_h, device)
    starts = torch.searchsorted(lower, torch.arange(in_h + 1, device=device)).tolist()
    upper = upper.tolist()
    band_top, band = 0, view.rows(0, min(in_h, _BAND_ROWS + 1))
    for row in range(in_h):
        top, bottom = starts[row], starts[row + 1]  # the output rows between source rows row and row+1
        if top == bottom:
            continue
        below = upper[top]
        if below >= band_top + band.shape[1]:  # the next band of merged view rows (one row of overlap)
            stop_if(should_stop)
            band_top = row
            band = view.rows(row, min(in_h, row + _BAND_ROWS + 1))
        pair = band[:, [row - band_top, below - band_top]]  # C×2×w
        high, low = pair.amax(dim=1), pair.amin(dim=1)  # C×w
        if in_w > 1:  # cells between neighbouring columns
            high, low = torch.maximum(high[:, 1:], high[:, :-1]), torch.minimum(low[:, 1:], low[:, :-1])
        candidates = (high >= low.amax(dim=0)).any(dim=1).nonzero()[:, 0]
        if len(candidates) == 0:  # NaN logits (inf - inf in the upsampling): what the argmax of all gives
            candidates = torch.arange(num_classes, device=device)
        resized = F.interpolate(pair[candidates][None], size=(2, out_w), mode="bilinear", align_corners=False)[0]
        values = torch.lerp(resized[:, :1], resized[:, 1:], weight[top:bottom].view(1, -1, 1))  # K×rows×W
        ids[top:bottom] = candidates[values.max(dim=0).indices]
    return torch.flip(ids, dims=(1,)) if flip else ids
