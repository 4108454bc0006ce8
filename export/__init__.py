"""Export: checkpoints -> ONNX, TensorRT, Triton and gated bf16/int8 CPU variants (OpenVINO),
refusing artifacts that do not match PyTorch.

Uses `model` through its public API only.
"""

from importlib import import_module as _import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the names below, for readers and linters; at run time each is imported on first use
    from export.artifact import ExportedModel, ExportError, is_exported, read_exported
    from export.onnx_export import export_class_ids_onnx, export_onnx
    from export.onnxruntime_runner import OnnxRuntimeRunner, ort_providers
    from export.openvino_runner import OpenVinoRunner, cpu_supports_bf16, openvino_available
    from export.parity import (
        ParityReport,
        compare_backends,
        merged_agreement,
        parity_images,
        parity_windows,
        synthetic_scene,
        torch_reference,
    )
    from export.precision_gate import GateReport, read_labelled, run_gate
    from export.quantize import calibration_windows, quantize_int8, read_calibration_images
    from export.reduced_precision import REDUCED_PRECISIONS, make_reduced_precision
    from export.triton import write_triton_repository

# Where each name lives, imported on first use (PEP 562): `segmenter export --help` (export/cli.py)
# must not pay for torch, ONNX and OpenVINO.
_HOMES = {
    "artifact": ("ExportedModel", "ExportError", "is_exported", "read_exported"),
    "onnx_export": ("export_class_ids_onnx", "export_onnx"),
    "onnxruntime_runner": ("OnnxRuntimeRunner", "ort_providers"),
    "openvino_runner": ("OpenVinoRunner", "cpu_supports_bf16", "openvino_available"),
    "parity": ("ParityReport", "compare_backends", "merged_agreement", "parity_images", "parity_windows",
               "synthetic_scene", "torch_reference"),
    "precision_gate": ("GateReport", "read_labelled", "run_gate"),
    "quantize": ("calibration_windows", "quantize_int8", "read_calibration_images"),
    "reduced_precision": ("REDUCED_PRECISIONS", "make_reduced_precision"),
    "triton": ("write_triton_repository",),
}
_HOME = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = globals()[name] = getattr(_import_module(f"{__name__}.{_HOME[name]}"), name)
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME})


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
    "export_class_ids_onnx",
    "export_onnx",
    "is_exported",
    "ort_providers",
    "merged_agreement",
    "parity_images",
    "parity_windows",
    "read_exported",
    "synthetic_scene",
    "torch_reference",
    "write_triton_repository",
]
