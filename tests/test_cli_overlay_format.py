"""`segmenter predict --overlay-format`: the overlay as JPEG or WebP, named by its extension; the
mask stays a PNG of class ids."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cli.main import main
from model import save_checkpoint
from tests.conftest import tiny_segmenter


@pytest.mark.parametrize(("flag", "file_name", "pillow_name"), [
    ([], "photo_overlay.png", "PNG"), (["--overlay-format", "jpeg"], "photo_overlay.jpg", "JPEG"),
    (["--overlay-format", "webp"], "photo_overlay.webp", "WEBP")])
def test_overlay_format_names_and_encodes_the_overlay(tmp_path, rng, flag, file_name, pillow_name):
    checkpoint = save_checkpoint(tiny_segmenter(seed=4), tmp_path / "ckpt")
    (tmp_path / "images").mkdir()
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(tmp_path / "images" / "photo.png")
    out = tmp_path / "out"
    assert main(["predict", str(tmp_path / "images"), "--checkpoint", str(checkpoint), "--out", str(out),
                 "--output", "mask,overlay", *flag]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(["photo.png", file_name])
    overlay = Image.open(out / file_name)
    assert overlay.format == pillow_name and overlay.height >= 48 and overlay.width > 64  # legend to the right
    assert Image.open(out / "photo.png").mode == "P"  # the mask keeps its class ids


def test_an_unknown_overlay_format_is_refused_naming_the_valid_ones(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["predict", "x", "--checkpoint", "c", "--out", "o", "--overlay-format", "gif"])
    error = capsys.readouterr().err
    assert exited.value.code == 2 and "--overlay-format" in error and "'gif'" in error
    assert "'png', 'jpeg', 'webp'" in error


def test_an_overlay_format_without_an_overlay_is_an_error_naming_both(tmp_path, capsys):
    from cli.main import main

    assert main(["predict", str(tmp_path), "--checkpoint", str(tmp_path / "none"), "--out", str(tmp_path / "o"),
                 "--output", "mask", "--overlay-format", "jpeg"]) == 2
    err = capsys.readouterr().err
    assert "--overlay-format jpeg applies to overlays" in err and "--output is mask" in err
