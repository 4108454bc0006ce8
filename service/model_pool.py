"""The models this process serves: loading state, aliases, and one batcher per model.

Models load in the background at start-up (an engine build can take minutes), so /healthz
answers at once and /readyz reports each model's state — loading, ready, or failed with the
reason — until all are ready. With `fail_fast`, start-up stops at the first model that fails.

Each process loads its own models into its own cache folder (`cache_dir`): nothing here is
shared with other replicas. A cache volume shared between pods stays safe only because every
file in it (fetched weights, converted checkpoints, TensorRT engines) is written under a
temporary name and renamed into place; a file written in place would let one pod load another's
half-written file.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field

from model import zoo  # zoo.fetch: the function, not the module of that name
from service.admission import Admission
from service.backends import LoadedModel, ModelLoadError, load_model, warm_up
from service.batcher import BatchStats, WindowBatcher
from service.metrics import ServiceMetrics
from service.model_specs import ModelsFile, ModelSpec
from service.settings import Settings

log = logging.getLogger("segmenter.service")


class UnknownModel(LookupError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown model {name!r}; known models and aliases: {', '.join(known)}")
        self.name, self.known = name, known


class ModelUnavailable(RuntimeError):
    """The model is configured but not (yet) loaded; the message says why."""


@dataclass
class ServedModel:
    spec: ModelSpec
    state: str = "loading"  # loading | ready | failed
    reason: str | None = None
    detail: str | None = None  # what loading is doing now, shown by /readyz
    loaded: LoadedModel | None = None
    batcher: WindowBatcher | None = None
    admission: Admission | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # set when loading ends, either way


class ModelPool:
    def __init__(self, models_file: ModelsFile, settings: Settings, metrics: ServiceMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.models = {spec.name: ServedModel(spec) for spec in models_file.models}
        self.aliases = {alias: spec.name for spec in models_file.models for alias in spec.aliases}
        first = models_file.models[0].name
        self.default = settings.default_model or models_file.default or first
        if self.default not in self.models and self.default not in self.aliases:
            raise UnknownModel(self.default, self.known_names())
        for name in self.models:
            metrics.set_model_state(name, "loading")

    def known_names(self) -> list[str]:
        return sorted([*self.models, *self.aliases])

    def resolve(self, name: str | None) -> ServedModel:
        """The served model for a request's `model` field (name, alias or None for the default)."""
        key = name or self.default
        canonical = self.aliases.get(key, key)
        if canonical not in self.models:
            raise UnknownModel(key, self.known_names())
        return self.models[canonical]

    def get_ready(self, name: str | None) -> ServedModel:
        served = self.resolve(name)
        if served.state != "ready":
            detail = f": {served.reason}" if served.reason else " (still loading; see /readyz)"
            raise ModelUnavailable(f"model {served.spec.name!r} is {served.state}{detail}")
        return served

    @property
    def all_ready(self) -> bool:
        return all(m.state == "ready" for m in self.models.values())

    # --- start-up and shut-down ------------------------------------------------------------
    async def load_all(self) -> None:
        """Load every model, one after the other (they may share one GPU); never raises
        unless `fail_fast` is set."""
        for served in self.models.values():
            await self._load(served)

    async def _load(self, served: ServedModel) -> None:
        """Load and warm up one model. Any exception marks it failed with the reason, so start-up
        never hangs on a model and the next ones still load (unless `fail_fast`)."""
        name = served.spec.name
        log.info("loading model %s from %s (%s on %s)", name, served.spec.checkpoint, served.spec.backend,
                 served.spec.device)
        try:
            loaded = await self._load_and_warm_up(served)
        except Exception as exc:  # noqa: BLE001 - CUDA OOM, ONNX Runtime/TensorRT errors, broken files...
            reason = str(exc) if isinstance(exc, ModelLoadError) else f"{type(exc).__name__}: {exc}"
            self._mark(served, "failed", reason=reason)
            log.error("model %s is unavailable: %s", name, reason)
            if self.settings.fail_fast:
                raise ModelLoadError(f"model {name!r} failed to load: {reason}") from exc
            return
        served.loaded = loaded
        queue_windows = served.spec.max_queue_windows or self.settings.max_queue_windows
        served.batcher = WindowBatcher(
            loaded.predictor.forward_windows, served.spec.max_batch_size, self.settings.max_queue_delay_ms / 1000,
            queue_windows, on_batch=lambda stats: self._record_batch(name, stats), name=name,
            batches_in_flight=served.spec.batches_in_flight)
        window = loaded.predictor.window_size
        window_bytes = loaded.predictor.cost(window, window).bytes
        served.admission = Admission(queue_windows * window_bytes, window_bytes)
        self._mark(served, "ready")
        log.info("model %s ready: %s, window %d stride %d", name, loaded.backend_detail,
                 loaded.predictor.window_size, loaded.predictor.window_stride)

    async def _load_and_warm_up(self, served: ServedModel) -> LoadedModel:
        spec = await self._fetch_if_zoo(served)
        served.detail = ("loading weights; backend auto: finding or building the fast CPU path (export and "
                         "accuracy gate: minutes for a large model at the first start, then from the cache)"
                         if spec.fast_path else "loading weights")
        loaded = await asyncio.to_thread(load_model, spec, self.settings.cache_dir,
                                         self.settings.max_windows_per_request)
        if self.settings.warmup:
            served.detail = ("warming up: building the TensorRT engine (minutes at first start, then cached)"
                             if served.spec.backend == "tensorrt" else "warming up")
            log.info("%s: %s", served.spec.name, served.detail)
            await asyncio.to_thread(warm_up, loaded)
        return loaded

    async def _fetch_if_zoo(self, served: ServedModel) -> ModelSpec:
        """For `checkpoint: zoo:NAME`: the spec with the checkpoint fetched into the cache (progress
        in /readyz and the log). A failure names the URL and how to fetch it by hand."""
        spec = served.spec
        if not spec.is_zoo:
            return spec
        name, logged = spec.zoo_name, [-1]

        def progress(file_name: str, done: int, total: int | None) -> None:
            if total:
                percent = int(100 * done / total)
                served.detail = f"downloading {file_name}: {percent}% of {total / 1e6:,.0f} MB"
                if percent // 10 != logged[0]:
                    logged[0] = percent // 10
                    log.info("%s: %s", spec.name, served.detail)
            else:
                served.detail = f"downloading {file_name}: {done / 1e6:,.0f} MB"

        served.detail = f"fetching {name}"
        log.info("%s: fetching %s into %s", spec.name, name, self.settings.cache_dir or zoo.default_cache_dir())
        registries = [p for p in (self.settings.weights_registry or "").split(os.pathsep) if p]
        folder = await asyncio.to_thread(zoo.fetch, name, self.settings.cache_dir, self.settings.weights_mirror or "",
                                         registries, progress)
        return spec.model_copy(update={"checkpoint": str(folder)})

    def _mark(self, served: ServedModel, state: str, reason: str | None = None) -> None:
        served.state, served.reason, served.detail = state, reason, None
        self.metrics.set_model_state(served.spec.name, state)
        served.ready.set()

    def _record_batch(self, name: str, stats: BatchStats) -> None:
        self.metrics.batch_size.labels(model=name).observe(stats.size)
        self.metrics.compute.labels(model=name).observe(stats.compute)
        self.metrics.windows.labels(model=name).inc(stats.size)

    async def wait_loaded(self) -> None:
        """Until every model has finished loading (ready or failed)."""
        for served in self.models.values():
            await served.ready.wait()

    async def close(self) -> None:
        for served in self.models.values():
            if served.batcher is not None:
                await served.batcher.close()
