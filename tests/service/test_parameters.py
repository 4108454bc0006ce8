"""POST /segment's parameters: form fields or query parameters, validated the same way, and
nothing silently ignored (unknown, repeated and conflicting parameters are 422s naming them)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.service.conftest import decode_png, encode, random_image, reference_predictor

IMAGE = random_image(64, 96, seed=21)
PNG = encode(IMAGE)


def _post(client, query: str = "", data: dict | None = None, files: list | None = None):
    files = files if files is not None else [("image", ("x.png", PNG, "image/png"))]
    return client.post("/segment" + query, files=files, data=data or {})


def _problem(response) -> str:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_parameters"
    return error["message"]


def test_query_parameters_choose_the_model_and_the_output(client, checkpoints):
    response = _post(client, "?model=fast&output=overlay&legend=false")
    assert response.status_code == 200, response.text
    assert response.headers["x-segmenter-model"] == "tiny-32"  # not the default (tiny-16)
    overlay = decode_png(response.content)
    assert overlay.mode == "RGB" and overlay.size == (96, 64)  # an overlay without a legend, not a mask
    as_form = _post(client, data={"model": "fast", "output": "overlay", "legend": "false"})
    assert as_form.content == response.content


def test_query_and_form_may_be_mixed_and_agree(client, checkpoints):
    response = _post(client, "?model=fast&multiscale=true", data={"model": "fast", "output": "mask"})
    assert response.status_code == 200 and response.headers["x-segmenter-model"] == "tiny-32"
    expected = reference_predictor(checkpoints, "tiny-32").predict(IMAGE, multiscale=True)
    np.testing.assert_array_equal(np.asarray(decode_png(response.content)), expected)
    # The same value written differently (true/1) is the same value, not a conflict.
    assert _post(client, "?multiscale=1", data={"multiscale": "true"}).status_code == 200


def test_the_same_parameter_two_ways_with_different_values_is_a_422_naming_it(client):
    message = _problem(_post(client, "?model=fast", data={"model": "accurate"}))
    assert "model" in message and "fast" in message and "accurate" in message


@pytest.mark.parametrize("query, data, name", [
    ("?modle=fast", None, "modle"),
    ("", {"outptu": "json"}, "outptu"),
    ("?image=x", None, "image"),
])
def test_an_unknown_parameter_is_a_422_naming_it(client, query, data, name):
    message = _problem(_post(client, query, data))
    assert f"unknown parameter '{name}'" in message and "multiscale" in message  # the known ones are listed


def test_a_parameter_or_image_given_twice_is_a_422(client):
    assert "given 2 times" in _problem(_post(client, "?output=mask&output=json"))
    two_images = [("image", ("a.png", PNG, "image/png")), ("image", ("b.png", encode(random_image(32, 32)),
                                                                      "image/png"))]
    message = _problem(_post(client, files=two_images))
    assert "image" in message and "given 2 times" in message


@pytest.mark.parametrize("query", ["?alpha=2", "?output=gif", "?multiscale=perhaps", "?model=" + "m" * 300])
def test_query_values_are_validated_like_form_values(client, query):
    assert query[1:].split("=")[0] in _problem(_post(client, query))


def test_an_image_sent_as_text_is_a_422(client):
    message = _problem(client.post("/segment", data={"image": "not a file"}))
    assert "image" in message and "file" in message


def test_the_openapi_schema_documents_both_ways(client):
    operation = client.get("/openapi.json").json()["paths"]["/segment"]["post"]
    query = {p["name"] for p in operation["parameters"] if p["in"] == "query"}
    assert query == {"model", "output", "alpha", "legend", "multiscale", "scale", "polygons", "classes", "format"}
    form = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert set(form["properties"]) == query | {"image"} and form["required"] == ["image"]
    assert "query parameter" in operation["description"] and "422" in operation["description"]


def test_metric_labels_only_take_configured_model_names(client):
    def series() -> int:
        return sum(1 for line in client.get("/metrics").text.splitlines() if line and not line.startswith("#"))

    _post(client, "?model=no-such-model")  # the `unknown` series exist from now on
    before = series()
    rng = np.random.default_rng(0)
    for _ in range(100):
        name = "".join(rng.choice(list("abcdefghij-0123456789"), size=12))
        assert _post(client, f"?model={name}").status_code == 404
    assert series() == before
    assert 'segmenter_requests_total{model="unknown",output="mask",status="404"} 101.0' in client.get("/metrics").text
