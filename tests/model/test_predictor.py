"""Predictor: numpy in/out, probabilities, masks, multi-scale, precisions, input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model import Predictor
from model.inference import MULTISCALE_SCALES, plan_windows
from tests.conftest import tiny_segmenter


def test_probabilities_are_a_distribution_and_predict_is_their_argmax(tiny_net, rng):
    rgb = rng.integers(0, 256, (83, 120, 3), dtype=np.uint8)
    pred = Predictor(tiny_net)
    probs = pred.probabilities(rgb)
    assert probs.shape == (5, 83, 120)
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)
    mask = pred.predict(rgb)
    assert mask.shape == (83, 120) and mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, probs.argmax(0))


def test_defaults_come_from_metadata(tiny_net):
    tiny_net.metadata = tiny_net.metadata.replace(window_size=48, window_stride=32)
    pred = Predictor(tiny_net)
    assert (pred.window_size, pred.window_stride) == (48, 32)
    assert Predictor(tiny_net, window_size=64, window_stride=16).window_stride == 16


def test_normalization_uses_metadata_mean_std(tiny_net):
    tiny_net.metadata = tiny_net.metadata.replace(mean=(0.2, 0.4, 0.6), std=(0.5, 0.25, 0.1))
    x = Predictor(tiny_net).to_tensor(np.full((2, 2, 3), 255, dtype=np.uint8))
    torch.testing.assert_close(x[0, :, 0, 0], torch.tensor([1.6, 2.4, 4.0]))


def view_logits(pred: Predictor, image: torch.Tensor, scale: float = 1.0, flip: bool = False) -> torch.Tensor:
    """Sliding-window logits of one view (scale, flip) of a normalized image, C×H×W at its size."""
    plan = plan_windows(image, pred.window_size, pred.window_stride, (scale,), (flip,), grid=pred.grid)
    return plan.view_logits(plan.views[0], pred.run(plan))


def test_multiscale_averages_all_scales_with_flips(tiny_net, rng):
    rgb = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)
    pred = Predictor(tiny_net)
    image = pred.to_tensor(rgb)
    with torch.inference_mode():
        manual = sum(view_logits(pred, image, s, f).softmax(0) for s in MULTISCALE_SCALES for f in (False, True))
    got = pred.probabilities(rgb, multiscale=True)
    np.testing.assert_allclose(got, (manual / 12).numpy(), atol=1e-6)
    assert not np.allclose(got, pred.probabilities(rgb), atol=1e-3)  # TTA really changes the result


def test_flip_is_undone(rng):
    # A model that sees a mirrored image must produce mirrored logits; after un-flipping they
    # align with the input, so for a left/right symmetric image flip and no-flip agree.
    net = tiny_segmenter(seed=2)
    half = rng.integers(0, 256, (64, 40, 3), dtype=np.uint8)
    rgb = np.concatenate([half, half[:, ::-1]], axis=1)
    pred = Predictor(net)
    image = pred.to_tensor(rgb)
    with torch.inference_mode():
        plain, flipped = view_logits(pred, image), view_logits(pred, image, flip=True)
    torch.testing.assert_close(flipped, torch.flip(plain, dims=(2,)), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_low_precision_agrees_with_fp32(tiny_net, rng, precision):
    rgb = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    reference = Predictor(tiny_net).probabilities(rgb)
    low = Predictor(tiny_net, precision=precision).probabilities(rgb)
    assert low.dtype == np.float32
    assert np.abs(low - reference).max() < 0.05
    assert (low.argmax(0) == reference.argmax(0)).mean() > 0.95


def test_many_classes_give_uint16_masks(rng):
    net = tiny_segmenter(num_classes=300)
    assert Predictor(net).predict(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).dtype == np.uint16


@pytest.mark.parametrize("bad", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 4), np.uint8),
                                 np.zeros((10, 10, 3), np.float32), [[1, 2, 3]]])
def test_bad_input_names_the_expected_format(tiny_net, bad):
    with pytest.raises(ValueError, match="H×W×3 uint8"):
        Predictor(tiny_net).predict(bad)


def test_bad_precision_and_missing_metadata(tiny_net):
    with pytest.raises(ValueError, match="precision"):
        Predictor(tiny_net, precision="int8")
    tiny_net.metadata = None
    with pytest.raises(ValueError, match="no metadata"):
        Predictor(tiny_net)


@pytest.mark.parametrize("multiscale", [False, True])
def test_predict_many_equals_predict_per_image_with_fewer_forward_passes(tiny_net, rng, multiscale):
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in [(130, 180, 3), (140, 140, 3), (200, 130, 3)]]
    pred = Predictor(tiny_net, window_size=64, window_stride=48, batch_size=8)
    forward, calls = pred.forward, []
    pred.forward = lambda crops: calls.append(len(crops)) or forward(crops)
    alone = [pred.predict(rgb, multiscale) for rgb in images]
    calls_alone = len(calls)
    calls.clear()
    together = pred.predict_many(images, multiscale)
    for one, other in zip(alone, together, strict=True):
        np.testing.assert_array_equal(one, other)
    assert len(calls) < calls_alone and max(calls) <= 8  # windows of different images share passes
