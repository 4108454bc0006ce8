"""Window logits at the model's own resolution, and the fixed step that makes pixels of them.

Segmenter answers on the patch grid: masks are patch·class products on h/p × w/p cells (the
linear head is per patch too). Its last step, upsampling those logits to the window's pixels, is
a fixed bilinear map, so the window forward of every backend stops before it and returns

    B×C×gh×gw logits,  gh = ceil(h / p), gw = ceil(w / p)    (h×w: the window, p: the patch)

— 1/p² of the bytes: 0.6 MB instead of 157 MB per 512² window at 150 classes. The merge
(`model.inference.merge`) upsamples rows of them on demand, exactly as the checkpoint's model
would have (`LogitsGrid`, carried in its metadata):

- "upsample_crop" (the authors' code): bilinear ×p over the grid (the window padded to a multiple
  of p), then the padding cropped off;
- "resize" (mmseg): bilinear straight to h×w (the same as ×p when p divides the window).

Logits already at the window's size (a graph exported before this contract, any module that
upsamples itself) pass through unchanged: the grid equals the window.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from model.logits_grid import OUTPUT_RESIZES, LogitsGrid

__all__ = ["OUTPUT_RESIZES", "LogitsGrid", "upsample_window_logits", "window_rows"]


def window_rows(logits: torch.Tensor, window: tuple[int, int], top: int, bottom: int, grid: LogitsGrid
                ) -> torch.Tensor:
    """Rows top..bottom of one window's logits at pixel resolution: C×(bottom-top)×w float.

    `logits`: C×gh×gw, at the patch grid or already at the window's size.
    """
    height, width = window
    gh, gw = logits.shape[-2:]
    if (gh, gw) == (height, width):
        return logits[:, top:bottom]
    lower, upper, weight = grid.source(gh, height, top, bottom, logits.device)
    rows = torch.lerp(logits[:, lower], logits[:, upper], weight.to(logits.dtype).view(1, -1, 1))  # C×R×gw
    if gw == width:
        return rows
    # Width: PyTorch's bilinear kernel on the few rows (much faster than gathers), to what the
    # model's own last step makes of them, then cropped.
    target = grid.upsampled_size(gw, width)
    wide = F.interpolate(rows[None], size=(rows.shape[1], target), mode="bilinear", align_corners=False)[0]
    return wide[:, :, :width]


def upsample_window_logits(logits: torch.Tensor, window: tuple[int, int], grid: LogitsGrid) -> torch.Tensor:
    """B×C×gh×gw window logits -> B×C×h×w, as the model's own last step (for parity checks)."""
    return torch.stack([window_rows(one, window, 0, window[0], grid) for one in logits])
