"""Labels first: window logits on the patch grid, merged a strip at a time, give today's answer.

The reference is the full-resolution path as it was before window forwards stopped at the
patch grid (issue 25): every window's logits upsampled by the model itself (`Segmenter.forward`),
averaged per pixel over the windows covering it (`merge_windows`), each view resized to the
image with `F.interpolate`, mirrored back, softmax, mean over views, argmax.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from model import Predictor, Segmenter
from model.inference import merge_windows
from model.inference.window_logits import LogitsGrid, upsample_window_logits
from tests.conftest import tiny_config, tiny_metadata


def full_resolution_probabilities(net: Segmenter, plan) -> torch.Tensor:
    """C×H×W: the definition, with every window's logits at full size."""
    full = [net(group) for group in plan.groups]  # B×C×h×w: the model upsamples
    total = None
    for view in plan.views:
        merged = merge_windows(full[view.group][view.start : view.stop], view.anchors, view.size, plan.blend)
        resized = F.interpolate(merged[None], size=plan.image_size, mode="bilinear", align_corners=False)[0]
        probs = (torch.flip(resized, dims=(2,)) if view.flip else resized).softmax(dim=0)
        total = probs if total is None else total + probs
    return total / len(plan.views)


def model(protocol: str, num_classes: int, window: int, stride: int, seed: int = 0) -> Segmenter:
    torch.manual_seed(seed)
    resize = "resize" if protocol == "mmseg" else "upsample_crop"
    cfg = tiny_config(num_classes=num_classes, output_resize=resize)
    return Segmenter(cfg, tiny_metadata(num_classes, window, stride).replace(protocol=protocol)).eval()


CASES = [  # protocol, classes, window, stride, image (H, W), multi-scale
    ("official", 5, 64, 40, (70, 90), False),
    ("official", 150, 64, 40, (70, 90), False),  # the pruned single-view argmax
    ("official", 2, 64, 64, (33, 250), True),  # thin: upscaled views, multi-scale with flips
    ("official", 150, 48, 30, (101, 77), True),  # a window that is not a multiple of the patch
    ("mmseg", 5, 64, 40, (50, 130), False),  # views shorter than the window: 50×64 windows, padded
    ("mmseg", 150, 64, 43, (50, 131), True),
    ("mmseg", 2, 64, 40, (129, 97), True),
]


@pytest.mark.parametrize("protocol, num_classes, window, stride, size, multiscale", CASES)
def test_patch_grid_logits_give_the_full_resolution_answer(protocol, num_classes, window, stride, size, multiscale):
    net = model(protocol, num_classes, window, stride)
    predictor = Predictor(net, max_windows=None)
    rgb = np.random.default_rng(num_classes + size[0]).integers(0, 256, (*size, 3), dtype=np.uint8)
    plan = predictor.prepare(rgb, multiscale, scale="none")
    logits = predictor.run(plan)
    for group, crops in zip(logits, plan.groups, strict=True):  # the forward's answer is the patch grid
        assert tuple(group.shape[-2:]) == predictor.grid.grid_shape(*crops.shape[-2:])
    with torch.inference_mode():
        expected = full_resolution_probabilities(net, plan)
        probabilities = plan.probabilities(logits)
        ids = plan.class_ids(logits)
        ids_too, confidence = plan.class_ids_and_confidence(logits)
    torch.testing.assert_close(probabilities, expected, atol=1e-5, rtol=0)
    best = expected.max(dim=0)
    assert (ids == best.indices).float().mean() >= 0.9999
    assert (ids_too == best.indices).float().mean() >= 0.9999
    torch.testing.assert_close(confidence, best.values, atol=1e-5, rtol=0)


@pytest.mark.parametrize("resize", ["upsample_crop", "resize"])
@pytest.mark.parametrize("window", [(64, 64), (50, 64), (37, 21)])
def test_window_rows_are_the_models_own_upsampling(resize, window):
    torch.manual_seed(1)
    net = Segmenter(tiny_config(output_resize=resize), tiny_metadata()).eval()
    crops = torch.randn(2, 3, *window)
    with torch.inference_mode():
        grid = net.forward_patches(crops)
        assert tuple(grid.shape[-2:]) == LogitsGrid(16, resize).grid_shape(*window)
        torch.testing.assert_close(upsample_window_logits(grid, window, net.metadata.logits_grid), net(crops),
                                   atol=1e-5, rtol=1e-5)


def test_logits_that_fit_no_window_are_refused():
    net = model("official", 5, 64, 64)
    predictor = Predictor(net)
    plan = predictor.prepare(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match=r"window logits of 5×5 for a 64×64 window; expected 64×64 or 4×4"):
        plan.class_ids(torch.zeros(1, 5, 5, 5))
    full = torch.zeros(1, 5, 64, 64)  # logits at the window's size (an older export) are accepted
    assert plan.class_ids(full).shape == (64, 64)


def test_queued_window_logits_are_a_patch_grid(tiny_net):
    """What waits between the forward and the merge: 1/p² of the full-size logits."""
    predictor = Predictor(tiny_net)
    plan = predictor.prepare(np.zeros((64, 150, 3), np.uint8), scale="none")
    (logits,) = predictor.run(plan)
    assert logits.shape == (plan.num_windows, 5, 4, 4)
    assert logits.numel() * 16 * 16 == plan.num_windows * 5 * 64 * 64


def test_a_queued_512_window_of_150_classes_holds_under_1_mb_of_logits():
    """Issue 25's target: what waits between forward and merge for Seg-T/16 at 512 (was 157 MB)."""
    torch.manual_seed(0)
    net = Segmenter(tiny_config(num_classes=150, image_size=512), tiny_metadata(150, 512)).eval()
    predictor = Predictor(net)
    with torch.inference_mode():
        logits = predictor.forward_windows(torch.randn(1, 3, 512, 512))
    assert logits.shape == (1, 150, 32, 32)
    assert logits.numel() * logits.element_size() <= 2**20  # 614 KB; 157 MB at 512×512


def test_the_cost_estimate_counts_logits_where_the_forward_answers(tiny_net):
    """The admission estimate follows the forward: patch-grid logits, or full size for a graph
    exported before (a runner with `patch_grid = False`)."""
    predictor = Predictor(tiny_net)
    grid_cost = predictor.cost(64, 150, scale="none")
    predictor.forward.patch_grid = False
    full_cost = predictor.cost(64, 150, scale="none")
    assert grid_cost.windows == full_cost.windows == 3
    assert full_cost.bytes - grid_cost.bytes == 3 * 5 * (64 * 64 - 4 * 4) * 4
