"""Run an exported graph with ONNX Runtime: CPU, CUDA, or its TensorRT execution provider."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from export.artifact import INPUT_NAME, ExportedModel, ExportError


def ort_providers(device: str = "cpu", tensorrt_cache: str | Path | None = None, fp16: bool = False,
                  window: int | None = None, max_batch: int = 8) -> list[Any]:
    """Provider list for `device` ("cpu", "cuda", "tensorrt"), each falling back to the next.

    "tensorrt" uses ORT's TensorRT EP with an engine cache (engines are GPU-specific, so they
    are built on the host at first use), LayerNorm kept in FP32 under FP16, and an optimization
    profile for batch 1..max_batch at the fixed window.
    """
    cpu = "CPUExecutionProvider"
    if device == "cpu":
        return [cpu]
    cuda = ("CUDAExecutionProvider", {"device_id": 0})
    if device == "cuda":
        return [cuda, cpu]
    if device == "tensorrt":
        options: dict[str, Any] = {"device_id": 0, "trt_fp16_enable": fp16, "trt_layer_norm_fp32_fallback": True}
        if tensorrt_cache:
            Path(tensorrt_cache).mkdir(parents=True, exist_ok=True)
            options.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(tensorrt_cache),
                           trt_timing_cache_enable=True, trt_timing_cache_path=str(tensorrt_cache))
        if window:
            shape = f"{INPUT_NAME}:{{}}x3x{window}x{window}"
            options.update(trt_profile_min_shapes=shape.format(1), trt_profile_opt_shapes=shape.format(max_batch),
                           trt_profile_max_shapes=shape.format(max_batch))
        return [("TensorrtExecutionProvider", options), cuda, cpu]
    raise ValueError(f"unknown ONNX Runtime device {device!r}; use cpu, cuda or tensorrt")


class OnnxRuntimeRunner:
    """A `model.WindowForward` over ONNX Runtime: B×3×ws×ws normalized -> the graph's logits as
    it returns them (torch float32, CPU): B×C×gh×gw on the patch grid (B×C×ws×ws for a version-1
    export), so the sliding-window code runs unchanged on it."""

    def __init__(self, exported: ExportedModel, providers: list[Any] | None = None, threads: int = 0) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        wanted = providers or ort_providers("cpu")
        available = set(ort.get_available_providers())
        usable = [p for p in wanted if (p[0] if isinstance(p, tuple) else p) in available]
        if not usable:
            raise ExportError(f"none of the ONNX Runtime providers {wanted} is available here ({sorted(available)})")
        try:
            self.session = ort.InferenceSession(str(exported.onnx_path), options, providers=usable)
        except Exception as exc:  # noqa: BLE001 - ORT raises several unrelated types for bad graphs
            raise ExportError(f"ONNX Runtime cannot load {exported.onnx_path}: {exc}") from exc
        self.providers = self.session.get_providers()

    def __call__(self, windows: torch.Tensor | np.ndarray) -> torch.Tensor:
        array = windows.detach().cpu().numpy() if isinstance(windows, torch.Tensor) else windows
        (logits,) = self.session.run(None, {INPUT_NAME: np.ascontiguousarray(array, dtype=np.float32)})
        return torch.from_numpy(logits)
