"""The window-forward contract every backend meets, and its PyTorch implementation.

A `WindowForward` is any callable that maps a batch of normalized windows to logits on the
model's patch grid (`model.inference.window_logits`: the merge upsamples them as the model would):

    logits = forward(windows)    # B×3×h×w float, normalized  ->  B×C×ceil(h/p)×ceil(w/p) float logits

Logits at the window's own size (B×C×h×w: a graph exported before, any module that upsamples
itself) are accepted too.

The torch model (`TorchForward`), the ONNX Runtime and TensorRT runners in `export/` and the
service's cross-request batcher all take or give one, so the sliding-window code (`run_windows`,
`Predictor`) runs unchanged on any of them.
"""

from __future__ import annotations

import contextlib
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from model.devices import PRECISION_NAMES

# Autocast precisions for inference and training (`run.amp`), by the names configs use (listed
# without torch in model.devices, for command-line parsers).
PRECISIONS: dict[str, torch.dtype] = dict(zip(PRECISION_NAMES, (torch.float32, torch.float16, torch.bfloat16),
                                              strict=True))


@runtime_checkable
class WindowForward(Protocol):
    def __call__(self, windows: torch.Tensor) -> torch.Tensor:
        """B×3×h×w normalized float -> B×C×gh×gw logits on the patch grid, or B×C×h×w (any float
        dtype, on any device)."""
        ...


def precision_dtype(precision: str) -> torch.dtype:
    """The torch dtype of a precision name ("fp32", "fp16", "bf16"); anything else is an error."""
    try:
        return PRECISIONS[precision]
    except KeyError:
        raise ValueError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}") from None


class TorchForward:
    """A Segmenter (or any B×3×H×W -> B×C×H×W module) as a WindowForward on one device.

    A Segmenter answers on its patch grid (`Segmenter.forward_patches`: no upsampling, 1/p² of
    the bytes); another module answers as its forward does. Runs under `torch.inference_mode`
    and, for fp16/bf16, autocast; the module is moved to the device and put in eval mode once, here.
    """

    def __init__(self, net: nn.Module, device: str | torch.device = "cpu", precision: str = "fp32") -> None:
        self.dtype = precision_dtype(precision)
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def __call__(self, windows: torch.Tensor) -> torch.Tensor:
        forward = getattr(self.net, "forward_patches", self.net)
        with torch.inference_mode(), self._autocast():
            return forward(windows.to(self.device))
