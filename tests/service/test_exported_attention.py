"""POST /attention on models served as exported graphs — the bundled int8 demo models that `make
serve` serves: the PyTorch weights each was exported from load at its first /attention (once,
never for /segment), and /models says at start which models can draw attention maps."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from model import Predictor, load_segmenter
from model.inference import attention_picture, image_attention
from service import backends
from service.main import create_app
from service.settings import Settings
from tests.service.conftest import (
    BUNDLED_DIR,
    decode_png,
    encode,
    export_without_weights,
    post_image,
    started_client,
    write_models,
)
from training.data.synthetic import render

MODELS = BUNDLED_DIR
SOURCES = {"demo-seg-t16": MODELS / "demo-seg-t16", "demo-seg-t32": MODELS / "demo-seg-t32"}  # demo.yaml's exports'
RGB = render(200, np.random.default_rng(3))[0][:150]  # a 200×150 texture scene


def _attention(client, model: str, **fields) -> httpx.Response:
    data = {"model": model, **{k: str(v) for k, v in fields.items()}}
    return client.post("/attention", files={"image": ("x.png", encode(RGB), "image/png")}, data=data)


@pytest.fixture(scope="module")
def demo_client():
    client = started_client(create_app(Settings(warmup=False)))  # models/demo.yaml: the int8 OpenVINO exports
    yield client
    client.__exit__(None, None, None)


@pytest.mark.parametrize("name", SOURCES)
def test_attention_on_a_demo_export_is_its_source_weights_map(demo_client, name):
    info = {m["name"]: m for m in demo_client.get("/models").json()["models"]}[name]
    assert info["backend"] == "openvino" and info["precision"] == "int8"
    config = load_segmenter(SOURCES[name]).config
    assert info["attention"] == {"encoder_layers": config.depth, "encoder_heads": config.num_heads,
                                 "decoder_layers": 0, "decoder_heads": 0}  # the demo models' linear decoder
    assert info["attention_unavailable"] is None
    _assert_maps_of(SOURCES[name], demo_client, name)


def _assert_maps_of(source: Path, client, model: str) -> None:
    """/attention's maps (JSON and PNG) for `model` are those of the PyTorch weights at `source`."""
    answer = _attention(client, model, layer=2, pixel="120,40", output="json")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    expected = image_attention(Predictor(load_segmenter(source)), RGB, 2, "encoder", (120, 40))
    assert body["grid"] == list(expected.maps.grid) and body["pixel"] == list(expected.scaled_pixel)
    # The same PyTorch weights and code: the only spread is the JSON's rounding to 6 decimals.
    torch.testing.assert_close(torch.tensor(body["heads"]), expected.token_maps.float(), atol=6e-7, rtol=0)
    picture = _attention(client, model, layer=2, pixel="120,40")
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
    drawn, reference = np.asarray(decode_png(picture.content)), attention_picture(expected)
    assert drawn.shape == reference.shape and np.abs(drawn.astype(int) - reference).max() <= 1


def test_attention_on_an_export_served_by_onnxruntime(tmp_path):
    entry = {"name": "ort", "checkpoint": str(MODELS / "demo-seg-t16-int8"), "backend": "onnxruntime"}
    client = started_client(create_app(Settings(models=write_models(tmp_path, [entry]), warmup=False)))
    try:
        assert client.get("/models").json()["models"][0]["attention"]["encoder_layers"] == 4
        _assert_maps_of(SOURCES["demo-seg-t16"], client, "ort")
    finally:
        client.__exit__(None, None, None)


@pytest.mark.parametrize("source", ["../gone/demo-seg-t16", ""], ids=["source-missing", "no-source"])
def test_an_export_without_its_weights_says_so_in_models_and_attention(tmp_path, source):
    folder = export_without_weights(tmp_path, source)
    entry = {"name": "moved", "checkpoint": str(folder), "backend": "openvino", "precision": "int8"}
    client = started_client(create_app(Settings(models=write_models(tmp_path, [entry]), warmup=False)))
    try:
        info = client.get("/models").json()["models"][0]
        assert info["state"] == "ready" and info["attention"] is None
        reason = info["attention_unavailable"]
        assert "'moved'" in reason and "segmenter export onnx --checkpoint" in reason and "backend: torch" in reason
        assert ("missing at" in reason and str(tmp_path / "gone") in reason) if source else "names no source" in reason
        answer = _attention(client, "moved", layer=0, pixel="5,5")
        assert answer.status_code == 422
        assert answer.json()["error"] == {"status": 422, "code": "attention_unavailable", "message": reason}
        assert post_image(client, encode(RGB), model="moved").status_code == 200  # it still segments
    finally:
        client.__exit__(None, None, None)


def test_segment_never_loads_the_weights_and_the_first_attention_loads_them(monkeypatch):
    loads = []
    real = backends.load_segmenter
    monkeypatch.setattr(backends, "load_segmenter", lambda source: loads.append(Path(source)) or real(source))
    client = started_client(create_app(Settings(warmup=False)))
    try:
        assert client.get("/models").json()["models"][0]["attention"] is not None
        for model in ("accurate", "fast"):
            assert post_image(client, encode(RGB), model=model).status_code == 200
        assert loads == []  # start-up, /models and /segment: the exported graphs only
        assert _attention(client, "accurate", layer=0, pixel="5,5").status_code == 200
        assert _attention(client, "accurate", layer=1, pixel="9,9").status_code == 200
        assert [p.resolve() for p in loads] == [SOURCES["demo-seg-t16"].resolve()]  # once, for that model only
    finally:
        client.__exit__(None, None, None)


def test_concurrent_first_attention_requests_load_the_weights_once(monkeypatch):
    """Two requests reach the loader together; the second waits for the first one's load, then
    uses it. The load goes on only once both are at the loader's lock, so a second load would show."""
    app = create_app(Settings(warmup=False, preprocess_threads=2))
    at_the_lock, loads = threading.Semaphore(0), []
    real = backends.load_segmenter

    def load_when_both_wait(source):
        loads.append(source)
        for _ in range(2 if len(loads) == 1 else 0):  # the first load: this request at the lock, and the other
            assert at_the_lock.acquire(timeout=30), "the two requests did not both reach the loader's lock"
        return real(source)

    class CountedLock:
        def __init__(self, lock):
            self.lock = lock

        def __enter__(self):
            at_the_lock.release()
            return self.lock.__enter__()

        def __exit__(self, *exc):
            return self.lock.__exit__(*exc)

    monkeypatch.setattr(backends, "load_segmenter", load_when_both_wait)

    async def scenario():
        async with app.router.lifespan_context(app):
            await app.state.pool.wait_loaded()
            attention = app.state.pool.resolve("accurate").loaded.attention
            attention.lock = CountedLock(attention.lock)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://service", timeout=60) as client:
                form = {"model": "accurate", "layer": "3", "pixel": "50,50", "output": "json"}
                image = {"image": ("x.png", encode(RGB), "image/png")}
                return await asyncio.gather(*[client.post("/attention", files=image, data=form) for _ in range(2)])

    first, second = asyncio.run(scenario())
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert first.json() == second.json()
    assert len(loads) == 1


def test_a_transient_load_failure_is_a_503_and_is_not_retried_at_once(monkeypatch):
    """A download or a full GPU may pass: 503 with Retry-After, and the next requests are answered
    from that failure (no download per request) until RETRY_LOAD_AFTER_S has passed."""
    loads, now = [], [1000.0]

    def failing(source):
        loads.append(source)
        raise OSError("the network is down")

    monkeypatch.setattr(backends, "load_segmenter", failing)
    monkeypatch.setattr(backends.time, "monotonic", lambda: now[0])
    client = started_client(create_app(Settings(warmup=False)))
    try:
        for _ in range(2):
            response = _attention(client, "accurate", layer=0, pixel="5,5")
            assert response.status_code == 503, response.text
            assert "the network is down" in response.json()["error"]["message"]
            assert int(response.headers["retry-after"]) >= 1
        assert len(loads) == 1
        now[0] += backends.RETRY_LOAD_AFTER_S + 1
        assert _attention(client, "accurate", layer=0, pixel="5,5").status_code == 503
        assert len(loads) == 2  # tried again once the wait was over
    finally:
        client.__exit__(None, None, None)


def test_weights_that_no_longer_match_the_export_are_refused_for_good(monkeypatch):
    """The checkpoint an export names was replaced by another architecture: its maps would not
    be the served model's. A 422 saying so, and no second load."""
    loads = []

    def other_model(source):
        loads.append(source)
        return load_segmenter(SOURCES["demo-seg-t32"])  # patch 32, not the export's 16

    monkeypatch.setattr(backends, "load_segmenter", other_model)
    client = started_client(create_app(Settings(warmup=False)))
    try:
        for _ in range(2):
            response = _attention(client, "accurate", layer=0, pixel="5,5")
            assert response.status_code == 422 and "architecture differs" in response.json()["error"]["message"]
        assert len(loads) == 1
    finally:
        client.__exit__(None, None, None)
