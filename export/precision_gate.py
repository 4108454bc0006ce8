"""The accuracy gate of reduced precision: a bf16 or int8 model is kept only if it still segments
like the fp32 model.

Two measurements, both through the whole inference path (test scale, sliding windows, merge,
arg-max: `model.Predictor` with the candidate as its WindowForward):
- pixel agreement with PyTorch fp32: at least 99% of pixels must get the same class. Measured
  on the labelled images when there are some (the model's own kind of images), else on
  photo-like synthetic scenes (`export.parity.synthetic_scene`) — a stricter test for a model
  trained on something else, since pixels it cannot tell apart flip at the slightest rounding;
- with labelled data (`--eval-data`, the custom layout's validation split), the mIoU may drop by
  at most 0.5 point.
`export onnx --precision bf16|int8` refuses (and removes) an artifact that fails either, and
prints the figures.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from export.artifact import ExportError
from export.parity import synthetic_scene
from model import Predictor, list_images, read_image
from model.scores import ConfusionMatrix

MIN_PIXEL_AGREEMENT = 0.99
MAX_MIOU_DROP = 0.5  # mIoU points (0..100)


@dataclass(frozen=True)
class GateReport:
    precision: str
    candidate: str  # what ran, e.g. "OpenVINO int8 (NNCF-quantized ..., other layers in bf16)"
    scenes: int
    scenes_kind: str  # "labelled images" or "synthetic scenes"
    pixel_agreement: float  # over all pixels of the scenes
    min_agreement: float
    eval_images: int
    miou_reference: float | None  # points; None without labelled data
    miou_candidate: float | None
    max_miou_drop: float

    @property
    def miou_drop(self) -> float | None:
        if self.miou_reference is None or self.miou_candidate is None:
            return None
        return self.miou_reference - self.miou_candidate

    @property
    def passed(self) -> bool:
        drop = self.miou_drop
        return self.pixel_agreement >= self.min_agreement and (drop is None or drop <= self.max_miou_drop)

    def summary(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        text = (f"{verdict}: {self.candidate} vs PyTorch fp32: {100 * self.pixel_agreement:.2f}% of the pixels of "
                f"{self.scenes} {self.scenes_kind} agree (at least {100 * self.min_agreement:g}% required)")
        if self.miou_drop is not None:
            text += (f"; mIoU on {self.eval_images} labelled images {self.miou_candidate:.2f} vs "
                     f"{self.miou_reference:.2f} (drop {self.miou_drop:.2f}, at most {self.max_miou_drop:g} allowed)")
        return text

    def to_dict(self) -> dict:
        return {**asdict(self), "miou_drop": self.miou_drop, "passed": self.passed}


def gate_scenes(window: int, count: int = 8, seed: int = 1234) -> list[np.ndarray]:
    """Synthetic photo-like scenes a little larger than a window (so windows overlap)."""
    rng = np.random.default_rng(seed)
    return [synthetic_scene(window + window // 2, window + window // 4, rng) for _ in range(count)]


def read_labelled(root: str | Path, limit: int = 200) -> list[tuple[np.ndarray, np.ndarray]]:
    """(image, mask) pairs of a custom-layout dataset's validation split:
    ROOT/images/val/NAME.* and ROOT/masks/val/NAME.png (pixel = class id, 255 = ignore)."""
    root = Path(root)
    images, masks = root / "images" / "val", root / "masks" / "val"
    if not images.is_dir() or not masks.is_dir():
        raise ExportError(f"--eval-data {root} is not a dataset in the custom layout: expected {images} and {masks} "
                          "(images and their class-id masks, paired by file name)")
    pairs = []
    for path in list_images(images)[0][:limit]:
        mask_path = masks / f"{path.stem}.png"
        if not mask_path.is_file():
            raise ExportError(f"{path} has no mask {mask_path}; every validation image needs one")
        pairs.append((read_image(path), np.asarray(Image.open(mask_path))))
    if not pairs:
        raise ExportError(f"{images} holds no images")
    return pairs


def run_gate(reference: Predictor, candidate: Predictor, precision: str, candidate_name: str,
             labelled: list[tuple[np.ndarray, np.ndarray]] | None = None,
             min_agreement: float = MIN_PIXEL_AGREEMENT, max_miou_drop: float = MAX_MIOU_DROP) -> GateReport:
    """Compare `candidate` with `reference` (PyTorch fp32) as described in the module docstring.
    Each image is predicted once per model; with labels, the same masks feed both mIoUs."""
    if labelled:
        scenes, kind = [rgb for rgb, _ in labelled], "labelled images"
        matrices = [ConfusionMatrix(reference.num_classes), ConfusionMatrix(candidate.num_classes)]
    else:
        scenes, kind, matrices = gate_scenes(reference.window_size), "synthetic scenes", []
    same = total = 0
    for index, rgb in enumerate(tqdm(scenes, desc=f"gate {precision}", unit="image", leave=False)):
        expected, got = reference.predict(rgb), candidate.predict(rgb)
        same += int((expected == got).sum())
        total += expected.size
        if labelled:
            truth = torch.from_numpy(labelled[index][1].astype(np.int64))
            for matrix, prediction in zip(matrices, (expected, got), strict=True):
                matrix.update(torch.from_numpy(prediction.astype(np.int64)), truth)
    miou_ref, miou_cand = (100 * matrix.compute().miou for matrix in matrices) if labelled else (None, None)
    return GateReport(precision, candidate_name, len(scenes), kind, same / total, min_agreement,
                      len(labelled or []), miou_ref, miou_cand, max_miou_drop)
