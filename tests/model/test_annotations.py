"""COCO RLE equal to pycocotools' own encoding; polygons that rasterize back to the masks."""

from __future__ import annotations

import numpy as np
import pycocotools.mask as coco_mask
import pytest

from model.annotations import class_annotations, coco_rle, polygons, rasterize
from training.data.synthetic import render


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (64, 64), (97, 131)])
@pytest.mark.parametrize("density", [0.0, 0.03, 0.5, 1.0])
def test_coco_rle_is_pycocotools_encoding(shape, density):
    binary = np.random.default_rng(0).random(shape) < density
    ours = coco_rle(binary)
    theirs = coco_mask.encode(np.asfortranarray(binary.astype(np.uint8)))
    assert ours == {"size": list(shape), "counts": theirs["counts"].decode()}
    decoded = coco_mask.decode({"size": ours["size"], "counts": ours["counts"].encode()})
    np.testing.assert_array_equal(decoded.astype(bool), binary)


@pytest.mark.parametrize("seed", range(6))
def test_polygons_rasterize_back_to_the_class_masks(seed):
    _, mask = render(160, np.random.default_rng(seed))
    for class_id in np.unique(mask):
        binary = mask == class_id
        regions = polygons(binary)
        assert all(len(r["outer"]) >= 3 for r in regions)
        back = rasterize(regions, binary.shape)
        assert (back & binary).sum() / (back | binary).sum() >= 0.98, class_id


def test_holes_are_inner_rings():
    ring = np.zeros((40, 40), bool)
    ring[5:35, 5:35] = True
    ring[15:25, 15:25] = False
    (region,) = polygons(ring)
    assert len(region["holes"]) == 1
    np.testing.assert_array_equal(rasterize([region], ring.shape), ring)


def test_class_annotations_list_area_bbox_and_rle_per_present_class():
    mask = np.zeros((10, 12), np.uint8)
    mask[2:5, 3:9] = 2
    found = class_annotations(mask, [0, 1, 2])
    assert [a["category_id"] for a in found] == [0, 2]  # class 1 is absent
    two = found[1]
    assert two["area"] == 18 and two["bbox"] == [3, 2, 6, 3]
    np.testing.assert_array_equal(coco_mask.decode({"size": two["segmentation"]["size"],
                                                    "counts": two["segmentation"]["counts"].encode()}), mask == 2)
