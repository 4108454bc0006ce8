"""Hugging Face's image-segmentation API through the real client: `huggingface_hub.InferenceClient`."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from huggingface_hub import InferenceClient
from huggingface_hub.errors import HfHubHTTPError
from PIL import Image

from service.main import create_app
from tests.service.conftest import encode, make_settings, random_image, standard_entries, write_models
from tests.service.live_server import LiveServer, segment_mask

NAMES = [f"class{i}" for i in range(5)]  # the tiny models' classes


@pytest.fixture(scope="module")
def server(checkpoints, tmp_path_factory) -> Iterator[LiveServer]:
    models = write_models(tmp_path_factory.mktemp("hf"), standard_entries(checkpoints, max_batch_size=4))
    with LiveServer(create_app(make_settings(models, fail_fast=True))) as live:
        yield live


def hf_client(server: LiveServer, model: str = "tiny-16") -> InferenceClient:
    return InferenceClient(model=f"{server.url}/models/{model}/image-segmentation")


def v2_confidence(server: LiveServer, data: bytes) -> np.ndarray:
    body = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [base64.b64encode(data).decode()]}],
            "outputs": [{"name": "confidence"}]}
    output = httpx.post(server.url + "/v2/models/tiny-16/infer", json=body, timeout=60).json()["outputs"][0]
    return np.array(output["data"], np.float32).reshape(output["shape"][1:])


def union(elements, shape) -> np.ndarray:
    """The class-id mask the segments make together (255 where none is); each pixel in one at most."""
    mask = np.full(shape, 255, np.uint8)
    for element in elements:
        inside = np.array(element.mask) == 255
        assert set(np.unique(np.array(element.mask))) <= {0, 255}
        assert (mask[inside] == 255).all(), "segments overlap"
        mask[inside] = NAMES.index(element.label)
    return mask


@pytest.mark.parametrize("model", ["tiny-16", "fast"])
def test_masks_union_to_the_segment_mask(server, model):
    data = encode(random_image(90, 130, seed=3))
    elements = hf_client(server, model).image_segmentation(data)
    assert all(element.mask.size == (130, 90) for element in elements)
    np.testing.assert_array_equal(union(elements, (90, 130)), segment_mask(server, data, model=model))


def test_scores_are_the_mean_probability_of_each_segment(server):
    data = encode(random_image(80, 96, seed=4))
    elements = hf_client(server).image_segmentation(data)
    mask, confidence = segment_mask(server, data, model="tiny-16"), v2_confidence(server, data)
    sizes = [int((mask == NAMES.index(e.label)).sum()) for e in elements]
    assert sizes == sorted(sizes, reverse=True)  # most pixels first
    for element in elements:
        expected = confidence[mask == NAMES.index(element.label)].mean()
        assert element.score == pytest.approx(expected, abs=1e-6)


def test_parameters(server):
    data = encode(random_image(80, 96, seed=5))
    client = hf_client(server)
    everything = client.image_segmentation(data)
    scores = sorted(e.score for e in everything)
    cut = (scores[0] + scores[-1]) / 2
    assert {e.label for e in client.image_segmentation(data, threshold=cut)} == \
        {e.label for e in everything if e.score >= cut}
    confidence, mask = v2_confidence(server, data), segment_mask(server, data, model="tiny-16")
    sure = float(np.median(confidence))
    expected = np.where(confidence >= sure, mask, 255)
    np.testing.assert_array_equal(union(client.image_segmentation(data, mask_threshold=sure), mask.shape), expected)
    # Our own options, in the JSON form huggingface.js and curl send
    body = {"inputs": base64.b64encode(data).decode(), "parameters": {"classes": "class1,class3", "scale": 96,
                                                                       "subtask": "semantic"}}
    response = httpx.post(f"{server.url}/models/tiny-16/image-segmentation", json=body, timeout=60)
    assert response.status_code == 200, response.text
    assert {e["label"] for e in response.json()} <= {"class1", "class3"}
    selected = segment_mask(server, data, model="tiny-16", classes="class1,class3", scale="96")
    for element in response.json():
        inside = np.array(Image.open(io.BytesIO(base64.b64decode(element["mask"])))) == 255
        np.testing.assert_array_equal(inside, selected == NAMES.index(element["label"]))


CLIENT_PARAMETERS = {"subtask", "threshold", "mask_threshold", "overlap_mask_area_threshold"}


@pytest.mark.parametrize(("parameters", "words"), [
    ({"subtask": "panoptic"}, "semantic"),
    ({"subtask": "instance"}, "semantic"),
    ({"overlap_mask_area_threshold": 0.5}, "overlap_mask_area_threshold"),
    ({"threshold": 2}, "threshold"),
    ({"colour": "red"}, "'colour'"),
    ({"classes": "unicorn"}, "unicorn"),
])
def test_unknown_or_unsupported_parameters_are_422_naming_them(server, parameters, words):
    data = encode(random_image(64, 64, seed=6))
    if set(parameters) <= CLIENT_PARAMETERS:  # what InferenceClient can send
        with pytest.raises(HfHubHTTPError) as error:
            hf_client(server).image_segmentation(data, **parameters)
        response = error.value.response
    else:
        response = httpx.post(f"{server.url}/models/tiny-16/image-segmentation", timeout=60,
                              json={"inputs": base64.b64encode(data).decode(), "parameters": parameters})
    assert response.status_code == 422 and words in response.json()["error"]
    assert hf_client(server).image_segmentation(data)  # and the next request is right


@pytest.mark.parametrize(("body", "kwargs", "status", "words"), [
    (b"hello", {}, 415, "not an image"),
    (b"", {}, 400, "empty"),
    (b'{"inputs": "not base64!"}', {"headers": {"content-type": "application/json"}}, 422, "base64"),
    (b'{"inputs": "", "extra": 1}', {"headers": {"content-type": "application/json"}}, 422, "'extra'"),
    (b"[" * 100_000, {"headers": {"content-type": "application/json"}}, 400, "not JSON"),  # was a 500
])
def test_bad_bodies(server, body, kwargs, status, words):
    response = httpx.post(f"{server.url}/models/tiny-16/image-segmentation", content=body, timeout=60, **kwargs)
    assert response.status_code == status and words in response.json()["error"]


def test_an_unknown_model_is_404_naming_the_known_ones(server):
    with pytest.raises(HfHubHTTPError) as error:
        hf_client(server, "nope").image_segmentation(encode(random_image(64, 64, seed=7)))
    assert error.value.response.status_code == 404 and "tiny-16" in error.value.response.json()["error"]
