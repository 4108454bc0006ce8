"""Tiling covers every pixel; merging inverts tiling; a single window equals the plain forward."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model import Predictor
from model.inference import merge_windows, resize_to_window, run_windows, tile_windows, window_anchors
from testkit.official_inference import official_probabilities
from tests.conftest import tiny_segmenter


@pytest.mark.parametrize("height,width,window,stride", [
    (64, 64, 64, 64), (100, 64, 64, 64), (64, 177, 64, 48), (130, 97, 32, 20), (512, 683, 512, 341),
])
def test_windows_cover_every_pixel_and_stay_inside(height, width, window, stride):
    anchors = window_anchors(height, width, window, stride)
    covered = np.zeros((height, width), dtype=int)
    for top, left in anchors:
        assert 0 <= top <= height - window and 0 <= left <= width - window
        covered[top : top + window, left : left + window] += 1
    assert covered.min() >= 1
    # the last window is flush with the border, and no two windows start at the same place
    assert max(t for t, _ in anchors) == height - window and max(s for _, s in anchors) == width - window
    assert len(set(anchors)) == len(anchors)


def test_window_larger_than_image_is_refused():
    with pytest.raises(ValueError, match="smaller than the window"):
        window_anchors(40, 100, 64, 64)


def test_merge_inverts_tile():
    image = torch.randn(3, 90, 131)
    crops, anchors = tile_windows(image, 64, 40)
    assert crops.shape[1:] == (3, 64, 64)
    torch.testing.assert_close(merge_windows(crops, anchors, (90, 131)), image)


def test_merge_averages_overlaps():
    logits = torch.stack([torch.full((1, 4, 4), 1.0), torch.full((1, 4, 4), 3.0)])
    merged = merge_windows(logits, [(0, 0), (0, 2)], (4, 6))
    assert merged[0, 0].tolist() == [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]


def test_run_windows_batches_do_not_change_results(tiny_net):
    crops = torch.randn(7, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(run_windows(tiny_net, crops, 3), run_windows(tiny_net, crops, 7))


def test_resize_to_window_upscales_short_side_only():
    assert resize_to_window(torch.zeros(1, 3, 30, 90), 64).shape[-2:] == (64, 192)
    assert resize_to_window(torch.zeros(1, 3, 90, 30), 64).shape[-2:] == (192, 64)
    big = torch.zeros(1, 3, 70, 90)
    assert resize_to_window(big, 64) is big


def test_single_window_equals_plain_forward(tiny_net, rng):
    rgb = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    pred = Predictor(tiny_net)
    image = pred.to_tensor(rgb)
    with torch.inference_mode():
        expected = tiny_net(image)[0].softmax(0)
    torch.testing.assert_close(pred.probabilities_tensor(rgb), expected)


@pytest.mark.parametrize("shape,window,stride", [((64, 64), 64, 64), ((97, 140), 64, 40), ((40, 150), 64, 32),
                                                 ((150, 41), 64, 64)])
def test_predictor_matches_official_inference(rng, shape, window, stride):
    net = tiny_segmenter(seed=5)
    rgb = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    pred = Predictor(net, window_size=window, window_stride=stride, batch_size=3)
    with torch.inference_mode():
        expected = official_probabilities(net, pred.to_tensor(rgb), window, stride)
    got = pred.probabilities(rgb)
    assert got.shape == (5, *shape) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-5)


def test_window_plan_gives_the_same_answer_whatever_the_batching():
    """The service runs a plan's windows in batches shared with other requests, in any order."""
    from model.inference import plan_windows

    net = tiny_segmenter(seed=2)
    image = torch.randn(1, 3, 70, 100)
    plan = plan_windows(image, window=64, stride=40, scales=(0.75, 1.0), flips=(False, True),
                        grid=net.metadata.logits_grid)
    assert plan.num_windows == sum(v.stop - v.start for v in plan.views)
    (crops,) = plan.groups  # the official protocol: every window 64×64, one group
    with torch.inference_mode():
        together = net(crops)
        order = torch.randperm(plan.num_windows)
        shuffled = torch.cat([net(crops[order[i : i + 3]]) for i in range(0, plan.num_windows, 3)])
    back = torch.empty_like(shuffled)
    back[order] = shuffled
    torch.testing.assert_close(plan.probabilities(back), plan.probabilities(together), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="do not match the plan's groups"):
        plan.probabilities(together[:-1])


def test_multiscale_class_ids_compute_no_confidence_map_and_equal_those_with_it(monkeypatch):
    """`class_ids` of several views: the same ids as `class_ids_and_confidence`, without its
    H×W float map (it used to compute one and drop it)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    import model.inference.merge as merge

    monkeypatch.setattr(merge, "STRIP_BYTES", 8 * 5 * 90 * 8)  # strips of 8 rows: only a whole map is H×W

    class Outputs(TorchDispatchMode):  # every tensor an aten op returns: shape and dtype
        def __init__(self):
            super().__init__()
            self.seen = set()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, tuple) else (out,):
                if isinstance(t, torch.Tensor):
                    self.seen.add((tuple(t.shape), t.dtype))
            return out

    predictor = Predictor(tiny_segmenter(), max_windows=1000)
    rgb = np.random.default_rng(2).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    plan = predictor.prepare(rgb, multiscale=True)
    logits = [predictor.forward_windows(group) for group in plan.groups]
    with Outputs() as ids_only:
        ids = plan.class_ids(logits)
    with Outputs() as both:
        expected, _ = plan.class_ids_and_confidence(logits)
    assert torch.equal(ids, expected)
    assert ((70, 90), torch.float32) in both.seen and ((70, 90), torch.float32) not in ids_only.seen
