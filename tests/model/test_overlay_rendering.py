"""Overlays of big photos: a legend sized to the picture, JPEG and WebP encodings of the same
picture, and class fractions that never read 0 for a class that has pixels."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from model.metadata import ModelMetadata
from model.outputs import RenderOptions, classes_present, file_suffix, render, render_overlay
from model.visualization import draw_legend
from testkit.hostile_inputs import smooth_image

METADATA = ModelMetadata.for_dataset("ade20k")


def _class_map(height: int, width: int) -> np.ndarray:
    """Four ADE20K classes in quadrants: wall, building, sky, floor."""
    mask = np.zeros((height, width), np.uint8)
    mask[: height // 2, width // 2:], mask[height // 2:, : width // 2], mask[height // 2:, width // 2:] = 1, 2, 3
    return mask


def _legend_box(height: int, width: int) -> tuple[int, int]:
    """(height, width) of what the legend draws beside a picture of that size (non-white pixels)."""
    picture = np.full((height, width, 3), 255, np.uint8)
    out = draw_legend(picture, [0, 1, 2, 3], METADATA.class_names, METADATA.palette)
    inked = np.flatnonzero((out[:, width:] < 250).any(axis=(1, 2)))
    return inked[-1] - inked[0] + 1, out.shape[1] - width


def test_the_legend_grows_with_the_picture():
    small_height, small_width = _legend_box(480, 640)
    big_height, big_width = _legend_box(3000, 4000)
    assert big_height >= 3 * small_height and big_width >= 3 * small_width
    assert big_height < 3000  # four classes still fit beside the photo


@pytest.mark.parametrize(("classes", "at_least"), [(40, 3), (150, 1)])
def test_a_long_legend_grows_only_as_far_as_the_photo_is_tall(classes, at_least):
    """40 classes still get big text on a 4000×3000 photo; 150 get what fits, never less than on
    a small picture: the legend never runs past the photo's bottom."""
    ids, names, palette = list(range(classes)), METADATA.class_names, METADATA.palette
    big = draw_legend(np.zeros((3000, 4000, 3), np.uint8), ids, names, palette)
    small = draw_legend(np.zeros((480, 640, 3), np.uint8), ids, names, palette)
    assert big.shape[0] == 3000
    assert big.shape[1] - 4000 >= at_least * (small.shape[1] - 640)


@pytest.mark.parametrize(("image_format", "pillow_name", "suffix"), [
    ("png", "PNG", "_overlay.png"), ("jpeg", "JPEG", "_overlay.jpg"), ("webp", "WEBP", "_overlay.webp")])
def test_a_12_megapixel_overlay_in_each_format_is_the_same_picture(image_format, pillow_name, suffix):
    rgb = smooth_image(3000, 4000, seed=5)
    mask = _class_map(3000, 4000)
    options = RenderOptions(overlay_format=image_format)
    expected = render_overlay(rgb, mask, METADATA, options)
    picture = Image.open(io.BytesIO(render("overlay", rgb, mask, METADATA, "m", options=options)))
    assert picture.format == pillow_name and picture.size == (expected.shape[1], expected.shape[0])
    assert np.abs(np.asarray(picture.convert("RGB")).astype(int) - expected).mean() < 3
    assert file_suffix("overlay", options) == suffix and file_suffix("mask", options) == ".png"


def test_an_unknown_overlay_format_names_it_and_the_valid_ones():
    with pytest.raises(ValueError, match=r"'gif'.*png, jpeg, webp"):
        RenderOptions(overlay_format="gif")


def test_a_class_of_one_pixel_in_12_million_has_a_fraction_above_zero():
    mask = np.zeros((3000, 4000), np.uint8)
    mask[0, 0] = 7
    found = {c["id"]: c for c in classes_present(mask, METADATA)}
    assert set(found) == {0, 7}  # classes without pixels are not listed
    assert found[7]["pixels"] == 1 and found[7]["fraction"] == pytest.approx(1 / 12e6, rel=1e-5)
