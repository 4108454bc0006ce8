"""Palette PNG masks keep class ids; overlays blend as documented; legends show the classes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from model.class_sets import default_palette, get_class_set
from model.visualization import colorize, draw_legend, mask_to_image, overlay


def png_round_trip(img: Image.Image) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    buf.seek(0)
    return Image.open(buf)


def test_palette_png_keeps_ids_and_colours(rng):
    palette = get_class_set("ade20k").palette
    mask = rng.integers(0, 150, (20, 30)).astype(np.uint8)
    back = png_round_trip(mask_to_image(mask, palette))
    assert back.mode == "P"
    np.testing.assert_array_equal(np.asarray(back), mask)
    np.testing.assert_array_equal(np.asarray(back.convert("RGB")), colorize(mask, palette))


def test_more_than_256_classes_use_16_bit(rng):
    palette = default_palette(300)
    mask = rng.integers(0, 300, (8, 9)).astype(np.uint16)
    back = png_round_trip(mask_to_image(mask, palette))
    np.testing.assert_array_equal(np.asarray(back).astype(np.uint16), mask)


def test_overlay_alpha_extremes(rng):
    image = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    mask = rng.integers(0, 3, (6, 7))
    palette = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    np.testing.assert_array_equal(overlay(image, mask, palette, 0.0), image)
    np.testing.assert_array_equal(overlay(image, mask, palette, 1.0), colorize(mask, palette))
    with pytest.raises(ValueError, match="alpha"):
        overlay(image, mask, palette, 1.5)


def test_colorize_rejects_ids_beyond_palette():
    with pytest.raises(ValueError, match="class id 3"):
        colorize(np.array([[3]]), [(0, 0, 0)] * 3)


def test_default_palette_is_distinct():
    assert len(set(default_palette(200))) == 200


def test_legend_adds_a_swatch_per_class():
    image = np.zeros((100, 50, 3), dtype=np.uint8)
    palette = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    out = draw_legend(image, [0, 2], ["red", "green", "blue"], palette)
    assert out.shape[0] == 100 and out.shape[1] > 50
    legend = out[:, 50:].reshape(-1, 3)
    colours = {tuple(c) for c in legend}
    assert (255, 0, 0) in colours and (0, 0, 255) in colours and (0, 255, 0) not in colours


def test_background_classes_leave_the_photo_as_it_is():
    from model.visualization import transparent_classes

    names = ["background", "cat", "Unlabeled", "dog"]
    assert transparent_classes(names) == (0, 2)
    image = np.full((2, 3, 3), 200, np.uint8)
    mask = np.array([[0, 1, 2], [3, 0, 1]])
    palette = [[0, 0, 0], [255, 0, 0], [0, 0, 0], [0, 255, 0]]
    blended = overlay(image, mask, palette, 0.5, transparent_classes(names))
    assert (blended[mask == 0] == 200).all() and (blended[mask == 2] == 200).all()  # not darkened
    assert (blended[mask == 1] == [228, 100, 100]).all()  # the others are painted as before


@pytest.mark.parametrize("alpha", [0.3, 0.5, 0.77])
def test_overlay_is_the_blend_rounded_and_keeps_transparent_pixels(alpha):
    """The OpenCV path (issue 27: 12 MP in ~40 ms) is (1 - alpha)·image + alpha·colour to the
    nearest level; background pixels are the photo's own; 8- and 16-bit masks agree."""
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    mask = rng.integers(0, 5, (37, 53), dtype=np.uint8)
    palette = rng.integers(0, 256, (5, 3)).tolist()
    got = overlay(image, mask, palette, alpha, transparent=(0, 3))
    exact = (1 - alpha) * image.astype(np.float64) + alpha * np.asarray(palette, np.float64)[mask]
    painted = ~np.isin(mask, (0, 3))
    assert np.abs(got[painted].astype(np.float64) - exact[painted]).max() <= 0.5 + 1e-6
    np.testing.assert_array_equal(got[~painted], image[~painted])
    np.testing.assert_array_equal(overlay(image, mask.astype(np.uint16), palette, alpha, transparent=(0, 3)), got)
    with pytest.raises(ValueError, match="class id 4 but the palette has 4 colours"):
        overlay(image, mask, palette[:4], alpha)


def test_overlay_refuses_what_is_not_8_bit_rgb_and_handles_edges():
    mask = np.zeros((4, 5), np.uint8)
    with pytest.raises(ValueError, match="uint8 RGB image, got uint16"):
        overlay(np.zeros((4, 5, 3), np.uint16), mask, [(1, 2, 3)])
    assert overlay(np.zeros((0, 5, 3), np.uint8), np.zeros((0, 5), np.uint8), [(1, 2, 3)]).shape == (0, 5, 3)
    image = np.full((4, 5, 3), 9, np.uint8)
    np.testing.assert_array_equal(overlay(image, mask, [(1, 2, 3)], 0.5, transparent=(0, 300)), image)
