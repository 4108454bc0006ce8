"""Augmentation keeps image and mask aligned, pads labels with 255, and avoids one-class crops."""

from __future__ import annotations

import random

import numpy as np
import torch
from torchvision import tv_tensors

from model.scores import IGNORE_INDEX
from training.transforms import TrainTransform, rescale_size

COLOURS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]], dtype=np.uint8)


def blocky_sample(rng, h=90, w=120, block=15):
    labels = rng.integers(0, 4, (h // block, w // block))
    mask = np.kron(labels, np.ones((block, block), dtype=np.int64))
    return tv_tensors.Image(torch.from_numpy(COLOURS[mask]).permute(2, 0, 1)), tv_tensors.Mask(torch.from_numpy(mask))


def test_image_and_mask_stay_aligned(rng):
    random.seed(0)
    transform = TrainTransform(64, mean=(0, 0, 0), std=(1, 1, 1), base_size=(160, 80), ratio_range=(0.5, 2.0),
                               photometric=False)
    for _ in range(20):
        image, mask = transform(*blocky_sample(rng))
        assert image.shape == (3, 64, 64) and mask.shape == (64, 64) and mask.dtype == torch.int64
        m = mask.numpy()
        # interior pixels: label equal to its 4 neighbours (resampling blurs only block borders)
        interior = np.zeros_like(m, dtype=bool)
        c = m[1:-1, 1:-1]
        interior[1:-1, 1:-1] = (c != IGNORE_INDEX) & (c == m[:-2, 1:-1]) & (c == m[2:, 1:-1]) & (
            c == m[1:-1, :-2]) & (c == m[1:-1, 2:])
        colours = (image.permute(1, 2, 0) * 255).numpy()
        expected = COLOURS[np.clip(m, 0, 3)].astype(np.float32)
        close = (np.abs(colours - expected) < 40).all(-1)
        assert interior.sum() > 500
        assert close[interior].mean() > 0.97


def test_padding_uses_ignore_label_and_zero_image(rng):
    random.seed(1)
    transform = TrainTransform(128, mean=(0, 0, 0), std=(1, 1, 1), base_size=(60, 30), ratio_range=(1.0, 1.0),
                               photometric=False)
    image, mask = transform(*blocky_sample(rng, 60, 90))  # rescaled to 30×45: smaller than the crop
    assert (mask[30:] == IGNORE_INDEX).all() and (mask[:, 45:] == IGNORE_INDEX).all()
    assert (image[:, 30:] == 0).all() and (mask[:30, :45] != IGNORE_INDEX).all()


def test_cat_max_ratio_retries_crops_dominated_by_one_class():
    mask = torch.zeros(100, 100, dtype=torch.int64)
    mask[:, 90:] = 1  # class 1 only in a thin strip on the right

    def balanced_fraction(cat_max_ratio):
        transform = TrainTransform(20, mean=(0, 0, 0), std=(1, 1, 1), cat_max_ratio=cat_max_ratio)
        random.seed(0)
        boxes = [transform.random_crop_box(mask) for _ in range(300)]
        # a crop is balanced when class 0 covers < 75%: it must start at column 76..80 (5 of 81)
        return sum(1 for _, left, _, _ in boxes if left >= 76) / len(boxes)

    assert balanced_fraction(1.0) < 0.12  # no retries: about 5/81
    assert balanced_fraction(0.75) > 0.35  # up to 10 tries: about 1 - (76/81)^10


def test_rescale_keeps_ratio_within_scale():
    assert rescale_size(512, 683, (2048, 512)) == (512, 683)
    assert rescale_size(1024, 2048, (2048, 512)) == (512, 1024)
    assert rescale_size(100, 1000, (2048, 512)) == (205, 2048)
