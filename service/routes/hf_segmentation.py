"""Hugging Face's image-segmentation task API: `POST /models/{name}/image-segmentation`.

What `huggingface_hub.InferenceClient(model=URL).image_segmentation(image)`, huggingface.js and
Inference Endpoints' custom containers send and expect:

    request:  the image's bytes as the body, or {"inputs": "<base64>", "parameters": {...}}
    answer:   [{"label": "wall", "score": 0.93, "mask": "<base64 PNG, 0/255, image size>"}, ...]

one element per class present (most pixels first), `score` the mean probability of its pixels.
Parameters: `subtask` (only `semantic`), `threshold` (drop segments scoring below it),
`mask_threshold` (leave pixels less sure than it out of every mask), and `scale`, `multiscale`,
`classes` as for `POST /segment`. Anything else is a 422 naming it. Errors are `{"error": "..."}`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from model import ModelMetadata
from model.options import SegmentOptions
from model.outputs import class_segments, keep_only, not_selected, png_bytes, selected_confidence
from service.errors import ServiceError, plain_error_responses
from service.request_outcome import CLIENT_GONE, client_disconnected, resolve_model, segmentation_request
from service.segment_options import options_from, render_options
from service.segmentation import Abort, ClientGone, Segmentation, segment, segment_or_give_up

router = APIRouter(tags=["hugging face"])
OPTIONS = ("scale", "multiscale", "classes")
HF_PARAMETERS = ("subtask", "threshold", "mask_threshold")
NOT_SEMANTIC = {"overlap_mask_area_threshold": "it merges overlapping instance masks (instance and panoptic "
                "segmentation); Segmenter's semantic masks never overlap: drop it"}

DESCRIPTION = ("The body is the image's bytes (any Content-Type but application/json), or JSON "
               '`{"inputs": "<base64 image>", "parameters": {...}}`. Parameters: `subtask` (`semantic`), '
               "`threshold`, `mask_threshold` (0..1), `scale`, `multiscale`, `classes`. The answer lists one "
               "segment per class present: label, score (mean probability of its pixels), mask (base64 PNG, "
               "255 inside).")


def _unprocessable(message: str) -> ServiceError:
    return ServiceError(422, "invalid_parameters", message)


RESPONSES = plain_error_responses({  # answered as {"error": "<message>"} (service.errors.error_json)
    400: "corrupt, truncated or empty image, or a body that is not JSON", 404: "unknown model (the known ones listed)",
    413: "body over the byte limit, image over the pixel limit, or too many sliding windows",
    415: "not an image, an unsupported format, or more than one frame",
    422: "unknown or unsupported parameters, or a JSON body of the wrong shape (each named)",
    503: "model loading or failed, queue full, or its batch failed (Retry-After)",
    504: "request took longer than the timeout"})


@router.post("/models/{model}/image-segmentation", summary="Segment an image (Hugging Face task API)",
             description=DESCRIPTION, response_class=JSONResponse, responses=RESPONSES)
async def image_segmentation(model: str, request: Request) -> Response:
    state = request.app.state
    settings, metrics = state.settings, state.metrics
    with segmentation_request(metrics, "hf", settings.retry_after_s) as outcome:
        served = resolve_model(state.pool, model)
        outcome.model = served.spec.name
        inputs, parameters = _read(await request.body(), request.headers.get("content-type", ""))
        options, threshold, mask_threshold = _parameters(parameters)
        data = _image_bytes(inputs)
        metadata = served.loaded.predictor.metadata
        selected = render_options(options, metadata).selected  # an unknown class: 422 before any work
        abort = Abort()
        work = segment(served, data, options, state.executor, settings.max_image_pixels, abort, metrics,
                       confidence=True)
        try:
            result = await segment_or_give_up(work, [abort], settings, state.abandoned, client_disconnected(request))
        except ClientGone:
            outcome.status = CLIENT_GONE
            return Response(status_code=CLIENT_GONE)
        body = await asyncio.get_running_loop().run_in_executor(
            state.executor, _answer, result, metadata, selected, threshold, mask_threshold)
        outcome.status = 200
        return Response(body, media_type="application/json", headers={"X-Segmenter-Model": served.spec.name})


def _read(body: bytes, content_type: str) -> tuple[bytes | str, dict[str, Any]]:
    """(image bytes, or base64 text, and parameters) from a raw body or the JSON form."""
    if content_type.split(";")[0].strip().lower() != "application/json":
        return body, {}
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ServiceError(400, "bad_request", f"the body is not JSON ({exc}); send the image's bytes, or "
                           '{"inputs": "<base64 image>", "parameters": {...}}') from None
    if not isinstance(document, dict) or "inputs" not in document:
        raise _unprocessable('the JSON body must be {"inputs": "<base64 image>", "parameters": {...}}')
    if unknown := sorted(set(document) - {"inputs", "parameters"}):
        raise _unprocessable(f"unknown fields {unknown}; the body has inputs and parameters")
    inputs, parameters = document["inputs"], document.get("parameters") or {}
    if not isinstance(inputs, str):
        raise _unprocessable("inputs must be the image as a base64 string")
    if not isinstance(parameters, dict):
        raise _unprocessable("parameters must be an object")
    return inputs, parameters


def _image_bytes(inputs: bytes | str) -> bytes:
    if isinstance(inputs, bytes):
        return inputs
    try:
        return base64.b64decode(inputs, validate=True)
    except (binascii.Error, ValueError):
        raise _unprocessable("inputs must be the image as base64 (this server does not fetch URLs)") from None


def _parameters(parameters: dict[str, Any]) -> tuple[SegmentOptions, float | None, float | None]:
    """SegmentOptions and the two thresholds; a 422 names each parameter that is unknown, unset
    for this model kind, or out of range."""
    problems = []
    for name, value in parameters.items():
        if name in NOT_SEMANTIC and value is not None:
            problems.append(f"{name}: {NOT_SEMANTIC[name]}")
        elif name == "subtask" and value not in (None, "semantic"):
            problems.append(f"subtask: {value!r}; Segmenter does semantic segmentation only: use semantic or drop it")
        elif name in ("threshold", "mask_threshold") and value is not None and (
                not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1):
            problems.append(f"{name}: {value!r} is not a number from 0 to 1")
        elif name not in (*HF_PARAMETERS, *OPTIONS, *NOT_SEMANTIC):
            problems.append(f"unknown parameter {name!r}; the parameters are {', '.join((*HF_PARAMETERS, *OPTIONS))}")
    if problems:
        raise _unprocessable("; ".join(problems))
    options = options_from({k: v for k, v in parameters.items() if k in OPTIONS and v is not None}, 422)
    return options, parameters.get("threshold"), parameters.get("mask_threshold")


def _answer(result: Segmentation, metadata: ModelMetadata, selected: tuple[int, ...] | None,
            threshold: float | None, mask_threshold: float | None) -> bytes:
    """The HF output list: one segment per class present, its mask a base64 0/255 PNG."""
    kept = keep_only(result.mask, selected, metadata)
    confidence = selected_confidence(result.confidence, result.mask, kept)
    if mask_threshold is not None:  # pixels the model is less sure of belong to no segment
        outside = not_selected(metadata)  # as for pixels outside a `classes` selection: no class's
        kept = np.where(confidence >= mask_threshold, kept.astype(np.uint16 if outside > 255 else kept.dtype),
                        np.array(outside, np.uint16 if outside > 255 else kept.dtype))
    segments = [s for s in class_segments(kept, confidence, metadata, selected)
                if threshold is None or s["score"] >= threshold]
    return json.dumps([{"label": s["name"], "score": round(s["score"], 6),
                        "mask": base64.b64encode(png_bytes(s["mask"].astype(np.uint8) * 255)).decode()}
                       for s in segments]).encode()
