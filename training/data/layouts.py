"""The on-disk layouts users download, each read as a SegmentationDataset.

- ADE20K: ROOT/images/{training,validation}/*.jpg + ROOT/annotations/{...}/*.png, reduce-zero-label
  (0 "other" -> ignore, 1..150 -> 0..149).
- Pascal Context (as prepared for mmseg): ROOT/JPEGImages, ROOT/SegmentationClassContext,
  ROOT/ImageSets/SegmentationContext/{train,val}.txt; 59 classes + background (0).
- Cityscapes: ROOT/leftImg8bit/{train,val}/CITY/*_leftImg8bit.png + ROOT/gtFine/...
  *_gtFine_labelTrainIds.png; `*_labelIds.png` are converted on the fly when trainIds are absent.
- custom: ROOT/images/{train,val}/*, ROOT/masks/{train,val}/*.png (same stem, pixel = class id,
  255 = ignore), ROOT/classes.json ({"classes": ["name", ...]} or [{"name", "color"}, ...]).
- synthetic: the custom layout, generated into ROOT on first use (training/data/synthetic.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from model.class_sets import default_palette, get_class_set
from model.scores import IGNORE_INDEX
from training.data import DATASETS
from training.data.base import Sample, SegmentationDataset, pair_by_stem

# Cityscapes labelIds -> trainIds (the 19 evaluated classes; everything else ignored).
CITYSCAPES_ID_TO_TRAIN_ID = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
                             25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}


def reduce_zero_label(label: np.ndarray) -> np.ndarray:
    out = label - 1
    out[label == 0] = IGNORE_INDEX
    out[label == IGNORE_INDEX] = IGNORE_INDEX
    return out


def cityscapes_label_ids_to_train_ids(label: np.ndarray) -> np.ndarray:
    table = np.full(256, IGNORE_INDEX, dtype=np.int64)
    for label_id, train_id in CITYSCAPES_ID_TO_TRAIN_ID.items():
        table[label_id] = train_id
    return table[np.clip(label, 0, 255)]


def _check_root(root: Path, expected: str, how: str) -> None:
    if not root.is_dir():
        raise FileNotFoundError(f"data root {root} does not exist; expected the {expected} layout ({how})")


def _prepare(dataset: str) -> str:
    return f"download and unpack it with python -m training.prepare.{dataset} --data DIR, then set data.root"


def ade20k(root: Path, split: str, transform: Callable | None = None) -> SegmentationDataset:
    _check_root(root, "ADE20K ADEChallengeData2016/{images,annotations}", _prepare("ade20k"))
    folder = {"train": "training", "val": "validation"}[split]
    samples = pair_by_stem(root / "images" / folder, root / "annotations" / folder)
    classes = get_class_set("ade20k")
    return SegmentationDataset(samples, classes.names, classes.palette, reduce_zero_label, transform, "ade20k")


def pascal_context(root: Path, split: str, transform: Callable | None = None) -> SegmentationDataset:
    _check_root(root, "Pascal Context (JPEGImages, SegmentationClassContext, ImageSets/SegmentationContext)",
                _prepare("pascal_context"))
    list_file = root / "ImageSets" / "SegmentationContext" / f"{split}.txt"
    if not list_file.is_file():
        raise FileNotFoundError(f"split list {list_file} is missing")
    names = [line.strip() for line in list_file.read_text().splitlines() if line.strip()]
    samples = [Sample(root / "JPEGImages" / f"{n}.jpg", root / "SegmentationClassContext" / f"{n}.png") for n in names]
    missing = [s for s in samples if not (s.image.is_file() and s.label.is_file())]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} entries of {list_file} have no image or label, e.g. {missing[0].image}")
    classes = get_class_set("pascal_context")
    return SegmentationDataset(samples, classes.names, classes.palette, None, transform, "pascal_context")


def cityscapes(root: Path, split: str, transform: Callable | None = None) -> SegmentationDataset:
    _check_root(root, "Cityscapes leftImg8bit/ + gtFine/", _prepare("cityscapes"))
    images, labels = root / "leftImg8bit" / split, root / "gtFine" / split
    train_ids = list(labels.rglob("*_gtFine_labelTrainIds.png")) if labels.is_dir() else []
    if train_ids:
        samples, label_map = pair_by_stem(images, labels, "_leftImg8bit", "_gtFine_labelTrainIds.png"), None
    else:  # not converted yet: read labelIds and map them on the fly
        samples = pair_by_stem(images, labels, "_leftImg8bit", "_gtFine_labelIds.png")
        label_map = cityscapes_label_ids_to_train_ids
    classes = get_class_set("cityscapes")
    return SegmentationDataset(samples, classes.names, classes.palette, label_map, transform, "cityscapes")


def read_custom_classes(root: Path) -> tuple[tuple[str, ...], tuple]:
    path = root / "classes.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: a custom dataset needs its class names "
                                '(e.g. {"classes": ["background", "cat"]})')
    data = json.loads(path.read_text())
    entries = data["classes"] if isinstance(data, dict) else data
    names = tuple(e["name"] if isinstance(e, dict) else str(e) for e in entries)
    colors = [e.get("color") if isinstance(e, dict) else None for e in entries]
    palette = default_palette(len(names))
    palette = tuple(tuple(c) if c else palette[i] for i, c in enumerate(colors))
    return names, palette


def custom(root: Path, split: str, transform: Callable | None = None) -> SegmentationDataset:
    _check_root(root, "custom ROOT/images/{train,val}, ROOT/masks/{train,val}, ROOT/classes.json",
                "README: Your own data")
    names, palette = read_custom_classes(root)
    samples = pair_by_stem(root / "images" / split, root / "masks" / split)
    return SegmentationDataset(samples, names, palette, None, transform, "custom")


def synthetic(root: Path, split: str, transform: Callable | None = None, generate: bool = False
              ) -> SegmentationDataset:
    """The synthetic dataset in the custom layout; with `generate` (training), written to `root`
    first if it is not there. Evaluation never generates: a mistyped root is an error, not 50 MB
    of new data scored as if it were the user's."""
    from training.data.synthetic import write_dataset

    if not (root / "classes.json").is_file():
        if not generate:
            raise FileNotFoundError(f"no synthetic dataset at {root}; write it with "
                                    f"python -m training.data.synthetic --out {root}")
        print(f"writing the synthetic dataset to {root} (first use)")
        write_dataset(root)
    return custom(root, split, transform)


_BUILDERS = {"ade20k": ade20k, "pascal_context": pascal_context, "cityscapes": cityscapes, "custom": custom,
             "synthetic": synthetic}


def build_dataset(name: str, root: str | Path, split: str, transform: Callable | None = None,
                  generate: bool = False) -> SegmentationDataset:
    """A dataset by layout name ("ade20k", "pascal_context", "cityscapes", "custom", "synthetic")
    and split; `generate`: write the synthetic dataset if it is not there yet (training does)."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if name == "synthetic":
        return synthetic(Path(root), split, transform, generate)
    return _BUILDERS[name](Path(root), split, transform)
