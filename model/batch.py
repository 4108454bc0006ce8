"""Segmenting a folder: which files to read, and the file each answer goes to.

Shared by `segmenter predict` and any batch engine, so every path names outputs the same way:
- every file with an image suffix under the input (recursively) is read; other files are listed
  as skipped, never silently passed over (hidden files, such as .DS_Store, excepted);
- an image's outputs keep its path relative to the input folder, suffix dropped
  (`a/x.jpg` -> `a/x.png`, `a/x_overlay.png`); when two images would share a name (`x.jpg` and
  `x.png` side by side) both keep their suffix (`x.jpg.png`, `x.png.png`): nothing is overwritten.
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from model.annotations import class_annotations, coco_document
from model.inference.cost import TooManyWindows
from model.inference.images import IMAGE_SUFFIXES, ImageError
from model.metadata import ModelMetadata
from model.visualization import draw_legend, mask_to_image, overlay, transparent_classes


@dataclass(frozen=True)
class Inputs:
    root: Path  # names are relative to this folder
    images: list[Path]
    skipped: list[Path] = field(default_factory=list)  # files that are not images this package reads
    names: dict[Path, str] = field(default_factory=dict)  # image -> output name (no suffix)


def find_images(path: Path) -> Inputs:
    """The images under `path` (a file or a folder), their output names, and the skipped files."""
    path = Path(path)
    if path.is_file():
        return Inputs(path.parent, [path], [], {path: path.stem})
    if not path.is_dir():
        raise FileNotFoundError(f"no image or folder at {path}")
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    skipped = [p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
    return Inputs(path, images, skipped, output_names(images, path))


def output_names(images: list[Path], root: Path) -> dict[Path, str]:
    """Image -> its output name: the path relative to `root` without the suffix, or with it when
    another image would get the same name."""
    names = relative_names([image.relative_to(root).as_posix() for image in images])
    return dict(zip(images, names, strict=True))


def relative_names(relative: list[str]) -> list[str]:
    """Output names for images given by their relative posix paths (`a/x.jpg` -> `a/x`, or
    `a/x.jpg` when another image would also become `a/x`)."""
    stems = [PurePosixPath(path).with_suffix("").as_posix() for path in relative]
    taken = Counter(stems)
    return [path if taken[stem] > 1 else stem for path, stem in zip(relative, stems, strict=True)]


def clashes(inputs: Inputs) -> list[str]:
    """The images whose names kept their suffix, to tell the user why."""
    return [inputs.names[image] for image in inputs.images
            if inputs.names[image] != image.relative_to(inputs.root).with_suffix("").as_posix()]


def output_pictures(name: str, rgb: np.ndarray, mask: np.ndarray, metadata: ModelMetadata, with_mask: bool,
                    with_overlay: bool, alpha: float = 0.5) -> dict[str, Image.Image]:
    """`<name>.png` (pixel = class id) and/or `<name>_overlay.png`, by relative file name."""
    pictures = {}
    if with_mask:
        pictures[f"{name}.png"] = mask_to_image(mask, metadata.palette)
    if with_overlay:
        present = [int(c) for c in np.unique(mask)]
        picture = overlay(rgb, mask, metadata.palette, alpha, transparent_classes(metadata.class_names))
        pictures[f"{name}_overlay.png"] = Image.fromarray(draw_legend(picture, present, metadata.class_names,
                                                                      metadata.palette))
    return pictures


def failure_reason(where: str, exc: Exception) -> str:
    """The line that reports an image `segmenter predict` could not segment (either engine)."""
    if isinstance(exc, TooManyWindows):
        return f"{where}: {exc} (--max-windows; 0 for no limit)"
    if isinstance(exc, (ImageError, OSError)):
        return f"{where}: {exc}"
    return f"{where}: {type(exc).__name__}: {exc}"


def png_bytes(relative: str, picture: Image.Image) -> bytes:
    """An output picture as PNG bytes. Overlays (photo-like, ~0.5 MB at 683×512) at zlib level 3:
    `segmenter predict --overlay` 1.5-1.7× faster than with PIL's default 6, files 13% larger
    (docs/benchmarks.md, Ray section); masks (flat regions, a few KB) at the default."""
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=3 if relative.endswith("_overlay.png") else 6)
    return buffer.getvalue()


def write_outputs(out: Path, name: str, rgb: np.ndarray, mask: np.ndarray, metadata: ModelMetadata,
                  with_mask: bool, with_overlay: bool, alpha: float = 0.5) -> list[Path]:
    """Write `<name>.png` (pixel = class id) and/or `<name>_overlay.png`; the paths written."""
    written = []
    for relative, picture in output_pictures(name, rgb, mask, metadata, with_mask, with_overlay, alpha).items():
        written.append(out / relative)
        written[-1].parent.mkdir(parents=True, exist_ok=True)
        written[-1].write_bytes(png_bytes(relative, picture))
    return written


@dataclass
class CocoResults:
    """Masks of many images collected into one COCO document (`predictions.json`): images,
    categories, and per image and class an annotation with its RLE, area and bbox."""

    class_names: tuple[str, ...]
    images: list[dict] = field(default_factory=list)
    annotations: list[dict] = field(default_factory=list)

    def add(self, file_name: str, mask: np.ndarray) -> None:
        self.add_annotations(file_name, *mask.shape, class_annotations(mask, range(len(self.class_names))))

    def add_annotations(self, file_name: str, height: int, width: int, items: list[dict]) -> None:
        """An image whose per-class annotations (`model.class_annotations`) were computed elsewhere."""
        image_id = len(self.images) + 1
        self.images.append({"id": image_id, "file_name": file_name, "height": int(height), "width": int(width)})
        self.annotations.extend({"image_id": image_id, **item} for item in items)

    def document(self) -> dict:
        return coco_document(self.images, self.class_names, self.annotations)
