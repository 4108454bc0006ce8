"""Patch-grid window logits of two kinds, for the merge's tests and benchmark (no model needed)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

KINDS = ("random", "smooth")


def window_logits(kind: str, count: int, num_classes: int, cells: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """N×C×gh×gw float32 logits: `random` (what random weights give: every class can win almost
    everywhere, little to prune), `smooth` (regions, as a trained model answers: coarse 3×3 noise
    upsampled to the grid plus a little noise, so most runs of pixels have one or two candidates)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(count, num_classes, *cells, generator=gen)
    if kind == "random":
        return noise
    coarse = torch.randn(count, num_classes, 3, 3, generator=gen) * 4
    return F.interpolate(coarse, size=cells, mode="bilinear", align_corners=False) + 0.1 * noise
