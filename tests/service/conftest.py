"""Service fixtures: tiny checkpoints the tests write, a models file, and a running app.

Two tiny models stand in for the real pair: `tiny-16` (alias `accurate`, patch 16) and
`tiny-32` (alias `fast`, patch 32), both with 64-pixel windows.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from model import Predictor, load_segmenter, save_checkpoint
from service.main import create_app
from service.settings import BUNDLED_MODELS, Settings
from testkit.hostile_inputs import encode  # noqa: F401 - re-exported to the tests
from testkit.hostile_inputs import smooth_image as random_image  # noqa: F401
from tests.conftest import tiny_segmenter


def write_models(root: Path, entries: list[dict], default: str | None = None) -> Path:
    path = root / "models.yaml"
    path.write_text(yaml.safe_dump({"models": entries, **({"default": default} if default else {})}))
    return path


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("service-models")
    save_checkpoint(tiny_segmenter(seed=11, patch_size=16), root / "tiny-16")
    save_checkpoint(tiny_segmenter(seed=12, patch_size=32, decoder="linear"), root / "tiny-32")
    return root


def standard_entries(checkpoints: Path, **extra) -> list[dict]:
    return [
        # backend torch: the tests' random tiny models, not the fast path each would build (and fail the gate of)
        {"name": "tiny-16", "checkpoint": str(checkpoints / "tiny-16"), "aliases": ["accurate"], "backend": "torch",
         **extra},
        {"name": "tiny-32", "checkpoint": str(checkpoints / "tiny-32"), "aliases": ["fast"], "backend": "torch",
         **extra},
    ]


def make_settings(models_file: Path, **overrides) -> Settings:
    return Settings(models=models_file, **overrides)


@pytest.fixture
def models_file(checkpoints, tmp_path) -> Path:
    return write_models(tmp_path, standard_entries(checkpoints, max_batch_size=4), default="accurate")


def started_client(app: FastAPI, timeout: float = 120) -> TestClient:
    """A TestClient whose lifespan ran and whose models finished loading (ready or failed).

    A model that never finishes loading fails the test after `timeout` seconds instead of hanging it.
    """
    client = TestClient(app)
    client.__enter__()

    async def loaded() -> None:
        await asyncio.wait_for(app.state.pool.wait_loaded(), timeout)

    client.portal.call(loaded)
    return client


@pytest.fixture
def client(models_file) -> Iterator[TestClient]:
    client = started_client(create_app(make_settings(models_file)))
    yield client
    client.__exit__(None, None, None)


def reference_predictor(checkpoints: Path, name: str) -> Predictor:
    return Predictor(load_segmenter(checkpoints / name), batch_size=4)


def decode_png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image


def post_image(client: TestClient, data: bytes, filename: str = "image.png", **fields) -> httpx.Response:
    form = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in fields.items()}
    return client.post("/segment", files={"image": (filename, data, "application/octet-stream")}, data=form)


def run(coro):
    return asyncio.run(coro)


BUNDLED_DIR = Path(BUNDLED_MODELS).parent  # models/: the demo checkpoints and their int8 exports


def export_without_weights(root: Path, source: str) -> Path:
    """demo-seg-t16's int8 export, moved away from its checkpoint (its segmenter.json saying `source`)."""
    export, folder = BUNDLED_DIR / "demo-seg-t16-int8", root / "moved-int8"
    folder.mkdir()
    for name in ("model.onnx", "model_int8.xml", "model_int8.bin"):
        (folder / name).symlink_to(export / name)
    description = json.loads((export / "segmenter.json").read_text())
    description["onnx"]["source"] = source
    (folder / "segmenter.json").write_text(json.dumps(description))
    return folder
