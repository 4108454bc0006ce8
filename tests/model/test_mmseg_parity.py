"""MMSegmentation checkpoints compute what MMSegmentation 1.2.2 computes with them.

The reference is mmseg's own code (testkit/mmseg_reference.py): its Segmenter config files,
shrunk, randomly initialised, written as an mmengine Runner checkpoint (after one training
iteration) and as a model-zoo file. The same files are loaded with `load_segmenter` and
compared: one-window logits, sliding-window logits, and `Predictor.predict` against mmseg's
`inference_model` (test-scale resize, slide, resize back) on images larger and smaller than the
window, of sizes that are not multiples of the patch.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from model import Predictor, load_segmenter, plan_windows

try:
    from testkit import mmseg_reference as mmseg_ref

    mmseg_ref.import_mmseg()
except ImportError as exc:  # pragma: no cover - the dev extra installs mmsegmentation
    if os.environ.get("SEGMENTER_REQUIRE_MMSEG"):
        raise
    pytest.skip(f"mmsegmentation is not installed ({exc}); pip install -e .[dev]", allow_module_level=True)

CASES = [("mask", "runner"), ("linear", "runner"), ("mask", "zoo"), ("linear", "zoo")]


@pytest.fixture(scope="module", params=CASES, ids=["-".join(c) for c in CASES])
def models(request, tmp_path_factory):
    """(mmseg's model, ours loaded from the same file, the file's kind)."""
    kind, source = request.param
    folder = tmp_path_factory.mktemp(f"mmseg-{kind}-{source}")
    if source == "runner":  # mmseg 1.x training: no patch bias, its config stored in the file
        cfg = mmseg_ref.shrunk_config(kind)
        path = mmseg_ref.write_runner_checkpoint(cfg, folder)
        reference = mmseg_ref.build(cfg, path)
    else:  # a 0.x zoo file: patch bias, no config; mmseg's ADE20K defaults are what both sides use
        cfg = mmseg_ref.shrunk_config(kind, window=128, stride=96, test_scale=(2048, 512), patch_bias=True)
        reference = mmseg_ref.build(cfg, seed=1)
        path = mmseg_ref.write_zoo_file(reference, folder / "zoo.pth")
    return reference, load_segmenter(path), source


def _relative(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return float((ours - theirs).abs().max() / theirs.abs().max())


def _rgb(height: int, width: int, seed: int) -> np.ndarray:
    small = np.random.default_rng(seed).integers(0, 256, (max(2, height // 8), max(2, width // 8), 3), np.uint8)
    return np.asarray(torch.nn.functional.interpolate(torch.from_numpy(small).permute(2, 0, 1)[None].float(),
                                                      size=(height, width), mode="bilinear")[0]
                      .permute(1, 2, 0).round().clamp(0, 255).byte())


def test_the_file_is_read_with_mmsegs_numerics_and_protocol(models):
    reference, ours, source = models
    meta = ours.metadata
    assert meta.protocol == "mmseg" and ours.config.output_resize == "resize"
    assert (ours.config.layer_norm_eps, ours.config.decoder_eps) == (1e-6, 1e-5)
    expected = {"runner": (64, 48, (256, 64)), "zoo": (128, 96, (2048, 512))}[source]
    assert (meta.window_size, meta.window_stride, meta.test_scale) == expected
    assert meta.class_names[:2] == ("class0", "class1") and meta.palette[1] == (1, 254, 7)


@pytest.mark.parametrize("size", [(64, 64), (50, 83)])
def test_one_window_logits_match(models, size):
    reference, ours, _ = models
    images = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert _relative(ours(images), mmseg_ref.forward_logits(reference, images)) < 1e-4


@pytest.mark.parametrize("size", [(100, 150), (40, 50), (64, 200)])
def test_sliding_window_logits_match(models, size):
    reference, ours, _ = models
    predictor = Predictor(ours, max_windows=None)
    image = predictor.to_tensor(_rgb(*size, seed=1))
    plan = plan_windows(image, predictor.window_size, predictor.window_stride, upscale=False)
    with torch.inference_mode():
        logits = plan.merged(plan.views[0], predictor.run(plan))
        assert _relative(logits, mmseg_ref.slide_logits(reference, image)) < 1e-4


@pytest.mark.parametrize("size", [(100, 150), (30, 300), (45, 61)])
def test_predicted_masks_match_inference_model(models, size):
    reference, ours, _ = models
    rgb = _rgb(*size, seed=2)
    theirs, _ = mmseg_ref.predict(reference, rgb)
    mask = Predictor(ours, max_windows=None).predict(rgb)
    assert mask.shape == theirs.shape == size
    # mmseg resizes the uint8 image (cv2), we the float one: a grey level apart at most.
    assert (mask == theirs).mean() >= 0.99


def test_the_test_scale_resize_is_opencvs_to_the_grey_level():
    """resize_uint8 re-does mmcv's cv2.resize(INTER_LINEAR) arithmetic, which both reference
    pipelines use for the test scale."""
    import cv2

    from model.inference.resize import resize_uint8

    rng = np.random.default_rng(0)
    for size, new in [((100, 150), (64, 96)), ((45, 61), (64, 87)), ((30, 300), (26, 256)), ((1512, 2016), (512, 683))]:
        rgb = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        ours, theirs = resize_uint8(rgb, new), cv2.resize(rgb, new[::-1], interpolation=cv2.INTER_LINEAR)
        assert np.abs(ours.astype(int) - theirs).max() <= 1 and (ours == theirs).mean() > 0.995
