"""Upsampling patch-grid logits to pixels: `F.interpolate(bilinear)`, with a CPU fast path.

Segmenter's last step turns B×C×h×w patch logits into B×C×(h·p)×(w·p) pixel logits (p = patch
size). With 150 classes at 512×512 that output is 157 MB per image, and on CPU `F.interpolate`'s
NCHW kernel, which gathers source pixels for every output pixel, takes ~4× as long as writing
those bytes (docs/benchmarks.md).

The fast path computes the same function in two separable passes: the width with
`F.interpolate` on the small map (h + 2 rows), then every output row as a `lerp` of two
width-upsampled rows, one vectorised kernel writing the output once. It is taken only for plain
eager inference on CPU with an even integer factor (what `Segmenter.forward` asks for); autograd,
tracing and export get the standard op, so training and the ONNX graph are unchanged."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def upsample_logits(masks: torch.Tensor, factor: int) -> torch.Tensor:
    """masks: B×C×h×w float → B×C×(h·factor)×(w·factor) float, bilinear, align_corners=False.

    Equal to `F.interpolate(masks, scale_factor=factor, mode="bilinear")` up to float rounding
    (≤ 1e-6 relative); see the module docstring for when the fast path is used.
    """
    b, c, h, w = masks.shape
    # The decoders' B×C×h×w view of B×(h·w)×C tokens has channels-last strides (degenerate ones
    # at batch 1, where `F.interpolate` takes a slow generic path: 660 ms vs 70 ms for
    # 150×32×32 -> 512×512 on CPU). A contiguous copy of the small map first, for both paths.
    masks = masks.contiguous()
    if not _fast_path_applies(masks, factor):
        return F.interpolate(masks, size=(h * factor, w * factor), mode="bilinear", align_corners=False)
    k = torch.arange(factor, dtype=torch.float64)
    frac = (k + 0.5) / factor + 0.5
    frac = torch.where(k < factor // 2, frac, frac - 1).to(masks.dtype).view(2, factor // 2, 1)
    # Edge rows repeated: the clamping at the top and bottom borders.
    padded = torch.cat([masks[:, :, :1], masks, masks[:, :, -1:]], dim=2)  # B×C×(h+2)×w, contiguous
    out = masks.new_empty((b, c, h, 2, factor // 2, w * factor))
    # One image at a time, so the width pass's intermediate (11 MB at 150 classes, 512²) stays
    # below the allocator's mmap threshold and reuses warm memory.
    for i in range(b):
        # 1. Width, with the standard kernel: only h + 2 rows, cheap.
        rows = F.interpolate(padded[i : i + 1], size=(h + 2, w * factor), mode="bilinear", align_corners=False)
        # 2. Height. Output row factor·r + k samples source row r + (k + 0.5)/factor - 0.5: for the
        #    first half of k it lies between source rows r-1 and r (padded rows r, r+1), for the
        #    second half between r and r+1 (padded r+1, r+2). pairs[..., r, :, j] = padded row r + j.
        pairs = rows.unfold(2, 2, 1)  # 1×C×(h+1)×W×2
        lower = pairs[:, :, :h].movedim(-1, 3).unsqueeze(4)  # 1×C×h×2×1×W: padded row r + half
        upper = pairs[:, :, 1:].movedim(-1, 3).unsqueeze(4)  # 1×C×h×2×1×W: padded row r + half + 1
        torch.lerp(lower, upper, frac, out=out[i : i + 1])  # 1×C×h×2×(factor/2)×W
    return out.view(b, c, h * factor, w * factor)


def _fast_path_applies(masks: torch.Tensor, factor: int) -> bool:
    needs_graph = masks.requires_grad and torch.is_grad_enabled()
    traced = torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export()
    return (
        type(masks) is torch.Tensor  # not a FakeTensor/FunctionalTensor from torch.export
        and masks.device.type == "cpu"
        and masks.is_floating_point()
        and factor >= 2
        and factor % 2 == 0
        and not needs_graph
        and not traced
    )
