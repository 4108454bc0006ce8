"""Numpy-in, numpy-out inference with the official sliding-window protocol.

    pred = Predictor(net, device="cpu")   # window/stride/normalization from net.metadata
    probs = pred.probabilities(rgb)       # H×W×3 uint8 -> C×H×W float32 softmax
    mask = pred.predict(rgb)              # H×W class ids (uint8, or uint16 above 256 classes)

`predict` is three steps that callers may run apart — the service runs the middle one in its
cross-request batcher:

    plan = pred.prepare(rgb)                        # normalize, resize, tile: a WindowPlan
    logits = pred.run(plan)                         # any WindowForward, in batches
    mask = pred.finish(plan, logits)                # merge, resize back, argmax

First the image is resized, keeping its ratio, into the checkpoint's test scale (e.g. ADE20K:
short side 512, long side at most 2048), up or down, as the model was evaluated; the answer is
at the image's own size. Then per view (scale 1.0, or 0.5..1.75 with flips for multi-scale):
resize, tile into windows (the official protocol upscales a view smaller than the window; mmseg's
runs it as smaller windows), run them in batches, average overlapping logits, resize back.
Multi-scale averages the softmax probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch

from model.inference.cost import (
    DEFAULT_MAX_WINDOWS,
    WindowCost,
    check_windows,
    estimate_cost,
    rescale_factor,
    scaled_size,
)
from model.inference.forward import TorchForward, WindowForward
from model.inference.merge import check_blend
from model.inference.resize import resize_uint8
from model.inference.sliding_window import run_windows
from model.inference.window_plan import StopCheck, WindowPlan, plan_windows
from model.metadata import ModelMetadata
from model.modeling.segmenter import Segmenter

MULTISCALE_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
# A per-call override of the checkpoint's test scale: a short side in pixels, or "none" (the
# image at its own size); None keeps the checkpoint's.
Scale = int | Literal["none"] | None


MAX_SCALE = 16384  # a short side beyond any photo: larger values are typos


def parse_scale(value: Any) -> Scale:
    """A scale as any caller spells it — 768, "768", "none", None — checked: the one scale parser of
    the CLI, the HTTP forms and Python callers. ValueError naming the accepted values otherwise."""
    if value is None or value == "none":
        return value
    if isinstance(value, str) and value.strip().lower() == "none":
        return "none"
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_SCALE:
        return value
    raise ValueError(f"scale must be a short side in pixels (1..{MAX_SCALE}) or none, got {value!r}")


def class_id_dtype(num_classes: int) -> np.dtype:
    """Smallest unsigned dtype holding every class id (what PNG masks can store too)."""
    return np.dtype(np.uint8 if num_classes <= 256 else np.uint16)


class Predictor:
    """Sliding-window inference for one model on one device.

    Args:
        net: the model; its `metadata` supplies normalization, window and stride defaults.
        device: "cpu", "cuda", "cuda:1", ... (where images are normalized and tiled).
        precision: "fp32", "fp16" or "bf16" (autocast; window logits are merged in fp32).
        window_size, window_stride: override the checkpoint's sliding window.
        batch_size: windows per forward pass.
        metadata: override `net.metadata` (required when the net has none).
        forward: run the windows through this WindowForward instead of `net` (an ONNX Runtime
            or TensorRT runner); `net` may then be None (pass `metadata=`).
        max_windows: refuse (TooManyWindows, before any work) images that need more windows;
            None for no limit. See `model.inference.cost`.
        blend: how overlapping windows are averaged: "uniform" (the paper's protocol), or
            "linear"/"gaussian", which fade each window toward its borders (fewer seams;
            docs/benchmarks.md: Seams).
    Raises:
        ValueError for a window/stride that cannot be planned, an unknown precision, or a
        missing model or metadata.
    """

    def __init__(
        self,
        net: Segmenter | None = None,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        window_size: int | None = None,
        window_stride: int | None = None,
        batch_size: int = 4,
        metadata: ModelMetadata | None = None,
        forward: WindowForward | None = None,
        max_windows: int | None = DEFAULT_MAX_WINDOWS,
        blend: str = "uniform",
    ) -> None:
        if net is None and forward is None:
            raise ValueError("Predictor needs a model (net=) or a WindowForward (forward=)")
        metadata = metadata or (net.metadata if net is not None else None)
        if metadata is None:
            raise ValueError("the model has no metadata (classes, normalization, window); pass metadata=")
        self.metadata = metadata
        self.device = torch.device(device)
        self.window_size = window_size or metadata.window_size
        self.window_stride = window_stride or min(metadata.window_stride, self.window_size)
        if not 0 < self.window_stride <= self.window_size:
            raise ValueError(f"window stride {self.window_stride} must be in 1..{self.window_size} (the window "
                             "size): windows further apart than their size would leave pixels unsegmented")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.max_windows = max_windows
        self.blend = check_blend(blend)
        self.upscale = metadata.protocol == "official"  # mmseg: small views run as smaller windows
        self.forward = forward if forward is not None else TorchForward(net, self.device, precision)
        config = getattr(net, "config", None)
        if forward is None and config is not None:  # the net's own patch size and last step
            metadata = self.metadata = metadata.replace(patch_size=config.patch_size,
                                                        output_resize=config.output_resize)
        self.grid = metadata.logits_grid  # how window logits become pixels (model.inference.window_logits)
        self.num_classes = metadata.num_classes
        self._mean = torch.tensor(metadata.mean, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(metadata.std, device=self.device).view(1, 3, 1, 1)

    # --- what an image will cost ------------------------------------------------------------
    @property
    def net(self):
        """The PyTorch Segmenter behind this predictor, or None when it runs an exported graph."""
        return getattr(self.forward, "net", None)

    def cost(self, height: int, width: int, multiscale: bool = False, scales: Sequence[float] | None = None,
             scale: Scale = None) -> WindowCost:
        """Windows and memory an H×W image needs, from its size alone (nothing is computed)."""
        scales, flips = self._views(multiscale, scales)
        # Window logits on the patch grid, unless the forward says it answers at full size (a
        # graph exported before the patch-grid contract sets `patch_grid = False`).
        patch = self.grid.patch_size if getattr(self.forward, "patch_grid", True) else None
        return estimate_cost(height, width, self.window_size, self.window_stride, self.num_classes, scales,
                             len(flips), self.rescale_factor(height, width, scale), self.upscale, patch)

    def check_cost(self, height: int, width: int, multiscale: bool = False, scales: Sequence[float] | None = None,
                   scale: Scale = None) -> WindowCost:
        """The cost of an H×W image; TooManyWindows if it needs more than `max_windows`."""
        cost = self.cost(height, width, multiscale, scales, scale)
        check_windows(cost, self.max_windows, height, width, multiscale, self.window_size)
        return cost

    def rescale_factor(self, height: int, width: int, scale: Scale = None) -> float:
        """How much an H×W image is resized before tiling: into the checkpoint's test scale, or
        to the short side `scale`, or not at all (`scale="none"`)."""
        scale = parse_scale(scale)  # also "768" as a form or a command line gives it
        if scale is None:
            return rescale_factor(height, width, self.metadata.test_scale)
        return 1.0 if scale == "none" else scale / min(height, width)

    def _views(self, multiscale: bool, scales: Sequence[float] | None = None) -> tuple[Sequence[float], tuple]:
        if scales is None:
            scales = MULTISCALE_SCALES if multiscale else (1.0,)
        return scales, ((False, True) if multiscale else (False,))

    # --- the three steps -----------------------------------------------------------------
    def prepare(self, rgb: np.ndarray, multiscale: bool = False, scales: Sequence[float] | None = None,
                should_stop: StopCheck | None = None, scale: Scale = None,
                checked: WindowCost | None = None) -> WindowPlan:
        """H×W×3 uint8 RGB -> every window the image needs (normalized, on the device).

        `scale` overrides the checkpoint's test scale (a short side in pixels, or "none").
        Raises TooManyWindows before any work when the image needs more than `max_windows`, and
        `Cancelled` between views once `should_stop()` is true. `checked`: the cost `check_cost`
        already gave for this image's size (from its header), not computed again.
        """
        _check_rgb(rgb)
        if checked is None or checked.image_size != rgb.shape[:2]:
            self.check_cost(*rgb.shape[:2], multiscale, scales, scale)
        size = scaled_size(*rgb.shape[:2], self.rescale_factor(*rgb.shape[:2], scale))
        scales, flips = self._views(multiscale, scales)
        with torch.inference_mode():
            image = self.to_tensor(resize_uint8(rgb, size))  # on 8-bit pixels, as the reference pipelines
            return plan_windows(image, self.window_size, self.window_stride, scales, flips, should_stop, self.upscale,
                                output_size=rgb.shape[:2], blend=self.blend, grid=self.grid)

    def forward_windows(self, crops: torch.Tensor) -> torch.Tensor:
        """N×3×h×w normalized crops -> N×C×gh×gw float32 logits on the patch grid (`grid`; or at
        the window's size, for a forward that upsamples itself), `batch_size` at a time."""
        with torch.inference_mode():
            return run_windows(self.forward, crops, self.batch_size)

    def run(self, plan: WindowPlan) -> list[torch.Tensor]:
        """Every window of a plan through the model: logits per group of same-shaped windows."""
        return [self.forward_windows(group) for group in plan.groups]

    def finish(self, plan: WindowPlan, logits: Sequence[torch.Tensor] | torch.Tensor,
               should_stop: StopCheck | None = None) -> np.ndarray:
        """A plan's window logits -> H×W class ids (uint8, or uint16 above 256 classes).

        The argmax runs where the logits are (the GPU for GPU models): only the mask comes back.
        Raises `Cancelled` between steps once `should_stop()` is true.
        """
        groups = [logits] if isinstance(logits, torch.Tensor) else logits
        with torch.inference_mode():
            ids = plan.class_ids([g.to(self.device) for g in groups], should_stop)
            return ids.cpu().numpy().astype(class_id_dtype(self.num_classes))

    def finish_with_confidence(self, plan: WindowPlan, logits: Sequence[torch.Tensor] | torch.Tensor,
                               should_stop: StopCheck | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Like `finish`, plus the H×W float32 probability of each pixel's class (its confidence)."""
        groups = [logits] if isinstance(logits, torch.Tensor) else logits
        with torch.inference_mode():
            ids, confidence = plan.class_ids_and_confidence([g.to(self.device) for g in groups], should_stop)
            return ids.cpu().numpy().astype(class_id_dtype(self.num_classes)), confidence.cpu().numpy()

    # --- whole images ----------------------------------------------------------------------
    def predict(self, rgb: np.ndarray, multiscale: bool = False, scale: Scale = None) -> np.ndarray:
        """H×W×3 uint8 RGB -> H×W class ids (uint8, or uint16 above 256 classes)."""
        plan = self.prepare(rgb, multiscale, scale=scale)
        return self.finish(plan, self.run(plan))

    def run_many(self, plans: Sequence[WindowPlan]) -> list[list[torch.Tensor]]:
        """The windows of several plans run together (grouped by shape, `batch_size` per forward
        pass), as the service batches concurrent requests: per plan, logits per group."""
        by_shape: dict[tuple[int, int], list[torch.Tensor]] = {}
        for plan in plans:
            for crops in plan.groups:
                by_shape.setdefault(tuple(crops.shape[-2:]), []).append(crops)
        logits = {shape: iter(self.forward_windows(torch.cat(crops)).split([len(c) for c in crops]))
                  for shape, crops in by_shape.items()}
        return [[next(logits[tuple(crops.shape[-2:])]) for crops in plan.groups] for plan in plans]

    def predict_many(self, images: Sequence[np.ndarray], multiscale: bool = False, scale: Scale = None
                     ) -> list[np.ndarray]:
        """Several H×W×3 uint8 images -> their H×W class ids, each as `predict` gives it, their
        windows run together (`run_many`): for throughput on many small images."""
        plans = [self.prepare(rgb, multiscale, scale=scale) for rgb in images]
        return [self.finish(plan, logits) for plan, logits in zip(plans, self.run_many(plans), strict=True)]

    def probabilities_tensor(self, rgb: np.ndarray, multiscale: bool = False, scales: Sequence[float] | None = None,
                             scale: Scale = None) -> torch.Tensor:
        """C×H×W float32 softmax probabilities on the device (mean over scales and flips)."""
        plan = self.prepare(rgb, multiscale, scales, scale=scale)
        with torch.inference_mode():
            return plan.probabilities([g.to(self.device) for g in self.run(plan)])

    def probabilities(self, rgb: np.ndarray, multiscale: bool = False, scale: Scale = None) -> np.ndarray:
        """H×W×3 uint8 RGB -> C×H×W float32 class probabilities (numpy)."""
        return self.probabilities_tensor(rgb, multiscale, scale=scale).cpu().numpy()

    # --- preprocessing ---------------------------------------------------------------------
    def to_tensor(self, rgb: np.ndarray) -> torch.Tensor:
        """H×W×3 uint8 RGB -> 1×3×H×W float32 normalized, on the device."""
        _check_rgb(rgb)
        if not rgb.flags.writeable:  # e.g. np.asarray(PIL image); torch wants writable memory
            rgb = rgb.copy()
        image = torch.from_numpy(np.ascontiguousarray(rgb)).to(self.device)
        image = image.permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
        return (image - self._mean) / self._std


def _check_rgb(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        got = f"{type(rgb).__name__} {getattr(rgb, 'dtype', '')} {getattr(rgb, 'shape', '')}"
        raise ValueError(f"expected an H×W×3 uint8 RGB array, got {got}; read files with model.read_image")

