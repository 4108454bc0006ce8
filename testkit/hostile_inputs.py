"""A corpus of hostile uploads and the answer the service owes each (status, error code).

Shared by tests/service/test_errors.py and benchmarks/soak.py, so the soak test replays exactly
what the unit tests pin down. Sizes assume the limits passed in (pixels over `max_pixels`).
"""

from __future__ import annotations

import io
import zlib
from typing import NamedTuple

import numpy as np
from PIL import Image


class Hostile(NamedTuple):
    data: bytes
    status: int
    code: str
    fields: tuple[tuple[str, str], ...] = ()  # form fields sent with the image


def smooth_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth random RGB picture (blobs, not noise)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, height // 16), max(2, width // 16), 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((width, height), Image.BILINEAR))


def encode(rgb: np.ndarray, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_with_declared_size(width: int, height: int) -> bytes:
    """An 8×8 PNG whose header claims width×height: a decompression-bomb probe."""
    full = encode(np.zeros((8, 8, 3), np.uint8))
    ihdr = full.index(b"IHDR")
    patched = bytearray(full)
    patched[ihdr + 4 : ihdr + 8] = width.to_bytes(4, "big")
    patched[ihdr + 8 : ihdr + 12] = height.to_bytes(4, "big")
    crc = zlib.crc32(bytes(patched[ihdr : ihdr + 4 + 13]))
    patched[ihdr + 17 : ihdr + 21] = crc.to_bytes(4, "big")
    return bytes(patched)


def animated(fmt: str) -> bytes:
    frames = [Image.fromarray(smooth_image(32, 32, seed=s)) for s in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format=fmt, save_all=True, append_images=frames[1:])
    return buffer.getvalue()


def elongated_png(width: int, height: int) -> bytes:
    """A tiny PNG of an extreme shape: a few hundred bytes that upscale into thousands of windows."""
    return encode(np.full((height, width, 3), 127, np.uint8), compress_level=9)


def hostile_corpus(max_pixels: int) -> dict[str, Hostile]:
    """Uploads and their answers, for a service with `max_pixels` and the default window limit
    (the elongated and multi-scale cases need far more than 256 windows of any window <= 512)."""
    valid = encode(smooth_image(64, 64, seed=1))
    side = int(max_pixels**0.5) + 1  # a square just over the pixel limit
    largest = int(max_pixels**0.5)  # ...and the largest square allowed
    return {
        "empty": Hostile(b"", 400, "empty_image"),
        "text": Hostile(b"hello, this is not an image at all" * 10, 415, "unsupported_media_type"),
        "wrong magic": Hostile(b"\x89PNX" + valid[4:], 415, "unsupported_media_type"),
        "gif": Hostile(encode(smooth_image(32, 32), "GIF"), 415, "unsupported_media_type"),
        "animated gif": Hostile(animated("GIF"), 415, "unsupported_media_type"),
        "animated png": Hostile(animated("PNG"), 415, "multi_frame_image"),
        "multi-page tiff": Hostile(animated("TIFF"), 415, "multi_frame_image"),
        "truncated png": Hostile(valid[: len(valid) // 2], 400, "corrupt_image"),
        "truncated jpeg": Hostile(encode(smooth_image(64, 64), "JPEG")[:300], 400, "corrupt_image"),
        "fake jpeg (html)": Hostile(b"\xff\xd8\xff\xe0" + b"<html><script>alert(1)</script></html>" * 20, 400,
                                    "corrupt_image"),
        "huge header, tiny body": Hostile(png_with_declared_size(60_000, 60_000), 413, "image_too_large"),
        "pixels over the limit": Hostile(encode(np.zeros((side, side, 3), np.uint8)), 413, "image_too_large"),
        "20000×2": Hostile(elongated_png(20000, 2), 413, "too_many_windows"),
        "2×20000": Hostile(elongated_png(2, 20000), 413, "too_many_windows"),
        "1×40000": Hostile(elongated_png(1, 40000), 413, "too_many_windows"),
        # At its own size (`scale=none`): at a model's test scale the same request is cheap and fine.
        "largest image, multi-scale, own size": Hostile(
            encode(np.zeros((largest, largest, 3), np.uint8), "JPEG"), 413, "too_many_windows",
            (("multiscale", "true"), ("scale", "none"))),
    }
