"""The demo models shipped in models/ — what `make serve` serves — load, are small, and work."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from cli.main import main
from export import read_exported
from model.checkpoints import read_checkpoint_description
from service.main import create_app
from service.model_specs import load_models_file
from service.settings import BUNDLED_MODELS, Settings
from tests.service.conftest import decode_png, encode, post_image, started_client
from training.data.synthetic import CLASSES, render, write_dataset

SPECS = load_models_file(BUNDLED_MODELS).models
MODELS = Path(BUNDLED_MODELS).parent
CHECKPOINTS = {"demo-seg-t16": MODELS / "demo-seg-t16", "demo-seg-t32": MODELS / "demo-seg-t32"}
DOCUMENTED_MIOU = {"demo-seg-t16": 88.1, "demo-seg-t32": 72.1}  # README, models/README.md


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_bundled_checkpoints_are_small_and_describe_their_training(name):
    folder = CHECKPOINTS[name]
    assert sum(f.stat().st_size for f in folder.iterdir()) < 10 * 1024 * 1024
    config, metadata = read_checkpoint_description(folder)
    assert list(metadata.class_names) == CLASSES
    assert metadata.provenance["miou"] > 0.6 and metadata.provenance["iteration"] > 0
    assert json.loads((folder / "segmenter.json").read_text())["format"]


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_served_exports_come_from_the_checkpoints_and_passed_their_gate(spec):
    """What `make serve` serves: each checkpoint's int8 export, recorded as gated on the labelled
    validation split with a small mIoU drop, and the same classes and preprocessing."""
    exported = read_exported(spec.checkpoint)
    assert spec.backend == "openvino" and spec.precision == "int8"
    gate = exported.precisions["int8"]["gate"]
    assert gate["passed"] and gate["scenes_kind"] == "labelled images" and gate["eval_images"] == 100
    assert gate["miou_drop"] <= 0.5 and gate["miou_reference"] == pytest.approx(DOCUMENTED_MIOU[spec.name], abs=0.5)
    _, metadata = read_checkpoint_description(CHECKPOINTS[spec.name])
    assert exported.metadata == metadata


@pytest.fixture(scope="module")
def synthetic_val(tmp_path_factory):
    """The demo models' validation split, as `python -m training.data.synthetic --splits val` writes it."""
    return write_dataset(tmp_path_factory.mktemp("synthetic"), splits=("val",))


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_segmenter_eval_with_default_options_reproduces_the_documented_miou(name, synthetic_val, capsys):
    code = main(["eval", "--checkpoint", str(CHECKPOINTS[name]), "--dataset", "synthetic", "--data-root",
                 str(synthetic_val), "--device", "cpu"])
    assert code == 0
    printed = float(re.search(r"mIoU (\d+\.\d+)", capsys.readouterr().out).group(1))
    _, metadata = read_checkpoint_description(CHECKPOINTS[name])
    assert printed == pytest.approx(100 * metadata.provenance["miou"], abs=0.5)
    assert printed == pytest.approx(DOCUMENTED_MIOU[name], abs=0.5)


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


def test_an_export_served_by_torch_runs_the_weights_it_came_from(tmp_path):
    import yaml

    from model import Predictor, load_segmenter

    models = tmp_path / "models.yaml"
    entry = {"name": "demo", "checkpoint": str(MODELS / "demo-seg-t16-int8"), "backend": "torch"}
    models.write_text(yaml.safe_dump({"models": [entry]}))
    client = started_client(create_app(Settings(models=models)))
    try:
        info = client.get("/models").json()["models"][0]
        assert info["attention"]["encoder_layers"] > 0  # a PyTorch model: attention maps work
        rgb = np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)
        answer = post_image(client, encode(rgb), model="demo")
        expected = Predictor(load_segmenter(MODELS / "demo-seg-t16")).predict(rgb)
        np.testing.assert_array_equal(np.asarray(decode_png(answer.content)), expected)
    finally:
        client.__exit__(None, None, None)
