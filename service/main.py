"""Build the FastAPI app: settings, models, routes. Nothing else lives here.

    uvicorn --factory service.main:create_app      # or: segmenter serve
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import torch
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from model import __version__
from service.errors import install_error_handlers
from service.metrics import ServiceMetrics
from service.model_pool import ModelPool
from service.model_specs import load_models_file
from service.oip import grpc_server
from service.routes import attention, health, hf_segmentation, metrics, models, oip, segment, ui
from service.settings import Settings, get_settings
from service.upload_limit import UploadLimitMiddleware

log = logging.getLogger("segmenter.service")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    models_file = load_models_file(settings.models)  # a bad models file stops start-up, with the reason
    service_metrics = ServiceMetrics()
    pool = ModelPool(models_file, settings, service_metrics)
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.executor = ThreadPoolExecutor(settings.preprocess_threads, thread_name_prefix="preprocess")
        app.state.abandoned = set()  # tasks of requests that ended early, stopping in the background
        grpc, loading = None, None
        try:
            # gRPC listens before the models load, as HTTP does: its health RPCs answer at once.
            if settings.grpc_port:
                grpc = await grpc_server.start(app.state, settings.grpc_host, settings.grpc_port)
            if settings.fail_fast:
                await pool.load_all()  # raises: uvicorn reports it and exits
            else:
                loading = asyncio.create_task(pool.load_all(), name="load-models")
            yield
        finally:
            if loading is not None and not loading.done():
                loading.cancel()
            if grpc is not None:
                await grpc.stop(settings.request_timeout_s)  # requests in flight finish by their deadline
            await asyncio.gather(*app.state.abandoned, return_exceptions=True)
            await pool.close()
            app.state.executor.shutdown(wait=True)

    # /docs and /redoc with their JavaScript served by the app itself (fastapi-offline): the
    # default pages load it from a CDN and are blank on air-gapped hosts.
    app = FastAPIOffline(title="Segmenter", version=__version__, lifespan=lifespan,
                         description="Semantic segmentation with Segmenter (Strudel et al., ICCV 2021). "
                         "POST an image to /segment; see /models for the models served. The Open Inference "
                         "Protocol (KServe v2) is under /v2 (and over gRPC), Hugging Face's image-segmentation "
                         "API under /models/{name}/image-segmentation.")
    app.state.settings, app.state.metrics, app.state.pool = settings, service_metrics, pool
    install_error_handlers(app)
    # The byte limit is enforced while the body arrives, not only from Content-Length.
    app.add_middleware(UploadLimitMiddleware, max_bytes=settings.max_upload_bytes)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           expose_headers=["X-Segmenter-Model", "X-Segmenter-Classes", "Server-Timing"])
    for module in (segment, attention, models, health, metrics, ui, oip, hf_segmentation):
        app.include_router(module.router)
    return app
