"""The one image reader: bytes or a file -> H×W×3 uint8 RGB, or an `ImageError` saying why not.

The CLI, the service, the datasets and evaluation all read images here, so one file gives one
array everywhere. Accepted: JPEG, PNG, WebP, BMP, TIFF, one frame. EXIF orientation is applied;
grayscale, palette, CMYK and 16-bit images are converted; alpha (RGBA, LA, palette transparency)
is composited over white. The pixel count is checked from the header, before anything is
decoded, so a small file that claims to be a huge image (a decompression bomb) costs nothing.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from model.errors import SegmenterError

# Pillow format -> the name users know. MPO is what Pillow calls many phones' JPEGs.
IMAGE_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "WEBP": "WebP", "BMP": "BMP", "TIFF": "TIFF"}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
SUPPORTED = "JPEG, PNG, WebP, BMP or TIFF"
# EXIF orientations that swap width and height (rotations by 90° and transpositions).
_SWAPS_SIDES = {5, 6, 7, 8}

ImageSource = bytes | str | os.PathLike
ErrorKind = Literal["empty", "unsupported", "corrupt", "too_large", "multi_frame"]


class ImageError(SegmenterError, ValueError):
    """The input is not an image we read. `kind` says which problem (for HTTP status codes)."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@contextmanager
def _open(source: ImageSource, max_pixels: int | None) -> Iterator[Image.Image]:
    """Open the header and check format, size, frames and the pixel limit; nothing decoded."""
    if isinstance(source, bytes):
        if not source:
            raise ImageError("empty", "the image is empty (0 bytes)")
        stream, name = io.BytesIO(source), "the image"
    else:
        if Path(source).is_file() and Path(source).stat().st_size == 0:
            raise ImageError("empty", f"{source} is empty (0 bytes)")
        stream, name = source, str(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(stream)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError("too_large", f"{name} declares too many pixels ({exc}); downscale it") from exc
    except UnidentifiedImageError as exc:
        raise ImageError("unsupported", f"{name} is not an image this package reads; use {SUPPORTED}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ImageError("corrupt", f"the header of {name} cannot be read: {exc}") from exc
    with image:
        if image.format not in IMAGE_FORMATS:
            raise ImageError("unsupported", f"{name} is a {image.format} image; use {SUPPORTED}")
        width, height = image.size
        if width < 1 or height < 1:
            raise ImageError("corrupt", f"{name} has no pixels ({width}×{height})")
        if max_pixels is not None and width * height > max_pixels:
            raise ImageError("too_large", f"{name} is {width}×{height} = {width * height:,} pixels; "
                             f"the limit is {max_pixels:,}")
        if getattr(image, "n_frames", 1) > 1:
            raise ImageError("multi_frame", f"{name} has {image.n_frames} frames (animated or multi-page); "
                             "use a single frame")
        yield image


def _oriented_size(image: Image.Image, source: ImageSource) -> tuple[int, int]:
    width, height = image.size
    try:
        if image.format == "PNG" and not _png_metadata_after_pixels(source):
            # Every chunk Pillow reads orientation from (eXIf, XMP, a raw EXIF profile) came before
            # the pixels, so it is in the header already: read it there. PngImageFile.getexif
            # would decode every pixel first (8 ms for a 640×480 PNG, seconds for a 40-MP one).
            orientation = Image.Image.getexif(image).get(0x0112)
        else:
            orientation = image.getexif().get(0x0112)
    except Exception:  # noqa: BLE001 - a broken EXIF block is ignored here as exif_transpose ignores it
        orientation = None
    return (width, height) if orientation in _SWAPS_SIDES else (height, width)


_PNG_METADATA = {b"eXIf", b"iTXt", b"tEXt", b"zTXt"}  # where EXIF, XMP and raw EXIF profiles live
_PNG_MAX_CHUNKS = 10_000


def _png_metadata_after_pixels(source: ImageSource) -> bool:
    """Whether a PNG has metadata chunks after its image data (the PNG extensions allow eXIf
    there), found by walking the chunk headers without inflating anything. True too when the
    walk gives up (over _PNG_MAX_CHUNKS chunks): the caller then decodes, which is always right."""
    with io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb") as stream:
        stream.seek(8)  # the signature
        pixels_seen = False
        for _ in range(_PNG_MAX_CHUNKS):
            header = stream.read(8)
            if len(header) < 8:
                return False
            length, kind = struct.unpack(">I4s", header)
            if kind == b"IEND":
                return False
            pixels_seen |= kind == b"IDAT"
            if pixels_seen and kind in _PNG_METADATA:
                return True
            stream.seek(length + 4, io.SEEK_CUR)  # the chunk's data and CRC
    return True


def list_images(path: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    """(images, other files) under `path`: a file, or a folder read recursively, sorted. Hidden
    files (.DS_Store) are neither; FileNotFoundError when nothing is there."""
    path = Path(path)
    if path.is_file():
        return [path], []
    if not path.is_dir():
        raise FileNotFoundError(f"no image or folder at {path}")
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    return ([p for p in files if p.suffix.lower() in IMAGE_SUFFIXES],
            [p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES])


def image_size(source: ImageSource, max_pixels: int | None = None) -> tuple[int, int]:
    """(height, width) of the image as `read_image` would return it, from the header alone.

    Raises ImageError for everything `read_image` refuses before decoding.
    """
    with _open(source, max_pixels) as image:
        return _oriented_size(image, source)


def read_image(source: ImageSource, max_pixels: int | None = None) -> np.ndarray:
    """Read an image (encoded bytes or a file path) as H×W×3 uint8 RGB, EXIF orientation applied.

    Args:
        source: the encoded file's bytes, or its path.
        max_pixels: refuse (ImageError "too_large") images with more pixels, read from the header.
    Raises:
        ImageError with `kind` empty | unsupported | corrupt | too_large | multi_frame;
        FileNotFoundError for a path that does not exist.
    """
    with _open(source, max_pixels) as image:
        name = "the image" if isinstance(source, bytes) else str(source)
        try:
            image.load()
            image = ImageOps.exif_transpose(image)
        except Image.DecompressionBombError as exc:
            raise ImageError("too_large", f"{name}: {exc}") from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageError("corrupt", f"the {IMAGE_FORMATS[image.format]} data of {name} is corrupt or "
                             f"truncated ({exc})") from exc
        return to_rgb(image)


def to_rgb(image: Image.Image) -> np.ndarray:
    """Any Pillow mode -> H×W×3 uint8 RGB (alpha over white, 16-bit scaled to 8)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16-bit (or wider) grayscale: scale the value range of the type to 0..255.
        values = np.asarray(image).astype(np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        gray = np.clip(values * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=2))
    if "transparency" in image.info and image.mode in ("P", "L", "RGB"):
        image = image.convert("RGBA")  # a transparent palette entry or colour key: alpha, as below
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return np.asarray(image.convert("RGB"))
