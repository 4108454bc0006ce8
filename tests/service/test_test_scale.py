"""A phone photo through an ADE20K-style model: resized into the test scale (2 windows, not 48),
answered at its own size, and equal to `Predictor.predict` on the same file."""

from __future__ import annotations

import numpy as np
import pytest

from model import ModelMetadata, Predictor, load_segmenter, read_image, save_checkpoint
from service.main import create_app
from tests.conftest import tiny_segmenter
from tests.service.conftest import (
    decode_png,
    encode,
    make_settings,
    post_image,
    random_image,
    started_client,
    write_models,
)


@pytest.fixture(scope="module")
def ade_client(tmp_path_factory):
    root = tmp_path_factory.mktemp("ade")
    net = tiny_segmenter(seed=8, image_size=512, num_classes=150)
    net.metadata = ModelMetadata.for_dataset("ade20k", window_size=512, window_stride=512)  # test scale (2048, 512)
    save_checkpoint(net, root / "ade-tiny")
    client = started_client(create_app(make_settings(write_models(root, [
        {"name": "ade-tiny", "checkpoint": str(root / "ade-tiny"), "max_batch_size": 4,
         "backend": "torch"}]))))
    yield client, root / "ade-tiny"
    client.__exit__(None, None, None)


def test_a_4032x3024_photo_is_two_windows_at_the_test_scale_and_answered_full_size(ade_client):
    client, checkpoint = ade_client
    photo = encode(random_image(3024, 4032, seed=9), "JPEG", quality=90)
    response = post_image(client, photo)
    assert response.status_code == 200, response.text
    assert response.headers["x-segmenter-windows"] == "2"  # 683×512 at the test scale
    mask = np.asarray(decode_png(response.content))
    assert mask.shape == (3024, 4032)
    expected = Predictor(load_segmenter(checkpoint)).predict(read_image(photo))
    np.testing.assert_array_equal(mask, expected)


def test_scale_none_segments_the_photo_at_its_own_size(ade_client):
    client, _ = ade_client
    photo = encode(random_image(1024, 1536, seed=10), "JPEG", quality=90)
    native = post_image(client, photo, scale="none")
    assert native.status_code == 200 and native.headers["x-segmenter-windows"] == "6"  # 2 × 3 windows of 512
    assert post_image(client, photo).headers["x-segmenter-windows"] == "2"
    assert post_image(client, photo, scale=1024).headers["x-segmenter-windows"] == "6"
    assert decode_png(native.content).size == (1536, 1024)


@pytest.mark.parametrize("value", ["0", "-1", "big", "1.5", "20000"])
def test_a_bad_scale_is_a_422_naming_it(ade_client, value):
    client, _ = ade_client
    response = post_image(client, encode(random_image(64, 64)), scale=value)
    message = response.json()["error"]["message"]
    assert response.status_code == 422 and "scale must be a short side in pixels (1..16384) or none" in message
    assert "Input should be" not in message  # one message, not one per member of the type's union
