"""Evaluation: mIoU over a dataset with the official sliding-window protocol (and TTA).

Each image is resized so its short side is `short_side` (mmseg's test scale), segmented with
`model.Predictor` (windows, overlap averaging, optional multi-scale + flip), and its
probabilities resized back to the label's resolution before the arg-max, as mmseg does.
Under torchrun each process takes every world_size-th image and the confusion matrices are
summed. The periodic validation during training runs this same function.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from model import Predictor
from training.data.base import SegmentationDataset
from training.metrics import ConfusionMatrix, SegmentationScores


def resize_short_side(rgb: np.ndarray, short_side: int | None) -> np.ndarray:
    if not short_side:
        return rgb
    h, w = rgb.shape[:2]
    factor = short_side / min(h, w)
    size = (int(w * factor + 0.5), int(h * factor + 0.5))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))


def evaluate(predictor: Predictor, dataset: SegmentationDataset, short_side: int | None = None,
             multiscale: bool = False, rank: int = 0, world_size: int = 1, progress: bool = True
             ) -> SegmentationScores:
    confusion = ConfusionMatrix(len(dataset.class_names), device=predictor.device)
    indices = range(rank, len(dataset), world_size)
    for index in tqdm(indices, desc="evaluating", unit="img", disable=not progress, leave=False):
        rgb, label = dataset.load(index)
        with torch.inference_mode():
            probs = predictor.probabilities_tensor(resize_short_side(rgb, short_side), multiscale)
            if tuple(probs.shape[-2:]) != label.shape:
                probs = F.interpolate(probs[None], size=label.shape, mode="bilinear", align_corners=False)[0]
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
