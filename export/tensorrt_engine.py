"""ONNX -> serialized TensorRT engine (FP16 with LayerNorm kept in FP32), and a runner for it.

TensorRT is imported lazily: everything else in `export/` works without it. Engines are
specific to the GPU model, the TensorRT version and the precision, so build them on the host
that runs them (the service builds them at first start into a cache volume).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from export.artifact import ENGINE_FILE, INPUT_NAME, OUTPUT_NAME, ExportedModel, ExportError


def import_tensorrt() -> Any:
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise ExportError(
            "TensorRT is not installed. On a machine with an NVIDIA GPU: pip install tensorrt "
            "(for a V100, TensorRT <= 10.4 with CUDA 12.x: pip install 'tensorrt-cu12==10.4.*'). "
            "Or use ONNX Runtime's TensorRT execution provider (backend onnxruntime, device tensorrt)."
        ) from exc
    return trt


def build_engine(exported: ExportedModel, engine_path: str | Path | None = None, fp16: bool = True,
                 max_batch: int = 8, workspace_gib: float = 4.0) -> Path:
    """Build the engine (default: `<export>/model.plan`) for batch 1..max_batch at the export's fixed window.

    Under FP16, normalization layers (ONNX LayerNormalization -> INormalizationLayer) are
    constrained to FP32: a ViT's LayerNorm inputs can overflow FP16.
    """
    trt = import_tensorrt()
    if not torch.cuda.is_available():
        raise ExportError("building a TensorRT engine needs an NVIDIA GPU; none is visible (torch.cuda)")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(exported.onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT cannot parse {exported.onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * 2**30))
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        for i in range(network.num_layers):
            layer = network.get_layer(i)
            if layer.type == trt.LayerType.NORMALIZATION:
                layer.precision = trt.float32
                layer.set_output_type(0, trt.float32)
    ws = exported.window_size
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, (1, 3, ws, ws), (max_batch, 3, ws, ws), (max_batch, 3, ws, ws))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError("TensorRT failed to build the engine; run with TensorRT verbose logging for details")
    path = Path(engine_path) if engine_path else exported.folder / ENGINE_FILE
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_bytes(bytes(serialized))
    os.replace(partial, path)  # atomic: replicas sharing a cache volume never load half an engine
    return path


class TensorRTRunner:
    """A `model.WindowForward` over a serialized engine: CUDA tensors in, the graph's logits out
    (float32; B×C×gh×gw on the patch grid, or B×C×ws×ws from a version-1 export), the output
    buffer sized from the engine's output shape for each input shape. `num_classes`, if given, is
    checked against the engine's."""

    def __init__(self, engine_path: str | Path, num_classes: int | None = None) -> None:
        trt = import_tensorrt()
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
        if self.engine is None:
            raise ExportError(f"{engine_path} is not an engine for this GPU / TensorRT version; rebuild it")
        self.context = self.engine.create_execution_context()
        self.num_classes = num_classes
        self.stream = torch.cuda.Stream()

    def __call__(self, windows: torch.Tensor) -> torch.Tensor:
        x = windows.to("cuda", torch.float32).contiguous()
        self.context.set_input_shape(INPUT_NAME, tuple(x.shape))
        shape = tuple(self.context.get_tensor_shape(OUTPUT_NAME))  # resolved for this batch
        if len(shape) != 4 or min(shape) < 1 or (self.num_classes and shape[1] != self.num_classes):
            raise ExportError(f"the engine's {OUTPUT_NAME} is {shape} for input {tuple(x.shape)}; expected "
                              f"B×{self.num_classes or 'C'}×gh×gw logits")
        out = torch.empty(shape, device="cuda", dtype=torch.float32)
        self.context.set_tensor_address(INPUT_NAME, x.data_ptr())
        self.context.set_tensor_address(OUTPUT_NAME, out.data_ptr())
        with torch.cuda.stream(self.stream):
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise ExportError("TensorRT execution failed")
        self.stream.synchronize()
        return out
