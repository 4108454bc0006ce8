"""The parameters of POST /segment: one pydantic model, read from the form and the query string.

A client may send each parameter as a multipart form field or as a query parameter
(`curl -F image=@x.jpg "host/segment?model=fast&output=overlay"`); both are validated by
`SegmentOptions`. Nothing is silently ignored: an unknown parameter, a parameter (or the image)
given twice, or the same parameter given both ways with different values is a 422 that names
it. The OpenAPI description of the route is generated from the same model.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any, Literal

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile

IMAGE_FIELD = "image"
Output = Literal["mask", "overlay", "json"]


class SegmentOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, max_length=200, description="model name or alias (`fast`, `accurate`); "
                              "default: the service's default model")
    output: Output = Field("mask", description="mask (PNG of class ids) | overlay (RGB PNG) | json")
    alpha: float = Field(0.5, ge=0.0, le=1.0, description="overlay: weight of the class colours")
    legend: bool = Field(True, description="overlay: append a legend of the classes found")
    multiscale: bool = Field(False, description="test-time augmentation: 6 scales × flips (slower)")
    scale: Annotated[int, Field(ge=1, le=16384)] | Literal["none"] | None = Field(None, description=(
        "resize the image before segmenting it to this short side in pixels, or `none` to use it at its own "
        "size; default: the model's test scale (e.g. ADE20K: short side 512, long side at most 2048). The "
        "answer is always at the image's own size"))


def _error(source: str, field: str, message: str, kind: str = "value_error") -> dict[str, Any]:
    return {"loc": (source, field), "msg": message, "type": kind}


def _validate(source: str, values: dict[str, Any], problems: list[dict]) -> SegmentOptions | None:
    try:
        return SegmentOptions.model_validate(values)
    except ValidationError as exc:
        problems += [_error(source, ".".join(map(str, e["loc"])), e["msg"], e["type"]) for e in exc.errors()]
        return None


def _check_names(source: str, items: list[tuple[str, Any]], allowed: set[str], problems: list[dict]) -> None:
    known = ", ".join(sorted(allowed))
    for name, count in Counter(name for name, _ in items).items():
        if name not in allowed:
            where = " (the image goes in the multipart body)" if name == IMAGE_FIELD else ""
            problems.append(_error(source, name, f"unknown parameter {name!r}{where}; known: {known}",
                                   "extra_forbidden"))
        elif count > 1:
            problems.append(_error(source, name, f"given {count} times; give it once", "duplicate"))


async def read_segment_request(request: Request) -> tuple[UploadFile, SegmentOptions]:
    """The uploaded image and the validated options of one request; RequestValidationError (422)
    naming every problem otherwise. The form's files are closed by Starlette with the request."""
    form = await request.form()
    options = set(SegmentOptions.model_fields)
    query_items, form_items = request.query_params.multi_items(), form.multi_items()
    problems: list[dict] = []
    _check_names("query", query_items, options, problems)
    _check_names("body", form_items, options | {IMAGE_FIELD}, problems)
    images = form.getlist(IMAGE_FIELD)
    if not images:
        problems.append(_error("body", IMAGE_FIELD, "Field required: send the image as the multipart file field "
                               f"`{IMAGE_FIELD}`", "missing"))
    elif not isinstance(images[0], UploadFile):
        problems.append(_error("body", IMAGE_FIELD, "expected a file upload, got a text field"))
    fields = {k: v for k, v in form_items if k in options}
    for name, value in fields.items():
        if isinstance(value, UploadFile):
            problems.append(_error("body", name, "expected a value, got a file upload"))
    query = _validate("query", {k: v for k, v in query_items if k in options}, problems)
    body = _validate("body", {k: v for k, v in fields.items() if isinstance(v, str)}, problems)
    if query is not None and body is not None:
        for name in sorted(query.model_fields_set & body.model_fields_set):
            if getattr(query, name) != getattr(body, name):
                problems.append(_error("query", name, f"given as a query parameter ({getattr(query, name)!r}) and as "
                                       f"a form field ({getattr(body, name)!r}) with different values; give it once",
                                       "conflict"))
    if problems:
        raise RequestValidationError(problems)
    assert query is not None and body is not None  # no problems: both validated
    merged = body.model_copy(update={name: getattr(query, name) for name in query.model_fields_set})
    return images[0], merged


def openapi_description() -> dict[str, Any]:
    """`openapi_extra` for the route: the options as query parameters and as form fields."""
    schema = SegmentOptions.model_json_schema()
    properties = schema["properties"]
    parameters = [{"name": name, "in": "query", "required": False, "description": prop.get("description", ""),
                   "schema": {k: v for k, v in prop.items() if k not in ("description", "title")}}
                  for name, prop in properties.items()]
    body = {"type": "object", "required": [IMAGE_FIELD], "additionalProperties": False,
            "properties": {IMAGE_FIELD: {"type": "string", "format": "binary",
                                         "description": "JPEG, PNG, WebP, BMP or TIFF"}, **properties}}
    return {"parameters": parameters,
            "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": body}}}}
