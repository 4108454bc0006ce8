"""Named variants, after the paper (Seg-T-Mask/16, Seg-B/32, Seg-B†/16, ...), built by name.

Every variant goes through one private builder, so `training/`, `export/` and `service/` can
say "Seg-B-Mask/16" and get the same module. Names are matched ignoring case and punctuation,
and "†" may be written "DeiT": "seg-b-deit-mask/16" is "Seg-B†-Mask/16".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from model.config import SegmenterConfig
from model.modeling.segmenter import Segmenter

# size letter -> (embed_dim, depth, num_heads); head size 64 throughout.
_SIZES = {"T": (192, 12, 3), "S": (384, 12, 6), "B": (768, 12, 12), "L": (1024, 24, 16)}

# AugReg ImageNet-21k -> 1k backbones ("How to train your ViT"), as the paper; None where timm
# has no such weights (use a local file with `load_pretrained_encoder`).
_VIT_TAGS = {
    ("T", 16): "vit_tiny_patch16_384.augreg_in21k_ft_in1k",
    ("S", 16): "vit_small_patch16_384.augreg_in21k_ft_in1k",
    ("S", 32): "vit_small_patch32_384.augreg_in21k_ft_in1k",
    ("B", 8): "vit_base_patch8_224.augreg_in21k_ft_in1k",
    ("B", 16): "vit_base_patch16_384.augreg_in21k_ft_in1k",
    ("B", 32): "vit_base_patch32_384.augreg_in21k_ft_in1k",
    ("L", 16): "vit_large_patch16_384.augreg_in21k_ft_in1k",
    ("L", 32): "vit_large_patch32_384.orig_in21k_ft_in1k",
}
_DEIT_TAGS = {
    "T": "deit_tiny_distilled_patch16_224.fb_in1k",
    "S": "deit_small_distilled_patch16_224.fb_in1k",
    "B": "deit_base_distilled_patch16_384.fb_in1k",
}


@dataclass(frozen=True)
class Variant:
    """A named architecture with the facts that go with its backbone."""

    name: str
    config: SegmenterConfig
    normalization: str  # "vit" or "deit": the backbone's pretraining statistics
    pretrained_tag: str | None  # timm weights tag for ImageNet initialisation


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower().replace("†", "deit"))


def _make_variants() -> dict[str, Variant]:
    variants: dict[str, Variant] = {}

    def add(size: str, patch: int, decoder: str, distilled: bool) -> None:
        dim, depth, heads = _SIZES[size]
        name = f"Seg-{size}{'†' if distilled else ''}{'-Mask' if decoder == 'mask_transformer' else ''}/{patch}"
        cfg = SegmenterConfig(
            image_size=640 if size == "L" else 512,  # the paper trains Seg-L at 640 on ADE20K
            patch_size=patch,
            embed_dim=dim,
            depth=depth,
            num_heads=heads,
            distilled=distilled,
            decoder=decoder,  # type: ignore[arg-type]
        )
        tag = _DEIT_TAGS.get(size) if distilled else _VIT_TAGS.get((size, patch))
        variants[_key(name)] = Variant(name, cfg, "deit" if distilled else "vit", tag)

    for size in _SIZES:
        for patch in (8, 16, 32):
            for decoder in ("linear", "mask_transformer"):
                add(size, patch, decoder, distilled=False)
    for size in ("T", "S", "B"):  # DeiT ships distilled T/S/B at patch 16
        for decoder in ("linear", "mask_transformer"):
            add(size, 16, decoder, distilled=True)
    return variants


_VARIANTS = _make_variants()


def list_variants() -> list[str]:
    """Canonical names of every registered variant."""
    return [v.name for v in _VARIANTS.values()]


def get_variant(name: str) -> Variant:
    try:
        return _VARIANTS[_key(name)]
    except KeyError:
        raise KeyError(
            f"unknown Segmenter variant {name!r}; known variants: {', '.join(list_variants())}"
        ) from None


def variant_config(name: str, **overrides: Any) -> SegmenterConfig:
    """The config of a named variant with some fields replaced (e.g. num_classes, image_size)."""
    return get_variant(name).config.replace(**overrides)


def build_segmenter(name_or_config: str | SegmenterConfig, **overrides: Any) -> Segmenter:
    """Build a randomly initialised Segmenter from a variant name or a config.

    >>> net = build_segmenter("Seg-T-Mask/16", num_classes=150)
    """
    if isinstance(name_or_config, SegmenterConfig):
        cfg = name_or_config.replace(**overrides) if overrides else name_or_config
    else:
        cfg = variant_config(name_or_config, **overrides)
    return Segmenter(cfg)
