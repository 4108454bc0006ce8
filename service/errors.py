"""One JSON shape for every error the service returns.

    {"error": {"status": 415, "code": "unsupported_media_type", "message": "... send JPEG, PNG ..."}}
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from model import ImageError

STATUS_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "content_too_large",
                415: "unsupported_media_type", 422: "invalid_parameters", 500: "internal_error",
                503: "unavailable", 504: "timeout"}


class ServiceError(Exception):
    """An error a client caused (or can retry); becomes a JSON response with `status`."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


# model.ImageError kinds -> (HTTP status, error code)
_IMAGE_ERRORS = {"empty": (400, "empty_image"), "unsupported": (415, "unsupported_media_type"),
                 "corrupt": (400, "corrupt_image"), "too_large": (413, "image_too_large"),
                 "multi_frame": (415, "multi_frame_image")}
_IMAGE_HINTS = {"empty": "send the image's bytes in the `image` field",
                "too_large": "the limit is SEGMENTER_MAX_IMAGE_PIXELS; downscale the image before uploading",
                "corrupt": "upload the whole file"}


def image_error(exc: ImageError) -> ServiceError:
    """The HTTP answer to an image `model.read_image` refused."""
    status, code = _IMAGE_ERRORS[exc.kind]
    hint = _IMAGE_HINTS.get(exc.kind)
    return ServiceError(status, code, f"{exc}; {hint}" if hint else str(exc))


def error_body(status: int, code: str, message: str, **extra) -> dict:
    return {"error": {"status": status, "code": code, "message": message, **extra}}


def speaks_plain_errors(path: str) -> bool:
    """Routes whose clients expect their protocol's error shape, `{"error": "<message>"}`: the
    Open Inference Protocol (/v2) and Hugging Face's image-segmentation API."""
    return path == "/v2" or path.startswith("/v2/") or path.endswith("/image-segmentation")


PLAIN_ERROR_SCHEMA = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}


def plain_error_responses(descriptions: dict[int, str]) -> dict[int, dict]:
    """OpenAPI: the errors of a route that answers them as `{"error": "<message>"}`."""
    return {code: {"description": text, "content": {"application/json": {"schema": PLAIN_ERROR_SCHEMA}}}
            for code, text in descriptions.items()}


def error_json(path: str, status: int, code: str, message: str, **extra) -> dict:
    """The error body for a request to `path`: the protocol's own shape where it has one."""
    return {"error": message} if speaks_plain_errors(path) else error_body(status, code, message, **extra)


def too_large_message(limit: int) -> str:
    return f"the request body is larger than {limit:,} bytes (SEGMENTER_MAX_UPLOAD_BYTES); send a smaller image"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse(error_json(request.url.path, exc.status, exc.code, exc.message), exc.status,
                            headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code == 413:
            message = too_large_message(request.app.state.settings.max_upload_bytes)
        elif exc.status_code == 400 and "multipart" in message.lower():
            message = (f"{message.rstrip('.')}: the body is not well-formed multipart/form-data (or a part header, "
                       "such as the filename, is too long); send the image as the form field `image`")
        code = STATUS_CODES.get(exc.status_code, "error")
        return JSONResponse(error_json(request.url.path, exc.status_code, code, message), exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [{"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in exc.errors()]
        summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
        return JSONResponse(error_json(request.url.path, 422, "invalid_parameters", summary, problems=problems), 422)
