"""Run the app in a real uvicorn server on a free port, in a background thread.

The listening socket is bound before the thread starts, so clients can connect at once: their
connections wait in the backlog until uvicorn serves them — no polling for start-up. Build the
app with `fail_fast=True` so every model is loaded before the first request is answered.
"""

from __future__ import annotations

import io
import socket
import threading

import httpx
import numpy as np
import uvicorn
from PIL import Image


class LiveServer:
    def __init__(self, app) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(128)
        host, port = self.socket.getsockname()
        self.url = f"http://{host}:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=30))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        # Answered only once start-up (and, with fail_fast, model loading) is complete.
        httpx.get(self.url + "/healthz", timeout=120).raise_for_status()
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)
        self.socket.close()


def segment_mask(server: LiveServer, data: bytes, **fields) -> np.ndarray:
    """`POST /segment` on a live server: the class-id mask, decoded from its PNG."""
    response = httpx.post(server.url + "/segment", files={"image": ("x.png", data)}, data=fields, timeout=120)
    assert response.status_code == 200, response.text
    return np.array(Image.open(io.BytesIO(response.content)))
