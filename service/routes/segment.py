"""POST /segment: an uploaded image in, a class mask, an overlay or JSON out."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from service.batcher import BatchFailed, QueueFull
from service.deps import ExecutorDep, MetricsDep, PoolDep, SettingsDep
from service.errors import ServiceError, error_body
from service.model_pool import ModelUnavailable, UnknownModel
from service.outputs import OutputKind, classes_present, render_json, render_mask, render_overlay
from service.segmentation import Segmentation, segment

router = APIRouter(tags=["segmentation"])

CLIENT_GONE = 499  # nginx's code for "client closed the request"; only ever seen in metrics


def _error_responses() -> dict:
    described = {400: "Corrupt, truncated or empty image", 404: "Unknown model (the known ones are listed)",
                 413: "Upload over the byte limit, or image over the pixel limit",
                 415: "Not an image, an unsupported format, or more than one frame",
                 422: "Invalid parameters", 503: "Queue full, model not ready, or its batch failed (retry)",
                 504: "Request took longer than the timeout"}
    example = error_body(415, "unsupported_media_type", "the upload is not an image this service reads")
    return {code: {"description": text, "content": {"application/json": {"example": example}}}
            for code, text in described.items()}


RESPONSES = {200: {"description": "mask (PNG of class ids), overlay (RGB PNG) or json",
                   "content": {"image/png": {}, "application/json": {}}},
             **_error_responses()}


async def _disconnected(request: Request) -> None:
    """Return when the client goes away (the body has been read, so only disconnect comes)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


@router.post("/segment", responses=RESPONSES, response_class=Response,
             summary="Segment an image", description="Upload an image as multipart field `image`.")
async def segment_image(
    request: Request,
    pool: PoolDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    executor: ExecutorDep,
    image: Annotated[UploadFile, File(description="JPEG, PNG, WebP, BMP or TIFF")],
    model: Annotated[str | None, Form(description="model name or alias (`fast`, `accurate`); "
                                      "default: the service's default model", max_length=200)] = None,
    output: Annotated[OutputKind, Form(description="mask | overlay | json")] = OutputKind.mask,
    alpha: Annotated[float, Form(ge=0.0, le=1.0, description="overlay: weight of the class colours")] = 0.5,
    legend: Annotated[bool, Form(description="overlay: append a legend of the classes found")] = True,
    multiscale: Annotated[bool, Form(description="test-time augmentation: 6 scales × flips (slower)")] = False,
) -> Response:
    started = time.perf_counter()
    label = model or pool.default
    status = 500
    metrics.in_flight.inc()
    try:
        served = pool.get_ready(model)
        label = served.spec.name
        data = await image.read()
        work = asyncio.create_task(segment(served, data, multiscale, executor, settings.max_image_pixels))
        gone = asyncio.create_task(_disconnected(request))
        done, _ = await asyncio.wait({work, gone}, timeout=settings.request_timeout_s,
                                     return_when=asyncio.FIRST_COMPLETED)
        if work not in done:
            work.cancel()  # withdraws its windows from the queue
            gone.cancel()
            if gone in done:
                status = CLIENT_GONE
                return Response(status_code=CLIENT_GONE)
            raise ServiceError(504, "timeout", f"the request took longer than {settings.request_timeout_s:g} s "
                               "(SEGMENTER_REQUEST_TIMEOUT_S); retry, or send a smaller image")
        gone.cancel()
        result: Segmentation = work.result()
        response = await asyncio.get_running_loop().run_in_executor(executor, _render, result, served, output,
                                                                     alpha, legend)
        metrics.queue_wait.labels(model=label).observe(result.timings["queue"])
        total = time.perf_counter() - started
        timing = ", ".join(f"{k};dur={v * 1000:.1f}" for k, v in {**result.timings, "total": total}.items())
        response.headers.update({"X-Segmenter-Model": served.spec.name, "X-Segmenter-Backend": served.spec.backend,
                                 "X-Segmenter-Windows": str(result.windows), "Server-Timing": timing})
        status = response.status_code
        return response
    except UnknownModel as exc:
        status = 404
        raise ServiceError(404, "unknown_model", str(exc)) from exc
    except ModelUnavailable as exc:
        status = 503
        raise _unavailable(str(exc), settings.retry_after_s) from exc
    except QueueFull as exc:
        status = 503
        metrics.rejected.labels(reason="queue_full").inc()
        raise _unavailable(f"the service is busy: {exc}; retry after a moment", settings.retry_after_s) from exc
    except BatchFailed as exc:
        status = 503
        raise _unavailable(f"the model failed on the batch holding this image ({exc}); retry",
                           settings.retry_after_s) from exc
    except ServiceError as exc:
        status = exc.status
        raise
    finally:
        metrics.in_flight.dec()
        metrics.requests.labels(model=label, output=output.value, status=str(status)).inc()
        metrics.latency.labels(model=label).observe(time.perf_counter() - started)
        await image.close()


def _unavailable(message: str, retry_after: int) -> ServiceError:
    return ServiceError(503, "unavailable", message, headers={"Retry-After": str(retry_after)})


def _render(result: Segmentation, served, output: OutputKind, alpha: float, legend: bool) -> Response:
    metadata = served.loaded.predictor.metadata
    if output is OutputKind.mask:
        return Response(render_mask(result.mask, metadata), media_type="image/png")
    if output is OutputKind.overlay:
        # The classes found travel in a header too, so a page can draw its own legend.
        present = classes_present(result.mask, metadata)
        header = json.dumps([{k: c[k] for k in ("id", "name", "color", "fraction")} for c in present],
                            ensure_ascii=True)
        image = render_overlay(result.rgb, result.mask, metadata, alpha, present if legend else None)
        return Response(image, media_type="image/png", headers={"X-Segmenter-Classes": header})
    return JSONResponse(render_json(result.mask, metadata, served.spec.name))
