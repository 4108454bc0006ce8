"""mIoU as mmseg computes it: intersections and unions summed over the whole dataset.

IoU_c = I_c / U_c per class over all pixels of all images (255 ignored); mIoU = mean over the
classes whose union is non-empty (nanmean), not a mean of per-image IoUs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

IGNORE_INDEX = 255  # label value of pixels that count for nothing (unlabelled, or "other" in ADE20K)


class ConfusionMatrix:
    """Accumulates a C×C matrix (rows: ground truth, columns: prediction)."""

    def __init__(self, num_classes: int, device: str | torch.device = "cpu") -> None:
        self.num_classes = num_classes
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        """prediction, target: same-shape integer tensors; target 255 is ignored."""
        if prediction.shape != target.shape:
            raise ValueError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ")
        valid = target != IGNORE_INDEX
        index = target[valid].long() * self.num_classes + prediction[valid].long().to(target.device)
        self.matrix += torch.bincount(index, minlength=self.num_classes**2).view(
            self.num_classes, self.num_classes).to(self.matrix.device)

    def all_reduce(self) -> None:
        """Sum the matrices of every process (call on every rank)."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(self.matrix)

    def compute(self) -> SegmentationScores:
        m = self.matrix.double().cpu().numpy()
        intersection = np.diag(m)
        union = m.sum(0) + m.sum(1) - intersection
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(union > 0, intersection / union, np.nan)
            accuracy = np.where(m.sum(1) > 0, intersection / m.sum(1), np.nan)
        total = m.sum()
        return SegmentationScores(iou=iou, class_accuracy=accuracy,
                                  pixel_accuracy=float(intersection.sum() / total) if total else float("nan"),
                                  matrix=self.matrix.cpu().numpy())


@dataclass
class SegmentationScores:
    iou: np.ndarray  # per class, NaN where the class is neither present nor predicted
    class_accuracy: np.ndarray
    pixel_accuracy: float
    matrix: np.ndarray

    @property
    def miou(self) -> float:
        return float(np.nanmean(self.iou)) if np.isfinite(self.iou).any() else float("nan")

    def table(self, class_names) -> str:
        lines = ["| class | IoU | accuracy |", "|---|---:|---:|"]
        for name, iou, acc in zip(class_names, self.iou, self.class_accuracy, strict=True):
            fmt = lambda v: "—" if np.isnan(v) else f"{100 * v:.2f}"  # noqa: E731
            lines.append(f"| {name} | {fmt(iou)} | {fmt(acc)} |")
        lines.append(f"| **mean** | **{100 * self.miou:.2f}** | pixel acc {100 * self.pixel_accuracy:.2f} |")
        return "\n".join(lines)
