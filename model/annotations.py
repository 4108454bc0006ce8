"""Masks as annotation tools read them: COCO run-length encoding, polygons, COCO documents.

CVAT, Label Studio, FiftyOne and pycocotools read COCO RLE — column-major runs, first a run of
zeros, compressed into a string as pycocotools' `rleToString` writes it — and polygons. The
encoder here is written from that format's definition (numpy only); tests decode it with
pycocotools. Polygons come from OpenCV's contour tracing (outer rings and holes), simplified
with Douglas–Peucker.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np


def _runs(binary: np.ndarray) -> list[int]:
    """Column-major run lengths of a 2-D boolean array, starting with a (maybe empty) run of 0s."""
    flat = np.asfortranarray(binary).ravel(order="F").astype(np.uint8)
    if flat.size == 0:
        return []
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    return [0, *runs] if flat[0] else runs


def _compress(counts: list[int]) -> str:
    """pycocotools' counts string: each run minus the run two before (from the third on), in
    5-bit groups, least significant first, 0x20 = more groups follow, offset by 48 ('0')."""
    out = []
    for i, count in enumerate(counts):
        x = count - counts[i - 2] if i > 2 else count
        more = True
        while more:
            c = x & 0x1F
            x >>= 5  # arithmetic shift: negative deltas end when only the sign bits are left
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def coco_rle(binary: np.ndarray) -> dict[str, Any]:
    """H×W bool -> {"size": [H, W], "counts": str}: COCO's compressed RLE (pycocotools.mask.decode reads it)."""
    return {"size": [int(binary.shape[0]), int(binary.shape[1])], "counts": _compress(_runs(binary))}


def bbox(binary: np.ndarray) -> list[int]:
    """[x, y, width, height] of the True pixels (COCO's bbox), zeros if there are none."""
    ys, xs = np.nonzero(binary)
    if not len(xs):
        return [0, 0, 0, 0]
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]


def polygons(binary: np.ndarray, tolerance: float = 0.5) -> list[dict[str, Any]]:
    """The regions of an H×W bool mask as simplified polygons in image coordinates (x, y):
    [{"outer": [[x, y], ...], "holes": [[[x, y], ...], ...]}, ...], one per connected region.

    `tolerance`: Douglas–Peucker's maximum distance, in pixels. Rings of fewer than 3 points
    (single pixels, thin lines) are dropped.
    """
    contours, hierarchy = cv2.findContours(binary.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return []
    rings = [cv2.approxPolyDP(c, tolerance, True).reshape(-1, 2).tolist() for c in contours]
    regions: dict[int, dict[str, Any]] = {}
    for index, (_, _, _, parent) in enumerate(hierarchy[0]):
        if parent < 0 and len(rings[index]) >= 3:  # RETR_CCOMP: top level = outer rings
            regions[index] = {"outer": rings[index], "holes": []}
    for index, (_, _, _, parent) in enumerate(hierarchy[0]):
        if parent in regions and len(rings[index]) >= 3:
            regions[parent]["holes"].append(rings[index])
    return list(regions.values())


def rasterize(regions: Sequence[dict[str, Any]], size: tuple[int, int]) -> np.ndarray:
    """Polygons (as from `polygons`) back to an H×W bool mask: outer rings filled, holes cut."""
    canvas = np.zeros(size, np.uint8)
    for region in regions:
        cv2.fillPoly(canvas, [np.asarray(region["outer"], np.int32)], 1)
        for hole in region["holes"]:
            cv2.fillPoly(canvas, [np.asarray(hole, np.int32)], 0)
            cv2.polylines(canvas, [np.asarray(hole, np.int32)], True, 1)  # the hole's edge pixels belong to the region
    return canvas.astype(bool)


def class_annotations(mask: np.ndarray, class_ids: Sequence[int], with_polygons: bool = False
                      ) -> list[dict[str, Any]]:
    """Per class present in `mask` (among `class_ids`): its COCO RLE, area, bbox (and polygons)."""
    found = []
    for class_id in class_ids:
        binary = mask == class_id
        area = int(binary.sum())
        if not area:
            continue
        item = {"category_id": int(class_id), "segmentation": coco_rle(binary), "area": area, "bbox": bbox(binary)}
        if with_polygons:
            item["polygons"] = polygons(binary)
        found.append(item)
    return found


def coco_document(images: Sequence[dict[str, Any]], class_names: Sequence[str],
                  annotations: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A COCO dataset document (images, categories, annotations with RLE segmentations) that
    pycocotools.coco.COCO and FiftyOne load. `annotations` need image_id; ids are assigned here."""
    return {
        "info": {"description": "Segmenter predictions"},
        "images": list(images),
        "categories": [{"id": i, "name": name, "supercategory": "class"} for i, name in enumerate(class_names)],
        "annotations": [{"id": k + 1, "iscrowd": 0, **a} for k, a in enumerate(annotations)],
    }
