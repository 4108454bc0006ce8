"""Export: checkpoints -> ONNX, TensorRT, Triton and gated bf16/int8 CPU variants (OpenVINO),
refusing artifacts that do not match PyTorch.

Uses `model` through its public API only.
"""

from export.artifact import ExportedModel, ExportError, is_exported, read_exported
from export.onnx_export import export_onnx
from export.onnxruntime_runner import OnnxRuntimeRunner, ort_providers
from export.openvino_runner import OpenVinoRunner, cpu_supports_bf16, openvino_available
from export.parity import ParityReport, compare_backends, parity_windows, synthetic_scene
from export.precision_gate import GateReport, read_labelled, run_gate
from export.quantize import calibration_windows, quantize_int8, read_calibration_images
from export.reduced_precision import REDUCED_PRECISIONS, make_reduced_precision
from export.triton import write_triton_repository

__all__ = [
    "REDUCED_PRECISIONS",
    "GateReport",
    "OpenVinoRunner",
    "calibration_windows",
    "cpu_supports_bf16",
    "make_reduced_precision",
    "openvino_available",
    "quantize_int8",
    "read_calibration_images",
    "read_labelled",
    "run_gate",
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
