"""One image's path through the service: header -> cost -> decode -> windows -> batcher -> mask.

Every protocol takes this path: `POST /segment`, the Open Inference Protocol over HTTP and gRPC
(`service.oip`), Hugging Face's image-segmentation API. They differ only in how they read the
request and write the answer.

1. The image header gives its size (an image sent as H×W×3 uint8 pixels, its shape);
   `Predictor.check_cost` turns that into windows and memory before a pixel is decoded: over the
   per-request limit is a 413 (a 200-byte 20000×2 PNG must not cost an hour), over the model's
   in-flight budget a 503.
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
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from model import Cancelled, ImageError, Predictor, TooManyWindows, WindowPlan, image_size, read_image
from model.inference import WindowCost
from model.options import SegmentOptions
from service.errors import ServiceError, image_error
from service.metrics import ServiceMetrics
from service.model_pool import ServedModel
from service.settings import Settings

T = TypeVar("T")
Image = bytes | np.ndarray  # an encoded file's bytes, or H×W×3 uint8 RGB pixels


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


def size_of(image: Image, max_pixels: int) -> tuple[int, int]:
    """(height, width) of an image from its header (or its pixels' shape); ServiceError for an
    image that cannot be segmented, before any of it is decoded. Pixels must be H×W×3 uint8."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ServiceError(400, "bad_request", f"pixels must be H×W×3 uint8 RGB, not "
                               f"{'×'.join(map(str, image.shape))} {image.dtype}")
        height, width = image.shape[:2]
        if height < 1 or width < 1:
            raise ServiceError(400, "empty_image", f"the image has no pixels ({width}×{height})")
        if height * width > max_pixels:
            raise ServiceError(413, "image_too_large", f"the image is {width}×{height} = {width * height:,} pixels; "
                               f"the limit is {max_pixels:,} (SEGMENTER_MAX_IMAGE_PIXELS); downscale it before sending")
        return height, width
    try:
        return image_size(image, max_pixels)
    except ImageError as exc:
        raise image_error(exc) from exc


def _decode_and_plan(predictor: Predictor, image: Image, max_pixels: int, options: SegmentOptions,
                     abort: Abort, cost: WindowCost) -> tuple[np.ndarray, WindowPlan]:
    if isinstance(image, np.ndarray):
        rgb = image
    else:
        try:
            rgb = read_image(image, max_pixels)
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
        await _until_done([future])  # the thread stops at its next check, however often we are cancelled
        raise


async def segment(served: ServedModel, image: Image, options: SegmentOptions, executor: Executor, max_pixels: int,
                  abort: Abort, metrics: ServiceMetrics, confidence: bool = False) -> Segmentation:
    """Segment one image (encoded bytes or H×W×3 uint8 pixels) with a ready model.

    `confidence`: also compute each pixel's class probability.
    Raises ServiceError (400/413/415), QueueFull, BatchFailed. Timings (seconds, each a stretch
    of this request's wall time): `decode` (read + tile), `queue` (until its first window ran),
    `forward` (from then until its last window's batch finished), `merge`.
    """
    if served.loaded is None or served.batcher is None or served.admission is None:
        raise ServiceError(503, "unavailable", f"model {served.spec.name!r} is not ready")
    predictor = served.loaded.predictor
    cost = image_cost(predictor, size_of(image, max_pixels), options)
    try:
        async with served.admission.reserve(cost.bytes):
            return await _run(served, predictor, image, options, executor, max_pixels, abort, cost, confidence)
    except (Cancelled, asyncio.CancelledError):
        metrics.cancelled.labels(model=served.spec.name, reason=abort.reason, stage=abort.stage).inc()
        raise


def image_cost(predictor: Predictor, size: tuple[int, int], options: SegmentOptions) -> WindowCost:
    """The windows and memory of segmenting an image of `size` (H, W); 413 over the window limit."""
    try:
        return predictor.check_cost(*size, options.multiscale, scale=options.scale)
    except TooManyWindows as exc:
        raise too_many_windows(exc) from exc


async def _run(served: ServedModel, predictor: Predictor, image: Image, options: SegmentOptions, executor: Executor,
               max_pixels: int, abort: Abort, cost: WindowCost, want_confidence: bool) -> Segmentation:
    start = time.perf_counter()
    abort.stage = "decode"
    rgb, plan = await _in_thread(executor, abort, _decode_and_plan, predictor, image, max_pixels, options, abort,
                                 cost)
    prepared = time.perf_counter()
    abort.stage = "queue"
    logits, queue_wait, _ = await served.batcher.run_groups(plan.groups)  # admitted or refused as one request
    plan = plan.without_crops()  # the windows ran: release them before merging
    ran = time.perf_counter()
    abort.stage = "merge"
    confidence = None
    if want_confidence:
        mask, confidence = await _in_thread(executor, abort, predictor.finish_with_confidence, plan, logits, abort)
    else:
        mask = await _in_thread(executor, abort, predictor.finish, plan, logits, abort)
    timings = {"decode": prepared - start, "queue": queue_wait, "forward": ran - prepared - queue_wait,
               "merge": time.perf_counter() - ran}
    return Segmentation(rgb, mask, plan.num_windows, confidence=confidence, timings=timings)


class ClientGone(Exception):
    """The client hung up before its answer was ready."""


async def segment_all(served: ServedModel, images: list[Image], options: SegmentOptions, executor: Executor,
                      max_pixels: int, aborts: list[Abort], metrics: ServiceMetrics, confidence: bool = False,
                      sizes: list[tuple[int, int]] | None = None) -> list[Segmentation]:
    """Segment a batch of images sent in one request: all their windows in the model's queue at
    once. The request is admitted as a whole: its memory reserved once for all its images, its
    windows within the per-request limit and the model's queue (413 beyond: it could never run);
    if one image fails, the others stop and the request fails with it. `aborts`: one per image;
    `sizes`: their (H, W) when the caller has read them already."""
    if served.loaded is None or served.batcher is None or served.admission is None:
        raise ServiceError(503, "unavailable", f"model {served.spec.name!r} is not ready")
    predictor = served.loaded.predictor
    sizes = sizes or [size_of(image, max_pixels) for image in images]
    costs = [image_cost(predictor, size, options) for size in sizes]
    if len(images) > 1:
        windows, limit = sum(cost.windows for cost in costs), predictor.max_windows
        for what, most in (("limit per request", limit), ("model's queue", served.batcher.max_queue_windows)):
            if most is not None and windows > most:
                raise ServiceError(413, "too_many_windows", f"the {len(images)} images need {windows} sliding "
                                   f"windows; the {what} is {most} (SEGMENTER_MAX_WINDOWS_PER_REQUEST, "
                                   "SEGMENTER_MAX_QUEUE_WINDOWS): send fewer images per request, or smaller ones")
    try:
        async with served.admission.reserve(sum(cost.bytes for cost in costs)):
            tasks = [asyncio.ensure_future(_run(served, predictor, image, options, executor, max_pixels, abort, cost,
                                                confidence))
                     for image, abort, cost in zip(images, aborts, costs, strict=True)]
            try:
                return list(await asyncio.gather(*tasks))
            except BaseException:
                for task in tasks:  # one failed (or the request ended): stop the others, wait until they have
                    task.cancel()
                await _until_done(tasks)
                raise
    except (Cancelled, asyncio.CancelledError):
        abort = aborts[0]  # one request, counted once
        metrics.cancelled.labels(model=served.spec.name, reason=abort.reason, stage=abort.stage).inc()
        raise


async def _until_done(tasks: list[asyncio.Future]) -> None:
    """Wait until every task has finished, even if this coroutine is cancelled meanwhile: their
    threads must stop before the request's memory reservation is released."""
    pending = [task for task in tasks if not task.done()]
    while pending:
        try:
            await asyncio.wait(pending)
        except asyncio.CancelledError:
            pass
        pending = [task for task in pending if not task.done()]
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved: the request's own error is what goes on


async def segment_or_give_up(work: Awaitable[T], aborts: list[Abort], settings: Settings,
                             abandoned: set[asyncio.Task], client_gone: Awaitable[None] | None = None,
                             timeout_s: float | None = None) -> T:
    """Await `work` (one or more `segment` calls), unless the client hangs up (`client_gone`
    returns, or this coroutine is cancelled: gRPC cancels a handler whose client went away) or
    `timeout_s` (default: `request_timeout_s`) passes first: then every `aborts` is set, so its
    threads stop at their next step and its queued windows are withdrawn. The abandoned task finishes in the background
    (`abandoned`, awaited at shutdown) once its threads have stopped, and only then releases its
    memory reservation.

    Raises ClientGone, or ServiceError 504.
    """
    timeout_s = settings.request_timeout_s if timeout_s is None else timeout_s
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(client_gone) if client_gone is not None else None
    try:
        done, _ = await asyncio.wait({task} | ({gone} if gone else set()), timeout=timeout_s,
                                     return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        _give_up(task, aborts, "client_gone", abandoned)
        raise
    finally:
        if gone is not None:
            gone.cancel()
    if task in done:
        return task.result()
    hung_up = gone is not None and gone in done
    _give_up(task, aborts, "client_gone" if hung_up else "timeout", abandoned)
    if hung_up:
        raise ClientGone
    limit = "SEGMENTER_REQUEST_TIMEOUT_S" if timeout_s == settings.request_timeout_s else "the request's timeout"
    raise ServiceError(504, "timeout", f"the request took longer than {timeout_s:g} s ({limit}); retry, or send "
                       "a smaller image")


def _give_up(task: asyncio.Future, aborts: list[Abort], reason: str, abandoned: set[asyncio.Task]) -> None:
    for abort in aborts:
        abort.set(reason)
    task.cancel()
    track_abandoned(abandoned, task)


def track_abandoned(abandoned: set[asyncio.Future], work: asyncio.Future) -> None:
    """Keep the work of a request that ended (timeout, client gone, shutdown) in `abandoned`
    (`app.state.abandoned`, awaited at shutdown) until it stops. Its error, if any, has nobody
    to reach."""
    abandoned.add(work)

    def finished(done: asyncio.Future) -> None:
        abandoned.discard(done)
        if not done.cancelled():
            done.exception()  # retrieved, so asyncio does not log it as never retrieved

    work.add_done_callback(finished)
