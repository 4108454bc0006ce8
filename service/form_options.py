"""Request options read from a multipart form and the query string, through one pydantic model.

A client may send each option as a multipart form field or as a query parameter
(`curl -F image=@x.jpg "host/segment?model=fast&output=overlay"`); both are validated by the
route's options model. Nothing is silently ignored: an unknown parameter, a parameter (or the
image) given twice, or the same parameter given both ways with different values is a 422 that
names it. The route's OpenAPI description is generated from the same model.
"""

from __future__ import annotations

import functools
from collections import Counter
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.datastructures import UploadFile

IMAGE_FIELD = "image"
Options = TypeVar("Options", bound=BaseModel)


def _error(source: str, field: str, message: str, kind: str = "value_error") -> dict[str, Any]:
    return {"loc": (source, field), "msg": message, "type": kind}


@functools.cache
def _field_adapters(model: type[BaseModel]) -> dict[str, TypeAdapter]:
    """Per option, as clients spell it: a validator of that one field (type and constraints)."""
    # The field's constraints (field.metadata), not the FieldInfo itself: its alias means nothing here.
    return {field.alias or name: TypeAdapter(Annotated[(field.annotation, *field.metadata)] if field.metadata
                                             else field.annotation)
            for name, field in model.model_fields.items()}


def _choices(annotation: Any) -> list[str]:
    """The values of the Literal in a field's type (`Literal["a", "b"] | None` -> ["a", "b"])."""
    if get_origin(annotation) is Literal:
        return [str(v) for v in get_args(annotation)]
    return [choice for arg in get_args(annotation) for choice in _choices(arg)]


def _message(model: type[BaseModel], name: str, error: dict[str, Any]) -> str:
    """One line per mistake: a value outside a fixed set names it, the valid ones and the default;
    a validator's message comes without pydantic's "Value error, " prefix."""
    if error["type"] == "literal_error":
        field = next(f for n, f in model.model_fields.items() if (f.alias or n) == name)
        default = f" (default: {field.default})" if field.default is not None else ""
        return (f"unknown value {error['input']!r}; choose from {', '.join(_choices(field.annotation))}"
                + default)
    return error["msg"].removeprefix("Value error, ")


def _parse(model: type[BaseModel], source: str, values: dict[str, Any], problems: list[dict]) -> dict[str, Any]:
    """Each given option of one source validated on its own (so the two sources can be compared)."""
    parsed = {}
    for name, value in values.items():
        try:
            parsed[name] = _field_adapters(model)[name].validate_python(value)
        except ValidationError as exc:
            problems += [_error(source, name, _message(model, name, e), e["type"]) for e in exc.errors()]
    return parsed


def _check_names(source: str, items: list[tuple[str, Any]], allowed: set[str], problems: list[dict]) -> None:
    known = ", ".join(sorted(allowed))
    for name, count in Counter(name for name, _ in items).items():
        if name not in allowed:
            where = " (the image goes in the multipart body)" if name == IMAGE_FIELD else ""
            problems.append(_error(source, name, f"unknown parameter {name!r}{where}; known: {known}",
                                   "extra_forbidden"))
        elif count > 1:
            problems.append(_error(source, name, f"given {count} times; give it once", "duplicate"))


async def read_form(request: Request, model: type[Options]) -> tuple[UploadFile, Options]:
    """The uploaded image and the validated options of one request; RequestValidationError (422)
    naming every problem otherwise. The route closes the form's files (`request.close()`)."""
    form = await request.form()
    options = {field.alias or name for name, field in model.model_fields.items()}  # as clients spell them
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
    query_values = {k: v for k, v in query_items if k in options}
    body_values = {k: v for k, v in fields.items() if isinstance(v, str)}
    query, body = _parse(model, "query", query_values, problems), _parse(model, "body", body_values, problems)
    for name in sorted(query.keys() & body.keys()):
        if query[name] != body[name]:
            problems.append(_error("query", name, f"given as a query parameter ({query[name]!r}) and as a form "
                                   f"field ({body[name]!r}) with different values; give it once", "conflict"))
    merged = None
    if not problems:  # then the whole model: required options, and checks across options
        try:
            merged = model.model_validate({**body_values, **query_values})
        except ValidationError as exc:
            problems += [_error("body", ".".join(map(str, e["loc"])), e["msg"].removeprefix("Value error, "),
                                e["type"]) for e in exc.errors()]
    if problems:
        raise RequestValidationError(problems)
    return images[0], merged


def openapi_form(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a route: the options as query parameters and as form fields."""
    schema = model.model_json_schema()
    properties = schema["properties"]
    parameters = [{"name": name, "in": "query", "required": False, "description": prop.get("description", ""),
                   "schema": {k: v for k, v in prop.items() if k not in ("description", "title")}}
                  for name, prop in properties.items()]
    body = {"type": "object", "required": [IMAGE_FIELD], "additionalProperties": False,
            "properties": {IMAGE_FIELD: {"type": "string", "format": "binary",
                                         "description": "JPEG, PNG, WebP, BMP or TIFF"}, **properties}}
    return {"parameters": parameters,
            "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": body}}}}
