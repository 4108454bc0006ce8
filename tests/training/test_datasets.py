"""Each real layout, as a tiny fake tree the test writes: pairing, label mapping, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from training.data.layouts import build_dataset


def write_pair(image_path, label_path, label, rng):
    image_path.parent.mkdir(parents=True, exist_ok=True)
    label_path.parent.mkdir(parents=True, exist_ok=True)
    h, w = label.shape
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(image_path)
    Image.fromarray(label.astype(np.uint8)).save(label_path)


def test_ade20k_reduces_zero_label(tmp_path, rng):
    root = tmp_path / "ADEChallengeData2016"
    label = np.array([[0, 1, 150], [2, 255, 0]])
    write_pair(root / "images/training/ADE_train_1.jpg", root / "annotations/training/ADE_train_1.png", label, rng)
    write_pair(root / "images/validation/ADE_val_1.jpg", root / "annotations/validation/ADE_val_1.png", label, rng)
    ds = build_dataset("ade20k", root, "train")
    assert len(ds) == 1 and len(ds.class_names) == 150 and ds.class_names[0] == "wall"
    _, mapped = ds.load(0)
    np.testing.assert_array_equal(mapped, [[255, 0, 149], [1, 255, 255]])
    image, mask = ds[0]
    assert image.shape == (3, 2, 3) and mask.shape == (2, 3)


def test_pascal_context_reads_split_lists(tmp_path, rng):
    root = tmp_path / "VOCdevkit/VOC2010"
    label = np.array([[0, 59], [12, 255]])
    for name in ("2008_000001", "2008_000002"):
        write_pair(root / f"JPEGImages/{name}.jpg", root / f"SegmentationClassContext/{name}.png", label, rng)
    (root / "ImageSets/SegmentationContext").mkdir(parents=True)
    (root / "ImageSets/SegmentationContext/train.txt").write_text("2008_000001\n")
    (root / "ImageSets/SegmentationContext/val.txt").write_text("2008_000002\n2008_000003\n")
    ds = build_dataset("pascal_context", root, "train")
    assert len(ds) == 1 and ds.class_names[0] == "background" and len(ds.class_names) == 60
    np.testing.assert_array_equal(ds.load(0)[1], label)  # labels are used as stored
    with pytest.raises(FileNotFoundError, match="1 entries of .*val.txt have no image"):
        build_dataset("pascal_context", root, "val")


@pytest.mark.parametrize("with_train_ids", [True, False])
def test_cityscapes_train_ids_or_converted_label_ids(tmp_path, rng, with_train_ids):
    root = tmp_path / "cityscapes"
    label_ids = np.array([[7, 26], [0, 33]])  # road, car, unlabeled, bicycle
    train_ids = np.array([[0, 13], [255, 18]])
    stem = "aachen_000000_000019"
    image = root / f"leftImg8bit/train/aachen/{stem}_leftImg8bit.png"
    if with_train_ids:
        write_pair(image, root / f"gtFine/train/aachen/{stem}_gtFine_labelTrainIds.png", train_ids, rng)
    else:
        write_pair(image, root / f"gtFine/train/aachen/{stem}_gtFine_labelIds.png", label_ids, rng)
    ds = build_dataset("cityscapes", root, "train")
    assert ds.class_names[13] == "car"
    np.testing.assert_array_equal(ds.load(0)[1], train_ids)


def test_custom_layout_with_colours(tmp_path, rng):
    root = tmp_path / "mydata"
    write_pair(root / "images/train/a.jpg", root / "masks/train/a.png", np.array([[0, 1], [1, 255]]), rng)
    (root / "classes.json").write_text(json.dumps({"classes": [{"name": "ground", "color": [1, 2, 3]},
                                                               {"name": "tree"}]}))
    ds = build_dataset("custom", root, "train")
    assert ds.class_names == ("ground", "tree")
    assert ds.palette[0] == (1, 2, 3) and len(ds.palette[1]) == 3


def test_custom_errors_name_the_fix(tmp_path, rng):
    root = tmp_path / "mydata"
    write_pair(root / "images/train/a.jpg", root / "masks/train/b.png", np.zeros((2, 2)), rng)
    with pytest.raises(FileNotFoundError, match="classes.json is missing"):
        build_dataset("custom", root, "train")
    (root / "classes.json").write_text('{"classes": ["x"]}')
    with pytest.raises(FileNotFoundError, match="have no label, e.g. .*a.png"):
        build_dataset("custom", root, "train")
    with pytest.raises(FileNotFoundError, match="data root .* does not exist"):
        build_dataset("ade20k", tmp_path / "missing", "train")
    with pytest.raises(ValueError, match="unknown dataset"):
        build_dataset("coco", root, "train")
