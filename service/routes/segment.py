"""POST /segment: an uploaded image in, a class mask, an overlay or JSON out."""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import Executor

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from service.batcher import BatchFailed, QueueFull
from service.deps import ExecutorDep, MetricsDep, PoolDep, SettingsDep
from service.errors import STATUS_CODES, ServiceError, error_body
from service.metrics import UNKNOWN_MODEL, ServiceMetrics
from service.model_pool import ModelPool, ModelUnavailable, ServedModel, UnknownModel
from service.outputs import classes_present, render_json, render_mask, render_overlay
from service.segment_options import SegmentOptions, openapi_description, read_segment_request
from service.segmentation import Abort, Segmentation, segment
from service.settings import Settings

router = APIRouter(tags=["segmentation"])

CLIENT_GONE = 499  # nginx's code for "client closed the request"; only ever seen in metrics


def _error_responses() -> dict:
    described = {400: "Corrupt, truncated or empty image", 404: "Unknown model (the known ones are listed)",
                 413: "Upload over the byte limit, or image over the pixel limit",
                 415: "Not an image, an unsupported format, or more than one frame",
                 422: "Invalid, unknown, repeated or conflicting parameters (each is named)",
                 503: "Queue full, model not ready, or its batch failed (retry)",
                 504: "Request took longer than the timeout"}
    return {code: {"description": text, "content": {"application/json": {
                "example": error_body(code, STATUS_CODES[code], text)}}} for code, text in described.items()}


RESPONSES = {200: {"description": "mask (PNG of class ids), overlay (RGB PNG) or json",
                   "content": {"image/png": {}, "application/json": {}}},
             **_error_responses()}
DESCRIPTION = ("Upload an image as the multipart file field `image`. Every other parameter may be a form field or "
               "a query parameter (`/segment?model=fast&output=overlay`). An unknown parameter, a parameter or "
               "image given twice, or one given both ways with different values is a 422 naming it.")


async def _disconnected(request: Request) -> None:
    """Return when the client goes away (the body has been read, so only disconnect comes)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


@router.post("/segment", responses=RESPONSES, response_class=Response, summary="Segment an image",
             description=DESCRIPTION, openapi_extra=openapi_description())
async def segment_image(request: Request, pool: PoolDep, settings: SettingsDep, metrics: MetricsDep,
                        executor: ExecutorDep) -> Response:
    started = time.perf_counter()
    label, output, status = UNKNOWN_MODEL, "invalid", 500
    metrics.in_flight.inc()
    try:
        image, options = await read_segment_request(request)
        output = options.output
        served = _resolve(pool, options.model)
        label = served.spec.name
        result = await _segment_or_give_up(request, served, await image.read(), options, settings, executor, metrics)
        rendering = time.perf_counter()
        response = await asyncio.get_running_loop().run_in_executor(executor, _render, result, served, options)
        result.timings["render"] = time.perf_counter() - rendering
        metrics.queue_wait.labels(model=label).observe(result.timings["queue"])
        _add_headers(response, served, result, time.perf_counter() - started)
        status = response.status_code
        return response
    except ServiceError as exc:
        status = exc.status
        raise
    except QueueFull as exc:
        status = 503
        metrics.rejected.labels(reason="queue_full").inc()
        raise _unavailable(f"the service is busy: {exc}; retry after a moment", settings.retry_after_s) from exc
    except BatchFailed as exc:
        status = 503
        raise _unavailable(f"the model failed on the batch holding this image ({exc}); retry",
                           settings.retry_after_s) from exc
    except _ClientGone:
        status = CLIENT_GONE
        return Response(status_code=CLIENT_GONE)
    except RequestValidationError:
        status = 422
        raise
    finally:
        metrics.in_flight.dec()
        metrics.requests.labels(model=label, output=output, status=str(status)).inc()
        metrics.latency.labels(model=label).observe(time.perf_counter() - started)
        await request.close()


class _ClientGone(Exception):
    """The client hung up before its answer was ready."""


def _resolve(pool: ModelPool, name: str | None) -> ServedModel:
    try:
        return pool.get_ready(name)
    except UnknownModel as exc:
        raise ServiceError(404, "unknown_model", str(exc)) from exc
    except ModelUnavailable as exc:
        raise _unavailable(str(exc), pool.settings.retry_after_s) from exc


async def _segment_or_give_up(request: Request, served: ServedModel, data: bytes, options: SegmentOptions,
                              settings: Settings, executor: Executor, metrics: ServiceMetrics) -> Segmentation:
    """Segment, unless the client hangs up (_ClientGone) or the timeout passes (504) first; either
    way the unfinished work is stopped: its threads at their next step, its queued windows
    withdrawn. The abandoned task finishes in the background (`app.state.abandoned`) once its
    threads have stopped, and only then releases its memory reservation."""
    abort = Abort()
    work = asyncio.create_task(segment(served, data, options, executor, settings.max_image_pixels, abort, metrics))
    gone = asyncio.create_task(_disconnected(request))
    done, _ = await asyncio.wait({work, gone}, timeout=settings.request_timeout_s, return_when=asyncio.FIRST_COMPLETED)
    gone.cancel()
    if work in done:
        return work.result()
    abort.set("client_gone" if gone in done else "timeout")
    work.cancel()
    abandoned: set[asyncio.Task] = request.app.state.abandoned
    abandoned.add(work)
    work.add_done_callback(abandoned.discard)
    if gone in done:
        raise _ClientGone
    raise ServiceError(504, "timeout", f"the request took longer than {settings.request_timeout_s:g} s "
                       "(SEGMENTER_REQUEST_TIMEOUT_S); retry, or send a smaller image")


def _add_headers(response: Response, served: ServedModel, result: Segmentation, total: float) -> None:
    timing = ", ".join(f"{k};dur={v * 1000:.1f}" for k, v in {**result.timings, "total": total}.items())
    response.headers.update({"X-Segmenter-Model": served.spec.name, "X-Segmenter-Backend": served.spec.backend,
                             "X-Segmenter-Windows": str(result.windows), "Server-Timing": timing})


def _unavailable(message: str, retry_after: int) -> ServiceError:
    return ServiceError(503, "unavailable", message, headers={"Retry-After": str(retry_after)})


def _render(result: Segmentation, served: ServedModel, options: SegmentOptions) -> Response:
    metadata = served.loaded.predictor.metadata
    if options.output == "mask":
        return Response(render_mask(result.mask, metadata), media_type="image/png")
    if options.output == "overlay":
        # The classes found travel in a header too, so a page can draw its own legend.
        present = classes_present(result.mask, metadata)
        header = json.dumps([{k: c[k] for k in ("id", "name", "color", "fraction")} for c in present],
                            ensure_ascii=True)
        image = render_overlay(result.rgb, result.mask, metadata, options.alpha, present if options.legend else None)
        return Response(image, media_type="image/png", headers={"X-Segmenter-Classes": header})
    return JSONResponse(render_json(result.mask, metadata, served.spec.name))
