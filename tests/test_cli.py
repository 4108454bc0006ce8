"""`segmenter predict` writes palette masks and overlays; bad inputs are reported, not skipped."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from cli.main import main
from model import Predictor, load_segmenter, save_checkpoint
from tests.conftest import tiny_segmenter


@pytest.fixture
def checkpoint(tmp_path):
    return save_checkpoint(tiny_segmenter(seed=4), tmp_path / "ckpt")


def write_images(folder, rng, sizes):
    folder.mkdir()
    paths = []
    for i, (h, w) in enumerate(sizes):
        path = folder / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_predict_folder_writes_masks_equal_to_predictor(tmp_path, checkpoint, rng):
    paths = write_images(tmp_path / "images", rng, [(64, 64), (50, 90)])
    out = tmp_path / "out"
    assert main(["predict", str(tmp_path / "images"), "--checkpoint", str(checkpoint), "--out", str(out),
                 "--overlay"]) == 0
    predictor = Predictor(load_segmenter(checkpoint))
    for path in paths:
        mask = Image.open(out / f"{path.stem}.png")
        assert mask.mode == "P"
        expected = predictor.predict(np.asarray(Image.open(path).convert("RGB")))
        np.testing.assert_array_equal(np.asarray(mask), expected)
        overlay = Image.open(out / f"{path.stem}_overlay.png")
        assert overlay.height >= mask.height and overlay.width > mask.width  # legend to the right


def test_corrupt_image_is_reported_and_others_still_written(tmp_path, checkpoint, rng, capsys):
    write_images(tmp_path / "images", rng, [(64, 64)])
    (tmp_path / "images" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    code = main(["predict", str(tmp_path / "images"), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o")])
    assert code == 1
    assert "broken.jpg cannot be read" in capsys.readouterr().err
    assert (tmp_path / "o" / "img0.png").exists()


def test_missing_checkpoint_exits_with_message(tmp_path, rng, capsys):
    write_images(tmp_path / "images", rng, [(64, 64)])
    code = main(["predict", str(tmp_path / "images"), "--checkpoint", str(tmp_path / "nope"), "--out",
                 str(tmp_path / "o")])
    assert code == 2
    assert "no checkpoint at" in capsys.readouterr().err


def test_installed_command_lists_variants():
    out = subprocess.run([sys.executable, "-m", "cli", "variants"], capture_output=True, text=True, check=True)
    assert "Seg-B†-Mask/16" in out.stdout and "Seg-L-Mask/16" in out.stdout


def test_convert_official_checkpoint_keeps_logits(tmp_path):
    import torch

    from testkit.official_files import official_net_kwargs, write_official_checkpoint

    ref = write_official_checkpoint(tmp_path / "official", official_net_kwargs(n_cls=19), dataset="cityscapes")
    assert main(["convert", "--checkpoint", str(tmp_path / "official" / "checkpoint.pth"),
                 "--out", str(tmp_path / "ours")]) == 0
    net = load_segmenter(tmp_path / "ours")
    assert net.metadata.dataset == "cityscapes" and net.metadata.class_names[0] == "road"
    from model.checkpoints import file_sha256

    provenance = net.metadata.provenance
    assert provenance["sha256"] == file_sha256(tmp_path / "official" / "checkpoint.pth")
    assert provenance["converted_from"].endswith("checkpoint.pth") and provenance["converted_at"]
    x = torch.randn(1, 3, 64, 96)
    with torch.inference_mode():
        torch.testing.assert_close(net(x), ref(x), rtol=1e-4, atol=1e-4)


def test_predict_never_overwrites_and_lists_what_it_skips(tmp_path, checkpoint, rng, capsys):
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    same_name = {"x.jpg": rng.integers(0, 256, (64, 64, 3), dtype=np.uint8),
                 "x.png": rng.integers(0, 256, (64, 80, 3), dtype=np.uint8),
                 "sub/x.png": rng.integers(0, 256, (70, 64, 3), dtype=np.uint8)}
    for name, rgb in same_name.items():
        Image.fromarray(rgb).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    Image.fromarray(same_name["x.png"]).save(folder / "anim.gif")
    assert main(["predict", str(folder), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr()
    sizes = {p.relative_to(tmp_path / "out").as_posix(): Image.open(p).size for p in (tmp_path / "out").rglob("*.png")}
    assert sizes == {"x.jpg.png": (64, 64), "x.png.png": (80, 64), "sub/x.png": (64, 70)}  # one mask per image
    assert "wrote the outputs (mask) of 3 image(s)" in out.out and "2 file(s) skipped" in out.out
    assert "notes.txt: not an image" in out.err and "anim.gif: not an image" in out.err


def test_predict_coco_format_loads_in_pycocotools(tmp_path, checkpoint, rng):
    from pycocotools.coco import COCO

    folder = tmp_path / "images"
    (folder / "a").mkdir(parents=True)
    images = {"a/one.png": rng.integers(0, 256, (64, 80, 3), dtype=np.uint8),
              "two.jpg": rng.integers(0, 256, (70, 64, 3), dtype=np.uint8)}
    for name, rgb in images.items():
        Image.fromarray(rgb).save(folder / name, quality=100)
    assert main(["predict", str(folder), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "out"),
                 "--format", "coco"]) == 0
    assert not list((tmp_path / "out").glob("*.png"))  # one document instead of mask files
    coco = COCO(str(tmp_path / "out" / "predictions.json"))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == [f"class{i}" for i in range(5)]
    predictor = Predictor(load_segmenter(checkpoint))
    for image in coco.loadImgs(coco.getImgIds()):
        expected = predictor.predict(np.asarray(Image.open(folder / image["file_name"]).convert("RGB")))
        for annotation in coco.loadAnns(coco.getAnnIds(imgIds=image["id"])):
            np.testing.assert_array_equal(coco.annToMask(annotation).astype(bool),
                                          expected == annotation["category_id"])
        assert sum(a["area"] for a in coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))) == expected.size


def test_attention_writes_a_grid_per_request(tmp_path, checkpoint, rng, capsys):
    rgb = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    assert main(["attention", str(tmp_path / "photo.png"), "--checkpoint", str(checkpoint),
                 "--layer", "1", "--pixel", "20,30", "--out", str(tmp_path / "out")]) == 0
    path = tmp_path / "out" / "photo_encoder1_pixel-20-30.png"
    assert path.is_file() and str(path) in capsys.readouterr().out
    assert main(["attention", str(tmp_path / "photo.png"), "--checkpoint", str(checkpoint),
                 "--layer", "0", "--class", "class3", "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "photo_decoder0_class-3.png").is_file()
    assert main(["attention", str(tmp_path / "photo.png"), "--checkpoint", str(checkpoint),
                 "--layer", "0", "--class", "zebra", "--out", str(tmp_path / "out")]) == 2
    assert "unknown class 'zebra'" in capsys.readouterr().err
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "photo.png")), rgb)  # input untouched


def test_predict_blend_writes_the_blended_masks(tmp_path, checkpoint, rng):
    paths = write_images(tmp_path / "images", rng, [(64, 150)])  # three overlapping 64-px windows
    out = tmp_path / "out"
    assert main(["predict", str(tmp_path / "images"), "--checkpoint", str(checkpoint), "--out", str(out),
                 "--blend", "linear", "--scale", "none"]) == 0
    rgb = np.asarray(Image.open(paths[0]).convert("RGB"))
    net = load_segmenter(checkpoint)
    expected = Predictor(net, blend="linear").predict(rgb, scale="none")
    assert not np.array_equal(Predictor(net).predict(rgb, scale="none"), expected), "the blend must matter here"
    np.testing.assert_array_equal(np.asarray(Image.open(out / f"{paths[0].stem}.png")), expected)
