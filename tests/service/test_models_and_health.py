"""GET /models, /healthz, /readyz, /metrics, the web page, and start-up with bad models."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from export import export_onnx
from model import load_segmenter
from service.backends import ModelLoadError
from service.main import create_app
from service.model_specs import ModelsFileError
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


def test_models_lists_names_aliases_classes_and_how_each_runs(client):
    body = client.get("/models").json()
    assert body["default"] == "tiny-16"
    by_name = {m["name"]: m for m in body["models"]}
    assert set(by_name) == {"tiny-16", "tiny-32"}
    fast, accurate = by_name["tiny-32"], by_name["tiny-16"]
    assert fast["aliases"] == ["fast"] and accurate["aliases"] == ["accurate"] and accurate["default"]
    assert (fast["patch_size"], accurate["patch_size"]) == (32, 16)
    assert accurate["window_size"] == 64 and accurate["window_stride"] == 64
    assert accurate["backend"] == "torch" and accurate["device"] == "cpu" and accurate["state"] == "ready"
    assert accurate["classes"] == [f"class{i}" for i in range(5)] and len(accurate["palette"]) == 5


def test_health_ready_and_metrics(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["models"]["tiny-16"]["state"] == "ready"
    assert post_image(client, encode(random_image(64, 64)), output="json").status_code == 200
    assert post_image(client, b"nope").status_code == 415
    text = client.get("/metrics").text
    assert 'segmenter_requests_total{model="tiny-16",output="json",status="200"} 1.0' in text
    assert 'segmenter_requests_total{model="tiny-16",output="mask",status="415"} 1.0' in text
    assert 'segmenter_model_state{model="tiny-32",state="ready"} 1.0' in text
    assert 'segmenter_requests_in_flight 0.0' in text
    for name in ("segmenter_request_seconds_bucket", "segmenter_queue_wait_seconds_bucket",
                 "segmenter_batch_compute_seconds_bucket", "segmenter_queue_windows{"):
        assert name in text


def test_web_page_and_openapi_docs(client):
    page = client.get("/")
    assert page.status_code == 200 and 'id="drop"' in page.text and "/segment" in page.text
    schema = client.get("/openapi.json").json()
    segment = schema["paths"]["/segment"]["post"]
    assert {"400", "404", "413", "415", "422", "503", "504"} <= set(segment["responses"])
    assert client.get("/docs").status_code == 200


def test_a_model_that_cannot_load_is_reported_not_served(checkpoints, tmp_path):
    entries = standard_entries(checkpoints)
    entries.append({"name": "broken", "checkpoint": str(tmp_path / "missing"), "aliases": ["b"]})
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "model.safetensors").write_bytes(b"not safetensors")
    (corrupt / "segmenter.json").write_text((checkpoints / "tiny-16" / "segmenter.json").read_text())
    entries.append({"name": "corrupt", "checkpoint": str(corrupt), "backend": "torch"})
    client = started_client(create_app(make_settings(write_models(tmp_path, entries))))
    try:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        models = ready.json()["models"]
        assert models["tiny-16"]["state"] == "ready"
        assert models["broken"]["state"] == "failed" and "does not exist" in models["broken"]["reason"]
        assert models["corrupt"]["state"] == "failed" and "corrupt" in models["corrupt"]["reason"]
        refused = post_image(client, encode(random_image(64, 64)), model="b")
        assert refused.status_code == 503 and "does not exist" in refused.json()["error"]["message"]
        assert post_image(client, encode(random_image(64, 64)), model="tiny-16").status_code == 200
        assert 'segmenter_model_state{model="broken",state="failed"} 1.0' in client.get("/metrics").text
    finally:
        client.__exit__(None, None, None)


def test_fail_fast_stops_start_up_with_the_reason(checkpoints, tmp_path):
    entries = [{"name": "broken", "checkpoint": str(tmp_path / "missing")}]
    app = create_app(make_settings(write_models(tmp_path, entries), fail_fast=True))
    with pytest.raises(ModelLoadError, match="does not exist"):
        with TestClient(app):
            pass


@pytest.mark.parametrize("content, problem", [
    ("models: []", "at least 1"),
    ("models:\n  - {name: a, checkpoint: x, backend: tensorflow}", "backend"),
    ("models:\n  - {name: a, checkpoint: x}\n  - {name: b, checkpoint: y, aliases: [a]}", "names both"),
    ("default: nope\nmodels:\n  - {name: a, checkpoint: x}", "default 'nope'"),
    ("models:\n  - {name: a, checkpoint: x, device: gpu}", "device"),
    ("models: [unclosed", "not valid YAML"),
])
def test_a_bad_models_file_names_the_problem(tmp_path, content, problem):
    path = tmp_path / "models.yaml"
    path.write_text(content)
    with pytest.raises(ModelsFileError, match=problem):
        create_app(make_settings(path))
    with pytest.raises(ModelsFileError, match="does not exist"):
        create_app(make_settings(tmp_path / "absent.yaml"))


def test_onnxruntime_backend_serves_an_export_like_pytorch(checkpoints, tmp_path):
    export_onnx(load_segmenter(checkpoints / "tiny-32"), tmp_path / "onnx")
    entries = [{"name": "tiny-32-ort", "checkpoint": str(tmp_path / "onnx"), "backend": "onnxruntime",
                "aliases": ["fast"]},
               {"name": "wrong", "checkpoint": str(checkpoints / "tiny-16"), "backend": "onnxruntime"}]
    client = started_client(create_app(make_settings(write_models(tmp_path, entries))))
    try:
        rgb = random_image(90, 120, seed=9)
        response = post_image(client, encode(rgb), model="fast")
        assert response.status_code == 200 and response.headers["x-segmenter-backend"] == "onnxruntime"
        expected = reference_predictor(checkpoints, "tiny-32").predict(rgb)
        agreement = (np.asarray(decode_png(response.content)) == expected).mean()
        assert agreement > 0.999
        info = {m["name"]: m for m in client.get("/models").json()["models"]}
        assert "CPUExecutionProvider" in info["tiny-32-ort"]["backend_detail"]
        assert info["tiny-32-ort"]["patch_size"] == 32
        assert "segmenter export onnx" in info["wrong"]["reason"]
    finally:
        client.__exit__(None, None, None)


def test_readyz_shows_loading_progress_until_the_models_are_warm(models_file, monkeypatch):
    import threading

    import service.model_pool as model_pool

    release, entered = threading.Event(), threading.Event()
    real_load = model_pool.load_model

    def slow_load(spec, cache_dir=None, max_windows=None):
        entered.set()
        assert release.wait(30)
        return real_load(spec, cache_dir, max_windows)

    monkeypatch.setattr(model_pool, "load_model", slow_load)
    with TestClient(create_app(make_settings(models_file))) as client:
        assert entered.wait(30)
        loading = client.get("/readyz")
        assert loading.status_code == 503
        assert loading.json()["models"]["tiny-16"] == {"state": "loading", "detail": "loading weights"}
        assert client.get("/healthz").status_code == 200  # alive while loading
        refused = post_image(client, encode(random_image(64, 64)))
        assert refused.status_code == 503 and "still loading" in refused.json()["error"]["message"]
        release.set()
        client.portal.call(client.app.state.pool.wait_loaded)
        assert client.get("/readyz").status_code == 200


def test_a_model_with_nan_weights_is_refused_at_warm_up(tmp_path):
    import torch

    from model import save_checkpoint
    from tests.conftest import tiny_segmenter

    net = tiny_segmenter(seed=5)
    with torch.no_grad():
        next(net.parameters()).fill_(float("nan"))
    save_checkpoint(net, tmp_path / "nan")
    entry = {"name": "nan", "checkpoint": str(tmp_path / "nan"), "backend": "torch"}
    client = started_client(create_app(make_settings(write_models(tmp_path, [entry]))))
    try:
        state = client.get("/readyz").json()["models"]["nan"]
        assert state["state"] == "failed" and "NaN" in state["reason"]
    finally:
        client.__exit__(None, None, None)


def test_cors_is_off_by_default_and_allows_only_listed_origins(models_file):
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    closed = started_client(create_app(make_settings(models_file)))
    opened = started_client(create_app(make_settings(models_file, cors_origins=["https://app.example"])))
    try:
        assert "access-control-allow-origin" not in closed.options("/segment", headers=preflight).headers
        allowed = opened.options("/segment", headers=preflight)
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        other = opened.options("/segment", headers={**preflight, "Origin": "https://evil.example"})
        assert other.headers.get("access-control-allow-origin") != "https://evil.example"
    finally:
        closed.__exit__(None, None, None)
        opened.__exit__(None, None, None)
