"""POST /attention: where the model looks — one layer's attention for a pixel's or a class's token.

Not batched: one image, one forward pass up to the layer, on the model's device, on the
preprocessing threads. The same limits and errors as /segment (upload and pixel limits from the
header, the model's in-flight memory budget, 404 for unknown models, 503 while loading). A model
served as an exported graph runs its PyTorch weights here, loaded at its first /attention
(`service.backends.AttentionModel`); 422 naming the fix when it was exported without them.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor, Future
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from model import ImageError, TooManyWindows, image_size, read_image
from model.inference import attention_picture, image_attention
from model.options import ScaleOption
from model.outputs import png_bytes
from service.backends import AttentionUnavailable
from service.deps import ExecutorDep, MetricsDep, PoolDep, SettingsDep
from service.errors import ServiceError, image_error
from service.form_options import openapi_form, read_form
from service.request_outcome import RESPONSES, abandon, recorded, resolve_model
from service.segment_options import selected_classes

router = APIRouter(tags=["attention"])


class AttentionOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    model: str | None = Field(None, max_length=200, description="model name or alias; default: the default model")
    layer: int = Field(ge=0, le=1000, description="0-based layer of the encoder or decoder")
    part: Literal["encoder", "decoder"] | None = Field(None, description="default: encoder for a pixel, "
                                                       "decoder for a class (class tokens live there)")
    pixel: str | None = Field(None, pattern=r"^\d+,\d+$", description="X,Y of a pixel: its patch's attention")
    target_class: str | None = Field(None, alias="class", max_length=200,
                                     description="a class name or id: its decoder token's attention")
    head: int | None = Field(None, ge=0, description="png: one head (default: a grid of every head)")
    output: Literal["png", "json"] = Field("png", description="png: heat maps over the image; json: the "
                                           "maps at patch resolution")
    scale: ScaleOption = Field(None, description="as for /segment: the image is seen as the model sees it (its "
                               "test scale)")


@router.post("/attention", responses=RESPONSES, response_class=Response, summary="Attention maps of one token",
             description="Upload an image as `image`; options as form fields or query parameters. Not batched "
             "(one image per forward pass). A model served as an exported graph loads the PyTorch weights it was "
             "exported from at its first /attention; `GET /models` says which models can (`attention`).",
             openapi_extra=openapi_form(AttentionOptions))
async def attention(request: Request, pool: PoolDep, settings: SettingsDep, metrics: MetricsDep,
                    executor: ExecutorDep) -> Response:
    try:
        with recorded(metrics, "attention", settings.retry_after_s) as outcome:
            image, options = await read_form(request, AttentionOptions)
            served = resolve_model(pool, options.model)
            outcome.model = served.spec.name
            data = await image.read()
            try:
                height, width = image_size(data, settings.max_image_pixels)
            except ImageError as exc:
                raise image_error(exc) from exc
            cost = served.loaded.predictor.cost(height, width, scale=options.scale).bytes
            thread: dict[str, Future] = {}
            work = asyncio.create_task(_reserve_and_run(served, executor, cost, thread, data, options,
                                                        settings.max_image_pixels))
            try:
                response = await asyncio.wait_for(asyncio.shield(work), settings.request_timeout_s)
            except TimeoutError as exc:
                _stop_or_abandon(request, work, thread)
                raise ServiceError(504, "timeout", f"the request took longer than "
                                   f"{settings.request_timeout_s:g} s") from exc
            except asyncio.CancelledError:  # the server is stopping
                _stop_or_abandon(request, work, thread)
                raise
            outcome.status = response.status_code
            return response
    finally:
        await request.close()


async def _reserve_and_run(served, executor: Executor, cost: int, thread: dict[str, Future], data: bytes,
                           options: AttentionOptions, max_pixels: int) -> Response:
    """The attention forward on a pool thread (`thread["future"]`), its memory reserved until that
    thread returns."""
    async with served.admission.reserve(cost):
        thread["future"] = executor.submit(_attention, served, data, options, max_pixels)
        return await asyncio.wrap_future(thread["future"])


def _stop_or_abandon(request: Request, work: asyncio.Task, thread: dict[str, Future]) -> None:
    """An ended request's work. Not on a thread yet (waiting for its reservation or for a free pool
    thread): cancelled, so it never runs. Running: one forward pass cannot stop halfway, so it runs
    on, holding its memory reservation, tracked (`app.state.abandoned`) until it ends."""
    future = thread.get("future")
    if future is None or future.cancel():
        work.cancel()
    abandon(request, work)


def _attention(served, data: bytes, options: AttentionOptions, max_pixels: int) -> Response:
    try:
        rgb = read_image(data, max_pixels)
    except ImageError as exc:
        raise image_error(exc) from exc
    class_id = None
    if options.target_class is not None:
        ids = selected_classes(options.target_class, served.loaded.predictor.metadata)
        if len(ids) != 1:
            raise ServiceError(422, "invalid_parameters", f"class: one class, whose token's attention to draw; got "
                               f"{len(ids)} ({options.target_class!r})")
        (class_id,) = ids
    part = options.part or ("decoder" if class_id is not None else "encoder")
    pixel = tuple(int(v) for v in options.pixel.split(",")) if options.pixel else None
    try:
        predictor = served.loaded.attention.predictor()  # an exported graph's PyTorch weights: loaded once, here
    except AttentionUnavailable as exc:
        if exc.retry_after is not None:  # a download or a full GPU: may pass, try again later
            raise ServiceError(503, "attention_unavailable", str(exc),
                               {"Retry-After": str(max(1, round(exc.retry_after)))}) from exc
        raise ServiceError(422, "attention_unavailable", str(exc)) from exc
    try:
        result = image_attention(predictor, rgb, options.layer, part, pixel, class_id, options.scale)
        if options.output == "png":
            return Response(png_bytes(attention_picture(result, options.head)), media_type="image/png")
    except TooManyWindows as exc:
        raise ServiceError(413, "too_many_tokens", str(exc)) from exc
    except ValueError as exc:
        raise ServiceError(422, "invalid_parameters", str(exc)) from exc
    maps = result.token_maps.cpu()
    return JSONResponse({"model": served.spec.name, "part": part, "layer": options.layer,
                         "grid": list(result.maps.grid), "patch_size": result.maps.patch_size,
                         "image_size": list(result.image.shape[:2]), "pixel": result.scaled_pixel,
                         "class": class_id, "heads": [[[round(float(v), 6) for v in row] for row in head]
                                                      for head in maps.tolist()]})
