"""One checkpoint resolver: every command and the Python API take an exported folder and
`zoo:NAME` as they take a checkpoint folder; a fetched name is read from the cache offline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cli.main import main
from model import Predictor, from_pretrained, load_segmenter, read_image
from testkit.hostile_inputs import smooth_image
from testkit.zoo_files import write_registry
from tests.weights_server import WeightsServer

REPO = Path(__file__).resolve().parents[2]
DEMO, DEMO_EXPORT = REPO / "models" / "demo-seg-t16", REPO / "models" / "demo-seg-t16-int8"


def same_weights(a, b) -> bool:
    a, b = a.state_dict(), b.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("photo") / "photo.png"
    Image.fromarray(smooth_image(120, 200, seed=3)).save(path)
    return path


def test_an_exported_folder_loads_the_weights_it_was_exported_from(tmp_path):
    assert same_weights(load_segmenter(DEMO_EXPORT), load_segmenter(DEMO))
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    (moved / "segmenter.json").write_bytes((DEMO_EXPORT / "segmenter.json").read_bytes())
    with pytest.raises(Exception, match="exported graph whose PyTorch weights .* not found; pass that checkpoint"):
        load_segmenter(moved)


@pytest.mark.parametrize("command", ["predict", "attention", "eval"])
def test_every_command_takes_the_bundled_export(command, photo, tmp_path):
    def run(checkpoint: Path, out: Path) -> int:
        if command == "predict":
            return main(["predict", str(photo), "--checkpoint", str(checkpoint), "--out", str(out)])
        if command == "attention":
            return main(["attention", str(photo), "--checkpoint", str(checkpoint), "--layer", "1", "--pixel", "50,40",
                         "--out", str(out)])
        from training.data.synthetic import write_dataset

        root = write_dataset(tmp_path / "data", train=1, val=2, size=64, seed=1)
        return main(["eval", "--checkpoint", str(checkpoint), "--dataset", "custom", "--data-root", str(root),
                     "--out", str(out)])

    assert run(DEMO_EXPORT, tmp_path / "export") == 0 and run(DEMO, tmp_path / "source") == 0
    files = {p.relative_to(tmp_path / "export") for p in (tmp_path / "export").rglob("*") if p.is_file()}
    assert files
    for relative in files:
        if relative.suffix in (".png", ".json") and relative.name != "scores.json":
            assert (tmp_path / "export" / relative).read_bytes() == (tmp_path / "source" / relative).read_bytes()
        elif relative.name == "scores.json":
            assert json.loads((tmp_path / "export" / relative).read_text()) == \
                json.loads((tmp_path / "source" / relative).read_text())


def test_zoo_names_work_in_every_command_and_offline_from_the_cache(published, photo, tmp_path, monkeypatch):
    files, prefix, net = published
    monkeypatch.setenv("SEGMENTER_CACHE_DIR", str(tmp_path / "cache"))
    with WeightsServer(files=dict(files)) as server:
        monkeypatch.setenv("SEGMENTER_WEIGHTS_REGISTRY", write_registry(tmp_path, server.url, prefix))
        assert main(["predict", str(photo), "--checkpoint", "zoo:tiny-mmseg", "--out", str(tmp_path / "out"),
                     "--output", "mask,json", "--scale", "none"]) == 0
        served = server.requests
    assert json.loads((tmp_path / "out" / "photo.json").read_text())["model"] == "tiny-mmseg"
    # The server is gone: everything below reads the cache.
    assert main(["attention", str(photo), "--checkpoint", "zoo:tiny-mmseg", "--layer", "0", "--pixel", "5,5",
                 "--scale", "none", "--out", str(tmp_path / "att")]) == 0
    ade = tmp_path / "ade"  # two ADE20K-layout validation images (labels 0..150, 0 = ignore)
    for folder in ("images/validation", "annotations/validation"):
        (ade / folder).mkdir(parents=True)
    for i in range(2):
        Image.fromarray(smooth_image(64, 80, seed=10 + i)).save(ade / "images" / "validation" / f"v{i}.jpg")
        label = np.random.default_rng(i).integers(0, 151, (64, 80)).astype(np.uint8)
        Image.fromarray(label).save(ade / "annotations" / "validation" / f"v{i}.png")
    assert main(["eval", "--checkpoint", "zoo:tiny-mmseg", "--dataset", "ade20k", "--data-root", str(ade),
                 "--scale", "none", "--out", str(tmp_path / "eval")]) == 0
    assert json.loads((tmp_path / "eval" / "scores.json").read_text())["miou"] >= 0
    by_name, by_ref = from_pretrained("tiny-mmseg"), from_pretrained("zoo:tiny-mmseg", batch_size=2)
    assert isinstance(by_name, Predictor) and same_weights(by_name.forward.net, net)
    rgb = read_image(photo)
    mask = by_name.predict(rgb, scale="none")
    np.testing.assert_array_equal(mask, by_ref.predict(rgb, scale="none"))
    np.testing.assert_array_equal(mask, np.asarray(Image.open(tmp_path / "out" / "photo.png")))
    assert served  # the first command did download
