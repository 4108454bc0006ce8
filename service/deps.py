"""FastAPI dependencies: what routes get from the app's state.

`async def` on purpose: FastAPI runs plain `def` dependencies on a thread pool, which costs a
thread hop per request (and, under load, new threads with their own malloc arenas).
"""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Annotated

from fastapi import Depends, Request

from service.metrics import ServiceMetrics
from service.model_pool import ModelPool
from service.settings import Settings


async def get_pool(request: Request) -> ModelPool:
    return request.app.state.pool


async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


async def get_metrics(request: Request) -> ServiceMetrics:
    return request.app.state.metrics


async def get_executor(request: Request) -> Executor:
    return request.app.state.executor


PoolDep = Annotated[ModelPool, Depends(get_pool)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
ExecutorDep = Annotated[Executor, Depends(get_executor)]
