"""Every error a client can cause gets its status code and a JSON message; the service stays up."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest

from service.main import create_app
from testkit.hostile_inputs import hostile_corpus
from tests.service.conftest import encode, make_settings, post_image, random_image, started_client

VALID = encode(random_image(64, 64, seed=1))


CASES = hostile_corpus(max_pixels=1_000_000)


@pytest.fixture(scope="module")
def strict_client(tmp_path_factory, checkpoints):
    from tests.service.conftest import standard_entries, write_models

    models = write_models(tmp_path_factory.mktemp("strict"), standard_entries(checkpoints))
    client = started_client(create_app(make_settings(models, max_image_pixels=1_000_000, max_upload_bytes=300_000)))
    yield client
    client.__exit__(None, None, None)


@pytest.mark.parametrize("case", CASES)
def test_bad_images_get_a_clear_4xx_and_the_next_request_works(strict_client, case):
    data, status, code, fields = CASES[case]
    started = time.perf_counter()
    response = post_image(strict_client, data, **dict(fields))
    assert time.perf_counter() - started < 1.0  # refused from the header: no work was done
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["status"] == status and error["code"] == code and len(error["message"]) > 20
    assert post_image(strict_client, VALID).status_code == 200


def _zip_bytes() -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("payload.sh", "#!/bin/sh\necho pwned\n")
    return buffer.getvalue()


def test_polyglots_are_read_as_the_image_they_claim_to_be_or_refused(strict_client):
    # A valid PNG with a ZIP archive appended: served as the PNG; the rest is never looked at.
    png_zip = VALID + _zip_bytes()
    assert post_image(strict_client, png_zip).status_code == 200
    # (JPEG magic followed by HTML/script is in CASES: a 400.)


def test_hostile_filenames_change_nothing_and_a_huge_one_is_a_400(strict_client):
    for name in ["../../etc/passwd", "a\u202egnp.exe", "; rm -rf / #.png", "x" * 500 + ".png"]:
        response = post_image(strict_client, VALID, filename=name, output="json")
        assert response.status_code == 200, (name[:30], response.text[:200])
    response = post_image(strict_client, VALID, filename="x" * 10_000 + ".png")
    assert response.status_code == 400 and "filename" in response.json()["error"]["message"]
    assert post_image(strict_client, VALID).status_code == 200


def test_upload_over_the_byte_limit_is_413_with_or_without_content_length(strict_client):
    big = encode(np.random.default_rng(0).integers(0, 256, (400, 400, 3), dtype=np.uint8))
    assert len(big) > 300_000
    response = post_image(strict_client, big)
    assert response.status_code == 413 and "300,000 bytes" in response.json()["error"]["message"]
    # Chunked: no Content-Length, so the limit must be counted while the body arrives.
    boundary = "segmenterboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + big + f"\r\n--{boundary}--\r\n".encode()

    def chunks():
        for i in range(0, len(body), 16384):
            yield body[i : i + 16384]

    response = strict_client.post("/segment", content=chunks(),
                                  headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "content_too_large"
    assert post_image(strict_client, VALID).status_code == 200


def test_unknown_model_is_404_listing_the_known_ones(strict_client):
    response = post_image(strict_client, VALID, model="seg-XL/99")
    assert response.status_code == 404
    message = response.json()["error"]["message"]
    assert "seg-XL/99" in message and all(n in message for n in ("tiny-16", "tiny-32", "fast", "accurate"))


@pytest.mark.parametrize("fields", [{"output": "gif"}, {"alpha": "2"}, {"alpha": "x"}, {"multiscale": "perhaps"}])
def test_bad_parameters_are_422(strict_client, fields):
    response = post_image(strict_client, VALID, **fields)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_parameters"
    assert list(fields)[0] in response.json()["error"]["message"]


def test_missing_image_field_is_422(strict_client):
    response = strict_client.post("/segment", data={"output": "mask"})
    assert response.status_code == 422 and "image" in response.json()["error"]["message"]
