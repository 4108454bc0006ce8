"""POST /segment's answer encoding: `format` or the Accept header pick PNG, JPEG or WebP for the
overlay; masks and confidence maps stay PNG; errors name what was wrong and what would do."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.service.conftest import encode, post_image, random_image

RGB = random_image(80, 100, seed=31)
PICTURE = encode(RGB)
FORMATS = {"png": ("PNG", "image/png"), "jpeg": ("JPEG", "image/jpeg"), "webp": ("WEBP", "image/webp")}


def _segment(client, accept: str | None = None, **fields):
    headers = {"accept": accept} if accept is not None else {}
    form = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in fields.items()}
    return client.post("/segment", files={"image": ("x.png", PICTURE, "image/png")}, data=form, headers=headers)


def _decoded(response) -> Image.Image:
    assert response.status_code == 200, response.text
    return Image.open(io.BytesIO(response.content))


def _problem(response, status: int = 422) -> str:
    assert response.status_code == status, response.text
    return response.json()["error"]["message"]


def test_format_picks_the_overlay_encoding_and_its_content_type(client):
    png = np.asarray(_decoded(_segment(client, output="overlay", format="png")).convert("RGB"))
    for name, (pillow_name, media_type) in FORMATS.items():
        response = _segment(client, output="overlay", format=name)
        picture = _decoded(response)
        assert picture.format == pillow_name and response.headers["content-type"] == media_type
        assert response.headers["vary"] == "Accept"
        assert response.headers["x-segmenter-classes"]  # the page's legend comes with every format
        pixels = np.asarray(picture.convert("RGB"))
        assert pixels.shape == png.shape  # the same picture, legend included: only its encoding differs
        assert np.abs(pixels.astype(int) - png).mean() < 4  # lossy, not different


@pytest.mark.parametrize(("accept", "expected"), [
    ("image/webp", "webp"), ("image/jpeg", "jpeg"), ("image/png", "png"), ("*/*", "png"), (None, "png"),
    ("image/avif,image/webp,image/apng,image/*,*/*;q=0.8", "webp"),  # a browser's <img> Accept
    ("image/png;q=0.5, image/jpeg", "jpeg"), ("image/*;q=0.9, image/png;q=0", "jpeg"),
    ("image/webp, image/png;q=0.9", "webp"),  # the web page's own
])
def test_without_format_the_accept_header_picks_it(client, accept, expected):
    response = _segment(client, accept, output="overlay", legend=False)
    assert _decoded(response).format == FORMATS[expected][0]
    assert response.headers["content-type"] == FORMATS[expected][1]


def test_format_wins_over_accept(client):
    response = _segment(client, "image/webp", output="overlay", format="jpeg")
    assert _decoded(response).format == "JPEG" and response.headers["content-type"] == "image/jpeg"


@pytest.mark.parametrize(("output", "accept", "can_be"), [
    ("overlay", "text/html", "image/png, image/jpeg, image/webp"),
    ("overlay", "application/json", "image/png, image/jpeg, image/webp"),
    ("overlay", "image/png;q=0", "image/png, image/jpeg"),
])
def test_an_accept_that_allows_nothing_the_output_can_be_is_a_406_naming_what_it_can(client, output, accept,
                                                                                     can_be):
    message = _problem(_segment(client, accept, output=output), 406)
    assert accept in message and f"output={output}" in message and can_be in message


@pytest.mark.parametrize(("output", "accept", "media"), [
    ("mask", "application/json", "image/png"), ("mask", "image/jpeg", "image/png"),
    ("confidence", "image/webp", "image/png"), ("json", "image/png", "application/json"),
])
def test_an_output_with_one_encoding_ignores_accept(client, output, accept, media):
    """Only overlays negotiate: a client sending `Accept: application/json` everywhere still gets
    its mask, as before overlays had a choice (RFC 9110 lets a server disregard Accept)."""
    response = _segment(client, accept, output=output)
    assert response.status_code == 200 and response.headers["content-type"] == media


def test_an_unknown_format_is_a_422_naming_it_and_the_valid_ones(client):
    message = _problem(_segment(client, output="overlay", format="gif"))
    assert "format" in message and "'gif'" in message and "png, jpeg, webp" in message


@pytest.mark.parametrize(("output", "words"), [("mask", "class ids"), ("confidence", "probabilities")])
def test_a_lossy_mask_or_confidence_map_is_a_422_saying_why(client, output, words):
    for name in ("jpeg", "webp"):
        message = _problem(_segment(client, output=output, format=name))
        assert f"output={output} is PNG only" in message and "lossy" in message and words in message
    assert _decoded(_segment(client, output=output, format="png")).format == "PNG"


def test_masks_and_json_have_one_type_each(client):
    assert "JSON document" in _problem(_segment(client, output="json", format="png"))
    mask = _segment(client, "image/*", output="mask")
    assert _decoded(mask).format == "PNG" and mask.headers["content-type"] == "image/png"
    assert _segment(client, "application/*", output="json").headers["content-type"] == "application/json"


def test_a_bad_output_lists_the_valid_ones_and_names_the_default(client):
    message = _problem(post_image(client, PICTURE, output="gif"))
    assert "'gif'" in message and "mask, overlay, json, confidence" in message and "default: mask" in message
    described = client.get("/openapi.json").json()["paths"]["/segment"]["post"]["parameters"]
    assert "default: mask" in next(p["description"] for p in described if p["name"] == "output")


def test_a_bad_scale_is_one_message_naming_the_field_the_value_and_the_valid_forms(client):
    error = post_image(client, PICTURE, scale="abc").json()["error"]
    assert [p["field"] for p in error["problems"]] == ["body.scale"]
    assert error["message"] == "body.scale: scale must be a short side in pixels (1..16384) or none, got 'abc'"
