"""The outputs of a segmentation: one vocabulary and one renderer for every caller.

`POST /segment output=...`, `segmenter predict --output ...` and the Ray engine name the same
outputs, render them here, and so give the same bytes for the same image:

    mask        PNG whose pixel values are the class ids (palette attached; 16-bit above 256 classes)
    overlay     RGB PNG (or JPEG, WebP: `RenderOptions.overlay_format`): the class colours blended over
                the image, with a legend of the classes found
    json        the classes found, the mask as row-major runs, per-class COCO RLE (and polygons)
    confidence  8-bit grey PNG: the probability of each pixel's class, 0..1 as 0..255
    coco        for a set of images (the CLI and Ray engines): one COCO results file, predictions.json

JSON carries the mask twice: row-major runs, decodable in one numpy line

    mask = np.repeat(values, lengths).reshape(height, width)

and per class COCO RLE (pycocotools' compressed column-major encoding, what CVAT, Label Studio
and FiftyOne read). A class selection (`RenderOptions.selected`) limits every output to those
classes: other pixels become `not_selected` in the mask, unpainted in the overlay, absent from
JSON, 0 in the confidence map.
"""

from __future__ import annotations

import io
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, features

from model.annotations import class_annotations, coco_document
from model.metadata import ModelMetadata
from model.visualization import draw_legend, mask_to_image, overlay, transparent_classes

IMAGE_OUTPUTS = ("mask", "overlay", "json", "confidence")  # one per image
OUTPUTS = (*IMAGE_OUTPUTS, "coco")  # `coco`: one file for a whole set of images
FILE_SUFFIXES = {"mask": ".png", "overlay": "_overlay.png", "json": ".json", "confidence": "_confidence.png"}
COCO_FILE = "predictions.json"
# zlib level 3 for masks and confidence maps: as small as level 6 at a third of the time (683×512
# mask: 0.9 ms; docs/benchmarks.md).
PNG_LEVEL = 3
# Overlays are photos: after PNG's row filters LZ matching finds little in them, and run-length
# matching (zlib's Z_RLE) is both faster and smaller than level 3. A 4000×3000 photo-like overlay
# (benchmarks/overlay_encoding.py, docs/benchmarks.md): level 3 1.30 s, 9.5 MB; level 1 0.81 s,
# 10.3 MB; level 1 + Z_RLE 0.82 s, 7.9 MB. JPEG (q 90) 33 ms, 1.4 MB; WebP (q 85, method 0) 0.22 s,
# 0.7 MB; WebP at Pillow's default method 4: 0.84 s, 0.6 MB.
OVERLAY_PNG = {"compress_level": 1, "compress_type": zlib.Z_RLE}
# The encodings of each output, its default first, and their media types. Only the overlay, a
# picture for people, may be lossy: JPEG or WebP would change a mask's class ids and a confidence
# map's probabilities.
OUTPUT_FORMATS = {"mask": ("png",), "overlay": ("png", "jpeg", *(("webp",) if features.check("webp") else ())),
                  "json": ("json",), "confidence": ("png",)}
FORMAT_MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "json": "application/json"}
LOSSY_ENCODERS = {"jpeg": {"format": "JPEG", "quality": 90}, "webp": {"format": "WEBP", "quality": 85, "method": 0}}


def parse_outputs(text: str) -> tuple[str, ...]:
    """"mask,overlay" -> ("mask", "overlay"), in the order of OUTPUTS; ValueError naming an unknown one."""
    wanted = {item.strip() for item in text.split(",") if item.strip()}
    unknown = sorted(wanted - set(OUTPUTS))
    if unknown or not wanted:
        raise ValueError(f"unknown output {', '.join(map(repr, unknown)) or repr(text)}; choose from "
                         f"{', '.join(OUTPUTS)} (comma-separated)")
    return tuple(o for o in OUTPUTS if o in wanted)


@dataclass(frozen=True)
class RenderOptions:
    """How outputs are drawn. `selected`: class ids to keep (None: all)."""

    alpha: float = 0.5  # overlay: weight of the class colours
    legend: bool = True  # overlay: a legend of the classes found
    polygons: bool = False  # json: simplified polygons per class
    selected: tuple[int, ...] | None = field(default=None)
    overlay_format: str = "png"  # overlay: png | jpeg | webp (OUTPUT_FORMATS["overlay"])

    def __post_init__(self) -> None:
        if self.overlay_format not in OUTPUT_FORMATS["overlay"]:
            raise ValueError(f"unknown overlay format {self.overlay_format!r}; choose from "
                             f"{', '.join(OUTPUT_FORMATS['overlay'])}")


def png_bytes(image: Image.Image | np.ndarray) -> bytes:
    """The PNG encoder of masks and confidence maps (and of other pictures, e.g. attention maps)."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_LEVEL)
    return buffer.getvalue()


def encode_image(rgb: np.ndarray, image_format: str) -> bytes:
    """An overlay (H×W×3 uint8) as PNG, JPEG or WebP bytes (OUTPUT_FORMATS["overlay"])."""
    buffer = io.BytesIO()
    if image_format == "png":
        Image.fromarray(rgb).save(buffer, format="PNG", **OVERLAY_PNG)
    else:
        Image.fromarray(rgb).save(buffer, **LOSSY_ENCODERS[image_format])
    return buffer.getvalue()


def file_suffix(kind: str, options: RenderOptions) -> str:
    """How a job names an output's file after the image's name: FILE_SUFFIXES, with the overlay's
    extension its format's (`_overlay.jpg`, `_overlay.webp`)."""
    if kind == "overlay" and options.overlay_format != "png":
        return {"jpeg": "_overlay.jpg", "webp": "_overlay.webp"}[options.overlay_format]
    return FILE_SUFFIXES[kind]


def json_bytes(document: dict) -> bytes:
    """Compact UTF-8 JSON, byte for byte what the service's JSON responses hold."""
    return json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


def not_selected(metadata: ModelMetadata) -> int:
    """The mask value of pixels outside a class selection: 255 up to 255 classes; above, 65535
    (a 256-class model's ids fill 8 bits: its selected masks become 16-bit)."""
    return 255 if metadata.num_classes <= 255 else 65535


def keep_only(mask: np.ndarray, selected: Sequence[int] | None, metadata: ModelMetadata) -> np.ndarray:
    """The mask with pixels of unselected classes set to `not_selected`."""
    if selected is None:
        return mask
    outside = not_selected(metadata)
    dtype = mask.dtype if outside <= np.iinfo(mask.dtype).max else np.dtype(np.uint16)
    return np.where(np.isin(mask, selected), mask.astype(dtype), np.array(outside, dtype))


def selected_confidence(confidence: np.ndarray, mask: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """H×W float32: `confidence` where `kept` (`keep_only(mask, ...)`) kept the class, 0 elsewhere."""
    if kept is mask:
        return confidence
    return np.where(kept == mask, confidence, np.float32(0)).astype(np.float32, copy=False)


def class_segments(kept: np.ndarray, confidence: np.ndarray, metadata: ModelMetadata,
                   selected: Sequence[int] | None = None) -> list[dict]:
    """One segment per (selected) class present, most frequent first: {id, name, score, mask},
    `mask` H×W bool, `score` the mean confidence of its pixels (Hugging Face's image-segmentation
    output, before its masks are encoded)."""
    totals = np.bincount(kept.ravel(), weights=confidence.ravel(), minlength=metadata.num_classes)
    return [{"id": c["id"], "name": c["name"], "score": float(totals[c["id"]] / c["pixels"]),
             "mask": kept == c["id"]} for c in classes_present(kept, metadata, selected)]


def classes_present(mask: np.ndarray, metadata: ModelMetadata, selected: Sequence[int] | None = None) -> list[dict]:
    """[{id, name, color, pixels, fraction}] for each (selected) class in the mask, most frequent first;
    only classes with pixels, each with a fraction above 0."""
    counts = np.bincount(mask.ravel(), minlength=metadata.num_classes)[: metadata.num_classes]
    found = [int(i) for i in np.flatnonzero(counts) if selected is None or int(i) in selected]
    found.sort(key=lambda i: -counts[i])
    return [{"id": i, "name": metadata.class_names[i], "color": [int(v) for v in metadata.palette[i]],
             "pixels": int(counts[i]), "fraction": _significant(counts[i] / mask.size)} for i in found]


def _significant(fraction: float) -> float:
    """6 significant digits: a class of one pixel in 12 million is 8.33333e-08, not 0."""
    return float(f"{fraction:.6g}")


def run_length_encode(mask: np.ndarray) -> dict:
    """Row-major runs of an H×W mask: {"values": [...], "lengths": [...]}."""
    flat = mask.ravel()
    if flat.size == 0:
        return {"values": [], "lengths": []}
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate([[0], change])
    lengths = np.diff(np.concatenate([starts, [flat.size]]))
    return {"values": flat[starts].tolist(), "lengths": lengths.tolist()}


def render(kind: str, rgb: np.ndarray, mask: np.ndarray, metadata: ModelMetadata, model_name: str,
           confidence: np.ndarray | None = None, options: RenderOptions = RenderOptions()) -> bytes:
    """One output of one image as the bytes of its file or response.

    Args:
        kind: one of IMAGE_OUTPUTS.
        rgb: H×W×3 uint8, the image as read; mask: H×W class ids (from `Predictor.predict`).
        model_name: named in the JSON output.
        confidence: H×W float32 in 0..1, needed for "confidence" (`Predictor.finish_with_confidence`).
    """
    selected = options.selected
    kept = keep_only(mask, selected, metadata)
    if kind == "mask":
        return png_bytes(mask_to_image(kept, metadata.palette))
    if kind == "confidence":
        if confidence is None:
            raise ValueError("the confidence output needs the confidence map (Predictor.finish_with_confidence)")
        confidence = selected_confidence(confidence, mask, kept)
        return png_bytes(np.clip(np.rint(confidence * 255), 0, 255).astype(np.uint8))
    if kind == "overlay":
        return encode_image(render_overlay(rgb, kept, metadata, options), options.overlay_format)
    if kind == "json":
        return json_bytes(json_document(kept, metadata, model_name, options))
    raise ValueError(f"unknown output {kind!r}; choose from {', '.join(IMAGE_OUTPUTS)}")


def render_overlay(rgb: np.ndarray, kept: np.ndarray, metadata: ModelMetadata, options: RenderOptions,
                   present: list[dict] | None = None) -> np.ndarray:
    """H×W'×3 uint8: the image blended with class colours (background classes, and classes outside
    the selection, left as they are), and with `options.legend` a legend of the classes found
    (`present`: `classes_present(kept, ...)` when the caller has it already)."""
    transparent = set(transparent_classes(metadata.class_names))
    if options.selected is not None:
        transparent |= set(range(metadata.num_classes)) - set(options.selected)
        if transparent:  # pixels outside the selection (not_selected) are drawn as an unpainted class
            kept = np.where(kept < metadata.num_classes, kept, min(transparent))
    blended = overlay(rgb, kept, metadata.palette, options.alpha, tuple(sorted(transparent)))
    if options.legend:
        present = present if present is not None else classes_present(kept, metadata, options.selected)
        blended = draw_legend(blended, [c["id"] for c in present], metadata.class_names, metadata.palette)
    return blended


def json_document(kept: np.ndarray, metadata: ModelMetadata, model_name: str, options: RenderOptions) -> dict:
    height, width = kept.shape
    present = classes_present(kept, metadata, options.selected)
    annotations = class_annotations(kept, [c["id"] for c in present], options.polygons)
    for item in annotations:
        item["name"] = metadata.class_names[item["category_id"]]
    return {
        "model": model_name,
        "width": width,
        "height": height,
        "classes": present,
        "mask": {"encoding": "rle-row-major", "size": [height, width], **run_length_encode(kept)},
        "annotations": annotations,  # per class: COCO RLE ("segmentation"), area, bbox, polygons
    }


@dataclass
class CocoResults:
    """Masks of many images collected into one COCO document (`predictions.json`): images,
    categories, and per image and class an annotation with its RLE, area and bbox."""

    class_names: tuple[str, ...]
    images: list[dict] = field(default_factory=list)
    annotations: list[dict] = field(default_factory=list)

    def add(self, file_name: str, mask: np.ndarray, selected: Sequence[int] | None = None) -> None:
        """An image's mask; `selected`: only those classes' annotations (None: every class)."""
        classes = range(len(self.class_names)) if selected is None else selected
        self.add_annotations(file_name, *mask.shape, class_annotations(mask, classes))

    def add_annotations(self, file_name: str, height: int, width: int, items: list[dict]) -> None:
        """An image whose per-class annotations (`class_annotations`) were computed elsewhere."""
        image_id = len(self.images) + 1
        self.images.append({"id": image_id, "file_name": file_name, "height": int(height), "width": int(width)})
        self.annotations.extend({"image_id": image_id, **item} for item in items)

    def document(self) -> dict:
        return coco_document(self.images, self.class_names, self.annotations)
