"""A segmentation dataset: (image file, label file) pairs, a label mapping and a transform."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors

from model import IMAGE_SUFFIXES, read_image

LabelMap = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Sample:
    image: Path
    label: Path


def read_label(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        if img.mode not in ("L", "P", "I", "I;16"):
            raise ValueError(f"{path}: label images must be single-channel class ids, got mode {img.mode}")
        return np.asarray(img).astype(np.int64)


class SegmentationDataset(Dataset):
    """Returns (image, mask): tv_tensors.Image 3×H×W uint8 and tv_tensors.Mask H×W int64 (255 =
    ignore), passed through `transform` when given (training / evaluation pipelines)."""

    def __init__(self, samples: list[Sample], class_names: tuple[str, ...], palette: tuple,
                 label_map: LabelMap | None = None, transform: Callable | None = None, name: str = "") -> None:
        if not samples:
            raise ValueError(f"dataset {name!r} has no samples; check the data root and split")
        self.samples = samples
        self.class_names = class_names
        self.palette = palette
        self.label_map = label_map
        self.transform = transform
        self.name = name

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The raw image (H×W×3 uint8) and mapped labels (H×W int64) of one sample."""
        sample = self.samples[index]
        image, label = read_image(sample.image), read_label(sample.label)
        if image.shape[:2] != label.shape:
            raise ValueError(f"{sample.image} is {image.shape[:2]} but its label {sample.label} is {label.shape}")
        if self.label_map is not None:
            label = self.label_map(label)
        return image, label

    def __getitem__(self, index: int):
        image, label = self.load(index)
        image_t = tv_tensors.Image(torch.from_numpy(image.copy()).permute(2, 0, 1))
        mask_t = tv_tensors.Mask(torch.from_numpy(label))
        if self.transform is not None:
            return self.transform(image_t, mask_t)
        return image_t, mask_t


def pair_by_stem(image_dir: Path, label_dir: Path, image_suffix: str = "", label_suffix: str = ".png",
                 image_exts: tuple[str, ...] = IMAGE_SUFFIXES) -> list[Sample]:
    """Pair `image_dir/X<image_suffix>.<ext>` with `label_dir/X<label_suffix>`; a missing label is an error."""
    if not image_dir.is_dir():
        raise FileNotFoundError(f"image folder {image_dir} does not exist")
    samples, missing = [], []
    for image in sorted(p for p in image_dir.rglob("*") if p.suffix.lower() in image_exts):
        stem = image.name[: -len(image.suffix)]
        if image_suffix:
            if not stem.endswith(image_suffix):
                continue
            stem = stem[: -len(image_suffix)]
        label = label_dir / image.parent.relative_to(image_dir) / f"{stem}{label_suffix}"
        if label.is_file():
            samples.append(Sample(image, label))
        else:
            missing.append(label)
    if missing:
        raise FileNotFoundError(f"{len(missing)} image(s) in {image_dir} have no label, e.g. {missing[0]}")
    return samples
