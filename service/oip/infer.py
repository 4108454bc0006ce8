"""One v2 inference request, whichever transport carried it: the same path as `POST /segment`.

The model is found (404) and the request read (400) first; then admission, the shared window
queue, the deadline and the client's hang-up work exactly as for `/segment`
(`service.segmentation`), and the request is counted in the same metrics, with `output` set to
the protocol (`v2_http`, `v2_grpc`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from service.oip.metadata import find_model
from service.oip.tensors import OutputTensor, V2Request, answer_tensors, same_size
from service.request_outcome import recorded, resolve_model
from service.segmentation import Abort, segment_all, segment_or_give_up, size_of


async def infer(state: Any, model: str, version: str | None, read: Callable[[], V2Request], protocol: str,
                client_gone: Callable[[], Awaitable[None]] | None = None) -> tuple[str, V2Request, list[OutputTensor]]:
    """Answer one v2 request for `model` (name or alias); `state` is the app's (pool, settings,
    metrics, executor, abandoned); `read()` reads the request once the model is known;
    `client_gone()` returns when the client hangs up (HTTP).

    Returns the model's name, the request as read and its output tensors. Raises ServiceError
    (the transport maps it), ClientGone, or CancelledError (gRPC: the client went away).
    """
    settings, metrics, executor = state.settings, state.metrics, state.executor
    started = time.perf_counter()
    metrics.in_flight.inc()
    try:
        with recorded(metrics, protocol, settings.retry_after_s) as outcome:
            served = find_model(state.pool, model, version)
            outcome.model = served.spec.name
            request = read()
            served = resolve_model(state.pool, served.spec.name)  # 503 while it loads, or if it failed
            same_size([size_of(image, settings.max_image_pixels) for image in request.images])
            aborts = [Abort() for _ in request.images]
            work = segment_all(served, request.images, request.options, executor, settings.max_image_pixels, aborts,
                               metrics, confidence="confidence" in request.outputs)
            timeout_s = min(settings.request_timeout_s, request.timeout_s or float("inf"))
            results = await segment_or_give_up(work, aborts, settings, state.abandoned,
                                               client_gone() if client_gone else None, timeout_s)
            metadata = served.loaded.predictor.metadata
            tensors = await asyncio.get_running_loop().run_in_executor(executor, answer_tensors, request, results,
                                                                       metadata)
            for result in results:
                metrics.queue_wait.labels(model=outcome.model).observe(result.timings["queue"])
            outcome.status = 200
            return served.spec.name, request, tensors
    finally:
        metrics.in_flight.dec()
        metrics.latency.labels(model=outcome.model).observe(time.perf_counter() - started)
