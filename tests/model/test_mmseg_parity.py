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

from model import load_segmenter
from testkit.mmseg_parity import (
    CASES,
    one_window_difference,
    predicted_masks,
    reference_and_file,
    sliding_difference,
    smooth_rgb,
)

try:
    from testkit import mmseg_reference as mmseg_ref

    mmseg_ref.import_mmseg()
except ImportError as exc:  # pragma: no cover - the dev extra installs mmsegmentation
    if os.environ.get("SEGMENTER_REQUIRE_MMSEG"):
        raise
    pytest.skip(f"mmsegmentation is not installed ({exc}); pip install -e .[dev]", allow_module_level=True)


@pytest.fixture(scope="module", params=CASES, ids=["-".join(c) for c in CASES])
def models(request, tmp_path_factory):
    """(mmseg's model, ours loaded from the same file, the file's kind)."""
    kind, source = request.param
    reference, path = reference_and_file(kind, source, tmp_path_factory.mktemp(f"mmseg-{kind}-{source}"))
    return reference, load_segmenter(path), source


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
    assert one_window_difference(reference, ours, images) < 1e-4


@pytest.mark.parametrize("size", [(100, 150), (40, 50), (64, 200)])
def test_sliding_window_logits_match(models, size):
    reference, ours, _ = models
    assert sliding_difference(reference, ours, smooth_rgb(*size, seed=1)) < 1e-4


@pytest.mark.parametrize("size", [(100, 150), (30, 300), (45, 61)])
def test_predicted_masks_match_inference_model(models, size):
    reference, ours, _ = models
    mask, theirs = predicted_masks(reference, ours, smooth_rgb(*size, seed=2))
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
