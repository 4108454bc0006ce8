"""`segmenter serve`: run the service with uvicorn."""

from __future__ import annotations

import argparse
import os


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="run the HTTP service (POST /segment)",
                              description="Serve the models listed in a models file over HTTP. Every other "
                              "setting is a SEGMENTER_* environment variable (see README).")
    p.add_argument("--models", help="models file (YAML); default: $SEGMENTER_MODELS or the bundled demo models")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1,
                   help="processes; each loads every model, so memory grows with this")
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=serve)


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    if args.models:
        os.environ["SEGMENTER_MODELS"] = args.models  # read by each worker's Settings
    uvicorn.run("service.main:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
                log_level=args.log_level, timeout_graceful_shutdown=30)
    return 0
