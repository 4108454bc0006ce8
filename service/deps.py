"""FastAPI dependencies: what routes get from the app's state."""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Annotated

from fastapi import Depends, Request

from service.metrics import ServiceMetrics
from service.model_pool import ModelPool
from service.settings import Settings


def get_pool(request: Request) -> ModelPool:
    return request.app.state.pool


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_metrics(request: Request) -> ServiceMetrics:
    return request.app.state.metrics


def get_executor(request: Request) -> Executor:
    return request.app.state.executor


PoolDep = Annotated[ModelPool, Depends(get_pool)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
ExecutorDep = Annotated[Executor, Depends(get_executor)]
