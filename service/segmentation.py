"""One request's path through the service: header -> cost -> decode -> windows -> batcher -> mask.

1. The image header gives its size; `Predictor.check_cost` turns that into windows and memory
   before a pixel is decoded: over the per-request limit is a 413 (a 200-byte 20000×2 PNG must
   not cost an hour), over the model's in-flight budget a 503.
2. Decoding, planning and merging run on the preprocessing thread pool, off the event loop; the
   forward pass runs in the model's batcher with other requests' windows.
3. A request that ends early (deadline, client gone) sets its `Abort`: the worker threads stop
   at their next check (between views, between strips), its queued windows leave the queue,
   and its memory stays reserved until the thread that holds it has actually stopped.

Everything about images and the model is `model`'s; this file only moves work between threads.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from model import Cancelled, ImageError, Predictor, TooManyWindows, WindowPlan, image_size, read_image
from model.inference import WindowCost
from service.errors import ServiceError, image_error
from service.metrics import ServiceMetrics
from service.model_pool import ServedModel
from service.segment_options import SegmentForm

T = TypeVar("T")


@dataclass
class Segmentation:
    rgb: np.ndarray  # H×W×3 uint8, as decoded (EXIF orientation applied)
    mask: np.ndarray  # H×W uint8/uint16 class ids
    windows: int
    confidence: np.ndarray | None = None  # H×W float32 probability of each pixel's class, when asked for
    timings: dict[str, float] = field(default_factory=dict)  # seconds, see `segment`


@dataclass
class Abort:
    """Set when the request has ended; worker threads poll it between steps (`should_stop`)."""

    event: threading.Event = field(default_factory=threading.Event)
    reason: str = "unknown"  # timeout | client_gone
    stage: str = "header"  # header | decode | queue | merge: where the request is now

    def set(self, reason: str) -> None:
        self.reason = reason
        self.event.set()

    def __call__(self) -> bool:
        return self.event.is_set()


def _decode_and_plan(predictor: Predictor, data: bytes, max_pixels: int, options: SegmentForm,
                     abort: Abort, cost: WindowCost) -> tuple[np.ndarray, WindowPlan]:
    try:
        rgb = read_image(data, max_pixels)
    except ImageError as exc:
        raise image_error(exc) from exc
    if abort():
        raise Cancelled("the request ended while its image was decoded")
    # The cost was checked from the header: `prepare` does not estimate it again.
    return rgb, predictor.prepare(rgb, options.multiscale, should_stop=abort, scale=options.scale, checked=cost)


def too_many_windows(exc: TooManyWindows) -> ServiceError:
    return ServiceError(413, "too_many_windows", f"{exc} (SEGMENTER_MAX_WINDOWS_PER_REQUEST)")


async def _in_thread(executor: Executor, abort: Abort, fn: Callable[..., T], *args) -> T:
    """Run fn in the pool; if the request is cancelled meanwhile, set `abort` and wait for the
    thread to stop before letting the cancellation through, so no work outlives the request."""
    future = asyncio.get_running_loop().run_in_executor(executor, fn, *args)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        if not abort():
            abort.set("cancelled")  # e.g. the server is shutting down
        await asyncio.wait({future})  # the thread stops at its next check
        raise


async def segment(served: ServedModel, data: bytes, options: SegmentForm, executor: Executor, max_pixels: int,
                  abort: Abort, metrics: ServiceMetrics) -> Segmentation:
    """Segment one uploaded image with a ready model.

    Raises ServiceError (400/413/415), QueueFull, BatchFailed. Timings (seconds, each a stretch
    of this request's wall time): `decode` (read + tile), `queue` (until its first window ran),
    `forward` (from then until its last window's batch finished), `merge`.
    """
    if served.loaded is None or served.batcher is None or served.admission is None:
        raise ServiceError(503, "unavailable", f"model {served.spec.name!r} is not ready")
    predictor = served.loaded.predictor
    try:
        height, width = image_size(data, max_pixels)
        cost = predictor.check_cost(height, width, options.multiscale, scale=options.scale)
    except ImageError as exc:
        raise image_error(exc) from exc
    except TooManyWindows as exc:
        raise too_many_windows(exc) from exc
    try:
        async with served.admission.reserve(cost.bytes):
            return await _run(served, predictor, data, options, executor, max_pixels, abort, cost)
    except (Cancelled, asyncio.CancelledError):
        metrics.cancelled.labels(model=served.spec.name, reason=abort.reason, stage=abort.stage).inc()
        raise


async def _run(served: ServedModel, predictor: Predictor, data: bytes, options: SegmentForm, executor: Executor,
               max_pixels: int, abort: Abort, cost: WindowCost) -> Segmentation:
    start = time.perf_counter()
    abort.stage = "decode"
    rgb, plan = await _in_thread(executor, abort, _decode_and_plan, predictor, data, max_pixels, options, abort,
                                 cost)
    prepared = time.perf_counter()
    abort.stage = "queue"
    logits, queue_wait, _ = await served.batcher.run_groups(plan.groups)  # admitted or refused as one request
    plan = plan.without_crops()  # the windows ran: release them before merging
    ran = time.perf_counter()
    abort.stage = "merge"
    confidence = None
    if options.output == "confidence":
        mask, confidence = await _in_thread(executor, abort, predictor.finish_with_confidence, plan, logits, abort)
    else:
        mask = await _in_thread(executor, abort, predictor.finish, plan, logits, abort)
    timings = {"decode": prepared - start, "queue": queue_wait, "forward": ran - prepared - queue_wait,
               "merge": time.perf_counter() - ran}
    return Segmentation(rgb, mask, plan.num_windows, confidence=confidence, timings=timings)

