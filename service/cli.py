"""`segmenter serve`: run the service with uvicorn."""

from __future__ import annotations

import argparse
import copy
import math
import os
from pathlib import Path

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="run the HTTP service (POST /segment)",
                              description="Serve the models listed in a models file over HTTP. Every other "
                              "setting is a SEGMENTER_* environment variable (see README).")
    p.add_argument("--models", type=Path,
                   help="models file (YAML); default: $SEGMENTER_MODELS or the bundled demo models")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1,
                   help="processes; each loads every model, so memory grows with this")
    p.add_argument("--log-level", default="info", choices=LOG_LEVELS,
                   help="the service's and uvicorn's log level (info shows each model loading, warming up, ready)")
    p.set_defaults(func=serve)


def log_config(level: str) -> dict:
    """uvicorn's logging set-up, with the service's own loggers (`segmenter.*`) on its handler."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["segmenter"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return config


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from service.model_specs import load_models_file
    from service.settings import Settings

    if args.models:
        os.environ["SEGMENTER_MODELS"] = str(args.models)  # read by each worker's Settings
    # gRPC listens where HTTP does, unless told otherwise. Each worker binds the gRPC port itself,
    # sharing it (SO_REUSEPORT: the kernel spreads connections over the workers).
    os.environ.setdefault("SEGMENTER_GRPC_HOST", args.host)
    if args.workers > 1:
        os.environ["SEGMENTER_GRPC_REUSE_PORT"] = "true"
    settings = Settings()
    models = load_models_file(settings.models)  # a bad models file stops here, with one message, not in each worker
    for spec in models.models:  # so does a device this machine lacks (a worker would only mark the model failed)
        spec.checked_device()
    uvicorn.run("service.main:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
                log_level=args.log_level, log_config=log_config(args.log_level),
                timeout_graceful_shutdown=graceful_shutdown_s(settings))
    return 0


def graceful_shutdown_s(settings) -> int:
    """How long a stopping server waits for requests in flight: as long as one may run (each ends
    by its own deadline, `request_timeout_s`), plus 5 s to answer. Orchestrators must allow it:
    docker-compose.yml's stop_grace_period, the Deployment's terminationGracePeriodSeconds."""
    return math.ceil(settings.request_timeout_s) + 5
