"""Bounded cost per request: refused from the header when it needs too many windows, admitted
within a memory budget, and stopped — not left running — when it ends early."""

from __future__ import annotations

import threading
import time

import numpy as np

import service.segmentation as segmentation
from service.main import create_app
from testkit.hostile_inputs import elongated_png
from tests.service.conftest import (
    decode_png,
    encode,
    make_settings,
    post_image,
    random_image,
    reference_predictor,
    standard_entries,
    started_client,
    write_models,
)


def _rss_mib() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def test_elongated_and_huge_multiscale_images_are_refused_within_a_second(client):
    huge = encode(np.zeros((6000, 6000, 3), np.uint8), "JPEG")  # 36 MP: under the default 40 MP limit
    cases = [(elongated_png(20000, 2), {}), (elongated_png(2, 20000), {}), (elongated_png(1, 40000), {}),
             (huge, {"multiscale": True})]
    before = _rss_mib()
    for data, fields in cases:
        started = time.perf_counter()
        response = post_image(client, data, **fields)
        elapsed = time.perf_counter() - started
        assert response.status_code == 413, response.text
        error = response.json()["error"]
        assert error["code"] == "too_many_windows" and elapsed < 1.0
        assert "windows" in error["message"] and "limit is 256" in error["message"]
        assert "SEGMENTER_MAX_WINDOWS_PER_REQUEST" in error["message"]
    # Nothing was decoded or tiled: a 1 600 000×64 view alone would be 1.2 GB.
    assert _rss_mib() - before < 64
    message = post_image(client, elongated_png(20000, 2)).json()["error"]["message"]
    assert "20000×2" in message and "elongated" in message
    assert "multi-scale" in post_image(client, huge, multiscale=True).json()["error"]["message"]
    ok = post_image(client, encode(random_image(64, 200, seed=3)))
    assert ok.status_code == 200  # the service is fine


def test_the_limit_is_a_setting_and_a_per_model_override(checkpoints, tmp_path):
    entries = standard_entries(checkpoints)
    entries[1]["max_windows_per_request"] = 4  # tiny-32 ("fast"): at most 4 windows of 64 pixels
    client = started_client(create_app(make_settings(write_models(tmp_path, entries), max_windows_per_request=3)))
    try:
        image = encode(random_image(64, 64 * 4, seed=1))  # exactly 4 windows
        assert post_image(client, image, model="fast").status_code == 200
        refused = post_image(client, image, model="accurate")
        assert refused.status_code == 413 and "limit is 3" in refused.json()["error"]["message"]
        info = {m["name"]: m for m in client.get("/models").json()["models"]}
        assert (info["tiny-16"]["max_windows_per_request"], info["tiny-32"]["max_windows_per_request"]) == (3, 4)
    finally:
        client.__exit__(None, None, None)


class _Gate:
    """Holds a wrapped call until released, and says when a call has entered."""

    def __init__(self, real):
        self.real, self.entered, self.release, self.calls = real, threading.Event(), threading.Event(), 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        self.entered.set()
        assert self.release.wait(30)
        return self.real(*args, **kwargs)


def test_a_request_that_times_out_while_decoding_leaves_no_work_running(checkpoints, tmp_path, monkeypatch):
    gate = _Gate(segmentation.read_image)
    monkeypatch.setattr(segmentation, "read_image", gate)
    app = create_app(make_settings(write_models(tmp_path, standard_entries(checkpoints)), request_timeout_s=0.3))
    client = started_client(app)
    try:
        served = app.state.pool.resolve("tiny-16")
        prepared, forwarded = [], []
        real_prepare, real_forward = served.loaded.predictor.prepare, served.batcher.forward
        served.loaded.predictor.prepare = lambda *a, **k: (prepared.append(1), real_prepare(*a, **k))[1]
        served.batcher.forward = lambda crops: (forwarded.append(len(crops)), real_forward(crops))[1]
        slow = post_image(client, encode(random_image(64, 256, seed=4)))  # held in decoding past its deadline
        assert slow.status_code == 504
        assert served.admission.reserved_bytes > 0  # the decoding thread still holds the image...
        gate.release.set()

        async def abandoned_requests_finish() -> None:
            import asyncio

            await asyncio.gather(*app.state.abandoned, return_exceptions=True)

        client.portal.call(abandoned_requests_finish)  # ...until it notices the request has ended
        assert prepared == [] and forwarded == []  # no windows were cut, none ran
        assert served.batcher.queued_windows == 0 and served.admission.reserved_bytes == 0
        metrics = client.get("/metrics").text
        assert 'segmenter_cancelled_total{model="tiny-16",reason="timeout",stage="decode"} 1.0' in metrics
        rgb = random_image(64, 100, seed=5)
        again = post_image(client, encode(rgb))
        assert again.status_code == 200
        np.testing.assert_array_equal(np.asarray(decode_png(again.content)),
                                      reference_predictor(checkpoints, "tiny-16").predict(rgb))
    finally:
        gate.release.set()
        client.__exit__(None, None, None)


def test_a_model_over_its_memory_budget_refuses_before_decoding(checkpoints, tmp_path, monkeypatch):
    decoded = _Gate(segmentation.read_image)
    monkeypatch.setattr(segmentation, "read_image", decoded)
    models = write_models(tmp_path, standard_entries(checkpoints))
    app = create_app(make_settings(models, max_queue_windows=2))
    client = started_client(app)
    try:
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            held = pool.submit(post_image, client, encode(random_image(64, 192, seed=6)))  # 3 windows: admitted
            assert decoded.entered.wait(30)
            refused = post_image(client, encode(random_image(64, 64, seed=7)))
            decoded.release.set()
            assert held.result().status_code == 200
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert "in flight" in refused.json()["error"]["message"]
        assert decoded.calls == 1  # the refused image was never decoded
    finally:
        decoded.release.set()
        client.__exit__(None, None, None)


def test_models_show_their_memory_budget(client):
    info = {m["name"]: m for m in client.get("/models").json()["models"]}["tiny-16"]
    assert info["max_queue_windows"] == 512 and info["window_bytes"] > 64 * 64 * 8 * 4
    assert info["in_flight_budget_bytes"] == 512 * info["window_bytes"]


def test_a_request_estimates_its_cost_once(client):
    """From the header, before decoding; `prepare` takes that estimate instead of making another."""
    predictor = client.app.state.pool.resolve("tiny-16").loaded.predictor
    estimates, real = [], predictor.cost
    predictor.cost = lambda *args, **kwargs: (estimates.append(args), real(*args, **kwargs))[1]
    try:
        answer = post_image(client, encode(random_image(64, 100, seed=6)), model="tiny-16", scale="80")
    finally:
        del predictor.cost
    assert answer.status_code == 200 and [args[:2] for args in estimates] == [(64, 100)]
