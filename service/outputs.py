"""Render a class mask as the response the client asked for: mask PNG, overlay PNG, JSON, confidence.

JSON carries the mask twice: a row-major run-length code, decodable in one numpy line

    mask = np.repeat(values, lengths).reshape(height, width)

and per class COCO RLE (pycocotools' compressed column-major encoding, what CVAT, Label Studio
and FiftyOne read), with polygons on request. A `classes` selection limits every output to
those classes: other pixels become NOT_SELECTED in the mask, unpainted in the overlay, absent
from JSON, 0 in the confidence map.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from model import ModelMetadata, class_annotations, draw_legend, mask_to_image, overlay, transparent_classes
from service.errors import ServiceError


def png_bytes(image: Image.Image | np.ndarray) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    # compress_level 1: masks and overlays compress well already; speed matters more here.
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def not_selected(metadata: ModelMetadata) -> int:
    """The mask value of pixels outside a `classes` selection: 255 up to 255 classes; above, 65535
    (a 256-class model's ids fill 8 bits: its selected masks become 16-bit)."""
    return 255 if metadata.num_classes <= 255 else 65535


def select_classes(text: str | None, metadata: ModelMetadata) -> tuple[int, ...] | None:
    """`classes` ("cat,dog", "3,7", or both mixed) -> class ids; None: all. 422 naming an unknown one."""
    if text is None:
        return None
    try:
        return metadata.class_ids(text)
    except ValueError as exc:
        raise ServiceError(422, "invalid_parameters", f"classes: {exc}; GET /models lists them") from None


def keep_only(mask: np.ndarray, selected: tuple[int, ...] | None, metadata: ModelMetadata) -> np.ndarray:
    """The mask with pixels of unselected classes set to `not_selected`."""
    if selected is None:
        return mask
    outside = not_selected(metadata)
    dtype = mask.dtype if outside <= np.iinfo(mask.dtype).max else np.dtype(np.uint16)
    return np.where(np.isin(mask, selected), mask.astype(dtype), np.array(outside, dtype))


def classes_present(mask: np.ndarray, metadata: ModelMetadata) -> list[dict]:
    """[{id, name, color, pixels, fraction}] for each class in the mask, most frequent first."""
    counts = np.bincount(mask.ravel(), minlength=metadata.num_classes)[: metadata.num_classes]
    total = mask.size
    found = [int(i) for i in np.flatnonzero(counts)]
    found.sort(key=lambda i: -counts[i])
    return [{"id": i, "name": metadata.class_names[i], "color": [int(v) for v in metadata.palette[i]],
             "pixels": int(counts[i]), "fraction": round(float(counts[i]) / total, 6)} for i in found]


def run_length_encode(mask: np.ndarray) -> dict:
    """Row-major runs of an H×W mask: {"values": [...], "lengths": [...]}."""
    flat = mask.ravel()
    if flat.size == 0:
        return {"values": [], "lengths": []}
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate([[0], change])
    lengths = np.diff(np.concatenate([starts, [flat.size]]))
    return {"values": flat[starts].tolist(), "lengths": lengths.tolist()}


def render_mask(mask: np.ndarray, metadata: ModelMetadata) -> bytes:
    """PNG whose pixel values are class ids (palette attached; 16-bit above 256 classes)."""
    return png_bytes(mask_to_image(mask, metadata.palette))


def render_overlay(rgb: np.ndarray, mask: np.ndarray, metadata: ModelMetadata, alpha: float,
                   legend_classes: list[dict] | None, selected: tuple[int, ...] | None = None) -> bytes:
    """RGB PNG: the image blended with class colours (background classes, and classes outside
    `selected`, left as they are); with `legend_classes` (from `classes_present`), a legend."""
    transparent = set(transparent_classes(metadata.class_names))
    if selected is not None:
        transparent |= set(range(metadata.num_classes)) - set(selected)
        if transparent:  # pixels outside the selection (not_selected) are drawn as an unpainted class
            mask = np.where(mask < metadata.num_classes, mask, min(transparent))
    blended = overlay(rgb, mask, metadata.palette, alpha, tuple(sorted(transparent)))
    if legend_classes is not None:
        blended = draw_legend(blended, [c["id"] for c in legend_classes], metadata.class_names, metadata.palette)
    return png_bytes(blended)


def render_confidence(confidence: np.ndarray) -> bytes:
    """8-bit grey PNG: the probability of each pixel's class, 0..1 as 0..255 (rounded)."""
    return png_bytes(np.clip(np.rint(confidence * 255), 0, 255).astype(np.uint8))


def render_json(mask: np.ndarray, metadata: ModelMetadata, model_name: str,
                selected: tuple[int, ...] | None = None, with_polygons: bool = False) -> dict:
    height, width = mask.shape
    present = [c for c in classes_present(mask, metadata) if selected is None or c["id"] in selected]
    annotations = class_annotations(mask, [c["id"] for c in present], with_polygons)
    for item in annotations:
        item["name"] = metadata.class_names[item["category_id"]]
    return {
        "model": model_name,
        "width": width,
        "height": height,
        "classes": present,
        "mask": {"encoding": "rle-row-major", "size": [height, width], **run_length_encode(mask)},
        "annotations": annotations,  # per class: COCO RLE ("segmentation"), area, bbox, polygons
    }
