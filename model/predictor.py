"""Numpy-in, numpy-out inference with the official sliding-window protocol.

    pred = Predictor(net, device="cpu")   # window/stride/normalization from net.metadata
    probs = pred.probabilities(rgb)       # H×W×3 uint8 -> C×H×W float32 softmax
    mask = pred.predict(rgb)              # H×W class ids (uint8, or uint16 above 256 classes)

Per scale (1.0, or 0.5..1.75 with flips for multi-scale): normalize, resize, upscale so the
short side reaches the window, tile into windows, run them in batches, average overlapping
logits, resize back to the input size, softmax. Multi-scale averages the probabilities.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import numpy as np
import torch

from model.metadata import ModelMetadata
from model.segmenter import Segmenter
from model.sliding_window import run_windows
from model.window_plan import WindowPlan, plan_windows

MULTISCALE_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def class_id_dtype(num_classes: int) -> np.dtype:
    """Smallest unsigned dtype holding every class id (what PNG masks can store too)."""
    return np.dtype(np.uint8 if num_classes <= 256 else np.uint16)


class Predictor:
    """Sliding-window inference for one Segmenter on one device.

    Args:
        net: the model; its `metadata` supplies normalization, window and stride defaults.
        device: "cpu", "cuda", "cuda:1", ...
        precision: "fp32", "fp16" or "bf16" (autocast; window logits are merged in fp32).
        window_size, window_stride: override the checkpoint's sliding window.
        batch_size: windows per forward pass.
        metadata: override `net.metadata` (required when the net has none).
        backend: run the windows through this callable instead of `net` (e.g. an ONNX Runtime
            or TensorRT runner: B×3×w×w normalized -> B×C×w×w logits); `net` may then be None
            (pass `metadata=`), and is not moved to `device`.
    """

    def __init__(
        self,
        net: Segmenter | None,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        window_size: int | None = None,
        window_stride: int | None = None,
        batch_size: int = 4,
        metadata: ModelMetadata | None = None,
        backend: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        if net is None and backend is None:
            raise ValueError("Predictor needs a model (net=) or a backend callable (backend=)")
        metadata = metadata or (net.metadata if net is not None else None)
        if metadata is None:
            raise ValueError("the model has no metadata (classes, normalization, window); pass metadata=")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        self.metadata = metadata
        self.device = torch.device(device)
        self.precision = precision
        self.window_size = window_size or metadata.window_size
        self.window_stride = window_stride or min(metadata.window_stride, self.window_size)
        self.batch_size = batch_size
        self.net = backend if backend is not None else net.to(self.device).eval()
        self.num_classes = net.num_classes if net is not None else metadata.num_classes
        self._mean = torch.tensor(metadata.mean, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(metadata.std, device=self.device).view(1, 3, 1, 1)

    # --- preprocessing -------------------------------------------------------------------
    def to_tensor(self, rgb: np.ndarray) -> torch.Tensor:
        """H×W×3 uint8 RGB -> 1×3×H×W float32 normalized, on the device."""
        if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            got = f"{type(rgb).__name__} {getattr(rgb, 'dtype', '')} {getattr(rgb, 'shape', '')}"
            raise ValueError(
                f"expected an H×W×3 uint8 RGB array, got {got}; convert with "
                "np.asarray(PIL.Image.open(path).convert('RGB'))"
            )
        if not rgb.flags.writeable:  # e.g. np.asarray(PIL image); torch wants writable memory
            rgb = rgb.copy()
        image = torch.from_numpy(np.ascontiguousarray(rgb)).to(self.device)
        image = image.permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
        return (image - self._mean) / self._std

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=PRECISIONS[self.precision])

    # --- inference -----------------------------------------------------------------------
    def forward_windows(self, crops: torch.Tensor) -> torch.Tensor:
        """Run N×3×w×w normalized crops through the model; N×C×w×w float32 logits."""
        with torch.inference_mode(), self._autocast():
            return run_windows(self.net, crops, self.batch_size)

    def plan(self, image: torch.Tensor, multiscale: bool = False, scales: Sequence[float] | None = None) -> WindowPlan:
        """Every window a normalized 1×3×H×W image needs (see `model.window_plan`)."""
        if scales is None:
            scales = MULTISCALE_SCALES if multiscale else (1.0,)
        flips = (False, True) if multiscale else (False,)
        return plan_windows(image, self.window_size, self.window_stride, scales, flips)

    def logits_at_scale(self, image: torch.Tensor, scale: float = 1.0, flip: bool = False) -> torch.Tensor:
        """Sliding-window logits of one normalized 1×3×H×W image, as C×H×W float32.

        The image is resized by `scale`, upscaled to the window if needed, tiled, merged and
        resized back to H×W; with `flip`, the mirrored image is segmented and mirrored back.
        """
        plan = plan_windows(image, self.window_size, self.window_stride, (scale,), (flip,))
        return plan.view_logits(plan.views[0], self.forward_windows(plan.crops))

    def probabilities_tensor(
        self, rgb: np.ndarray, multiscale: bool = False, scales: Sequence[float] | None = None
    ) -> torch.Tensor:
        """C×H×W float32 softmax probabilities on the device (mean over scales and flips).

        The windows of every scale and flip run through the model together, in batches.
        """
        plan = self.plan(self.to_tensor(rgb), multiscale, scales)
        return plan.probabilities(self.forward_windows(plan.crops))

    def probabilities(self, rgb: np.ndarray, multiscale: bool = False) -> np.ndarray:
        """H×W×3 uint8 RGB -> C×H×W float32 class probabilities (numpy)."""
        return self.probabilities_tensor(rgb, multiscale).cpu().numpy()

    def predict(self, rgb: np.ndarray, multiscale: bool = False) -> np.ndarray:
        """H×W×3 uint8 RGB -> H×W class ids (uint8, or uint16 above 256 classes).

        The argmax runs on the device, so only the small mask is copied back.
        """
        plan = self.plan(self.to_tensor(rgb), multiscale)
        ids = plan.class_ids(self.forward_windows(plan.crops))
        return ids.cpu().numpy().astype(class_id_dtype(self.num_classes))
