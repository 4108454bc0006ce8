"""`segmenter serve` as a user runs it: a real process, a real port, SIGTERM to stop.

Also the graceful stop: a request in flight when the server is told to exit still gets its
answer (uvicorn's SIGTERM handler sets `should_exit`; the in-process test pulls that lever with
the forward pass held, so the request is provably in flight)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import numpy as np

from service.main import create_app
from tests.service.conftest import decode_png, encode, make_settings, random_image, reference_predictor
from tests.service.live_server import LiveServer

ROOT = Path(__file__).resolve().parents[2]


def _read_until(stream, pattern: str, lines: list[str]) -> re.Match:
    """Block on the server's log until a line matches (uvicorn announces start-up there)."""
    for line in stream:
        lines.append(line)
        if match := re.search(pattern, line):
            return match
    raise AssertionError("server exited before printing " + pattern + ":\n" + "".join(lines))


def test_segmenter_serve_answers_and_stops_cleanly_on_sigterm(models_file, checkpoints):
    env = {**os.environ, "SEGMENTER_FAIL_FAST": "true"}  # models load before the port opens
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--models", str(models_file), "--port", "0"],
        cwd=ROOT, env=env, stderr=subprocess.STDOUT, stdout=subprocess.PIPE, text=True)
    lines: list[str] = []
    try:
        url = _read_until(process.stdout, r"Uvicorn running on (http://\S+)", lines).group(1)
        startup = "".join(lines)  # the service's own start-up log, at the default level (info)
        for name in ("tiny-16", "tiny-32"):
            assert f"loading model {name}" in startup and f"{name}: warming up" in startup
            assert f"model {name} ready" in startup
        rgb = random_image(80, 90, seed=31)
        response = httpx.post(url + "/segment", files={"image": ("a.png", encode(rgb))}, data={"model": "fast"},
                              timeout=60)
        assert response.status_code == 200
        expected = reference_predictor(checkpoints, "tiny-32").predict(rgb)
        np.testing.assert_array_equal(np.asarray(decode_png(response.content)), expected)
        assert httpx.get(url + "/readyz", timeout=10).status_code == 200
        process.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal so the exit status says SIGTERM
        assert process.wait(timeout=60) in (0, -signal.SIGTERM)
        log = "".join(lines) + process.stdout.read()
        assert "Shutting down" in log and "Finished server process" in log and "Traceback" not in log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_request_in_flight_at_shutdown_is_answered(models_file):
    app = create_app(make_settings(models_file, fail_fast=True))
    data = encode(random_image(64, 64, seed=32))
    with LiveServer(app) as server:
        batcher = app.state.pool.resolve("tiny-16").batcher
        forward, entered, release = batcher.forward, threading.Event(), threading.Event()

        def held(crops):
            entered.set()
            assert release.wait(30)
            return forward(crops)

        batcher.forward = held
        result = {}
        client = threading.Thread(target=lambda: result.update(
            response=httpx.post(server.url + "/segment", files={"image": ("a.png", data)}, timeout=60)))
        client.start()
        assert entered.wait(30)
        server.server.should_exit = True  # what uvicorn's SIGTERM handler does
        release.set()
        client.join(60)
        server.thread.join(60)
        assert not server.thread.is_alive()
    assert result["response"].status_code == 200


def test_the_drain_waits_as_long_as_a_request_may_run_and_compose_allows_it():
    import yaml

    from service.cli import graceful_shutdown_s
    from service.settings import Settings

    assert graceful_shutdown_s(Settings(request_timeout_s=60)) == 65
    assert graceful_shutdown_s(Settings(request_timeout_s=120.5)) == 126
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    grace = compose["services"]["segmenter"]["stop_grace_period"]
    assert re.fullmatch(r"\d+s", grace) and int(grace[:-1]) >= graceful_shutdown_s(Settings())
