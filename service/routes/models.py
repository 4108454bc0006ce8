"""GET /models: what can be asked for, and how each model runs."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from service.deps import PoolDep

router = APIRouter(tags=["models"])


class ModelInfo(BaseModel):
    name: str
    aliases: list[str]
    default: bool
    state: str  # loading | ready | failed
    reason: str | None
    backend: str
    backend_detail: str | None
    device: str
    precision: str
    max_batch_size: int
    patch_size: int | None
    window_size: int | None
    window_stride: int | None
    dataset: str | None
    classes: list[str]
    palette: list[list[int]]


class ModelList(BaseModel):
    default: str
    models: list[ModelInfo]


@router.get("/models", response_model=ModelList, summary="List the served models")
async def list_models(pool: PoolDep) -> ModelList:
    default = pool.resolve(None).spec.name
    infos = []
    for name, served in pool.models.items():
        spec, loaded = served.spec, served.loaded
        meta = loaded.predictor.metadata if loaded else None
        infos.append(ModelInfo(
            name=name, aliases=spec.aliases, default=name == default, state=served.state, reason=served.reason,
            backend=spec.backend, backend_detail=loaded.backend_detail if loaded else None, device=spec.device,
            precision=spec.precision, max_batch_size=spec.max_batch_size,
            patch_size=loaded.patch_size if loaded else None,
            window_size=loaded.predictor.window_size if loaded else spec.window_size,
            window_stride=loaded.predictor.window_stride if loaded else spec.window_stride,
            dataset=meta.dataset if meta else None, classes=list(meta.class_names) if meta else [],
            palette=[[int(v) for v in c] for c in meta.palette] if meta else []))
    return ModelList(default=default, models=infos)
