"""Does an exported graph compute what PyTorch computes? Compare two backends on the same inputs.

Two comparisons, with the same thresholds:
- the window logits, as the backends return them (on the model's patch grid; PyTorch's side is
  `TorchForward`, i.e. `Segmenter.forward_patches`): inputs are random normalized noise and
  "real-looking" scenes (smooth gradients, blobs, stripes and edges, as photos have) cut into
  windows with `model.inference.tile_windows`. Reported: the largest absolute logit difference,
  that difference relative to the largest reference logit, and the fraction of grid cells whose
  arg-max class agrees;
- after the merge: the class ids of whole synthetic scenes through `model.Predictor` (test
  scale, sliding windows, the merge's upsampling, arg-max) with each backend as its window
  forward. Reported: the fraction of pixels that get the same class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from model import ModelMetadata, Predictor, Segmenter
from model.inference import TorchForward, WindowForward, run_windows, tile_windows


@dataclass(frozen=True)
class ParityReport:
    reference: str
    candidate: str
    windows: int
    max_abs_diff: float
    max_rel_diff: float  # max |Δ| / max |reference logit|
    argmax_agreement: float
    rtol: float
    min_agreement: float
    images: int = 0  # scenes compared after the merge
    merged_agreement: float | None = None  # fraction of their pixels with the same class id

    @property
    def passed(self) -> bool:
        merged = self.merged_agreement is None or self.merged_agreement >= self.min_agreement
        return self.max_rel_diff <= self.rtol and self.argmax_agreement >= self.min_agreement and merged

    def summary(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        text = (f"{verdict}: {self.candidate} vs {self.reference} on {self.windows} windows: "
                f"max |Δlogits| {self.max_abs_diff:.3g} ({self.max_rel_diff:.3g} relative, limit {self.rtol:g}), "
                f"argmax agreement {100 * self.argmax_agreement:.3f}% (limit {100 * self.min_agreement:g}%)")
        if self.merged_agreement is not None:
            text += (f"; after the merge, class ids of {self.images} images agree on "
                     f"{100 * self.merged_agreement:.3f}% of pixels (limit {100 * self.min_agreement:g}%)")
        return text


def synthetic_scene(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """An H×W×3 uint8 image with photo-like structure: gradients, soft blobs, stripes, edges."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.zeros((height, width, 3), np.float32)
    for c in range(3):  # a smooth background gradient per channel
        image[..., c] = 255 * (rng.uniform() * yy / height + rng.uniform() * xx / width) / 2
    for _ in range(6):  # soft coloured blobs
        cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(0.1, 0.4) * min(height, width)
        weight = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))[..., None]
        image = image * (1 - weight) + weight * rng.uniform(0, 255, 3)
    top, left = int(rng.integers(0, height // 2)), int(rng.integers(0, width // 2))
    image[top : top + height // 3, left : left + width // 3] = rng.uniform(0, 255, 3)  # a hard-edged object
    image[::, :: max(2, width // 16)] *= 0.5  # stripes: high frequencies
    image += rng.normal(0, 4, image.shape)  # sensor noise
    return np.clip(image, 0, 255).astype(np.uint8)


def parity_windows(metadata: ModelMetadata, window: int, seed: int = 0) -> torch.Tensor:
    """N×3×window×window normalized inputs: 2 noise windows + the windows of 2 synthetic scenes."""
    rng = np.random.default_rng(seed)
    mean = torch.tensor(metadata.mean).view(3, 1, 1)
    std = torch.tensor(metadata.std).view(3, 1, 1)
    crops = [torch.from_numpy(rng.normal(0, 1, (2, 3, window, window)).astype(np.float32))]
    stride = max(1, min(metadata.window_stride, window))
    for _ in range(2):
        rgb = synthetic_scene(window + window // 2, window + window // 3, rng)
        image = (torch.from_numpy(rgb).permute(2, 0, 1).float() / 255 - mean) / std
        crops.append(tile_windows(image, window, stride)[0])
    return torch.cat(crops)


def parity_images(window: int, count: int = 2, seed: int = 0) -> list[np.ndarray]:
    """`count` synthetic scenes (H×W×3 uint8) a little larger than a window, so windows overlap."""
    rng = np.random.default_rng(seed)
    return [synthetic_scene(window + window // 2, window + window // 3, rng) for _ in range(count)]


class _FullSize(nn.Module):
    """A Segmenter's full-size forward (no `forward_patches`): what a version-1 graph computes."""

    def __init__(self, net: Segmenter) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)


def torch_reference(net: Segmenter, logits_grid: tuple[int, int], window: int) -> WindowForward:
    """PyTorch fp32 answering as an exported graph does: on the patch grid (`forward_patches`),
    or at the window size when the graph's logits are (`logits_grid` == (window, window): a
    version-1 export)."""
    if tuple(logits_grid) == (window, window) and math.ceil(window / net.config.patch_size) != window:
        return TorchForward(_FullSize(net))
    return TorchForward(net)


def merged_agreement(reference: WindowForward, candidate: WindowForward, metadata: ModelMetadata,
                     images: list[np.ndarray], batch_size: int = 4) -> float:
    """The fraction of the pixels of `images` that get the same class id through `model.Predictor`
    (the whole inference path: test scale, windows, merge, arg-max) with either window forward."""
    def on_cpu(forward: WindowForward) -> WindowForward:  # a GPU backend's logits, merged on the CPU
        return lambda windows: forward(windows).float().cpu()

    expected_predictor = Predictor(None, metadata=metadata, forward=on_cpu(reference), batch_size=batch_size)
    got_predictor = Predictor(None, metadata=metadata, forward=on_cpu(candidate), batch_size=batch_size)
    same = total = 0
    for rgb in images:
        expected, got = expected_predictor.predict(rgb), got_predictor.predict(rgb)
        same += int((expected == got).sum())
        total += expected.size
    return same / max(total, 1)


def compare_backends(reference: WindowForward, candidate: WindowForward, windows: torch.Tensor, *, reference_name: str,
                     candidate_name: str, rtol: float = 1e-3, min_agreement: float = 0.999,
                     batch_size: int = 4, metadata: ModelMetadata | None = None,
                     images: list[np.ndarray] | None = None) -> ParityReport:
    """Run both backends over `windows` (in batches, via `model.inference.run_windows`) and compare
    their logits; with `metadata` and `images`, also the class ids of `images` after the merge
    (`merged_agreement`)."""
    with torch.inference_mode():
        expected = run_windows(reference, windows, batch_size).float().cpu()
        got = run_windows(candidate, windows, batch_size).float().cpu()
    if got.shape != expected.shape:
        raise ValueError(f"{candidate_name} returned {tuple(got.shape)}, {reference_name} {tuple(expected.shape)}")
    diff = (got - expected).abs()
    max_abs = float(diff.max()) if torch.isfinite(diff).all() else float("inf")
    scale = float(expected.abs().max()) or 1.0
    agreement = float((got.argmax(1) == expected.argmax(1)).float().mean())
    merged = None
    if metadata is not None and images:
        merged = merged_agreement(reference, candidate, metadata, images, batch_size)
    return ParityReport(reference_name, candidate_name, len(windows), max_abs, max_abs / scale, agreement,
                        rtol, min_agreement, len(images or []) if merged is not None else 0, merged)
