"""One v2 inference request, whichever transport carried it: the same path as `POST /segment`.

The model is found (404) and the request read (400) first; then admission, the shared window
queue, the deadline and the client's hang-up work exactly as for `/segment`
(`service.segmentation`), and the request is counted in the same metrics, with `output` set to
the protocol (`v2_http`, `v2_grpc`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from model import ModelMetadata
from service.oip.metadata import find_model
from service.oip.tensors import OutputTensor, V2Request, answer_tensors, bad_request, same_size
from service.request_outcome import resolve_model, segmentation_request
from service.segmentation import Abort, Segmentation, segment_all, segment_or_give_up, size_of

T = TypeVar("T")


# A JSON answer is Python numbers: ~0.1 s per million class ids and ~0.6 s and 30 bytes per
# million probabilities. Beyond this many, binary tensor data is the way (tritonclient's default).
MAX_JSON_NUMBERS = 4_000_000


async def infer(state: Any, model: str, version: str | None, read: Callable[[], Awaitable[V2Request]],
                answer: Callable[[str, V2Request, list[OutputTensor]], T], protocol: str,
                client_gone: Callable[[], Awaitable[None]] | None = None) -> T:
    """Answer one v2 request for `model` (name or alias); `state` is the app's (pool, settings,
    metrics, executor, abandoned). `read()` reads the request once the model is known (parsing
    off the event loop); `answer(name, request, tensors)` encodes the reply, on the executor;
    `client_gone()` returns when the client hangs up (HTTP).

    Returns what `answer` returns. Raises ServiceError (the transport maps it), ClientGone, or
    CancelledError (gRPC: the client went away).
    """
    settings, metrics, executor = state.settings, state.metrics, state.executor
    loop = asyncio.get_running_loop()
    with segmentation_request(metrics, protocol, settings.retry_after_s) as outcome:
        served = find_model(state.pool, model, version)
        outcome.model = served.spec.name
        request = await read()
        served = resolve_model(state.pool, served.spec.name)  # 503 while it loads, or if it failed
        sizes = await loop.run_in_executor(executor, _sizes, request, settings.max_image_pixels)
        same_size(sizes)
        height, width = sizes[0]
        if (numbers := len(sizes) * height * width * len(request.json_outputs)) > MAX_JSON_NUMBERS:
            raise bad_request(f"the answer would be {numbers:,} numbers in JSON (the limit is {MAX_JSON_NUMBERS:,}); "
                              "ask for binary tensor data (parameters.binary_data: true on each output, "
                              "tritonclient's default)")
        aborts = [Abort() for _ in request.images]
        work = segment_all(served, request.images, request.options, executor, settings.max_image_pixels, aborts,
                           metrics, confidence="confidence" in request.outputs, sizes=sizes)
        timeout_s = min(settings.request_timeout_s, request.timeout_s or float("inf"))
        results = await segment_or_give_up(work, aborts, settings, state.abandoned,
                                           client_gone() if client_gone else None, timeout_s)
        metadata = served.loaded.predictor.metadata
        reply = await loop.run_in_executor(executor, _encode, answer, served.spec.name, request, results, metadata)
        for result in results:
            metrics.queue_wait.labels(model=outcome.model).observe(result.timings["queue"])
        outcome.status = 200
        return reply


def _sizes(request: V2Request, max_pixels: int) -> list[tuple[int, int]]:
    return [size_of(image, max_pixels) for image in request.images]


def _encode(answer: Callable[[str, V2Request, list[OutputTensor]], T], name: str, request: V2Request,
            results: list[Segmentation], metadata: ModelMetadata) -> T:
    return answer(name, request, answer_tensors(request, results, metadata))
