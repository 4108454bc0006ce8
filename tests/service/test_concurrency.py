"""Concurrent requests through the real app: shared batches, right answers, 503/504 paths."""

from __future__ import annotations

import asyncio
import re
import threading

import httpx
import numpy as np
import torch
from prometheus_client import generate_latest

from service.main import create_app
from tests.service.conftest import (
    decode_png,
    encode,
    make_settings,
    random_image,
    reference_predictor,
    standard_entries,
    write_models,
)


async def _serve(app, scenario):
    """Run `scenario(client, app)` against the app with its lifespan and models loaded."""
    async with app.router.lifespan_context(app):
        await app.state.pool.wait_loaded()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service", timeout=60) as client:
            return await scenario(client, app)


async def _post(client, data: bytes, **fields):
    return await client.post("/segment", files={"image": ("x.png", data)}, data={k: str(v) for k, v in fields.items()})


def _histogram_counts(text: str, name: str, model: str) -> dict[str, float]:
    pattern = rf'{name}_bucket{{le="([^"]+)",model="{re.escape(model)}"}} ([0-9.e+]+)'
    return {le: float(v) for le, v in re.findall(pattern, text)}


def test_32_concurrent_requests_share_batches_and_all_answers_are_right(checkpoints, tmp_path):
    models = write_models(tmp_path, standard_entries(checkpoints, max_batch_size=16))
    app = create_app(make_settings(models, max_queue_delay_ms=50, preprocess_threads=4))
    sizes = [(64 + 7 * i, 64 + 13 * (i % 5)) for i in range(32)]  # different sizes: 1 to 4 windows each
    images = [random_image(h, w, seed=i) for i, (h, w) in enumerate(sizes)]
    reference = reference_predictor(checkpoints, "tiny-16")

    async def scenario(client, app):
        responses = await asyncio.gather(*[_post(client, encode(rgb), model="accurate") for rgb in images])
        metrics = (await client.get("/metrics")).text
        return responses, metrics

    responses, metrics = asyncio.run(_serve(app, scenario))
    for rgb, response in zip(images, responses, strict=True):
        assert response.status_code == 200, response.text
        np.testing.assert_array_equal(np.asarray(decode_png(response.content)), reference.predict(rgb))
    buckets = _histogram_counts(metrics, "segmenter_batch_size", "tiny-16")
    batches, single = buckets["+Inf"], buckets["1.0"]
    windows = sum(int(r.headers["x-segmenter-windows"]) for r in responses)
    assert batches < windows and batches - single > 0  # some batches held more than one window...
    assert batches < len(images)  # ...and fewer batches ran than there were requests
    assert f'segmenter_windows_total{{model="tiny-16"}} {float(windows)}' in metrics
    assert 'segmenter_requests_total{model="tiny-16",output="mask",status="200"} 32.0' in metrics


class _Gate:
    """Wraps a model's forward pass: holds it until released, or makes it raise."""

    def __init__(self, forward, fail: bool = False) -> None:
        self.forward, self.fail = forward, fail
        self.release, self.entered = threading.Event(), threading.Event()

    def __call__(self, crops):
        self.entered.set()
        assert self.release.wait(30), "test never released the forward pass"
        if self.fail:
            self.fail = False
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return self.forward(crops)


def test_a_request_past_its_deadline_is_504_and_the_service_recovers(checkpoints, tmp_path):
    models = write_models(tmp_path, standard_entries(checkpoints))
    app = create_app(make_settings(models, request_timeout_s=0.5))
    data = encode(random_image(64, 64, seed=3))

    async def scenario(client, app):
        batcher = app.state.pool.resolve("tiny-16").batcher
        gate = _Gate(batcher.forward)
        batcher.forward = gate
        slow = await _post(client, data)  # held in the forward pass past its deadline
        gate.release.set()
        assert slow.status_code == 504, slow.text
        assert "SEGMENTER_REQUEST_TIMEOUT_S" in slow.json()["error"]["message"]
        again = await _post(client, data)
        assert again.status_code == 200
        return (await client.get("/metrics")).text

    metrics = asyncio.run(_serve(app, scenario))
    assert 'segmenter_requests_total{model="tiny-16",output="mask",status="504"} 1.0' in metrics


def test_a_failing_batch_is_503_and_the_next_batch_succeeds(checkpoints, tmp_path):
    models = write_models(tmp_path, standard_entries(checkpoints))
    app = create_app(make_settings(models))
    data = encode(random_image(64, 64, seed=3))

    async def scenario(client, app):
        batcher = app.state.pool.resolve("tiny-16").batcher
        gate = _Gate(batcher.forward, fail=True)
        gate.release.set()
        batcher.forward = gate
        failed = await _post(client, data)
        assert failed.status_code == 503 and failed.headers["retry-after"] == "1"
        assert "out of memory" in failed.json()["error"]["message"]
        assert (await _post(client, data)).status_code == 200
        return (await client.get("/readyz")).status_code

    assert asyncio.run(_serve(app, scenario)) == 200  # the model stays ready


def test_full_queue_is_503_with_retry_after(checkpoints, tmp_path):
    models = write_models(tmp_path, standard_entries(checkpoints, max_batch_size=1))
    app = create_app(make_settings(models, max_queue_windows=2, max_queue_delay_ms=0))
    big, small = encode(random_image(64, 200, seed=4)), encode(random_image(64, 64, seed=5))  # 4 windows, 1

    async def scenario(client, app):
        batcher = app.state.pool.resolve("tiny-16").batcher
        gate = _Gate(batcher.forward)
        batcher.forward = gate
        held = asyncio.create_task(_post(client, big))  # 1 window running, 3 queued: over the limit of 2
        await asyncio.to_thread(gate.entered.wait, 10)
        refused = await _post(client, small)
        gate.release.set()
        assert (await held).status_code == 200
        return refused, (await client.get("/metrics")).text

    refused, metrics = asyncio.run(_serve(app, scenario))
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert "busy" in refused.json()["error"]["message"]
    assert 'segmenter_rejected_total{reason="queue_full"} 1.0' in metrics


def test_a_client_that_disconnects_takes_its_windows_out_of_the_queue(checkpoints, tmp_path):
    """Drive the ASGI app by hand: the body arrives, then the client hangs up while its windows
    wait behind a held batch. They must leave the queue and never run."""
    models = write_models(tmp_path, standard_entries(checkpoints, max_batch_size=1))
    app = create_app(make_settings(models, max_queue_delay_ms=0))
    boundary = "b0undary"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n'
            f"Content-Type: image/png\r\n\r\n").encode() + encode(random_image(64, 256, seed=6)) + \
        f"\r\n--{boundary}--\r\n".encode()  # 4 windows

    async def scenario():
        async with app.router.lifespan_context(app):
            await app.state.pool.wait_loaded()
            batcher = app.state.pool.resolve("tiny-16").batcher
            gate = _Gate(batcher.forward)
            batcher.forward = gate
            seen: list[int] = []
            real = gate.forward
            gate.forward = lambda crops: (seen.append(len(crops)), real(crops))[1]
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
                holder = asyncio.create_task(_post(client, encode(random_image(64, 64, seed=7))))
                await asyncio.to_thread(gate.entered.wait, 10)  # the worker is now held in a batch
            hung_up = asyncio.Event()
            sent = False

            async def receive():
                nonlocal sent
                if not sent:
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}
                await hung_up.wait()
                return {"type": "http.disconnect"}

            messages = []

            async def send(message):
                messages.append(message)

            scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                     "scheme": "http", "path": "/segment", "raw_path": b"/segment", "query_string": b"",
                     "root_path": "", "server": ("service", 80), "client": ("test", 1),
                     "headers": [(b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
                                 (b"content-length", str(len(body)).encode())]}
            queued = asyncio.Event()
            original_run = batcher.run_groups

            async def run_and_signal(groups):
                inner = asyncio.ensure_future(original_run(groups))
                await asyncio.sleep(0)  # one step: run_groups() queues its windows before its first await
                queued.set()
                return await inner  # cancelling this cancels `inner` too

            batcher.run_groups = run_and_signal
            request = asyncio.create_task(app(scope, receive, send))
            await queued.wait()
            assert batcher.queued_windows == 4
            hung_up.set()
            await request
            assert batcher.queued_windows == 0
            counted = generate_latest(app.state.metrics.registry).decode()
            assert 'segmenter_requests_total{model="tiny-16",output="mask",status="499"} 1.0' in counted
            gate.release.set()
            assert (await holder).status_code == 200
            return seen, messages

    seen, messages = asyncio.run(scenario())
    assert seen == [1]  # only the held request's window ever ran
    assert messages[0]["status"] == 499
