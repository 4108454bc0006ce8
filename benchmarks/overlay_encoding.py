"""Encoding an overlay: seconds and bytes per format, at phone-photo size and at the test scale.

    python benchmarks/overlay_encoding.py                  # 4000×3000 and 683×512, three scenes
    python benchmarks/overlay_encoding.py --sizes 4000x3000 --scenes photo --repeats 5

The overlay is what `output=overlay` returns (`model.outputs.render_overlay`: 12 ADE20K classes
blended over the picture, legend included), so its content is photo-like, not random: `photo` is
a smooth scene with fine texture, `noisy` adds sensor noise (σ = 3 grey levels), `flat` is
smooth blobs only (the demo models' kind of picture). Each encoder runs once to warm up, then
`--repeats` times; the median is shown. `png-rle` is the overlay's PNG (`model.outputs.OVERLAY_PNG`);
`jpeg` and `webp` are what `format=jpeg|webp` (or an `Accept` header) get.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, features

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.metadata import ModelMetadata  # noqa: E402
from model.outputs import RenderOptions, encode_image, render_overlay  # noqa: E402

ENCODERS = {
    "png-1": {"format": "PNG", "compress_level": 1},
    "png-3": {"format": "PNG", "compress_level": 3},
    "png-6": {"format": "PNG", "compress_level": 6},
    "png-1-huffman": {"format": "PNG", "compress_level": 1, "compress_type": zlib.Z_HUFFMAN_ONLY},
    "png-rle": "png",  # the project's encoders, as `render` calls them
    "jpeg": "jpeg",
    "webp": "webp",
    "webp-m2": {"format": "WEBP", "quality": 85, "method": 2},
    "webp-m4": {"format": "WEBP", "quality": 85, "method": 4},  # Pillow's default method
}


def _smooth(height: int, width: int, cell: int, channels: int, seed: int) -> np.ndarray:
    small = np.random.default_rng(seed).integers(0, 256, (max(2, height // cell), max(2, width // cell), channels),
                                                 dtype=np.uint8)
    return np.asarray(Image.fromarray(small.squeeze(-1) if channels == 1 else small).resize((width, height),
                                                                                           Image.BICUBIC))


def scene(kind: str, height: int, width: int) -> np.ndarray:
    base = _smooth(height, width, max(8, min(height, width) // 30), 3, 1).astype(np.float32)
    if kind in ("photo", "noisy"):
        base += (_smooth(height, width, 8, 3, 2).astype(np.float32) - 128) / 16  # fine texture
    if kind == "noisy":
        base += np.random.default_rng(3).normal(0, 3, base.shape)
    return np.clip(base + 0.5, 0, 255).astype(np.uint8)


def class_map(height: int, width: int, classes: int = 12) -> np.ndarray:
    """Smooth regions of `classes` ADE20K classes (ids spread over the 150)."""
    fields = np.stack([_smooth(height, width, max(8, min(height, width) // 12), 1, 10 + k) for k in range(classes)])
    return (fields.argmax(0) * (150 // classes)).astype(np.uint8)


def encode(image: np.ndarray, how: str | dict) -> bytes:
    if isinstance(how, str):
        return encode_image(image, how)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, **how)
    return buffer.getvalue()


def median_seconds(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="4000x3000,683x512", help="WIDTHxHEIGHT, comma-separated")
    parser.add_argument("--scenes", default="photo,noisy,flat")
    parser.add_argument("--encoders", default=",".join(ENCODERS))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not features.check("webp"):
        sys.exit("this Pillow has no WebP support")
    metadata = ModelMetadata.for_dataset("ade20k")
    print("| overlay | scene | " + " | ".join(args.encoders.split(",")) + " |")
    print("|---|---|" + "---|" * len(args.encoders.split(",")))
    for size in args.sizes.split(","):
        width, height = map(int, size.split("x"))
        mask = class_map(height, width)
        for kind in args.scenes.split(","):
            photo = scene(kind, height, width)
            picture = render_overlay(photo, mask, metadata, RenderOptions())
            def draw(photo=photo, mask=mask):
                return render_overlay(photo, mask, metadata, RenderOptions())

            drawn = median_seconds(draw, args.repeats)  # blend + legend, warm (as in a running service)
            cells = []
            for name in args.encoders.split(","):
                data = encode(picture, ENCODERS[name])
                seconds = median_seconds(lambda how=ENCODERS[name], picture=picture: encode(picture, how), args.repeats)
                cells.append(f"{seconds * 1000:.0f} ms, {len(data) / 1e6:.2f} MB")
            print(f"| {picture.shape[1]}×{picture.shape[0]} (drawn in {drawn * 1000:.0f} ms) | {kind} | "
                  + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
