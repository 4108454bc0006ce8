"""Weighted blends of overlapping windows (`blend="linear"|"gaussian"`): still a mean of the
windows covering each pixel, but without the jump where a window's coverage ends (issue 27:
the confidence map jumped 22 grey levels at a window border)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model import Predictor
from model.inference import merge_windows, plan_windows, tile_windows
from model.inference.window_logits import upsample_window_logits
from tests.conftest import tiny_segmenter

WEIGHTED = ["linear", "gaussian"]


@pytest.mark.parametrize("blend", ["uniform", *WEIGHTED])
def test_blended_merge_inverts_tile(blend):
    """Windows cut from one map agree everywhere, so any weighted mean gives the map back."""
    image = torch.randn(3, 90, 131)
    crops, anchors = tile_windows(image, 64, 40)
    torch.testing.assert_close(merge_windows(crops, anchors, (90, 131), blend), image)


@pytest.mark.parametrize("blend", WEIGHTED)
def test_blend_stays_between_the_windows_and_keeps_single_coverage(blend):
    logits = torch.stack([torch.full((1, 8, 8), 1.0), torch.full((1, 8, 8), 3.0)])
    merged = merge_windows(logits, [(0, 0), (0, 4)], (8, 12), blend)[0]
    assert merged.min() >= 1.0 - 1e-6 and merged.max() <= 3.0 + 1e-6
    # Where one window covers a pixel: its own logits (w·x / w, up to float rounding).
    torch.testing.assert_close(merged[:, :4], torch.full((8, 4), 1.0))
    torch.testing.assert_close(merged[:, 8:], torch.full((8, 4), 3.0))
    # Across the overlap the answer moves from the left window's value to the right one's,
    # monotonically (the left window fades as the right one takes over).
    assert (merged[0].diff() >= -1e-6).all()


@pytest.mark.parametrize("blend", WEIGHTED)
def test_weighted_blend_has_smaller_steps_at_window_borders(blend):
    """Uniform averaging jumps by half the difference where the second window starts; a blend
    that fades windows toward their borders spreads that change over the overlap."""
    logits = torch.stack([torch.full((1, 32, 32), 0.0), torch.full((1, 32, 32), 1.0)])
    anchors = [(0, 0), (0, 16)]
    uniform = merge_windows(logits, anchors, (32, 48), "uniform")[0, 0].diff().abs().max()
    weighted = merge_windows(logits, anchors, (32, 48), blend)[0, 0].diff().abs().max()
    assert uniform == pytest.approx(0.5)
    assert weighted < uniform / 3


def test_unknown_blend_is_an_error_naming_it():
    with pytest.raises(ValueError, match=r"unknown blend 'smooth'.*uniform, linear, gaussian"):
        merge_windows(torch.zeros(1, 1, 4, 4), [(0, 0)], (4, 4), "smooth")
    with pytest.raises(ValueError, match="unknown blend 'smooth'"):
        plan_windows(torch.zeros(1, 3, 8, 8), 8, 8, blend="smooth")
    with pytest.raises(ValueError, match="unknown blend 'smooth'"):
        Predictor(tiny_segmenter(num_classes=3), blend="smooth")


@pytest.mark.parametrize("blend", WEIGHTED)
def test_predictor_blend_changes_only_overlaps(blend):
    """Through `Predictor`: an image one window covers is unchanged by the blend; a larger one
    gets the blended merge of the same windows."""
    torch.manual_seed(0)
    net = tiny_segmenter(num_classes=3)
    uniform = Predictor(net, window_size=32, window_stride=20)
    blended = Predictor(net, window_size=32, window_stride=20, blend=blend)
    rgb = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    np.testing.assert_allclose(blended.probabilities(rgb, scale="none"), uniform.probabilities(rgb, scale="none"),
                               atol=1e-6)
    rgb = np.random.default_rng(1).integers(0, 256, (32, 72, 3), dtype=np.uint8)
    plan = blended.prepare(rgb, scale="none")
    assert plan.blend == blend
    logits = blended.run(plan)
    (view,) = plan.views
    pixels = upsample_window_logits(logits[0], view.window, blended.grid)  # the windows at full size
    expected = merge_windows(pixels, view.anchors, view.size, blend).softmax(dim=0)
    got = torch.as_tensor(blended.probabilities(rgb, scale="none"))
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(torch.as_tensor(uniform.probabilities(rgb, scale="none")), expected)
