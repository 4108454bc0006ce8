"""Turn one models-file entry into a `Predictor` that runs on the configured backend.

Every backend is used the same way afterwards: `predictor.prepare`, `predictor.forward_windows`
(the batcher's WindowForward: B×3×h×w normalized -> B×C×gh×gw float32 logits on the patch grid)
and `predictor.finish`. POST /attention gets its PyTorch model from `LoadedModel.attention`.
`backend: auto` (the default) is decided here: on a CPU, the fastest gated path (fast_path.py).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
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
from model import CheckpointError, Predictor, SegmenterConfig, SegmenterError, ZooError, load_segmenter, zoo
from model.devices import DeviceError, placing
from model.resolve import ZOO_PREFIX, exported_source, resolve_checkpoint
from service.fast_path import best_gated
from service.fast_path import build as build_fast_path
from service.model_specs import ModelSpec

log = logging.getLogger("segmenter.service")


class ModelLoadError(SegmenterError, RuntimeError):
    """A configured model cannot be served; the message says why and how to fix it."""


class AttentionUnavailable(SegmenterError, ValueError):
    """A served model cannot draw attention maps; the message names it, says why and the fix.
    `retry_after`: seconds after which a transient failure (network, GPU memory) is tried again;
    None when retrying cannot help until the files change."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# After a load that failed for a reason that may pass (a zoo download, a full GPU), requests are
# answered from the failure for this long before the next try: no download per request.
RETRY_LOAD_AFTER_S = 30.0


class AttentionModel:
    """The PyTorch model POST /attention runs for one served model.

    Backend torch: the served predictor itself. An exported graph (OpenVINO, ONNX Runtime,
    TensorRT) holds no attention to read, so the PyTorch weights it was exported from load at its
    first /attention — never for /segment; once, however many requests ask at the same time — and
    stay. Whether they are there is decided at start from the files (`reason`), without loading them.
    """

    def __init__(self, spec: ModelSpec, config: SegmenterConfig | None, *, predictor: Predictor | None = None,
                 source: str | None = None, reason: str | None = None, windows: dict | None = None) -> None:
        self.spec, self.config, self.source, self.reason = spec, config, source, reason
        self._predictor, self._windows = predictor, windows or {}
        self.lock = threading.Lock()  # held while the weights load, so concurrent first requests load once
        self._failed: tuple[float, AttentionUnavailable] | None = None  # (when, why) the last transient failure

    @property
    def available(self) -> bool:
        return self.reason is None

    def predictor(self) -> Predictor:
        """The PyTorch predictor, loaded at the first call (it blocks: call it off the event loop).
        AttentionUnavailable when this model has no PyTorch weights, or they do not load."""
        if self._predictor is None:
            if self.reason is not None:
                raise AttentionUnavailable(self.reason)
            with self.lock:
                if self._predictor is None:
                    self._predictor = self._load_once()
        return self._predictor

    def _load_once(self) -> Predictor:
        """`_load`, remembering why it failed: for good when only new files can help (a
        checkpoint that does not read or no longer matches the export), else for
        RETRY_LOAD_AFTER_S (answered 503 with Retry-After meanwhile)."""
        if self._failed is not None:
            when, failure = self._failed
            left = RETRY_LOAD_AFTER_S - (time.monotonic() - when)
            if left > 0:
                raise AttentionUnavailable(str(failure), retry_after=left)
        try:
            return self._load()
        except AttentionUnavailable as exc:
            if exc.retry_after is None:
                self.reason = str(exc)
            else:
                self._failed = (time.monotonic(), exc)
            raise

    def _load(self) -> Predictor:
        name, started = self.spec.name, time.perf_counter()
        loads = f"model {name!r}: the PyTorch weights it was exported from ({self.source}), which attention maps need,"
        try:
            net = load_segmenter(self.source)
            with placing(self.spec.device, "device: {}"):  # out of GPU memory: a DeviceError
                predictor = Predictor(net, device=self.spec.device, **self._windows)
        except (OSError, DeviceError, ZooError) as exc:  # a file system, network or GPU problem: may pass
            raise AttentionUnavailable(f"{loads} do not load now: {exc}", retry_after=RETRY_LOAD_AFTER_S) from exc
        except SegmenterError as exc:  # the checkpoint itself does not read: new files are needed
            raise AttentionUnavailable(f"{loads} do not load: {exc}") from exc
        if self.config is not None and net.config != self.config:
            raise AttentionUnavailable(f"{loads} are no longer those of the export: their architecture differs "
                                       "(the checkpoint changed since); export it again, or serve it with "
                                       "backend: torch")
        log.info("model %s: loaded its PyTorch weights from %s for attention maps in %.1f s", name, self.source,
                 time.perf_counter() - started)
        return predictor


@dataclass(frozen=True)
class LoadedModel:
    spec: ModelSpec
    predictor: Predictor
    backend_detail: str  # e.g. "torch fp32 on cpu", "onnxruntime [CPUExecutionProvider]"
    attention: AttentionModel  # the PyTorch model behind POST /attention
    fast_path: dict | None = None  # backend auto on a CPU: what was chosen and the gate's figures

    @property
    def patch_size(self) -> int | None:
        return self.predictor.metadata.patch_size  # the metadata carries it, for exports too


def _check_device(spec: ModelSpec) -> None:
    try:
        spec.checked_device()
    except DeviceError as exc:
        raise ModelLoadError(str(exc)) from None


def load_model(spec: ModelSpec, cache_dir: Path | None = None, max_windows: int | None = None) -> LoadedModel:
    """Load, place and wrap one model. Raises ModelLoadError with the reason.

    `max_windows`: the per-request window limit when the models file sets none for this model.
    """
    path = Path(spec.checkpoint)
    if not path.exists():
        raise ModelLoadError(f"checkpoint {path} does not exist (model {spec.name!r}); "
                             "fix `checkpoint` in the models file")
    _check_device(spec)
    try:
        windows = dict(window_size=spec.window_size, window_stride=spec.window_stride, batch_size=spec.max_batch_size,
                       max_windows=spec.max_windows_per_request or max_windows, blend=spec.blend)
        spec, path, fast = _resolved(spec, path, cache_dir)
        loaded = _load_torch(spec, path, windows) if spec.backend == "torch" else \
            _load_export(spec, path, cache_dir, windows)
        return dataclasses.replace(loaded, fast_path=fast)
    except (CheckpointError, ExportError, ValueError, OSError) as exc:
        raise ModelLoadError(f"cannot load model {spec.name!r} from {path}: {exc}") from exc


def _resolved(spec: ModelSpec, path: Path, cache_dir: Path | None) -> tuple[ModelSpec, Path, dict | None]:
    """The backend, precision and files a spec runs with: `backend: auto` decided (on a CPU, the
    fastest gated path: service/fast_path.py), and what was decided, for /models and the log."""
    if not spec.fast_path:  # a pinned backend or precision, or a GPU: as written (auto: torch)
        backend = "torch" if spec.backend == "auto" else spec.backend
        return spec.model_copy(update={"backend": backend, "precision": spec.precision or "fp32"}), path, None
    if is_exported(path):  # an export: the fastest precision it passed the gate for
        precisions = read_exported(path).precisions
        chosen = best_gated(precisions) or "fp32"
        info = {"precision": chosen, "gate": precisions.get(chosen, {}).get("gate"), "folder": str(path),
                "built": False}
        log.info("model %s: backend auto serves the export %s in %s", spec.name, path, chosen)
        return spec.model_copy(update={"backend": "openvino", "precision": chosen}), path, info
    cache = cache_dir or zoo.default_cache_dir()
    fast = build_fast_path(spec.name, path, cache, spec.window_size, spec.calibration, spec.eval_data)
    info = {"precision": fast.precision or "fp32", "gate": fast.gates.get(fast.precision) if fast.precision else None,
            "gates": fast.gates, "folder": str(fast.folder) if fast.folder else None, "built": not fast.reused}
    if fast.folder is None:
        log.warning("model %s: no reduced precision passed the accuracy gate (%s); serving PyTorch fp32", spec.name,
                    ", ".join(f"{p}: {g.get('pixel_agreement', 0):.2%} agreement" for p, g in fast.gates.items())
                    or "none could be built on this CPU")
        return spec.model_copy(update={"backend": "torch", "precision": "fp32"}), path, info
    log.info("model %s: backend auto serves %s through OpenVINO %s (%s)", spec.name, path, fast.precision,
             "reused from the cache" if fast.reused else f"built into {fast.folder}")
    return spec.model_copy(update={"backend": "openvino", "precision": fast.precision}), fast.folder, info


def _load_torch(spec: ModelSpec, path: Path, windows: dict) -> LoadedModel:
    net = load_segmenter(path)  # an exported folder: the PyTorch weights it was exported from
    with placing(spec.device, "device: {}"):  # out of GPU memory: a ValueError, reported as ModelLoadError
        predictor = Predictor(net, device=spec.device, precision=spec.precision, **windows)
    return LoadedModel(spec, predictor, f"torch {spec.precision} on {spec.device}",
                       AttentionModel(spec, net.config, predictor=predictor))


def _load_export(spec: ModelSpec, path: Path, cache_dir: Path | None, windows: dict) -> LoadedModel:
    if not is_exported(path):
        raise ModelLoadError(f"backend {spec.backend} needs an exported ONNX folder; {path} is not one. "
                             f"Run `segmenter export onnx --checkpoint {path} --out OUT` and point "
                             "`checkpoint` at OUT")
    exported = read_exported(path)
    if spec.window_size not in (None, exported.window_size):
        raise ModelLoadError(f"{path} was exported for {exported.window_size}-pixel windows; remove window_size "
                             "from the models file or export again at the size you want")
    attention = _export_attention(spec, path, exported.config, windows)
    if spec.backend == "openvino":
        # bf16 / int8 only as gated at export (the graph and inference precision it recorded).
        graph, inference = (exported.onnx_path, "fp32") if spec.precision == "fp32" else \
            exported.reduced_precision(spec.precision)
        if spec.precision == "int8" and inference == "bf16" and not cpu_supports_bf16():
            inference = "fp32"  # the int8 graph's other operations in fp32: closer to fp32 than what was gated
        # One OpenVINO stream per batch in flight: they run at once, sharing the cores.
        runner = OpenVinoRunner(graph, inference, streams=spec.batches_in_flight)
        runner.patch_grid = exported.output_grid is not None  # a version-1 graph answers at full size
        predictor = Predictor(None, device="cpu", metadata=exported.metadata, forward=runner, **windows)
        int8 = f" (NNCF-quantized matrix multiplies and convolutions, other layers in {inference})"
        detail = f"openvino {spec.precision}" + (int8 if spec.precision == "int8" else "")
        return LoadedModel(spec, predictor, detail, attention)
    ort_device = "tensorrt" if spec.backend == "tensorrt" else ("cpu" if spec.device == "cpu" else "cuda")
    # TensorRT engines are GPU-specific: built on this host at first use, kept for restarts.
    cache = spec.tensorrt_cache or (cache_dir / spec.name if cache_dir else path / "tensorrt-cache")
    providers = ort_providers(ort_device, tensorrt_cache=cache, fp16=spec.precision == "fp16",
                              window=exported.window_size, max_batch=spec.max_batch_size)
    runner = OnnxRuntimeRunner(exported, providers)
    runner.patch_grid = exported.output_grid is not None  # a version-1 graph answers at full size
    # Windows are normalized on the CPU: ONNX Runtime takes numpy input.
    predictor = Predictor(None, device="cpu", metadata=exported.metadata, forward=runner, **windows)
    return LoadedModel(spec, predictor, f"onnxruntime {runner.providers}", attention)


def _export_attention(spec: ModelSpec, path: Path, config: dict, windows: dict) -> AttentionModel:
    """Attention for an exported graph: from the checkpoint its segmenter.json names (`onnx.source`),
    if that is here — checked now, from the files, without loading the weights. A zoo:NAME source
    counts as here: it is fetched (or read from the cache) at the first /attention."""
    fix = (f"attention maps need them: export again from the checkpoint (`segmenter export onnx --checkpoint CKPT "
           f"--out {path}` records where it is), or serve the checkpoint itself (backend: torch)")
    try:
        architecture = SegmenterConfig.from_dict(config)
    except (KeyError, TypeError, ValueError) as exc:
        return AttentionModel(spec, None, reason=f"model {spec.name!r}: the architecture in {path}/segmenter.json "
                              f"does not read ({exc}); attention maps need it: export the model again")
    recorded = exported_source(path) or ""
    if recorded.startswith(ZOO_PREFIX):
        return AttentionModel(spec, architecture, source=recorded, windows=windows)
    try:
        source = resolve_checkpoint(path)
    except CheckpointError:
        why = (f"the checkpoint it was exported from ({recorded!r} in {path}/segmenter.json) is missing at "
               f"{(path / recorded).resolve()}" if recorded else f"{path}/segmenter.json names no source checkpoint "
               "(onnx.source)")
        return AttentionModel(spec, architecture, reason=f"model {spec.name!r} was exported without its PyTorch "
                              f"weights: {why}; {fix}")
    return AttentionModel(spec, architecture, source=str(source.resolve()), windows=windows)


def warm_up(model: LoadedModel) -> None:
    """Run one full batch, so the first request does not pay for lazy initialisation."""
    predictor = model.predictor
    window = predictor.window_size
    crops = torch.zeros(model.spec.max_batch_size, 3, window, window, device=predictor.device)
    logits = predictor.forward_windows(crops)
    if not torch.isfinite(logits).all():
        raise ModelLoadError(f"model {model.spec.name!r} produced NaN/inf logits on a blank image; "
                             "the weights are broken")
