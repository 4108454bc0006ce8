"""Turn one models-file entry into a `Predictor` that runs on the configured backend.

Every backend is used the same way afterwards: `predictor.prepare`, `predictor.forward_windows`
(the batcher's WindowForward: B×3×w×w normalized -> B×C×w×w float32 logits) and
`predictor.finish`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from export import (
    ExportError,
    OnnxRuntimeRunner,
    OpenVinoRunner,
    cpu_supports_bf16,
    is_exported,
    ort_providers,
    read_exported,
)
from model import CheckpointError, Predictor, SegmenterError, load_segmenter
from service.model_specs import ModelSpec


class ModelLoadError(SegmenterError, RuntimeError):
    """A configured model cannot be served; the message says why and how to fix it."""


@dataclass(frozen=True)
class LoadedModel:
    spec: ModelSpec
    predictor: Predictor
    patch_size: int | None  # None when only an exported graph is known and it does not say
    backend_detail: str  # e.g. "torch fp32 on cpu", "onnxruntime [CPUExecutionProvider]"


def _check_device(device: str) -> None:
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} is configured but no CUDA GPU is visible; "
                             "set device: cpu or run on a GPU host (docker compose with the nvidia runtime)")


def load_model(spec: ModelSpec, cache_dir: Path | None = None, max_windows: int | None = None) -> LoadedModel:
    """Load, place and wrap one model. Raises ModelLoadError with the reason.

    `max_windows`: the per-request window limit when the models file sets none for this model.
    """
    path = Path(spec.checkpoint)
    if not path.exists():
        raise ModelLoadError(f"checkpoint {path} does not exist (model {spec.name!r}); "
                             "fix `checkpoint` in the models file")
    _check_device(spec.device)
    try:
        windows = dict(window_size=spec.window_size, window_stride=spec.window_stride, batch_size=spec.max_batch_size,
                       max_windows=spec.max_windows_per_request or max_windows)
        if spec.backend == "torch":
            return _load_torch(spec, path, windows)
        return _load_export(spec, path, cache_dir, windows)
    except (CheckpointError, ExportError, ValueError, OSError) as exc:
        raise ModelLoadError(f"cannot load model {spec.name!r} from {path}: {exc}") from exc


def _load_torch(spec: ModelSpec, path: Path, windows: dict) -> LoadedModel:
    net = load_segmenter(path)  # an exported folder: the PyTorch weights it was exported from
    predictor = Predictor(net, device=spec.device, precision=spec.precision, **windows)
    return LoadedModel(spec, predictor, net.config.patch_size, f"torch {spec.precision} on {spec.device}")


def _load_export(spec: ModelSpec, path: Path, cache_dir: Path | None, windows: dict) -> LoadedModel:
    if not is_exported(path):
        raise ModelLoadError(f"backend {spec.backend} needs an exported ONNX folder; {path} is not one. "
                             f"Run `segmenter export onnx --checkpoint {path} --out OUT` and point "
                             "`checkpoint` at OUT")
    exported = read_exported(path)
    if spec.window_size not in (None, exported.window_size):
        raise ModelLoadError(f"{path} was exported for {exported.window_size}-pixel windows; remove window_size "
                             "from the models file or export again at the size you want")
    if spec.backend == "openvino":
        # bf16 / int8 only as gated at export (the graph and inference precision it recorded).
        graph, inference = (exported.onnx_path, "fp32") if spec.precision == "fp32" else \
            exported.reduced_precision(spec.precision)
        if spec.precision == "int8" and inference == "bf16" and not cpu_supports_bf16():
            inference = "fp32"  # the int8 graph's other operations in fp32: closer to fp32 than what was gated
        # One OpenVINO stream per batch in flight: they run at once, sharing the cores.
        runner = OpenVinoRunner(graph, inference, streams=spec.batches_in_flight)
        predictor = Predictor(None, device="cpu", metadata=exported.metadata, forward=runner, **windows)
        detail = f"openvino {spec.precision}" + (f" ({inference} elsewhere)" if spec.precision == "int8" else "")
        return LoadedModel(spec, predictor, exported.config.get("patch_size"), detail)
    ort_device = "tensorrt" if spec.backend == "tensorrt" else ("cpu" if spec.device == "cpu" else "cuda")
    # TensorRT engines are GPU-specific: built on this host at first use, kept for restarts.
    cache = spec.tensorrt_cache or (cache_dir / spec.name if cache_dir else path / "tensorrt-cache")
    providers = ort_providers(ort_device, tensorrt_cache=cache, fp16=spec.precision == "fp16",
                              window=exported.window_size, max_batch=spec.max_batch_size)
    runner = OnnxRuntimeRunner(exported, providers)
    # Windows are normalized on the CPU: ONNX Runtime takes numpy input.
    predictor = Predictor(None, device="cpu", metadata=exported.metadata, forward=runner, **windows)
    return LoadedModel(spec, predictor, exported.config.get("patch_size"), f"onnxruntime {runner.providers}")


def warm_up(model: LoadedModel) -> None:
    """Run one full batch, so the first request does not pay for lazy initialisation."""
    predictor = model.predictor
    window = predictor.window_size
    crops = torch.zeros(model.spec.max_batch_size, 3, window, window, device=predictor.device)
    logits = predictor.forward_windows(crops)
    if not torch.isfinite(logits).all():
        raise ModelLoadError(f"model {model.spec.name!r} produced NaN/inf logits on a blank image; "
                             "the weights are broken")
