"""One view's class ids straight from patch-grid logits (`grid_argmax`) are the argmax of the
definition: every window upsampled to pixels, averaged where windows overlap, the view resized to
the answer, mirrored back — whatever the blend, protocol, sizes and logits; and they are computed
without holding the view's C×H×W logits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from model.inference import LogitsGrid, merge_windows, plan_windows, upsample_window_logits
from model.inference.grid_argmax import grid_class_ids, on_patch_grid
from testkit.window_logits import window_logits


def definition(plan, logits: torch.Tensor) -> torch.Tensor:
    """H×W float32 logits of the single view at the answer's size, by the full-resolution path."""
    (view,) = plan.views
    full = upsample_window_logits(logits, view.window, plan.grid)  # N×C×h×w
    merged = merge_windows(full, view.anchors, view.size, plan.blend)
    resized = F.interpolate(merged[None], size=plan.image_size, mode="bilinear", align_corners=False)[0]
    return torch.flip(resized, dims=(2,)) if view.flip else resized


CASES = [  # view (H, W), window, stride, answer size, output_resize, blend, flip
    ((64, 64), 64, 64, (64, 64), "upsample_crop", "uniform", False),  # one window, nothing resized
    ((64, 150), 64, 40, (60, 140), "upsample_crop", "uniform", False),  # overlaps, the view shrunk
    ((96, 130), 64, 43, (200, 271), "upsample_crop", "linear", True),  # 2×3 windows, upscaled, mirrored
    ((70, 90), 48, 30, (70, 90), "upsample_crop", "gaussian", False),  # a window not a multiple of p
    ((50, 131), 50, 43, (47, 128), "resize", "uniform", True),  # mmseg: straight to the window's size
    ((129, 97), 64, 40, (129, 97), "resize", "gaussian", False),
    ((64, 64), 64, 64, (64, 1), "upsample_crop", "uniform", False),  # every column draws on the same cells
    ((100, 64), 64, 48, (100, 1), "upsample_crop", "uniform", True),  # a 1-pixel-wide image, upscaled
    ((96, 512), 64, 43, (150, 1300), "upsample_crop", "linear", False),  # several blocks of 512 columns
]


@pytest.mark.parametrize("kind", ["random", "smooth"])
@pytest.mark.parametrize("num_classes", [2, 40, 150])
@pytest.mark.parametrize("view_size, window, stride, size, resize, blend, flip", CASES)
def test_grid_class_ids_are_the_argmax_of_the_full_resolution_logits(view_size, window, stride, size, resize, blend,
                                                                     flip, num_classes, kind):
    grid = LogitsGrid(16, resize)
    plan = plan_windows(torch.zeros(1, 3, *view_size), window, stride, flips=(flip,), blend=blend, grid=grid,
                        output_size=size)
    ((crops,),) = (plan.groups,)
    logits = window_logits(kind, len(crops), num_classes, grid.grid_shape(window, window), seed=num_classes)
    rows = plan.view_rows(plan.views[0], logits)
    assert on_patch_grid(rows)  # the path under test, not the strip path
    ids = grid_class_ids(rows, flip, size, None)
    expected = definition(plan, logits).max(dim=0).indices
    assert ids.shape == size and ids.dtype == torch.int64
    assert (ids == expected).float().mean() >= 0.9999
    assert (plan.class_ids(logits) == expected).float().mean() >= 0.9999  # what callers get (`view_class_ids`)


def test_a_view_narrower_than_a_patch_is_merged_from_its_one_column_of_cells():
    """mmseg's protocol runs a view narrower than the window as a narrower window: one cell wide."""
    grid = LogitsGrid(16, "resize")
    plan = plan_windows(torch.zeros(1, 3, 64, 10), 64, 48, grid=grid, upscale=False)
    logits = window_logits("random", len(plan.groups[0]), 40, grid.grid_shape(64, 10), seed=4)
    assert on_patch_grid(plan.view_rows(plan.views[0], logits))
    assert (plan.class_ids(logits) == definition(plan, logits).max(dim=0).indices).float().mean() >= 0.9999


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_logits_stay_where_they_are(bad):
    """One bad cell (an overflowing fp16 model) changes the answer near it only, as the strip path
    does: the grid path's products would spread it over every pixel of its strip."""
    plan = plan_windows(torch.zeros(1, 3, 64, 150), 64, 40, grid=LogitsGrid(16), output_size=(60, 140))
    logits = window_logits("smooth", len(plan.groups[0]), 40, (4, 4), seed=5)
    clean = plan.class_ids(logits)
    logits[1, 5, 2, 1] = bad
    assert not on_patch_grid(plan.view_rows(plan.views[0], logits))
    changed = plan.class_ids(logits) != clean
    assert changed.float().mean() < 0.25  # the cell's neighbourhood, not the image


def test_a_tie_goes_to_the_lower_class_id_as_argmax():
    plan = plan_windows(torch.zeros(1, 3, 64, 150), 64, 40, grid=LogitsGrid(16), output_size=(60, 140))
    logits = window_logits("smooth", len(plan.groups[0]), 40, (4, 4), seed=3)
    logits[:, 31] = logits[:, 7]  # two classes equal everywhere
    ids = plan.class_ids(logits)
    expected = definition(plan, logits).max(dim=0).indices
    assert (ids == 7).any() and not (ids == 31).any()
    assert (ids == expected).float().mean() >= 0.9999


class LargestOutput(TorchDispatchMode):
    """The most elements of any tensor an aten op returns."""

    def __init__(self):
        super().__init__()
        self.numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, tuple) else (out,):
            if isinstance(t, torch.Tensor):
                self.numel = max(self.numel, t.numel())
        return out


@pytest.mark.parametrize("kind", ["random", "smooth"])
def test_a_photo_of_150_classes_is_merged_without_its_full_size_logits(kind):
    """A 480×640 photo (two 512² windows over the 512×683 view): nothing near C×H×W (46 M floats)
    is ever made; the largest tensor is a strip's candidates' logits."""
    plan = plan_windows(torch.zeros(1, 3, 512, 683), 512, 512, grid=LogitsGrid(16), output_size=(480, 640))
    logits = window_logits(kind, len(plan.groups[0]), 150, (32, 32), seed=0)
    with torch.inference_mode(), LargestOutput() as seen:
        plan.class_ids(logits)
    assert seen.numel <= 16 * 512 * 150  # a strip of 16 rows × a block of 512 columns
    assert seen.numel < 150 * 480 * 640 // 30
