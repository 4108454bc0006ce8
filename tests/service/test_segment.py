"""POST /segment answers what the Predictor computes, in each output format, per model."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from model.visualization import overlay
from service.main import create_app
from tests.conftest import tiny_segmenter
from tests.service.conftest import (
    decode_png,
    encode,
    make_settings,
    post_image,
    random_image,
    reference_predictor,
    started_client,
    write_models,
)


def test_mask_is_the_predictors_mask_with_palette_and_headers(client, checkpoints):
    rgb = random_image(90, 130, seed=1)
    response = post_image(client, encode(rgb), model="tiny-16", output="mask")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-segmenter-model"] == "tiny-16"
    assert response.headers["x-segmenter-backend"] == "torch"
    timing = response.headers["server-timing"]
    durations = dict(re.findall(r"(\w+);dur=([0-9.]+)", timing))
    assert set(durations) == {"decode", "queue", "forward", "merge", "render", "total"}
    parts = sum(float(v) for k, v in durations.items() if k != "total")
    assert parts <= float(durations["total"]) + 0.5  # each names a stretch of this request's own time
    png = decode_png(response.content)
    assert png.mode == "P" and png.size == (130, 90)
    expected = reference_predictor(checkpoints, "tiny-16").predict(rgb)
    np.testing.assert_array_equal(np.asarray(png), expected)
    meta = reference_predictor(checkpoints, "tiny-16").metadata
    assert png.getpalette()[:15] == [v for c in meta.palette[:5] for v in c]


def test_models_are_chosen_by_name_alias_or_default(client, checkpoints):
    rgb = random_image(64, 96, seed=2)
    chosen = {}
    for requested, served in [("fast", "tiny-32"), ("accurate", "tiny-16"), ("tiny-32", "tiny-32"), (None, "tiny-16")]:
        fields = {"model": requested} if requested else {}
        response = post_image(client, encode(rgb), **fields)
        assert response.status_code == 200 and response.headers["x-segmenter-model"] == served, requested
        chosen[served] = np.asarray(decode_png(response.content))
    for name, mask in chosen.items():
        np.testing.assert_array_equal(mask, reference_predictor(checkpoints, name).predict(rgb))
    assert not np.array_equal(chosen["tiny-16"], chosen["tiny-32"])  # really two different models


def test_overlay_blends_the_mask_and_adds_a_legend(client, checkpoints):
    rgb = random_image(80, 100, seed=3)
    mask = reference_predictor(checkpoints, "tiny-16").predict(rgb)
    meta = reference_predictor(checkpoints, "tiny-16").metadata
    plain = post_image(client, encode(rgb), output="overlay", alpha=0.3, legend=False)
    assert plain.status_code == 200
    image = decode_png(plain.content)
    assert image.mode == "RGB" and image.size == (100, 80)
    np.testing.assert_array_equal(np.asarray(image), overlay(rgb, mask, meta.palette, 0.3))
    classes = json.loads(plain.headers["x-segmenter-classes"])
    assert sorted(c["id"] for c in classes) == sorted(np.unique(mask).tolist())
    with_legend = decode_png(post_image(client, encode(rgb), output="overlay", alpha=0.3).content)
    assert with_legend.size[0] > 100 and with_legend.size[1] >= 80
    np.testing.assert_array_equal(np.asarray(with_legend)[:80, :100], np.asarray(image))


def test_json_lists_classes_and_run_length_mask(client, checkpoints):
    rgb = random_image(70, 75, seed=4)
    body = post_image(client, encode(rgb), output="json").json()
    mask = reference_predictor(checkpoints, "tiny-16").predict(rgb)
    assert (body["model"], body["width"], body["height"]) == ("tiny-16", 75, 70)
    encoded = body["mask"]
    assert encoded["encoding"] == "rle-row-major" and encoded["size"] == [70, 75]
    decoded = np.repeat(encoded["values"], encoded["lengths"]).reshape(encoded["size"])
    np.testing.assert_array_equal(decoded, mask)
    counts = np.bincount(mask.ravel())
    assert {c["id"]: c["pixels"] for c in body["classes"]} == {i: int(n) for i, n in enumerate(counts) if n}
    assert sum(c["fraction"] for c in body["classes"]) == pytest.approx(1.0, abs=1e-4)
    assert all(c["name"] == f"class{c['id']}" for c in body["classes"])


def test_multiscale_matches_the_predictor(client, checkpoints):
    rgb = random_image(64, 80, seed=5)
    response = post_image(client, encode(rgb), multiscale=True, model="fast")
    assert response.status_code == 200
    assert int(response.headers["x-segmenter-windows"]) > 12  # 6 scales × 2 flips
    expected = reference_predictor(checkpoints, "tiny-32").predict(rgb, multiscale=True)
    np.testing.assert_array_equal(np.asarray(decode_png(response.content)), expected)


def test_more_than_256_classes_give_a_16_bit_mask(tmp_path):
    from model import save_checkpoint

    save_checkpoint(tiny_segmenter(seed=3, num_classes=300, decoder="linear"), tmp_path / "big")
    models = write_models(tmp_path, [{"name": "big", "checkpoint": str(tmp_path / "big"), "backend": "torch"}])
    client = started_client(create_app(make_settings(models)))
    try:
        rgb = random_image(64, 64, seed=6)
        png = decode_png(post_image(client, encode(rgb)).content)
        assert png.mode.startswith("I")
        expected = reference_predictor(tmp_path, "big").predict(rgb)
        assert expected.dtype == np.uint16
        np.testing.assert_array_equal(np.asarray(png).astype(np.uint16), expected)
    finally:
        client.__exit__(None, None, None)


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "I;16", "CMYK"])
def test_any_pixel_format_is_converted(client, mode):
    rgb = random_image(64, 64, seed=7)
    image = Image.fromarray(rgb)
    if mode == "I;16":
        data = encode(np.asarray(image.convert("L")).astype(np.uint16) * 257)
    else:
        converted = image.convert(mode)
        buffer = io.BytesIO()
        converted.save(buffer, format="JPEG" if mode == "CMYK" else "PNG")
        data = buffer.getvalue()
    response = post_image(client, data, output="json")
    assert response.status_code == 200, response.text
    assert (response.json()["width"], response.json()["height"]) == (64, 64)


def test_exif_orientation_is_applied(client, checkpoints):
    rgb = random_image(64, 96, seed=8)  # stored landscape, EXIF says "rotate 90° clockwise"
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(rgb, "JPEG", quality=95, exif=exif.tobytes())
    body = post_image(client, data, output="json").json()
    assert (body["width"], body["height"]) == (64, 96)
