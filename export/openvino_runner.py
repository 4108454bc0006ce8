"""Run an exported graph with OpenVINO on the CPU: fp32, bf16, or an int8 graph.

Why OpenVINO: on CPUs with AVX512-BF16 / AMX its bf16 kernels (fused attention included) and
its VNNI int8 kernels are the fastest CPU path we measured (docs/benchmarks.md: CPU precision);
ONNX Runtime's int8 kernels were not faster than its fp32 ones here.

`precision` is OpenVINO's inference precision hint: the type the non-quantized operations run
in. An int8 graph (from `export.quantize_int8`) runs its quantized matmuls in int8 and the rest
(LayerNorm, softmax, the mask norm) in that precision. The logits come out as the graph makes
them: on the patch grid (`export.export_onnx`), or at the window size for a version-1 export.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch

from export.artifact import ExportError

# Our precision names -> OpenVINO's inference precision hint.
INFERENCE_PRECISION = {"fp32": "f32", "bf16": "bf16"}


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def cpu_supports_bf16() -> bool:
    """True when OpenVINO runs bf16 natively on this CPU (AVX512-BF16 or AMX); elsewhere it
    would silently run f32, so asking for bf16 there is an error."""
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class OpenVinoRunner:
    """A `model.WindowForward` over OpenVINO's CPU plugin: B×3×ws×ws normalized -> the graph's
    logits (torch, CPU): B×C×gh×gw on the patch grid, or B×C×ws×ws from a version-1 export.
    `graph`: a model.onnx or an OpenVINO IR model.xml."""

    def __init__(self, graph: str | Path, precision: str = "fp32", threads: int = 0, streams: int = 1) -> None:
        if not openvino_available():
            raise ExportError("OpenVINO is not installed (a dependency of this package): pip install openvino")
        import openvino as ov

        if precision not in INFERENCE_PRECISION:
            raise ExportError(f"unknown OpenVINO precision {precision!r}; use one of {sorted(INFERENCE_PRECISION)} "
                              "(an int8 graph runs its other operations in fp32 or bf16)")
        if precision == "bf16" and not cpu_supports_bf16():
            raise ExportError("this CPU has no native bf16 (AVX512-BF16 or AMX): OpenVINO would run f32; "
                              "use precision fp32")
        config = {"INFERENCE_PRECISION_HINT": INFERENCE_PRECISION[precision], "PERFORMANCE_HINT": "LATENCY",
                  "NUM_STREAMS": str(streams)}
        if threads:
            config["INFERENCE_NUM_THREADS"] = str(threads)
        core = ov.Core()
        try:
            graph_model = core.read_model(str(graph))
            if precision == "bf16":
                # bf16 logits out: half the bytes of the output tensor to convert and copy.
                from openvino.preprocess import PrePostProcessor

                ppp = PrePostProcessor(graph_model)
                ppp.output(0).tensor().set_element_type(ov.Type.bf16)
                graph_model = ppp.build()
            self.compiled = core.compile_model(graph_model, "CPU", config)
        except RuntimeError as exc:
            raise ExportError(f"OpenVINO cannot load {graph}: {exc}") from exc
        self.precision = precision
        self.graph = Path(graph)
        self._requests: dict[int, object] = {}  # one per thread: a compiled model is shared, a request is not

    def _request(self):
        key = threading.get_ident()
        if key not in self._requests:
            self._requests[key] = self.compiled.create_infer_request()
        return self._requests[key]

    def __call__(self, windows: torch.Tensor | np.ndarray) -> torch.Tensor:
        """B×3×ws×ws normalized -> the graph's B×C×gh×gw logits: float32, or bfloat16 for precision bf16."""
        array = windows.detach().cpu().numpy() if isinstance(windows, torch.Tensor) else windows
        request = self._request()
        request.infer({0: np.ascontiguousarray(array, dtype=np.float32)})
        # A copy we own: the request writes its next answer into the same buffer. (numpy has no
        # bfloat16: OpenVINO hands bf16 out as 16-bit words, reinterpreted here.)
        data = request.get_output_tensor(0).data
        if self.precision == "bf16":
            return torch.from_numpy(data.view(np.int16)).clone().view(torch.bfloat16)
        return torch.from_numpy(data).clone()
