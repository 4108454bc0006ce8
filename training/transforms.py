"""Training and evaluation pipelines, as the MMSeg pipeline the paper used.

Train: ratio resize to scale·r (r in ratio_range, keeping the aspect ratio), random crop whose
dominant class covers at most `cat_max_ratio` (10 tries), horizontal flip, photometric
distortion, normalize, pad to the crop (image 0, label 255). Image and mask go through the same
torchvision v2 geometric ops (`tv_tensors.Mask` is resized with nearest neighbour), so they stay
aligned.
"""

from __future__ import annotations

import random

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from model.scores import IGNORE_INDEX


def rescale_size(height: int, width: int, scale: tuple[float, float]) -> tuple[int, int]:
    """mmseg's keep-ratio rescale: the largest size with long side <= scale[0], short <= scale[1]."""
    long_edge, short_edge = max(scale), min(scale)
    factor = min(long_edge / max(height, width), short_edge / min(height, width))
    return int(height * factor + 0.5), int(width * factor + 0.5)


class TrainTransform:
    def __init__(self, crop_size: int, mean, std, base_size=(2048, 512), ratio_range=(0.5, 2.0),
                 cat_max_ratio: float = 0.75, photometric: bool = True) -> None:
        self.crop = crop_size
        self.base_size = base_size
        self.ratio_range = ratio_range
        self.cat_max_ratio = cat_max_ratio
        self.photometric = (
            v2.Compose([
                v2.RandomApply([v2.ColorJitter(brightness=32 / 255)], p=0.5),
                v2.RandomApply([v2.ColorJitter(contrast=(0.5, 1.5))], p=0.5),
                v2.RandomApply([v2.ColorJitter(saturation=(0.5, 1.5))], p=0.5),
                v2.RandomApply([v2.ColorJitter(hue=18 / 360)], p=0.5),
            ])
            if photometric else None
        )
        self.mean, self.std = list(mean), list(std)

    def random_crop_box(self, mask: torch.Tensor) -> tuple[int, int, int, int]:
        """(top, left, h, w) of a crop; retried up to 10 times while one class dominates."""
        height, width = mask.shape[-2:]
        h, w = min(self.crop, height), min(self.crop, width)
        box = (0, 0, h, w)
        for _ in range(10):
            top, left = random.randint(0, height - h), random.randint(0, width - w)
            box = (top, left, h, w)
            if self.cat_max_ratio >= 1.0:
                break
            labels = mask[top : top + h, left : left + w]
            _, counts = torch.unique(labels[labels != IGNORE_INDEX], return_counts=True)
            if len(counts) > 1 and counts.max().item() / counts.sum().item() < self.cat_max_ratio:
                break
        return box

    def __call__(self, image: tv_tensors.Image, mask: tv_tensors.Mask) -> tuple[torch.Tensor, torch.Tensor]:
        ratio = random.uniform(*self.ratio_range)
        scale = (self.base_size[0] * ratio, self.base_size[1] * ratio)
        size = rescale_size(*image.shape[-2:], scale)
        image = TF.resize(image, list(size), antialias=True)
        mask = TF.resize(mask, list(size))  # tv_tensors.Mask: nearest neighbour
        top, left, h, w = self.random_crop_box(mask)
        image, mask = TF.crop(image, top, left, h, w), TF.crop(mask, top, left, h, w)
        if random.random() < 0.5:
            image, mask = TF.horizontal_flip(image), TF.horizontal_flip(mask)
        if self.photometric is not None:
            image = self.photometric(image)
        x = TF.normalize(TF.to_dtype(image, torch.float32, scale=True), self.mean, self.std)
        pad_h, pad_w = self.crop - x.shape[-2], self.crop - x.shape[-1]
        if pad_h or pad_w:
            x = TF.pad(x, [0, 0, pad_w, pad_h], fill=0)
            mask = TF.pad(mask, [0, 0, pad_w, pad_h], fill=IGNORE_INDEX)
        return x.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor).long()
