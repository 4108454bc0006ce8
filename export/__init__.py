"""Export: checkpoints -> ONNX, TensorRT and Triton, refusing artifacts that do not match PyTorch.

Uses `model` through its public API only.
"""

from export.artifact import ExportedModel, ExportError, is_exported, read_exported
from export.onnx_export import export_onnx
from export.onnxruntime_runner import OnnxRuntimeRunner, ort_providers
from export.parity import ParityReport, compare_backends, parity_windows, synthetic_scene
from export.triton import write_triton_repository

__all__ = [
    "ExportError",
    "ExportedModel",
    "OnnxRuntimeRunner",
    "ParityReport",
    "compare_backends",
    "export_onnx",
    "is_exported",
    "ort_providers",
    "parity_windows",
    "read_exported",
    "synthetic_scene",
    "write_triton_repository",
]
