"""int8 post-training quantization of an exported graph, calibrated on the model's own images.

NNCF (OpenVINO's quantization library) with its transformer scheme: the matmuls (linear layers,
attention products, patch embedding) run in int8 with per-channel weight scales; LayerNorm,
softmax, GELU and the mask transformer's normalisations stay in floating point (the graph ends
at the patch-grid logits: the upsampling is the merge's, in fp32).
Activation ranges come from calibration windows cut from real images exactly as inference cuts
them (`Predictor.prepare`: test scale, sliding window, normalization), so the ranges are those
the model will meet. The result is an OpenVINO IR (`model_int8.xml` + `.bin`) beside the fp32
`model.onnx`; it is only kept if `export.precision_gate` accepts it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from export.artifact import ExportedModel, ExportError
from model import Predictor, list_images, read_image

INT8_FILE = "model_int8.xml"  # + model_int8.bin


def calibration_windows(predictor: Predictor, images: Iterable[np.ndarray], max_windows: int = 300) -> np.ndarray:
    """N×3×ws×ws float32: the normalized windows inference cuts from `images` (H×W×3 uint8)."""
    windows: list[torch.Tensor] = []
    for rgb in images:
        windows.extend(torch.cat(predictor.prepare(rgb).groups))
        if len(windows) >= max_windows:
            break
    if not windows:
        raise ExportError("no calibration windows: the calibration set has no images")
    return torch.stack(windows[:max_windows]).numpy()


def read_calibration_images(folder: str | Path, limit: int = 64) -> list[np.ndarray]:
    """Up to `limit` images of a folder (sorted, recursively), as H×W×3 uint8."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ExportError(f"calibration folder {folder} does not exist; pass --calibration DIR, a folder of images "
                          "like the ones the model will see (e.g. its dataset's validation images)")
    paths = list_images(folder)[0][:limit]
    if not paths:
        raise ExportError(f"calibration folder {folder} holds no images (.jpg, .png, ...)")
    return [read_image(path) for path in paths]


def quantize_int8(exported: ExportedModel, windows: np.ndarray, out: str | Path | None = None) -> Path:
    """Quantize `exported`'s fp32 graph with NNCF, calibrated on `windows` (N×3×ws×ws float32,
    normalized). Writes and returns `out` (default: <export folder>/model_int8.xml)."""
    try:
        import nncf
        import openvino as ov
    except ImportError as exc:
        raise ExportError("int8 export needs NNCF: pip install -e '.[quantize]' (or pip install nncf)") from exc
    if windows.ndim != 4 or windows.shape[1:] != (3, exported.window_size, exported.window_size):
        raise ExportError(f"calibration windows must be N×3×{exported.window_size}×{exported.window_size}, "
                          f"got {windows.shape}")
    out = Path(out) if out else exported.folder / INT8_FILE
    graph = ov.Core().read_model(str(exported.onnx_path))
    dataset = nncf.Dataset([windows[i : i + 1] for i in range(len(windows))])
    quantized = nncf.quantize(graph, dataset, model_type=nncf.ModelType.TRANSFORMER, subset_size=len(windows))
    ov.save_model(quantized, str(out))  # compresses nothing further: the int8 weights are already int8
    return out
