"""The synthetic dataset is deterministic, objects carry their hue family, `segmenter eval` scores it."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import torch
from PIL import Image

from cli.main import main
from model import ModelMetadata, Predictor, build_segmenter, save_checkpoint
from model.scores import ConfusionMatrix
from training.data import synthetic
from training.data.layouts import build_dataset


def test_deterministic_for_a_seed(tmp_path):
    a = synthetic.write_dataset(tmp_path / "a", train=3, val=1, size=64, seed=5)
    b = synthetic.write_dataset(tmp_path / "b", train=3, val=1, size=64, seed=5)
    for rel in ("images/train/00002.png", "masks/train/00002.png", "images/val/00000.png"):
        assert (a / rel).read_bytes() == (b / rel).read_bytes()
    names = [c["name"] for c in json.loads((a / "classes.json").read_text())["classes"]]
    assert names == synthetic.CLASSES


def test_objects_have_their_hue_family_and_backgrounds_any_colour():
    import colorsys

    rng = np.random.default_rng(0)
    seen, hues, background = set(), {c: [] for c in range(1, 5)}, []
    for _ in range(40):
        image, mask = synthetic.render(96, rng)
        seen.update(int(c) for c in np.unique(mask))
        for c in range(1, 5):
            if (mask == c).sum() > 200:
                # the brightest pixels are the un-shaded (or brightened) base colour
                pixels = image[mask == c].astype(float) / 255
                r, g, b = np.median(pixels[pixels.sum(1) > np.percentile(pixels.sum(1), 50)], axis=0)
                hues[c].append(colorsys.rgb_to_hsv(r, g, b)[0])
        background.append(image[mask == 0].mean(0))
    assert seen == {0, 1, 2, 3, 4}
    for c, values in hues.items():
        target = synthetic.HUES[synthetic.CLASSES[c]]
        distance = np.abs((np.array(values) - target + 0.5) % 1.0 - 0.5)  # on the hue circle
        assert np.median(distance) < 0.06, (synthetic.CLASSES[c], np.median(distance))
    # background colour does not identify it: its mean colours span most of the range
    assert (np.ptp(np.array(background), axis=0) > 100).all()


def test_synthetic_dataset_is_written_on_first_use_by_training_only(tmp_path, monkeypatch):
    small = functools.partial(synthetic.write_dataset, train=4, val=2, size=64)
    monkeypatch.setattr(synthetic, "write_dataset", small)
    with pytest.raises(FileNotFoundError, match="python -m training.data.synthetic --out"):
        build_dataset("synthetic", tmp_path / "synth", "val")  # evaluation never generates data
    assert not (tmp_path / "synth").exists()
    ds = build_dataset("synthetic", tmp_path / "synth", "val", generate=True)
    assert len(ds) == 2 and ds.class_names[3] == "checks"
    assert build_dataset("synthetic", tmp_path / "synth", "train").samples  # reused, not rewritten


def test_segmenter_eval_matches_manual_confusion(tmp_path, capsys):
    root = synthetic.write_dataset(tmp_path / "data", train=2, val=3, size=64, seed=1)
    torch.manual_seed(0)
    net = build_segmenter("Seg-T/16", num_classes=5, image_size=64, embed_dim=64, depth=2, num_heads=1)
    net.metadata = ModelMetadata.for_classes(synthetic.CLASSES, window_size=64)
    save_checkpoint(net, tmp_path / "ckpt")
    code = main(["eval", "--checkpoint", str(tmp_path / "ckpt"), "--dataset", "custom", "--data-root", str(root),
                 "--scale", "none", "--device", "cpu", "--out", str(tmp_path / "eval")])
    assert code == 0
    reported = json.loads((tmp_path / "eval" / "scores.json").read_text())
    cm = ConfusionMatrix(5)
    predictor = Predictor(net)
    for i in range(3):
        rgb = np.asarray(Image.open(root / f"images/val/{i:05d}.png").convert("RGB"))
        label = np.asarray(Image.open(root / f"masks/val/{i:05d}.png")).astype(np.int64)
        cm.update(torch.from_numpy(predictor.predict(rgb).astype(np.int64)), torch.from_numpy(label))
    assert reported["miou"] == cm.compute().miou
    assert (tmp_path / "eval" / "confusion.png").is_file() and "| **mean** |" in capsys.readouterr().out


def test_eval_refuses_a_class_count_mismatch(tmp_path, capsys):
    root = synthetic.write_dataset(tmp_path / "data", train=1, val=1, size=64)
    net = build_segmenter("Seg-T/16", num_classes=3, image_size=64, embed_dim=64, depth=1, num_heads=1)
    net.metadata = ModelMetadata.for_classes(["a", "b", "c"], window_size=64)
    save_checkpoint(net, tmp_path / "ckpt")
    assert main(["eval", "--checkpoint", str(tmp_path / "ckpt"), "--dataset", "custom", "--data-root", str(root),
                 "--device", "cpu"]) == 2
    assert "predicts 3 classes but custom has 5" in capsys.readouterr().err


def test_segmenter_eval_blend_scores_the_blended_merge(tmp_path):
    """`--blend linear`: the score of `Predictor(blend="linear")`'s masks, on images needing
    overlapping windows (100 px, 64-px windows)."""
    root = synthetic.write_dataset(tmp_path / "data", train=1, val=2, size=100, seed=3)
    torch.manual_seed(0)
    net = build_segmenter("Seg-T/16", num_classes=5, image_size=64, embed_dim=64, depth=2, num_heads=1)
    net.metadata = ModelMetadata.for_classes(synthetic.CLASSES, window_size=64)
    save_checkpoint(net, tmp_path / "ckpt")
    assert main(["eval", "--checkpoint", str(tmp_path / "ckpt"), "--dataset", "custom", "--data-root", str(root),
                 "--scale", "none", "--device", "cpu", "--blend", "linear", "--out", str(tmp_path / "eval")]) == 0
    reported = json.loads((tmp_path / "eval" / "scores.json").read_text())
    scores = {blend: ConfusionMatrix(5) for blend in ("uniform", "linear")}
    for i in range(2):
        rgb = np.asarray(Image.open(root / f"images/val/{i:05d}.png").convert("RGB"))
        label = torch.from_numpy(np.asarray(Image.open(root / f"masks/val/{i:05d}.png")).astype(np.int64))
        for blend, cm in scores.items():
            cm.update(torch.from_numpy(Predictor(net, blend=blend).predict(rgb, scale="none").astype(np.int64)), label)
    assert reported["miou"] == scores["linear"].compute().miou
    assert reported["miou"] != scores["uniform"].compute().miou, "the blend must change these masks"
