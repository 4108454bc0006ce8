"""GET /models: what can be asked for, and how each model runs."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from service.deps import PoolDep, SettingsDep

router = APIRouter(tags=["models"])


class AttentionLayers(BaseModel):
    """What POST /attention can ask of a model: exported graphs too, with the PyTorch weights they
    were exported from (loaded at the first /attention). None where attention maps cannot be drawn."""

    encoder_layers: int
    encoder_heads: int
    decoder_layers: int  # 0 for the linear decoder
    decoder_heads: int


class ModelInfo(BaseModel):
    name: str
    aliases: list[str]
    default: bool
    state: str  # loading | ready | failed
    reason: str | None
    backend: str
    backend_detail: str | None
    fast_path: dict | None  # backend auto on a CPU: the precision chosen, the gate's figures, the cache folder
    device: str
    precision: str
    max_batch_size: int
    patch_size: int | None
    window_size: int | None
    window_stride: int | None
    blend: str  # how overlapping windows are averaged (uniform: the paper's protocol)
    dataset: str | None
    max_windows_per_request: int | None  # 413 above (SEGMENTER_MAX_WINDOWS_PER_REQUEST or the models file)
    max_queue_windows: int  # in-flight budget, in windows (SEGMENTER_MAX_QUEUE_WINDOWS or the models file)
    window_bytes: int | None  # estimated memory of one window-sized request
    in_flight_budget_bytes: int | None  # memory of requests in flight is kept under this; 503 beyond
    attention: AttentionLayers | None
    attention_unavailable: str | None  # why `attention` is None for a ready model, and the fix
    classes: list[str]
    palette: list[list[int]]


class ModelList(BaseModel):
    default: str
    models: list[ModelInfo]


@router.get("/models", response_model=ModelList, summary="List the served models")
async def list_models(pool: PoolDep, settings: SettingsDep) -> ModelList:
    default = pool.resolve(None).spec.name
    infos = []
    for name, served in pool.models.items():
        spec, loaded = served.spec, served.loaded
        meta = loaded.predictor.metadata if loaded else None
        infos.append(ModelInfo(
            name=name, aliases=spec.aliases, default=name == default, state=served.state, reason=served.reason,
            backend=loaded.spec.backend if loaded else spec.backend,
            backend_detail=loaded.backend_detail if loaded else None, device=spec.device,
            precision=(loaded.spec.precision if loaded else spec.precision) or "auto",
            fast_path=loaded.fast_path if loaded else None, max_batch_size=spec.max_batch_size,
            patch_size=loaded.patch_size if loaded else None,
            window_size=loaded.predictor.window_size if loaded else spec.window_size,
            window_stride=loaded.predictor.window_stride if loaded else spec.window_stride,
            blend=spec.blend,
            dataset=meta.dataset if meta else None,
            max_windows_per_request=loaded.predictor.max_windows if loaded else
            (spec.max_windows_per_request or settings.max_windows_per_request),
            max_queue_windows=spec.max_queue_windows or settings.max_queue_windows,
            window_bytes=served.admission.window_bytes if served.admission else None,
            in_flight_budget_bytes=served.admission.budget_bytes if served.admission else None,
            attention=_attention_layers(loaded),
            attention_unavailable=loaded.attention.reason if loaded else None,
            classes=list(meta.class_names) if meta else [],
            palette=[[int(v) for v in c] for c in meta.palette] if meta else []))
    return ModelList(default=default, models=infos)


def _attention_layers(loaded) -> AttentionLayers | None:
    """Decided at start (backends.AttentionModel), without loading an exported graph's weights."""
    config = loaded.attention.config if loaded and loaded.attention.available else None
    if config is None:
        return None
    mask = config.decoder == "mask_transformer"
    return AttentionLayers(encoder_layers=config.depth, encoder_heads=config.num_heads,
                           decoder_layers=config.decoder_depth if mask else 0,
                           decoder_heads=config.decoder_num_heads if mask else 0)
