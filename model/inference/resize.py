"""The test-scale resize of 8-bit images, as the reference pipelines make it.

The authors' evaluation and mmseg both resize test images with mmcv, that is OpenCV's
`cv2.resize(..., INTER_LINEAR)` on uint8 pixels: bilinear with pixel centres aligned
(align_corners=False), no antialiasing, and fixed-point arithmetic — 11-bit weights, the row pass
kept in integers, the column pass rounded as OpenCV's vectorised kernel rounds it. A float
resize rounded at the end differs from it by one grey level on ~12% of pixels; this one matches
it on all but a few border values (tests/model/test_mmseg_parity.py compares with OpenCV), so
the windows see the pixels those models were evaluated on. Numpy only: no OpenCV dependency.
"""

from __future__ import annotations

import numpy as np

_COEF_SCALE = 2048  # OpenCV's INTER_RESIZE_COEF_SCALE: weights in 11 bits


def _taps(source: int, target: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For each output index: the two source indices and their fixed-point weights."""
    scale = 1.0 / (target / source)  # OpenCV: 1 / inv_scale, in double
    position = ((np.arange(target, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    first = np.floor(position).astype(np.int64)
    fraction = (position - first.astype(np.float32)).astype(np.float32)
    before, after = first < 0, first >= source - 1  # clamped at the borders: one tap, weight 1
    fraction[before | after] = 0
    first = np.clip(first, 0, source - 1)
    second = np.minimum(first + 1, source - 1)
    weight1 = np.rint(fraction * np.float32(_COEF_SCALE)).astype(np.int64)
    weight0 = np.rint((np.float32(1) - fraction) * np.float32(_COEF_SCALE)).astype(np.int64)
    return first, second, weight0, weight1


def resize_uint8(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """H×W×C uint8 -> size[0]×size[1]×C uint8, OpenCV INTER_LINEAR's arithmetic."""
    height, width = size
    if (height, width) == rgb.shape[:2]:
        return rgb
    y0, y1, b0, b1 = _taps(rgb.shape[0], height)
    x0, x1, a0, a1 = _taps(rgb.shape[1], width)
    # Only the source rows some output row uses go through the row pass (few, when shrinking).
    used, index = np.unique(np.concatenate([y0, y1]), return_inverse=True)
    pixels = rgb[used].astype(np.int32)
    a0, a1 = a0.astype(np.int32)[None, :, None], a1.astype(np.int32)[None, :, None]
    rows = pixels[:, x0] * a0 + pixels[:, x1] * a1  # rows×w×C, weights ×2048: < 2^20
    first, second = rows[index[: len(y0)]], rows[index[len(y0):]]
    b0, b1 = b0.astype(np.int32)[:, None, None], b1.astype(np.int32)[:, None, None]
    # The vectorised column pass: products of 16-bit-shifted terms (< 2^27), then a rounding shift.
    out = (((b0 * (first >> 4)) >> 16) + ((b1 * (second >> 4)) >> 16) + 2) >> 2
    return np.clip(out, 0, 255).astype(np.uint8)
