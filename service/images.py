"""Uploaded bytes -> an H×W×3 uint8 RGB array, or a `ServiceError` that says what is wrong.

Accepted: JPEG, PNG, WebP, BMP, TIFF — one frame. EXIF orientation is applied; grayscale,
palette, CMYK, 16-bit and alpha images are converted (alpha is composited over white). The
pixel count is checked from the header, before anything is decoded, so a small file that
claims to be a huge image (a decompression bomb) costs nothing.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from service.errors import ServiceError

FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "WEBP": "WebP", "BMP": "BMP", "TIFF": "TIFF"}
SUPPORTED = "JPEG, PNG, WebP, BMP or TIFF"


def _too_many_pixels(width: int, height: int, max_pixels: int) -> ServiceError:
    return ServiceError(413, "image_too_large",
                        f"the image is {width}×{height} = {width * height:,} pixels; the limit is {max_pixels:,} "
                        "(SEGMENTER_MAX_IMAGE_PIXELS). Downscale it before uploading.")


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Decode an upload into RGB. Raises ServiceError 400/413/415."""
    if not data:
        raise ServiceError(400, "empty_image",
                           "the uploaded file is empty; send the image's bytes in the `image` field")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=None)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ServiceError(413, "image_too_large", f"the image declares too many pixels ({exc}); downscale it") from exc
    except UnidentifiedImageError as exc:
        raise ServiceError(415, "unsupported_media_type",
                           f"the upload is not an image this service reads; send {SUPPORTED}") from exc
    except (OSError, SyntaxError, ValueError) as exc:  # header present but broken
        raise ServiceError(400, "corrupt_image", f"the image header cannot be read: {exc}") from exc
    with image:
        fmt = image.format
        if fmt not in FORMATS:
            raise ServiceError(415, "unsupported_media_type",
                               f"{fmt} images are not supported; send {SUPPORTED}")
        width, height = image.size
        if width < 1 or height < 1:
            raise ServiceError(400, "corrupt_image", f"the image has no pixels ({width}×{height})")
        if width * height > max_pixels:
            raise _too_many_pixels(width, height, max_pixels)
        if getattr(image, "n_frames", 1) > 1:
            raise ServiceError(415, "multi_frame_image",
                               f"the image has {image.n_frames} frames (animated or multi-page); send a single frame")
        try:
            image.load()
            image = ImageOps.exif_transpose(image)
        except Image.DecompressionBombError as exc:
            raise ServiceError(413, "image_too_large", str(exc)) from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ServiceError(400, "corrupt_image",
                               f"the {FORMATS[fmt]} data is corrupt or truncated ({exc}); "
                               "upload the whole file") from exc
        return to_rgb(image)


def to_rgb(image: Image.Image) -> np.ndarray:
    """Any Pillow mode -> H×W×3 uint8 RGB."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16-bit (or wider) grayscale: scale the value range of the type to 0..255.
        values = np.asarray(image).astype(np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        gray = np.clip(values * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=2))
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return np.asarray(image.convert("RGB"))
