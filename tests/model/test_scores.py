"""mIoU against hand-computed cases: ignore label, absent classes, dataset-level accumulation."""

from __future__ import annotations

import math

import numpy as np
import torch

from model.scores import ConfusionMatrix


def scores(pairs, num_classes):
    cm = ConfusionMatrix(num_classes)
    for pred, target in pairs:
        cm.update(torch.tensor(pred), torch.tensor(target))
    return cm.compute()


def test_hand_computed_iou_with_ignore():
    pred = [[0, 0, 1], [1, 1, 2]]
    target = [[0, 1, 1], [255, 1, 2]]
    s = scores([(pred, target)], 3)
    # class 0: I=1, U=2 (pred 2, gt 1); class 1: I=2, U=3 (pred 2 counted where valid, gt 3); class 2: 1/1.
    # the pixel labelled 255 is ignored even though it was predicted as 1.
    np.testing.assert_allclose(s.iou, [1 / 2, 2 / 3, 1.0])
    assert s.miou == (1 / 2 + 2 / 3 + 1) / 3
    assert s.pixel_accuracy == 4 / 5


def test_absent_classes_are_left_out_but_false_positives_count():
    # class 2 never appears and is never predicted -> NaN, not in the mean;
    # class 3 never appears but is predicted once -> IoU 0, in the mean.
    s = scores([([[0, 1, 3]], [[0, 1, 1]])], 4)
    assert math.isnan(s.iou[2])
    np.testing.assert_allclose(s.iou[[0, 1, 3]], [1.0, 0.5, 0.0])
    assert s.miou == (1.0 + 0.5 + 0.0) / 3


def test_accumulates_over_the_dataset_not_per_image():
    a = ([[0, 0, 0, 0]], [[0, 0, 0, 1]])  # class 1: I=0, U=1
    b = ([[1, 1, 1, 1]], [[1, 1, 1, 1]])  # class 1: I=4, U=4
    s = scores([a, b], 2)
    assert s.iou[1] == 4 / 5  # (0 + 4) / (1 + 4), not the mean of per-image 0 and 1
    assert "| **mean** |" in s.table(["a", "b"])
