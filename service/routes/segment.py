"""POST /segment: an uploaded image in, a class mask, an overlay or JSON out."""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import Executor

from fastapi import APIRouter, Request
from fastapi.responses import Response

from model.outputs import FORMAT_MEDIA_TYPES, classes_present, encode_image, keep_only, render, render_overlay
from service.deps import ExecutorDep, MetricsDep, PoolDep, SettingsDep
from service.errors import error_body
from service.form_options import openapi_form, read_form
from service.metrics import ServiceMetrics
from service.model_pool import ServedModel
from service.request_outcome import CLIENT_GONE, RESPONSES, client_disconnected, resolve_model, segmentation_request
from service.segment_options import SegmentForm, answer_format, render_options
from service.segmentation import Abort, ClientGone, Segmentation, segment, segment_or_give_up
from service.settings import Settings

router = APIRouter(tags=["segmentation"])

NOT_ACCEPTABLE = "Accept allows nothing the output can be (mask and confidence: image/png; overlay: image/png, " \
    "image/jpeg, image/webp; json: application/json)"
SEGMENT_RESPONSES = {
    **RESPONSES,
    200: {"description": "the output asked for: a PNG, JSON, or for `output=overlay` PNG, JPEG or WebP (`format`, "
          "else `Accept`)", "content": {media: {} for media in ("image/png", "image/jpeg", "image/webp",
                                                                "application/json")}},
    406: {"description": NOT_ACCEPTABLE, "content": {"application/json": {
        "example": error_body(406, "not_acceptable", NOT_ACCEPTABLE)}}},
}


DESCRIPTION = ("Upload an image as the multipart file field `image`. Every other parameter may be a form field or "
               "a query parameter (`/segment?model=fast&output=overlay`). An unknown parameter, a parameter or "
               "image given twice, or one given both ways with different values is a 422 naming it. The overlay "
               "is PNG unless `format` (or, without it, the `Accept` header: `image/jpeg`, `image/webp`) asks for "
               "JPEG or WebP; an Accept that allows nothing the output can be is a 406.")


@router.post("/segment", responses=SEGMENT_RESPONSES, response_class=Response, summary="Segment an image",
             description=DESCRIPTION, openapi_extra=openapi_form(SegmentForm))
async def segment_image(request: Request, pool: PoolDep, settings: SettingsDep, metrics: MetricsDep,
                        executor: ExecutorDep) -> Response:
    try:
        with segmentation_request(metrics, "invalid", settings.retry_after_s) as outcome:
            image, options = await read_form(request, SegmentForm)
            outcome.output = options.output
            image_format = answer_format(options, request.headers.get("accept"))  # before any work: 406, 422
            served = resolve_model(pool, options.model)
            outcome.model = served.spec.name
            try:
                result = await _segment_or_give_up(request, served, await image.read(), options, settings, executor,
                                                   metrics)
            except ClientGone:
                outcome.status = CLIENT_GONE
                return Response(status_code=CLIENT_GONE)
            rendering = time.perf_counter()
            response = await asyncio.get_running_loop().run_in_executor(executor, _render, result, served, options,
                                                                        image_format)
            result.timings["render"] = time.perf_counter() - rendering
            metrics.queue_wait.labels(model=outcome.model).observe(result.timings["queue"])
            _add_headers(response, served, result, time.perf_counter() - outcome.started)
            outcome.status = response.status_code
            return response
    finally:
        await request.close()


async def _segment_or_give_up(request: Request, served: ServedModel, data: bytes, options: SegmentForm,
                              settings: Settings, executor: Executor, metrics: ServiceMetrics) -> Segmentation:
    """Segment, unless the client hangs up (ClientGone) or the timeout passes (504) first."""
    abort = Abort()
    work = segment(served, data, options, executor, settings.max_image_pixels, abort, metrics,
                   confidence=options.output == "confidence")
    return await segment_or_give_up(work, [abort], settings, request.app.state.abandoned, client_disconnected(request))


def _add_headers(response: Response, served: ServedModel, result: Segmentation, total: float) -> None:
    timing = ", ".join(f"{k};dur={v * 1000:.1f}" for k, v in {**result.timings, "total": total}.items())
    response.headers.update({"X-Segmenter-Model": served.spec.name, "X-Segmenter-Backend": served.spec.backend,
                             "X-Segmenter-Windows": str(result.windows), "Server-Timing": timing})


def _render(result: Segmentation, served: ServedModel, options: SegmentForm, image_format: str) -> Response:
    """The output asked for, rendered by `model.outputs` as `segmenter predict --output` renders it,
    encoded as `image_format` (`answer_format`)."""
    metadata = served.loaded.predictor.metadata
    drawing = render_options(options, metadata)
    headers = {"Vary": "Accept"}  # the Accept header may choose the encoding
    if options.output != "overlay":
        body = render(options.output, result.rgb, result.mask, metadata, served.spec.name, result.confidence, drawing)
        return Response(body, media_type=FORMAT_MEDIA_TYPES[image_format], headers=headers)
    # The overlay as `render` draws it, its classes counted once for the legend and for a header
    # (so a page can draw its own legend).
    kept = keep_only(result.mask, drawing.selected, metadata)
    present = classes_present(kept, metadata, drawing.selected)
    header = json.dumps([{k: c[k] for k in ("id", "name", "color", "fraction")} for c in present], ensure_ascii=True)
    picture = render_overlay(result.rgb, kept, metadata, drawing, present)
    return Response(encode_image(picture, image_format), media_type=FORMAT_MEDIA_TYPES[image_format],
                    headers={**headers, "X-Segmenter-Classes": header})
