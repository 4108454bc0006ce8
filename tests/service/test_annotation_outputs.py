"""Outputs annotation tools read: per-class COCO RLE and polygons in JSON, a confidence PNG, and a
`classes` selection, all checked against the Predictor."""

from __future__ import annotations

import numpy as np
import pycocotools.mask as coco_mask
import pytest

from model.annotations import rasterize
from service.main import create_app
from service.settings import Settings
from tests.service.conftest import decode_png, encode, post_image, random_image, reference_predictor, started_client
from training.data.synthetic import render


def test_json_has_per_class_coco_rle_that_decodes_to_the_mask(client, checkpoints):
    rgb = random_image(70, 90, seed=11)
    body = post_image(client, encode(rgb), output="json").json()
    mask = reference_predictor(checkpoints, "tiny-16").predict(rgb)
    assert sorted(a["category_id"] for a in body["annotations"]) == sorted(np.unique(mask).tolist())
    for item in body["annotations"]:
        rle = item["segmentation"]
        decoded = coco_mask.decode({"size": rle["size"], "counts": rle["counts"].encode()})
        np.testing.assert_array_equal(decoded.astype(bool), mask == item["category_id"])
        assert item["area"] == int((mask == item["category_id"]).sum()) and item["name"].startswith("class")


@pytest.fixture(scope="module")
def demo_client():
    client = started_client(create_app(Settings()))  # the bundled demo models: clean masks on textures
    yield client
    client.__exit__(None, None, None)


def test_polygons_rasterize_back_to_each_class(demo_client):
    rgb, _ = render(160, np.random.default_rng(5))
    body = post_image(demo_client, encode(rgb), output="json", polygons="true").json()
    mask = np.repeat(body["mask"]["values"], body["mask"]["lengths"]).reshape(body["mask"]["size"])
    for item in body["annotations"]:
        binary = mask == item["category_id"]
        back = rasterize(item["polygons"], binary.shape)
        assert (back & binary).sum() / (back | binary).sum() >= 0.98, item["name"]


def test_confidence_png_is_the_predictors_max_probability(client, checkpoints):
    rgb = random_image(64, 100, seed=12)
    response = post_image(client, encode(rgb), output="confidence", multiscale="true")
    assert response.status_code == 200
    confidence = np.asarray(decode_png(response.content)).astype(np.float32) / 255
    expected = reference_predictor(checkpoints, "tiny-16").probabilities(rgb, multiscale=True).max(0)
    assert confidence.shape == (64, 100) and np.abs(confidence - expected).max() <= 1 / 255 + 1e-6


def test_a_class_selection_limits_every_output(client, checkpoints):
    rgb = random_image(80, 80, seed=13)
    full = reference_predictor(checkpoints, "tiny-16").predict(rgb)
    present = np.unique(full)
    keep = int(present[0])
    body = post_image(client, encode(rgb), output="json", classes=f"class{keep}").json()
    assert [c["id"] for c in body["classes"]] == [keep] and [a["category_id"] for a in body["annotations"]] == [keep]
    mask = np.asarray(decode_png(post_image(client, encode(rgb), classes=str(keep)).content))
    np.testing.assert_array_equal(mask, np.where(full == keep, keep, 255))
    response = post_image(client, encode(rgb), classes="class1,nope")
    assert response.status_code == 422 and "unknown class 'nope'" in response.json()["error"]["message"]


def test_a_256_class_model_marks_unselected_pixels_with_no_real_class():
    """Ids 0..255 fill 8 bits: "not selected" must not read as class 255."""
    import io

    from PIL import Image

    from model import ModelMetadata
    from model.outputs import RenderOptions, render

    metadata = ModelMetadata.for_classes([f"c{i}" for i in range(256)])
    mask = np.random.default_rng(0).integers(0, 256, (40, 50)).astype(np.uint8)
    mask[0, :3] = (7, 255, 9)
    rgb = np.zeros((40, 50, 3), np.uint8)
    selected = RenderOptions(selected=metadata.class_ids("c7,c9"))
    decoded = np.asarray(Image.open(io.BytesIO(render("mask", rgb, mask, metadata, "m", options=selected))))
    assert decoded.shape == mask.shape and decoded[0, 0] == 7 and decoded[0, 2] == 9
    assert decoded[0, 1] == 65535 and not np.isin(decoded[~np.isin(mask, (7, 9))], range(256)).any()
