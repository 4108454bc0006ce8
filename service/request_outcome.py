"""What every image route shares: the model a request names, the errors it documents, the
request counter it always increments — with the status the client actually got — and the work
of a request that ended early."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.batcher import BatchFailed, QueueFull
from service.errors import STATUS_CODES, ServiceError, error_body
from service.metrics import UNKNOWN_MODEL, ServiceMetrics
from service.model_pool import ModelPool, ModelUnavailable, ServedModel, UnknownModel
from service.segmentation import ClientGone, track_abandoned

CLIENT_GONE = 499  # nginx's code for "client closed the request"; only ever seen in metrics


def _error_responses() -> dict[int, dict]:
    described = {400: "Corrupt, truncated or empty image", 404: "Unknown model (the known ones are listed)",
                 413: "Upload over the byte limit, or image over the pixel limit",
                 415: "Not an image, an unsupported format, or more than one frame",
                 422: "Invalid, unknown, repeated or conflicting parameters (each is named)",
                 503: "Queue full, model not ready, or its batch failed (retry)",
                 504: "Request took longer than the timeout"}
    return {code: {"description": text, "content": {"application/json": {
                "example": error_body(code, STATUS_CODES[code], text)}}} for code, text in described.items()}


RESPONSES = {200: {"description": "a PNG or JSON, as `output` asks",
                   "content": {"image/png": {}, "application/json": {}}},
             **_error_responses()}


def abandon(request: Request, work: asyncio.Task) -> None:
    """Track the work of a request that ended (timeout, client gone, shutdown) until it stops."""
    track_abandoned(request.app.state.abandoned, work)


async def client_disconnected(request: Request) -> None:
    """Return when the client goes away (the body has been read, so only disconnect comes)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def unavailable(message: str, retry_after: int) -> ServiceError:
    return ServiceError(503, "unavailable", message, headers={"Retry-After": str(retry_after)})


def resolve_model(pool: ModelPool, name: str | None) -> ServedModel:
    """The ready model a request names (its default when None); 404 unknown, 503 not ready."""
    try:
        return pool.get_ready(name)
    except UnknownModel as exc:
        raise ServiceError(404, "unknown_model", str(exc)) from exc
    except ModelUnavailable as exc:
        raise unavailable(str(exc), pool.settings.retry_after_s) from exc


@dataclass
class Outcome:
    """The labels of one request's count: the route fills them in as it learns them."""

    output: str
    model: str = UNKNOWN_MODEL
    status: int = 500  # whatever escapes unexplained is a server error
    started: float = field(default_factory=time.perf_counter)


@contextlib.contextmanager
def recorded(metrics: ServiceMetrics, output: str, retry_after: int) -> Iterator[Outcome]:
    """Count the request once, however it ends; a full queue or a failed batch becomes 503 with
    Retry-After; a client that hung up is counted as 499."""
    outcome = Outcome(output)
    try:
        yield outcome
    except ServiceError as exc:
        outcome.status = exc.status
        raise
    except RequestValidationError:
        outcome.status = 422
        raise
    except StarletteHTTPException as exc:  # e.g. the body over the upload limit while it arrives: 413
        outcome.status = exc.status_code
        raise
    except QueueFull as exc:
        outcome.status = 503
        metrics.rejected.labels(reason="queue_full").inc()
        raise unavailable(f"the service is busy: {exc}; retry after a moment", retry_after) from exc
    except BatchFailed as exc:
        outcome.status = 503
        raise unavailable(f"the model failed on the batch holding this image ({exc}); retry", retry_after) from exc
    except (ClientGone, asyncio.CancelledError):  # the client hung up (gRPC: its handler is cancelled)
        outcome.status = CLIENT_GONE
        raise
    finally:
        metrics.requests.labels(model=outcome.model, output=outcome.output, status=str(outcome.status)).inc()


@contextlib.contextmanager
def segmentation_request(metrics: ServiceMetrics, output: str, retry_after: int) -> Iterator[Outcome]:
    """`recorded`, and a segmentation request's in-flight gauge and latency (every protocol's)."""
    metrics.in_flight.inc()
    outcome = Outcome(output)
    try:
        with recorded(metrics, output, retry_after) as outcome:
            yield outcome
    finally:
        metrics.in_flight.dec()
        metrics.latency.labels(model=outcome.model).observe(time.perf_counter() - outcome.started)
