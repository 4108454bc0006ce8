"""The demo models shipped in models/ — what `make serve` serves — load, are small, and work."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from cli.main import main
from model import read_checkpoint_description
from service.main import create_app
from service.model_specs import load_models_file
from service.settings import BUNDLED_MODELS, Settings
from tests.service.conftest import decode_png, encode, post_image, started_client
from training.data.synthetic import CLASSES, render, write_dataset

SPECS = load_models_file(BUNDLED_MODELS).models


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_bundled_checkpoints_are_small_and_describe_their_training(spec):
    folder = Path(spec.checkpoint)
    assert sum(f.stat().st_size for f in folder.iterdir()) < 10 * 1024 * 1024
    config, metadata = read_checkpoint_description(folder)
    assert list(metadata.class_names) == CLASSES
    assert metadata.provenance["miou"] > 0.6 and metadata.provenance["iteration"] > 0
    assert json.loads((folder / "segmenter.json").read_text())["format"]


@pytest.fixture(scope="module")
def synthetic_val(tmp_path_factory):
    """The demo models' validation split, as `python -m training.data.synthetic --splits val` writes it."""
    return write_dataset(tmp_path_factory.mktemp("synthetic"), splits=("val",))


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_segmenter_eval_with_default_options_reproduces_the_documented_miou(spec, synthetic_val, capsys):
    code = main(["eval", "--checkpoint", str(spec.checkpoint), "--dataset", "synthetic", "--data-root",
                 str(synthetic_val), "--device", "cpu"])
    assert code == 0
    printed = float(re.search(r"mIoU (\d+\.\d+)", capsys.readouterr().out).group(1))
    _, metadata = read_checkpoint_description(spec.checkpoint)
    assert printed == pytest.approx(100 * metadata.provenance["miou"], abs=0.5)
    documented = {"demo-seg-t16": 88.1, "demo-seg-t32": 72.1}[spec.name]  # README, models/README.md
    assert printed == pytest.approx(documented, abs=0.5)


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
