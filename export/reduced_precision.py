"""Make a reduced-precision variant of an export, run it through the accuracy gate, keep it or not.

    bf16: the fp32 graph itself, run by OpenVINO with bf16 inference precision;
    int8: an NNCF-quantized OpenVINO graph (`model_int8.xml`), calibrated on the model's own
          images, its other operations in bf16 where the CPU has bf16 (else fp32).

A variant that passes is recorded in the folder's segmenter.json (`precisions`), which is what
the service's openvino backend reads; one that fails is refused: its files are deleted and
nothing is recorded. Either way the gate's figures are written to `gate_<precision>.json`.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np

from export.artifact import ExportedModel, ExportError, record_precision
from export.openvino_runner import OpenVinoRunner, cpu_supports_bf16
from export.precision_gate import GateReport, run_gate
from export.quantize import calibration_windows, quantize_int8
from model import Predictor, Segmenter

REDUCED_PRECISIONS = ("bf16", "int8")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def make_reduced_precision(net: Segmenter, exported: ExportedModel, precision: str,
                           calibration_images: list[np.ndarray] | None = None,
                           labelled: list[tuple[np.ndarray, np.ndarray]] | None = None) -> GateReport:
    """Build `precision` for `exported` (written from `net`), gate it against `net` in fp32, and
    record it if it passes. `calibration_images` (H×W×3 uint8) are required for int8."""
    if precision not in REDUCED_PRECISIONS:
        raise ExportError(f"unknown reduced precision {precision!r}; use one of {', '.join(REDUCED_PRECISIONS)}")
    reference = Predictor(net)
    inference = "bf16" if cpu_supports_bf16() else "fp32"
    if precision == "bf16":
        if inference != "bf16":
            raise ExportError("this CPU has no native bf16 (AVX512-BF16 or AMX): a bf16 export could not be served "
                              "here; use --precision int8 or fp32")
        graph = exported.onnx_path
    else:
        if not calibration_images:
            raise ExportError("--precision int8 needs calibration images: pass --calibration DIR, a folder of images "
                              "like those the model will segment (e.g. its dataset's validation images)")
        graph = quantize_int8(exported, calibration_windows(reference, calibration_images))
    runner = OpenVinoRunner(graph, inference)
    candidate = Predictor(None, metadata=exported.metadata, forward=runner)
    # What ran, in words a reader of /models or gate_int8.json understands: NNCF quantizes the
    # matrix multiplies and convolutions; every other operation runs in `inference` precision.
    name = (f"OpenVINO int8 (NNCF-quantized matrix multiplies and convolutions, other layers in {inference})"
            if precision == "int8" else f"OpenVINO {precision}")
    report = run_gate(reference, candidate, precision, name, labelled=labelled)
    (exported.folder / f"gate_{precision}.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    if report.passed:
        record_precision(exported.folder, precision, {
            "file": graph.name, "runtime": "openvino", "inference_precision": inference,
            "calibration_images": len(calibration_images or []) if precision == "int8" else 0,
            "gated_on": _cpu_name(), "gate": report.to_dict()})
    elif precision == "int8":
        for path in (graph, graph.with_suffix(".bin")):
            path.unlink(missing_ok=True)
    return report

