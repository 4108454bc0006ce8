"""Every registered variant builds, runs on odd sizes and keeps its paper hyper-parameters."""

from __future__ import annotations

import pytest
import torch

from model import build_segmenter, get_variant, list_variants, variant_config

ODD_SIZES = [(64, 64), (37, 50), (71, 33)]


@pytest.mark.parametrize("name", list_variants())
def test_every_variant_forward_shapes_and_finite(name):
    # Real width, heads, patch and decoder of the variant; depth 2 and a 64-pixel crop keep it fast.
    variant = get_variant(name)
    torch.manual_seed(0)
    net = build_segmenter(name, depth=2, image_size=64, num_classes=7).eval()
    assert net.encoder.embed_dim == variant.config.embed_dim
    assert net.encoder.num_prefix_tokens == (2 if variant.config.distilled else 1)
    with torch.inference_mode():
        for h, w in ODD_SIZES:
            out = net(torch.randn(2, 3, h, w))
            assert out.shape == (2, 7, h, w)
            assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    "name,dim,depth,heads,patch,decoder,distilled",
    [
        ("Seg-T-Mask/16", 192, 12, 3, 16, "mask_transformer", False),
        ("Seg-S/16", 384, 12, 6, 16, "linear", False),
        ("Seg-B/32", 768, 12, 12, 32, "linear", False),
        ("Seg-B-Mask/8", 768, 12, 12, 8, "mask_transformer", False),
        ("Seg-L-Mask/16", 1024, 24, 16, 16, "mask_transformer", False),
        ("Seg-B†/16", 768, 12, 12, 16, "linear", True),
        ("Seg-B†-Mask/16", 768, 12, 12, 16, "mask_transformer", True),
    ],
)
def test_paper_hyperparameters(name, dim, depth, heads, patch, decoder, distilled):
    cfg = get_variant(name).config
    assert (cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.patch_size) == (dim, depth, heads, patch)
    assert (cfg.decoder, cfg.distilled) == (decoder, distilled)
    assert cfg.embed_dim // cfg.num_heads == 64  # head size 64 throughout the paper
    assert cfg.drop_path_rate == 0.1 and cfg.dropout == 0.0  # the paper's regularization
    assert cfg.decoder_depth == 2


def test_names_are_matched_loosely_and_dagger_spelled_deit():
    assert get_variant("seg-b-deit-mask/16").name == "Seg-B†-Mask/16"
    assert get_variant("SEG_T_MASK_16").name == "Seg-T-Mask/16"
    assert variant_config("Seg-B/32", num_classes=19).num_classes == 19


def test_unknown_variant_lists_known_names():
    with pytest.raises(KeyError, match="Seg-T-Mask/16"):
        get_variant("Seg-X/16")


def test_invalid_config_names_the_problem():
    with pytest.raises(ValueError, match="not a multiple of patch_size"):
        variant_config("Seg-T/16", image_size=100)
