"""One view's class ids straight from its windows' patch-grid logits, evaluating only the classes
that can win.

Everything between the window logits and the answer is linear and the same for every class: each
window's bilinear upsampling (`LogitsGrid`), the (blend-weighted) mean over the windows covering a
pixel, the bilinear resize of the view to the answer. Each is separable, and so is the coverage of
windows placed on a grid (tops × lefts, as `window_anchors` places them), so for window (t, l)
with C×gh×gw logits G[t, l]:

    logits[c, y, x] = Σ_t Σ_l  rows_t[y, :] · G[t, l][c] · cols_l[x, :]ᵀ

with rows_t (H×gh) and cols_l (W×gw) non-negative, and for every pixel all its weights sum to 1.
Per strip of 16 output rows, the height part is one small matrix product for every class:

    Z[y, m, c] = Σ_t rows_t[y, :] · G[t, l][c, :, j]         m = (l, j): R×M×C, M = lefts × gw

and each output column is a convex combination of the few m where cols[x, m] > 0 (2 per window
covering it, 3 where the resize straddles). Per block of up to 512 columns, grouped in runs that
draw on the same m: a class lies between its min and max of Z over its run's m and the strip's
rows, so it can win in the run only if that max reaches the best min of any class. Only those
classes are multiplied out to pixels and compared (a handful per block for a trained model; for
random weights most of 150). The answer is the argmax of the same function as resizing every
class, up to float rounding (the weights are composed here, applied one after another there);
nothing bigger than a strip × block × candidates is held: 1.2 M floats at 150 classes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from model.inference.merge import StopCheck, ViewRows, argmax_resized, blend_profile, stop_if
from model.logits_grid import bilinear_sources

_MAX_CELLS = 1024  # grid cells of all windows along one axis, at most (see `on_patch_grid`)
_FEW_CLASSES = 32  # up to this many classes, all are evaluated: pruning costs more than it saves
_STRIP_ROWS = 16  # output rows computed at once: a strip's logits stay in cache, its candidates few
_BLOCK_COLUMNS = 512  # output columns computed at once, at most: R×C×B floats (4.9 MB at 150 classes)


def view_class_ids(view: ViewRows, flip: bool, size: tuple[int, int], should_stop: StopCheck | None = None
                   ) -> torch.Tensor:
    """H×W int64 class ids of one view resized to `size` (mirrored back if flipped): from the
    patch grid when it can (`grid_class_ids`), else by the strip path (`merge.argmax_resized`).
    A view of few classes already at the answer's size takes the strip path too: with nothing to
    prune or resize, its plain upsampling is cheaper (benchmarks/merge_class_ids.py)."""
    if on_patch_grid(view) and (view.num_classes > _FEW_CLASSES or tuple(view.size) != tuple(size)):
        return grid_class_ids(view, flip, size, should_stop)
    return argmax_resized(view, flip, size, should_stop)


def on_patch_grid(view: ViewRows) -> bool:
    """Whether `grid_class_ids` can merge this view: logits on a patch grid smaller than the
    window (full-size logits take the strip path), from windows on a grid of tops × lefts."""
    gh, gw = view.logits.shape[-2:]
    tops, lefts = _starts(view)
    on_grid = len(tops) * len(lefts) == len(set(view.anchors)) == len(view.anchors)
    # Every window's cells side by side along each axis: a few hundred for a photo; a thin image
    # upscaled to thousands of windows takes the strip path, which holds one band at a time.
    few = len(tops) * gh <= _MAX_CELLS and len(lefts) * gw <= _MAX_CELLS
    if (gh, gw) == tuple(view.window) or not on_grid or not few:
        return False
    # The matrix products multiply every cell, weight 0 included: one inf or NaN (an overflowing
    # fp16 model) would spread over its strip, where the strip path keeps it near its cell.
    return bool(torch.isfinite(view.logits).all())


def grid_class_ids(view: ViewRows, flip: bool, size: tuple[int, int], should_stop: StopCheck | None
                   ) -> torch.Tensor:
    """argmax over classes of one view's merged logits resized bilinearly to `size`: H×W int64,
    mirrored back if the view was flipped (as `merge.argmax_resized`, without resizing every class).

    Args:
        view: the view's windows (`on_patch_grid(view)` must hold).
        size: (H, W) of the answer.
    """
    (out_h, out_w), num_classes = size, view.num_classes
    tops, lefts = _starts(view)
    gh, gw = view.logits.shape[-2:]
    device = view.logits.device
    rows = _axis_weights(view, 0, tops, out_h).to(device)  # T×H×gh
    cols = _axis_weights(view, 1, lefts, out_w)  # L×W×gw
    # G[t] with its lefts side by side: gh × (M·C), so that a strip of Z is one matrix product.
    index = {anchor: i for i, anchor in enumerate(view.anchors)}
    logits = view.logits.float()
    grids = [torch.cat([logits[index[(t, left)]] for left in lefts], dim=2)  # C×gh×M
             .permute(1, 2, 0).reshape(gh, -1) for t in tops]  # gh×(M·C)
    cols = cols.permute(1, 0, 2).reshape(out_w, len(lefts) * gw)  # W×M: each column's weight of every window column
    blocks = [block.to(device) for block in _column_blocks(cols)]
    ids = torch.empty(size, dtype=torch.int64, device=device)
    # Few classes: taller strips, as many floats as 16 rows of 150 classes (pruning wants short ones).
    strip = max(_STRIP_ROWS, _STRIP_ROWS * 150 // num_classes)
    for top in range(0, out_h, strip):
        stop_if(should_stop)
        bottom = min(out_h, top + strip)
        z = sum(rows[i, top:bottom] @ g for i, g in enumerate(grids))  # R×(M·C): the strip's rows on the grid's columns
        z = z.view(bottom - top, -1, num_classes)
        for block in blocks:
            ids[top:bottom, block.start : block.stop] = block.class_ids(z)
    return torch.flip(ids, dims=(1,)) if flip else ids


def _starts(view: ViewRows) -> tuple[list[int], list[int]]:
    return sorted({t for t, _ in view.anchors}), sorted({left for _, left in view.anchors})


def _axis_weights(view: ViewRows, axis: int, starts: list[int], out_len: int) -> torch.Tensor:
    """S×out_len×cells float32: along one axis, the weight of each window's grid cell in each output
    pixel — the window's upsampling, the mean over windows (weighted by the blend), the resize of
    the view to the answer. Composed in float64."""
    cells, window, view_len = view.logits.shape[-2 + axis], view.window[axis], view.size[axis]
    lower, upper, weight = (t.cpu() for t in view.grid.source(cells, window, 0, window))
    weight = weight.double()
    profile = blend_profile(view.blend, window)
    pixels = torch.arange(window)
    maps = torch.zeros(len(starts), view_len, cells, dtype=torch.float64)
    for i, start in enumerate(starts):  # accumulate: at a clamped border lower == upper
        maps[i].index_put_((start + pixels, lower), (1 - weight) * profile, accumulate=True)
        maps[i].index_put_((start + pixels, upper), weight * profile, accumulate=True)
    cover = maps.sum(dim=(0, 2))  # view_len: the total weight of the windows over each view pixel
    if bool((cover == 0).any()):
        raise ValueError("the windows do not cover the whole view; anchors and size disagree")
    maps /= cover[None, :, None]
    if out_len != view_len:  # the bilinear resize of the view to the answer
        below, above, frac = bilinear_sources(view_len, out_len, 0, out_len)
        maps = torch.lerp(maps[:, below], maps[:, above], frac.double()[None, :, None])
    return maps.float()


@dataclass(frozen=True)
class _Block:
    """Output columns start..stop, computed together from the few grid columns they draw on."""

    start: int
    stop: int
    cells: torch.Tensor  # m: the window columns (of M) these output columns draw on
    weights: torch.Tensor  # m×B: each output column's weight of them
    runs: torch.Tensor  # N×S: per run of columns drawing on the same cells, those cells (indices
    #                     into `cells`, the last repeated to S, the most any run draws on)

    def to(self, device: torch.device) -> _Block:
        return dataclasses.replace(self, cells=self.cells.to(device), weights=self.weights.to(device),
                                   runs=self.runs.to(device))

    def class_ids(self, z: torch.Tensor) -> torch.Tensor:
        """R×B class ids of these columns, from z: R×M×C (a strip of rows on the grid's columns)."""
        num_rows, _, num_classes = z.shape
        z = z.index_select(1, self.cells)  # R×m×C
        if num_classes <= _FEW_CLASSES:
            return torch.matmul(z.transpose(1, 2), self.weights).max(dim=1).indices
        # A pixel's logit is a convex combination of its run's cells in its row: between their min
        # and max over the strip's rows. A class can win in a run only if its max reaches the best min.
        high, low = z.amax(dim=0)[self.runs].amax(dim=1), z.amin(dim=0)[self.runs].amin(dim=1)  # N×C
        classes = (high >= low.amax(dim=1, keepdim=True)).any(dim=0).nonzero()[:, 0]
        if len(classes) == 1:
            return classes.expand(num_rows, self.stop - self.start)
        subset = 0 < len(classes) < num_classes  # (none: NaN logits, whose argmax takes them all)
        if subset:
            z = z.index_select(2, classes)  # R×m×K, K in class order: a tie goes to the lower class id
        best = torch.matmul(z.transpose(1, 2), self.weights).max(dim=1).indices  # R×K×m @ m×B -> R×K×B
        return classes[best] if subset else best


def _column_blocks(cols: torch.Tensor) -> list[_Block]:
    """cols: W×M, each output column's weight of every window column -> blocks of output columns."""
    used = (cols > 0).numpy()
    # Runs: columns drawing on the same cells (2 per window covering them, 3 where a resize straddles).
    runs = [0]
    for x in range(1, len(used)):
        if (used[x] != used[x - 1]).any() or x - runs[-1] >= _BLOCK_COLUMNS:
            runs.append(x)
    blocks, group = [], []  # group: the starts of the runs in the block being filled
    for start, stop in zip(runs, [*runs[1:], len(used)], strict=True):
        if group and stop - group[0] > _BLOCK_COLUMNS:  # the run would not fit: the block ends before it
            blocks.append(_block(cols, used, group, start))
            group = []
        group.append(start)
    return [*blocks, _block(cols, used, group, len(used))]


def _block(cols: torch.Tensor, used: np.ndarray, run_starts: list[int], stop: int) -> _Block:
    """The block of output columns run_starts[0]..stop, made of the runs that start at run_starts."""
    cells = sorted(set(used[run_starts[0] : stop].nonzero()[1].tolist()))
    local = {cell: i for i, cell in enumerate(cells)}
    supports = [[local[c] for c in used[x].nonzero()[0].tolist()] for x in run_starts]
    widest = max(len(s) for s in supports)
    runs = torch.tensor([s + s[-1:] * (widest - len(s)) for s in supports])
    cells = torch.tensor(cells)
    return _Block(run_starts[0], stop, cells, cols[run_starts[0] : stop][:, cells].T.contiguous(), runs)
