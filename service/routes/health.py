"""GET /healthz (the process answers) and GET /readyz (every model loaded and warmed up)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service.deps import PoolDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process is up")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: every configured model is loaded and warmed up",
            responses={503: {"description": "some model is loading or failed; `models` says which and why"}})
async def readyz(pool: PoolDep) -> JSONResponse:
    models = {name: {"state": m.state, **{k: v for k, v in (("reason", m.reason), ("detail", m.detail)) if v}}
              for name, m in pool.models.items()}
    ready = pool.all_ready
    return JSONResponse({"status": "ready" if ready else "not ready", "models": models}, 200 if ready else 503)
