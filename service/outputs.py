"""Render a class mask as the response the client asked for: mask PNG, overlay PNG or JSON.

The JSON mask encoding is a row-major run-length code, decodable in one numpy line:

    mask = np.repeat(values, lengths).reshape(height, width)
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from model import ModelMetadata, draw_legend, mask_to_image, overlay, transparent_classes


def png_bytes(image: Image.Image | np.ndarray) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    # compress_level 1: masks and overlays compress well already; speed matters more here.
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def classes_present(mask: np.ndarray, metadata: ModelMetadata) -> list[dict]:
    """[{id, name, color, pixels, fraction}] for each class in the mask, most frequent first."""
    counts = np.bincount(mask.ravel(), minlength=metadata.num_classes)
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
                   legend_classes: list[dict] | None) -> bytes:
    """RGB PNG: the image blended with class colours; with `legend_classes` (from
    `classes_present`), a legend of those classes beside it."""
    blended = overlay(rgb, mask, metadata.palette, alpha, transparent_classes(metadata.class_names))
    if legend_classes is not None:
        blended = draw_legend(blended, [c["id"] for c in legend_classes], metadata.class_names, metadata.palette)
    return png_bytes(blended)


def render_json(mask: np.ndarray, metadata: ModelMetadata, model_name: str) -> dict:
    height, width = mask.shape
    return {
        "model": model_name,
        "width": width,
        "height": height,
        "classes": classes_present(mask, metadata),
        "mask": {"encoding": "rle-row-major", "size": [height, width], **run_length_encode(mask)},
    }
