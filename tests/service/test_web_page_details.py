"""Details of the web page a newcomer sees first: an icon (no 404 in the server log), and a class
that covers a sliver of the picture reads "<0.1%", not "0.0%"."""

from __future__ import annotations

import io
import json

from PIL import Image

from tests.service.browser import open_page, show_page
from tests.service.conftest import encode, random_image


def test_the_favicon_is_an_icon_and_the_page_links_its_own(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response.headers["content-type"] == "image/x-icon"
    icon = Image.open(io.BytesIO(response.content))
    assert icon.format == "ICO" and icon.size[0] >= 16
    assert '<link rel="icon"' in client.get("/").text  # browsers need not ask /favicon.ico at all


def test_a_tiny_class_reads_below_a_tenth_of_a_percent(models_file, tmp_path):
    from playwright.sync_api import expect

    picture = tmp_path / "photo.png"
    picture.write_bytes(encode(random_image(40, 50, seed=3)))
    classes = [{"id": 1, "name": "wall", "color": [120, 120, 120], "fraction": 0.99958},
               {"id": 2, "name": "rings", "color": [200, 0, 0], "fraction": 0.00042}]
    with open_page(models_file) as (server, page):
        show_page(page, server)
        page.route("**/segment", lambda route: route.fulfill(
            status=200, content_type="image/png", body=encode(random_image(40, 50, seed=4)),
            headers={"X-Segmenter-Classes": json.dumps(classes), "X-Segmenter-Model": "tiny-16"}))
        page.set_input_files("#file", str(picture))
        legend = page.locator("#legend li")
        expect(legend).to_have_count(2)
        assert legend.all_inner_texts() == ["wall — 100.0%", "rings — <0.1%"]


def test_the_timings_read_as_milliseconds(models_file, tmp_path):
    """The status line showed the raw Server-Timing header (`decode;dur=7.0, ...`)."""
    from playwright.sync_api import expect

    picture = tmp_path / "photo.png"
    picture.write_bytes(encode(random_image(40, 50, seed=3)))
    classes = [{"id": 1, "name": "wall", "color": [120, 120, 120], "fraction": 1.0}]
    with open_page(models_file) as (server, page):
        show_page(page, server)
        page.route("**/segment", lambda route: route.fulfill(
            status=200, content_type="image/png", body=encode(random_image(40, 50, seed=4)),
            headers={"X-Segmenter-Classes": json.dumps(classes), "X-Segmenter-Model": "tiny-16",
                     "Server-Timing": "decode;dur=7.04, forward;dur=39.6, total;dur=90.0"}))
        page.set_input_files("#file", str(picture))
        expect(page.locator("#status")).to_have_text("tiny-16: decode 7 ms · forward 40 ms · total 90 ms")
