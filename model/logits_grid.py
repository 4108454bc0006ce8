"""How a model's window logits map to the window's pixels: its patch grid and its last step.

Kept apart from model/inference (where `window_logits` uses it) and model/modeling: the metadata
that travels with the weights names it (`ModelMetadata.logits_grid`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

OUTPUT_RESIZES = ("upsample_crop", "resize")


@dataclass(frozen=True)
class LogitsGrid:
    """How a model's window logits map to the window's pixels: its patch size and last step."""

    patch_size: int | None = None  # None: only full-size logits can be merged
    output_resize: str = "upsample_crop"

    def __post_init__(self) -> None:
        if self.output_resize not in OUTPUT_RESIZES:
            raise ValueError(f"output_resize must be one of {', '.join(OUTPUT_RESIZES)}, got {self.output_resize!r}")

    def grid_shape(self, height: int, width: int) -> tuple[int, int]:
        """(gh, gw) of the logits of an h×w window (the window itself without a patch size)."""
        if not self.patch_size:
            return height, width
        return math.ceil(height / self.patch_size), math.ceil(width / self.patch_size)

    def check(self, grid: tuple[int, int], window: tuple[int, int]) -> None:
        """ValueError unless logits of shape `grid` belong to a window of `window` pixels."""
        if tuple(grid) == tuple(window) or tuple(grid) == self.grid_shape(*window):
            return
        if not self.patch_size:
            raise ValueError(f"window logits of {grid[0]}×{grid[1]} for a {window[0]}×{window[1]} window: logits on a "
                             "patch grid need the model's patch size (plan_windows(..., grid=metadata.logits_grid), "
                             "as Predictor.prepare passes it)")
        expected = f"{window[0]}×{window[1]}" + (f" or {self.grid_shape(*window)[0]}×{self.grid_shape(*window)[1]} "
                                                 f"(patch {self.patch_size})" if self.patch_size else "")
        raise ValueError(f"window logits of {grid[0]}×{grid[1]} for a {window[0]}×{window[1]} window; expected "
                         f"{expected}")

    def source(self, grid: int, size: int, start: int, stop: int, device: torch.device | str = "cpu"
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Along one axis of a window of `size` pixels whose logits have `grid` cells: for pixels
        start..stop, the cell below and above each and the weight of the one above (bilinear,
        align_corners=False, float32 as PyTorch computes them). Identity when grid == size."""
        index = torch.arange(start, stop, device=device)
        if grid == size:
            return index, index, torch.zeros(stop - start, dtype=torch.float32, device=device)
        if not self.patch_size or math.ceil(size / self.patch_size) != grid:
            raise ValueError(f"{grid} logit cells cannot cover {size} pixels with patch size {self.patch_size}")
        if self.output_resize == "resize" and size % self.patch_size:
            scale = grid / size  # mmseg: straight to the window's size
        else:
            scale = 1 / self.patch_size  # ×p over the padded window; the crop keeps pixels 0..size-1
        position = ((index.float() + 0.5) * torch.tensor(scale, dtype=torch.float32) - 0.5).clamp(min=0)
        lower = position.floor().long().clamp(max=grid - 1)
        return lower, (lower + 1).clamp(max=grid - 1), position - lower
