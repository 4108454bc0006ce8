"""The Open Inference Protocol (KServe v2) over HTTP, with the binary tensor data extension.

    GET  /v2                                   server metadata
    GET  /v2/health/live | /v2/health/ready    liveness, readiness (every model loaded)
    GET  /v2/models/{name}[/versions/1]        model metadata: inputs, outputs, datatypes, shapes
    GET  /v2/models/{name}[/versions/1]/ready
    POST /v2/models/{name}[/versions/1]/infer  JSON tensors, or JSON + binary (Inference-Header-Content-Length)

Errors are the protocol's: `{"error": "<message>"}` with the status `/segment` would answer.
This file only translates: `service.oip.tensors` reads and writes tensors, `service.oip.infer`
runs the request through the one inference path.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, StrictInt, ValidationError

from service.deps import PoolDep
from service.errors import ServiceError, plain_error_responses
from service.oip.infer import infer
from service.oip.metadata import VERSION, find_model, model_metadata, server_metadata
from service.oip.tensors import (
    BINARY_OUTPUT,
    InputTensor,
    OutputTensor,
    V2Request,
    bad_request,
    from_base64,
    raw_data,
    read_request,
)
from service.request_outcome import CLIENT_GONE, client_disconnected
from service.segmentation import ClientGone

router = APIRouter(prefix="/v2", tags=["open inference protocol (v2)"])
HEADER_LENGTH = "Inference-Header-Content-Length"
BINARY_SIZE = "binary_data_size"


# Errors reach the client as `{"error": "<message>"}` (service.errors.error_json: /v2 paths).
_ERRORS = {400: "a request that is not a v2 request for this model: tensors, datatypes, shapes, parameters (named)",
           404: "unknown model or version (the known ones are listed)",
           413: "body over the byte limit, image over the pixel limit, or too many sliding windows",
           415: "not an image, an unsupported format, or more than one frame",
           503: "model loading or failed, queue full, or its batch failed (Retry-After)",
           504: "request took longer than its timeout"}


def _errors(*codes: int) -> dict[int, dict]:
    return plain_error_responses({code: _ERRORS[code] for code in codes})


@router.get("", summary="Server metadata")
async def server() -> dict:
    return server_metadata()


@router.get("/health/live", summary="Liveness")
async def live() -> dict:
    return {"live": True}


@router.get("/health/ready", summary="Readiness: every model loaded",
            responses={503: {"description": "some model is loading or failed"}})
async def ready(pool: PoolDep) -> JSONResponse:
    return JSONResponse({"ready": pool.all_ready}, 200 if pool.all_ready else 503)


@router.get("/models/{model}", summary="Model metadata", responses=_errors(404, 503))
async def metadata(model: str, pool: PoolDep) -> dict:
    return model_metadata(find_model(pool, model))


@router.get("/models/{model}/versions/{version}", summary="Model metadata", responses=_errors(404, 503))
async def version_metadata(model: str, version: str, pool: PoolDep) -> dict:
    return model_metadata(find_model(pool, model, version))


READY_RESPONSES = {**_errors(404), 503: {"description": "the model is loading or failed: `ready` is false"}}


@router.get("/models/{model}/ready", summary="Model readiness", responses=READY_RESPONSES)
async def model_ready(model: str, pool: PoolDep) -> JSONResponse:
    return _ready(find_model(pool, model))


@router.get("/models/{model}/versions/{version}/ready", summary="Model readiness", responses=READY_RESPONSES)
async def version_ready(model: str, version: str, pool: PoolDep) -> JSONResponse:
    return _ready(find_model(pool, model, version))


def _ready(served) -> JSONResponse:
    is_ready = served.state == "ready"
    return JSONResponse({"name": served.spec.name, "ready": is_ready}, 200 if is_ready else 503)


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    shape: list[StrictInt]
    datatype: str
    parameters: dict[str, Any] = {}
    data: list | None = None


class _Output(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    parameters: dict[str, Any] = {}


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = None
    parameters: dict[str, Any] = {}
    inputs: list[_Input]
    outputs: list[_Output] | None = None


INFER_DESCRIPTION = ("One input, `image`: BYTES [N] (encoded images; as binary tensor data, or base64 strings in "
                     "JSON) or UINT8 [H,W,3] / [N,H,W,3] (RGB pixels). Outputs: `class_ids` (default) and "
                     "`confidence`. Parameters: `scale`, `multiscale`, `classes`, as for POST /segment.")


INFER_RESPONSES = {200: {"description": "the outputs: JSON, or JSON followed by binary tensor data (its length in "
                         "the Inference-Header-Content-Length header)",
                         "content": {"application/json": {}, "application/octet-stream": {}}},
                   **_errors(400, 404, 413, 415, 503, 504)}


@router.post("/models/{model}/infer", summary="Segment images (v2 inference)", description=INFER_DESCRIPTION,
             responses=INFER_RESPONSES)
async def infer_http(model: str, request: Request) -> Response:
    return await _infer(model, None, request)


@router.post("/models/{model}/versions/{version}/infer", summary="Segment images (v2 inference)",
             description=INFER_DESCRIPTION, responses=INFER_RESPONSES)
async def version_infer(model: str, version: str, request: Request) -> Response:
    return await _infer(model, version, request)


async def _infer(model: str, version: str | None, request: Request) -> Response:
    state = request.app.state

    async def read() -> V2Request:  # counted and timed by `infer`, like everything after it
        body = await request.body()
        return await asyncio.get_running_loop().run_in_executor(
            state.executor, _read, body, request.headers.get("content-encoding"), request.headers.get(HEADER_LENGTH),
            state.settings.max_upload_bytes)

    try:
        return await infer(state, model, version, read, _answer, "v2_http", lambda: client_disconnected(request))
    except ClientGone:
        return Response(status_code=CLIENT_GONE)


def _read(body: bytes, encoding: str | None, header_length: str | None, limit: int) -> V2Request:
    """The request: JSON and binary tensor data, inflated if compressed; which outputs answer in
    JSON (not `binary_data`, per output or by `binary_data_output`)."""
    document, binary = _parse(_decompressed(body, encoding, limit), header_length)
    parameters = dict(document.parameters)
    binary_output = parameters.pop(BINARY_OUTPUT, False)
    if not isinstance(binary_output, bool):
        raise bad_request(f"parameter {BINARY_OUTPUT}: {binary_output!r} is not true or false")
    for output in document.outputs or []:
        if unknown := sorted(set(output.parameters) - {"binary_data"}):
            raise bad_request(f"output {output.name}: unknown parameters {unknown}; this server knows binary_data "
                              "(classification is not supported)")
        if not isinstance(output.parameters.get("binary_data", False), bool):
            raise bad_request(f"output {output.name}: binary_data must be true or false")
    request = read_request(_inputs(document.inputs, binary), parameters,
                           [o.name for o in document.outputs] if document.outputs is not None else None)
    asked = {o.name: o.parameters.get("binary_data", binary_output) for o in document.outputs or []}
    request.id = document.id or ""
    request.json_outputs = tuple(name for name in request.outputs if not asked.get(name, binary_output))
    return request


def _decompressed(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The body, inflated when the client compressed it (tritonclient's request_compression_algorithm),
    never beyond the upload limit (a small gzip body must not become gigabytes)."""
    encoding = (encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    wbits = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}.get(encoding)
    if wbits is None:
        raise ServiceError(415, "unsupported_media_type", f"Content-Encoding {encoding} is not supported; send gzip, "
                           "deflate or an uncompressed body")
    inflater = zlib.decompressobj(wbits)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise bad_request(f"the body is not valid {encoding} ({exc})") from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise ServiceError(413, "content_too_large", f"the inflated request body is larger than {limit:,} bytes "
                           "(SEGMENTER_MAX_UPLOAD_BYTES); send a smaller image")
    if inflater.unused_data or not inflater.eof:
        raise bad_request(f"the body is not one complete {encoding} stream (truncated, or several concatenated)")
    return data


def _parse(body: bytes, header_length: str | None) -> tuple[_Request, memoryview]:
    """The JSON part of the request (all of it, or its first Inference-Header-Content-Length
    bytes) and the binary tensor data after it."""
    view = memoryview(body)
    if header_length is not None:
        if not (header_length.isascii() and header_length.isdigit()) or int(header_length) > len(body):
            raise bad_request(f"{HEADER_LENGTH}: {header_length!r} is not a length within the {len(body):,}-byte body")
        view, binary = view[:int(header_length)], view[int(header_length):]
    else:
        binary = memoryview(b"")
    try:
        document = json.loads(bytes(view))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        hint = "" if header_length else f" (binary tensor data needs the {HEADER_LENGTH} header)"
        raise bad_request(f"the request is not JSON: {exc or 'nested too deeply'}{hint}") from None
    try:
        return _Request.model_validate(document), binary
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'request'}: {e['msg']}" for e in exc.errors())
        raise bad_request(f"the request is not a v2 inference request: {problems}") from None


def _inputs(inputs: list[_Input], binary: memoryview) -> list[InputTensor]:
    """Each input's data, from JSON `data` or from its slice of the binary tensor data."""
    tensors, at = [], 0
    for item in inputs:
        parameters = dict(item.parameters)
        size = parameters.pop(BINARY_SIZE, None)
        if parameters:
            raise bad_request(f"input {item.name}: unknown parameters {sorted(parameters)} (shared memory is not "
                              "supported; send the data in the request)")
        if size is not None:
            if item.data is not None:
                raise bad_request(f"input {item.name}: give its data in JSON or as binary data, not both")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0 or at + size > len(binary):
                raise bad_request(f"input {item.name}: {BINARY_SIZE} {size!r} does not fit the "
                                  f"{len(binary) - at:,} bytes of binary data left")
            data, at = raw_data(item.name, item.datatype, binary[at:at + size]), at + size
        elif item.data is None:
            raise bad_request(f"input {item.name}: no data (give `data`, or parameters.{BINARY_SIZE} and binary data)")
        else:
            data = _json_data(item)
        tensors.append(InputTensor(item.name, item.datatype, item.shape, data))
    if at != len(binary):
        raise bad_request(f"{len(binary) - at:,} bytes of binary data follow the inputs' declared sizes")
    return tensors


def _json_data(item: _Input) -> list[bytes] | np.ndarray:
    flat = list(_flatten(item.data))
    if item.datatype == "BYTES":
        if not all(isinstance(v, str) for v in flat):
            raise bad_request(f"input {item.name}: BYTES data in JSON must be strings (the images as base64)")
        return [from_base64(v, item.name) for v in flat]
    if item.datatype == "UINT8":
        if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in flat):
            raise bad_request(f"input {item.name}: UINT8 data must be integers 0..255")
        return np.array(flat, dtype=np.uint8)
    return np.empty(0)  # refused by read_images, which names the datatypes accepted


def _flatten(data: list):
    for value in data:
        if isinstance(value, list):
            yield from _flatten(value)
        else:
            yield value


def _answer(name: str, request: V2Request, tensors: list[OutputTensor]) -> Response:
    """JSON outputs, or binary tensor data after the JSON where asked for (run on the executor)."""
    outputs, chunks = [], []
    for tensor in tensors:
        entry: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype, "shape": tensor.shape}
        if tensor.name in request.json_outputs:
            entry["data"] = tensor.array.ravel().tolist()
        else:
            raw = tensor.raw()
            entry["parameters"] = {BINARY_SIZE: len(raw)}
            chunks.append(raw)
        outputs.append(entry)
    document = {"model_name": name, "model_version": VERSION, **({"id": request.id} if request.id else {}),
                "outputs": outputs}
    header = json.dumps(document, separators=(",", ":")).encode()
    if not chunks:
        return Response(header, media_type="application/json")
    return Response(b"".join([header, *chunks]), media_type="application/octet-stream",
                    headers={HEADER_LENGTH: str(len(header))})
