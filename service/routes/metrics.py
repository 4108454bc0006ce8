"""GET /metrics: Prometheus exposition."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.deps import MetricsDep, PoolDep

router = APIRouter(tags=["metrics"])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}})
async def metrics_endpoint(metrics: MetricsDep, pool: PoolDep) -> Response:
    for name, served in pool.models.items():
        queued = served.batcher.queued_windows if served.batcher else 0
        metrics.queue_depth.labels(model=name).set(queued)
        metrics.in_flight_bytes.labels(model=name).set(served.admission.reserved_bytes if served.admission else 0)
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
