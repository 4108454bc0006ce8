"""The test scale travels in the checkpoint and the Predictor applies it: images are resized into
it (keeping their ratio, up or down) before the windows, and answered at their own size."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model import ModelMetadata, Predictor, load_segmenter, parse_scale
from model.inference.cost import rescale_factor
from testkit.official_files import official_net_kwargs, write_official_checkpoint
from tests.conftest import tiny_segmenter


def _net(test_scale=(256, 64), protocol="official"):
    net = tiny_segmenter(seed=4)
    net.metadata = net.metadata.replace(test_scale=test_scale, protocol=protocol, window_stride=48)
    return net


@pytest.mark.parametrize("size", [(100, 150), (600, 400), (30, 300), (64, 64)])
def test_images_are_resized_into_the_test_scale_and_answered_at_their_size(size, rng):
    pred = Predictor(_net(), max_windows=None)
    rgb = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    plan = pred.prepare(rgb)
    factor = min(256 / max(size), 64 / min(size))  # mmcv's keep-ratio rule, up or down
    expected = (int(size[0] * factor + 0.5), int(size[1] * factor + 0.5))
    if min(expected) < 64:  # the official protocol upscales a view smaller than the window
        short = min(expected)
        expected = (64, int(expected[1] / short * 64)) if expected[0] == short else (int(expected[0] / short * 64), 64)
    assert plan.views[0].size == expected
    assert plan.image_size == size and pred.predict(rgb).shape == size


def test_the_scale_override_takes_a_short_side_or_none(rng):
    pred = Predictor(_net(), max_windows=None)
    rgb = rng.integers(0, 256, (100, 150, 3), dtype=np.uint8)
    assert pred.prepare(rgb, scale=128).views[0].size == (128, 192)
    assert pred.prepare(rgb, scale="none").views[0].size == (100, 150)
    assert pred.predict(rgb, scale="none").shape == (100, 150)
    for bad in (0, -5, "huge", 1.5, True):
        with pytest.raises(ValueError, match="short side in pixels"):
            pred.prepare(rgb, scale=bad)
    assert parse_scale("none") == "none" and parse_scale("480") == 480
    with pytest.raises(ValueError, match="short side"):
        parse_scale("480px")


def test_without_a_test_scale_images_keep_their_size(rng):
    pred = Predictor(_net(test_scale=None))
    rgb = rng.integers(0, 256, (100, 150, 3), dtype=np.uint8)
    assert pred.prepare(rgb).views[0].size == (100, 150)
    assert rescale_factor(100, 150, None) == 1.0


def test_mmseg_protocol_runs_a_small_view_as_smaller_windows(rng):
    pred = Predictor(_net(protocol="mmseg"), max_windows=None)
    plan = pred.prepare(rng.integers(0, 256, (30, 300, 3), dtype=np.uint8))  # -> 26×256: shorter than the window
    assert plan.views[0].size == (26, 256) and plan.views[0].window == (26, 64)
    assert plan.groups[0].shape[-2:] == (26, 64)


def test_official_checkpoints_carry_the_authors_test_scale(tmp_path):
    write_official_checkpoint(tmp_path / "ade", official_net_kwargs(), dataset="ade20k")
    assert load_segmenter(tmp_path / "ade" / "checkpoint.pth").metadata.test_scale == (256, 64)  # (4 × 64, 64)
    write_official_checkpoint(tmp_path / "city", official_net_kwargs(n_cls=19), dataset="cityscapes")
    assert load_segmenter(tmp_path / "city" / "checkpoint.pth").metadata.test_scale == (128, 64)  # (2 × 64, 64)


def test_bundled_datasets_default_to_their_test_scale_and_it_round_trips(tmp_path):
    from model import save_checkpoint
    from model.checkpoints import read_checkpoint_description

    meta = ModelMetadata.for_dataset("ade20k")
    assert meta.test_scale == (2048, 512) and ModelMetadata.for_dataset("cityscapes").test_scale == (2048, 1024)
    net = tiny_segmenter(num_classes=150)
    net.metadata = meta.replace(window_size=64, window_stride=64)
    save_checkpoint(net, tmp_path / "c")
    assert read_checkpoint_description(tmp_path / "c")[1] == net.metadata
    with pytest.raises(ValueError, match="test_scale"):
        meta.replace(test_scale=(0, 512))


def test_the_official_upscale_and_the_test_scale_give_the_reference_answer(rng):
    """The test-scale resize is on 8-bit pixels; then the official inference on that image."""
    from model.inference.resize import resize_uint8
    from testkit.official_inference import official_probabilities

    net = _net(test_scale=(128, 32))
    pred = Predictor(net, max_windows=None)
    rgb = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    resized = resize_uint8(rgb, (32, 45))  # factor min(128/70, 32/50) = 0.64
    with torch.inference_mode():
        probs = official_probabilities(net, pred.to_tensor(resized), 64, 48, ori_shape=(50, 70))
    np.testing.assert_allclose(pred.probabilities(rgb), probs.numpy(), atol=1e-5)
