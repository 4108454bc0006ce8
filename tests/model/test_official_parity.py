"""Official checkpoints (checkpoint.pth + variant.yml) give the authors' logits.

The oracle is testkit/official_segmenter.py, an independent plain-PyTorch
re-implementation of the official forward (unfused attention, eps 1e-5, bilinear pos-embed).
"""

from __future__ import annotations

import pytest
import torch

from model import load_segmenter
from model.class_sets import get_class_set
from testkit.official_files import official_net_kwargs, write_official_checkpoint

CASES = {
    "mask/16": dict(decoder="mask_transformer", patch=16),
    "linear/16": dict(decoder="linear", patch=16),
    "mask/8": dict(decoder="mask_transformer", patch=8),
    "linear/32": dict(decoder="linear", patch=32),
    "mask/32": dict(decoder="mask_transformer", patch=32),
    "deit-mask/16": dict(decoder="mask_transformer", patch=16, distilled=True),
    "deit-linear/16": dict(decoder="linear", patch=16, distilled=True),
}
# trained size, then odd sizes that need padding and a resized position-embedding grid
SIZES = [(64, 64), (37, 50), (96, 80), (130, 47)]


@pytest.mark.parametrize("case", CASES)
def test_official_checkpoint_matches_reference_forward(tmp_path, case):
    kwargs = official_net_kwargs(**CASES[case])
    ref = write_official_checkpoint(tmp_path, kwargs, seed=1)
    net = load_segmenter(tmp_path / "checkpoint.pth")
    torch.manual_seed(0)
    with torch.inference_mode():
        for h, w in SIZES:
            x = torch.randn(2, 3, h, w)
            expected, got = ref(x), net(x)
            assert got.shape == expected.shape == (2, kwargs["n_cls"], h, w)
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
            assert (got.argmax(1) == expected.argmax(1)).float().mean() > 0.999


def test_official_metadata_comes_from_variant(tmp_path):
    kwargs = official_net_kwargs(n_cls=150)
    write_official_checkpoint(tmp_path, kwargs, window=64)
    net = load_segmenter(tmp_path)  # the folder works too
    meta = net.metadata
    assert meta.class_names == get_class_set("ade20k").names
    assert meta.mean == (0.5, 0.5, 0.5) and meta.window_size == 64
    assert meta.provenance["source"] == "official"


def test_official_deit_uses_imagenet_normalization(tmp_path):
    write_official_checkpoint(tmp_path, official_net_kwargs(distilled=True), dataset="mydata")
    meta = load_segmenter(tmp_path / "checkpoint.pth").metadata
    assert meta.mean == pytest.approx((0.485, 0.456, 0.406))
    assert meta.class_names[0] == "class_0"  # unknown dataset: generic names, never a wrong list
