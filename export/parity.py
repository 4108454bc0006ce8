"""Does an exported graph compute what PyTorch computes? Compare two backends on the same inputs.

Inputs: random normalized noise, and "real-looking" scenes (smooth gradients, blobs, stripes
and edges, as photos have) cut into windows with `model.inference.tile_windows`, so the check exercises
the same sliding-window path the service runs. Reported: the largest absolute logit
difference, that difference relative to the largest reference logit, and the fraction of
pixels whose arg-max class agrees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from model import ModelMetadata
from model.inference import WindowForward, run_windows, tile_windows


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

    @property
    def passed(self) -> bool:
        return self.max_rel_diff <= self.rtol and self.argmax_agreement >= self.min_agreement

    def summary(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return (f"{verdict}: {self.candidate} vs {self.reference} on {self.windows} windows: "
                f"max |Δlogits| {self.max_abs_diff:.3g} ({self.max_rel_diff:.3g} relative, limit {self.rtol:g}), "
                f"argmax agreement {100 * self.argmax_agreement:.3f}% (limit {100 * self.min_agreement:g}%)")


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


def compare_backends(reference: WindowForward, candidate: WindowForward, windows: torch.Tensor, *, reference_name: str,
                     candidate_name: str, rtol: float = 1e-3, min_agreement: float = 0.999,
                     batch_size: int = 4) -> ParityReport:
    """Run both backends over `windows` (in batches, via `model.inference.run_windows`) and compare."""
    with torch.inference_mode():
        expected = run_windows(reference, windows, batch_size).float().cpu()
        got = run_windows(candidate, windows, batch_size).float().cpu()
    if got.shape != expected.shape:
        raise ValueError(f"{candidate_name} returned {tuple(got.shape)}, {reference_name} {tuple(expected.shape)}")
    diff = (got - expected).abs()
    max_abs = float(diff.max()) if torch.isfinite(diff).all() else float("inf")
    scale = float(expected.abs().max()) or 1.0
    agreement = float((got.argmax(1) == expected.argmax(1)).float().mean())
    return ParityReport(reference_name, candidate_name, len(windows), max_abs, max_abs / scale, agreement,
                        rtol, min_agreement)
