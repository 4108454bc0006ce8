"""Attention maps equal the authors' get_attention_map (an independent re-implementation of it,
testkit/official_segmenter.py) on an official checkpoint, at the trained size and an odd one."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from model import load_segmenter
from model.inference import attention_maps
from testkit.official_files import official_net_kwargs, write_official_checkpoint
from testkit.official_segmenter import official_attention_map
from tests.conftest import tiny_segmenter


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    folder = tmp_path_factory.mktemp("official")
    kwargs = official_net_kwargs(dim=128, heads=2, depth=3, dec_layers=2)
    reference = write_official_checkpoint(folder, kwargs, seed=4)
    return reference, load_segmenter(folder / "checkpoint.pth")


@pytest.mark.parametrize("part,layers", [("encoder", 3), ("decoder", 2)])
@pytest.mark.parametrize("size", [(64, 64), (50, 83)], ids=["trained", "odd"])
def test_attention_equals_the_authors_get_attention_map(official, part, layers, size):
    reference, ours = official
    images = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(1))
    padded = F.pad(images, (0, (-size[1]) % 16, 0, (-size[0]) % 16))  # the forward pass pads; so do ours
    for layer in range(layers):
        maps = attention_maps(ours, images, layer, part)
        with torch.inference_mode():
            expected = official_attention_map(reference, padded, layer, part)
        assert maps.attention.shape == expected.shape
        # Probabilities through up to 5 layers of float32 arithmetic in another order (fused SDPA vs
        # an explicit softmax): |Δ| ≤ 1.91e-5 over 8 weight seeds × 4 image seeds × both sizes, every
        # layer, 1 and 2 threads alike (320 comparisons; deterministic per input). 5e-5 leaves room.
        torch.testing.assert_close(maps.attention, expected, atol=5e-5, rtol=0)
        torch.testing.assert_close(maps.attention.sum(-1), torch.ones_like(maps.attention.sum(-1)))


def test_token_rows_become_per_head_image_maps(official):
    _, ours = official
    images = torch.randn(1, 3, 50, 83)
    encoder = attention_maps(ours, images, 0)
    heads = encoder.patch_row(0, x=40, y=20)  # pixel (40, 20) is patch (1, 2) of a 4×6 grid
    assert heads.shape == (2, 50, 83)
    expected = encoder.attention[0, :, 1 + 1 * 6 + 2, 1:].reshape(2, 4, 6)
    torch.testing.assert_close(heads[:, 16:32, 48:64], expected[:, 1:2, 3:4].expand(2, 16, 16))
    decoder = attention_maps(ours, images, 1, "decoder")
    assert decoder.class_row(0, 4).shape == (2, 50, 83)
    with pytest.raises(ValueError, match="decoder only"):
        encoder.class_row(0, 4)
    with pytest.raises(ValueError, match="outside"):
        encoder.patch_row(0, x=83, y=0)


def test_bad_requests_name_the_problem():
    net = tiny_segmenter(decoder="linear")
    with pytest.raises(ValueError, match=r"layer must be in 0..1"):
        attention_maps(net, torch.randn(1, 3, 64, 64), 2)
    with pytest.raises(ValueError, match="linear decoder"):
        attention_maps(net, torch.randn(1, 3, 64, 64), 0, "decoder")
