"""The demo models shipped in models/ — what `make serve` serves — load, are small, and work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from model import read_checkpoint_description
from service.main import create_app
from service.model_specs import load_models_file
from service.settings import BUNDLED_MODELS, Settings
from tests.service.conftest import decode_png, encode, post_image, started_client
from training.data.synthetic import CLASSES, render

SPECS = load_models_file(BUNDLED_MODELS).models


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_bundled_checkpoints_are_small_and_describe_their_training(spec):
    folder = Path(spec.checkpoint)
    assert sum(f.stat().st_size for f in folder.iterdir()) < 10 * 1024 * 1024
    config, metadata = read_checkpoint_description(folder)
    assert list(metadata.class_names) == CLASSES
    assert metadata.provenance["miou"] > 0.6 and metadata.provenance["iteration"] > 0
    assert json.loads((folder / "segmenter.json").read_text())["format"]


def test_the_accurate_demo_model_reached_the_target_miou():
    accurate = next(s for s in SPECS if "accurate" in s.aliases)
    _, metadata = read_checkpoint_description(accurate.checkpoint)
    assert metadata.provenance["miou"] >= 0.80


def test_the_default_settings_serve_the_bundled_models_and_they_segment_textures():
    client = started_client(create_app(Settings()))
    try:
        assert client.get("/readyz").status_code == 200
        rgb, truth = render(320, np.random.default_rng(7))
        for alias, minimum in (("accurate", 0.9), ("fast", 0.8)):
            response = post_image(client, encode(rgb), model=alias)
            assert response.status_code == 200
            accuracy = (np.asarray(decode_png(response.content)) == truth).mean()
            assert accuracy > minimum, (alias, accuracy)
    finally:
        client.__exit__(None, None, None)
