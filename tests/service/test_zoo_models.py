"""`checkpoint: zoo:NAME` in a models file: fetched at start-up with its progress in /readyz,
served like any model; a failed download fails only that model, naming the URL."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from model import Predictor, load_segmenter
from service.main import create_app
from testkit.zoo_files import write_registry
from tests.service.conftest import (
    decode_png,
    encode,
    make_settings,
    post_image,
    random_image,
    standard_entries,
    write_models,
)
from tests.weights_server import WeightsServer


def _until_detail(client, text: str, timeout_s: float = 30) -> dict:
    """/readyz's state of ade-tiny once its detail mentions `text` (the client reads the held
    transfer's first bytes at its own pace): a bounded check of the condition, not a guess."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = client.get("/readyz").json()["models"]["ade-tiny"]
        if text in (state.get("detail") or "") or time.monotonic() > deadline:
            return state
        time.sleep(0.01)


def test_a_zoo_model_is_fetched_at_start_up_with_progress_then_served(tmp_path, published, checkpoints):
    from fastapi.testclient import TestClient

    files, prefix, _ = published
    path = f"/zoo/tiny_mmseg_20260101-{prefix}.pth"
    release = threading.Event()
    with WeightsServer(files=dict(files), hold_at={path: (len(files[path]) // 3, release)}) as server:
        entries = [{"name": "ade-tiny", "checkpoint": "zoo:tiny-mmseg", "aliases": ["accurate"], "backend": "torch"},
                   standard_entries(checkpoints)[1]]
        settings = make_settings(write_models(tmp_path, entries), cache_dir=tmp_path / "cache",
                                 weights_registry=write_registry(tmp_path, server.url, prefix))
        app = create_app(settings)
        with TestClient(app) as client:
            assert server.held.wait(30)  # the transfer is a third done, and held there
            state = _until_detail(client, "downloading")
            assert state["state"] == "loading" and "% of" in state["detail"]
            assert client.get("/readyz").status_code == 503
            release.set()
            client.portal.call(lambda: asyncio.wait_for(app.state.pool.wait_loaded(), 120))
            assert client.get("/readyz").status_code == 200
            rgb = random_image(64, 96, seed=3)
            # (at its own size: the entry's ADE20K test scale would make 384 windows of this tiny model)
            response = post_image(client, encode(rgb), model="accurate", scale="none")
            assert response.status_code == 200, response.text
            fetched = load_segmenter(tmp_path / "cache" / "models" / "tiny-mmseg")
            expected = Predictor(fetched).predict(rgb, scale="none")
            np.testing.assert_array_equal(np.asarray(decode_png(response.content)), expected)


def test_a_failed_download_fails_only_that_model(tmp_path, published, checkpoints):
    from tests.service.conftest import started_client

    _, prefix, _ = published
    entries = [{"name": "ade-tiny", "checkpoint": "zoo:tiny-mmseg", "backend": "torch"},
               standard_entries(checkpoints)[1]]
    settings = make_settings(write_models(tmp_path, entries), cache_dir=tmp_path / "cache",
                             weights_registry=write_registry(tmp_path, "https://weights.example.invalid", prefix),
                             weights_mirror="http://127.0.0.1:9")  # nothing listens there: no network
    client = started_client(create_app(settings))
    try:
        models = client.get("/readyz").json()["models"]
        failed = models["ade-tiny"]
        assert failed["state"] == "failed"
        assert f"http://127.0.0.1:9/zoo/tiny_mmseg_20260101-{prefix}.pth" in failed["reason"]
        assert "segmenter weights fetch tiny-mmseg" in failed["reason"]
        assert models["tiny-32"]["state"] == "ready"
        assert post_image(client, encode(random_image(64, 64)), model="tiny-32").status_code == 200
    finally:
        client.__exit__(None, None, None)


@pytest.mark.parametrize("preset", ["ade20k.yaml", "ade20k-cpu.yaml"])
def test_the_presets_name_registry_checkpoints(preset):
    from pathlib import Path

    from model.zoo import load_registry
    from service.model_specs import load_models_file

    models = load_models_file(Path(__file__).resolve().parents[2] / "models" / preset)
    assert {s.zoo_name for s in models.models} == {"ade20k-seg-b-mask-16", "ade20k-seg-t-mask-16"}
    assert all(s.is_zoo and s.zoo_name in load_registry() for s in models.models)
    assert {a for s in models.models for a in s.aliases} == {"accurate", "fast"}
