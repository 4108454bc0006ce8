"""How a model's window logits map to the window's pixels: its patch grid and its last step.

Kept apart from model/inference (where `window_logits` uses it) and model/modeling: the metadata
that travels with the weights names it (`ModelMetadata.logits_grid`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

OUTPUT_RESIZES = ("upsample_crop", "resize")


def bilinear_sources(in_size: int, out_size: int, start: int, stop: int, device: torch.device | str = "cpu"
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For outputs start..stop of a bilinear resize in_size -> out_size along one axis
    (align_corners=False): the source index below and above each, and the weight of the one
    above (as PyTorch computes them, in float32)."""
    scale = torch.tensor(in_size / out_size, dtype=torch.float32, device=device)
    position = ((torch.arange(start, stop, dtype=torch.float32, device=device) + 0.5) * scale - 0.5).clamp(min=0)
    lower = position.floor().long().clamp(max=in_size - 1)
    return lower, (lower + 1).clamp(max=in_size - 1), position - lower


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
        cells = self.grid_shape(*window)
        raise ValueError(f"window logits of {grid[0]}×{grid[1]} for a {window[0]}×{window[1]} window; expected "
                         f"{window[0]}×{window[1]} or {cells[0]}×{cells[1]} (patch {self.patch_size})")

    def upsampled_size(self, grid: int, size: int) -> int:
        """How long the model's last step makes an axis of `grid` cells, before cropping to `size`
        pixels: straight to `size` (mmseg, a window not a multiple of the patch), else ×p."""
        if self.output_resize == "resize" and size % self.patch_size:
            return size
        return grid * self.patch_size

    def source(self, grid: int, size: int, start: int, stop: int, device: torch.device | str = "cpu"
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Along one axis of a window of `size` pixels whose logits have `grid` cells: for pixels
        start..stop, the cell below and above each and the weight of the one above (bilinear,
        align_corners=False, float32 as PyTorch computes them). Identity when grid == size."""
        if grid == size:
            index = torch.arange(start, stop, device=device)
            return index, index, torch.zeros(stop - start, dtype=torch.float32, device=device)
        if not self.patch_size or math.ceil(size / self.patch_size) != grid:
            raise ValueError(f"{grid} logit cells cannot cover {size} pixels with patch size {self.patch_size}")
        # The pixels kept by the crop are the first `size` of the upsampled axis.
        return bilinear_sources(grid, self.upsampled_size(grid, size), start, stop, device)
