"""Evaluation: mIoU over a dataset with the official sliding-window protocol (and TTA).

Each image is segmented with `model.Predictor`, which resizes it into the checkpoint's test
scale (as mmseg and the authors' evaluation do), slides windows, averages overlaps (optional
multi-scale + flip) and returns probabilities at the image's own size, the label's resolution,
for the arg-max.
Under torchrun each process takes every world_size-th image and the confusion matrices are
summed. The periodic validation during training runs this same function.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from model import Predictor, Scale
from model.scores import ConfusionMatrix, SegmentationScores
from training.data.base import SegmentationDataset


def evaluate(predictor: Predictor, dataset: SegmentationDataset, multiscale: bool = False, scale: Scale = None,
             rank: int = 0, world_size: int = 1, progress: bool = True) -> SegmentationScores:
    """mIoU of `predictor` on `dataset` (this process's share of it under torchrun).

    `scale` overrides the checkpoint's test scale (a short side, or "none")."""
    confusion = ConfusionMatrix(len(dataset.class_names), device=predictor.device)
    indices = range(rank, len(dataset), world_size)
    for index in tqdm(indices, desc="evaluating", unit="img", disable=not progress, leave=False):
        rgb, label = dataset.load(index)
        with torch.inference_mode():
            probs = predictor.probabilities_tensor(rgb, multiscale, scale=scale)  # C×H×W, the image's (= label's) size
            confusion.update(probs.argmax(0), torch.from_numpy(label).to(predictor.device))
    confusion.all_reduce()
    return confusion.compute()


def confusion_image(scores: SegmentationScores, class_names, path) -> None:
    """Save the row-normalized confusion matrix as a picture (rows: truth, columns: prediction)."""
    m = scores.matrix.astype(np.float64)
    rows = m.sum(1, keepdims=True)
    norm = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    cell = max(4, min(24, 600 // max(1, len(class_names))))
    heat = (255 * (1 - norm)).astype(np.uint8)  # white = 0, black = all of the row
    image = Image.fromarray(np.kron(heat, np.ones((cell, cell), np.uint8)))
    image.convert("RGB").save(path)
