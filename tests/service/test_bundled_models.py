"""The demo models shipped in models/ — what `make serve` serves — load, are small, and work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from model import Predictor, load_segmenter, read_checkpoint_description
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


class SyntheticValidation:
    """The synthetic dataset's validation split (seed 0), rendered in memory as `write_dataset` draws it."""

    def __init__(self, train: int = 800, val: int = 100, size: int = 160) -> None:
        rng = np.random.default_rng(0)
        for _ in range(train):  # the training images come first in the generator's stream
            render(size, rng)
        self.pairs = [render(size, rng) for _ in range(val)]
        self.class_names = tuple(CLASSES)

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image, mask = self.pairs[index]
        return image, mask.astype(np.int64)


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_the_demo_models_score_what_their_checkpoints_claim(spec):
    from training.evaluate import evaluate

    net = load_segmenter(spec.checkpoint)
    scores = evaluate(Predictor(net, batch_size=8), SyntheticValidation(), progress=False)
    claimed = net.metadata.provenance["miou"]
    assert abs(scores.miou - claimed) < 0.005, (scores.miou, claimed)
    if "accurate" in spec.aliases:
        assert scores.miou >= 0.80


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
