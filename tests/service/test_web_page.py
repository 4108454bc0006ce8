"""The web page in headless Chromium: drop an image, the overlay and a legend appear; only the
latest request's answer is shown; errors clear the result; /docs works without a network.

Needs Debian's `chromium` package (`.ci/run` installs it) and Playwright. Without a browser
the test is skipped, loudly — unless SEGMENTER_REQUIRE_BROWSER=1 (set by CI), where it fails.
"""

from __future__ import annotations

import contextlib

import numpy as np

from tests.service.browser import SIZE, dispatch_until, open_page, show_page
from tests.service.conftest import (
    BUNDLED_DIR,
    encode,
    export_without_weights,
    random_image,
    reference_predictor,
    write_models,
)


def test_dropping_an_image_shows_the_overlay_and_legend(models_file, checkpoints, tmp_path):
    from playwright.sync_api import expect

    rgb = random_image(96, 128, seed=21)
    picture = tmp_path / "photo.png"
    picture.write_bytes(encode(rgb))
    expected_classes = np.unique(reference_predictor(checkpoints, "tiny-32").predict(rgb))
    with open_page(models_file) as (server, page):
        show_page(page, server)
        page.select_option("#model", "tiny-32")
        page.set_input_files("#file", str(picture))
        expect(page.locator("#overlay")).to_be_visible(timeout=30_000)
        expect(page.locator("#original")).to_be_visible()
        legend = page.locator("#legend li")
        expect(legend).to_have_count(len(expected_classes))
        assert "class" in legend.first.inner_text() and "%" in legend.first.inner_text()
        assert page.eval_on_selector("#overlay", SIZE) == [128, 96]  # the whole image, without the PNG legend
        assert page.locator("#error").inner_text() == ""


def test_only_the_latest_request_is_shown_and_an_error_clears_the_result(models_file, checkpoints, tmp_path):
    """Two images dropped in a row, the first answered last: the page must show the second image's
    result only. Then a file that is not an image: the previous result goes, the error shows."""
    from playwright.sync_api import expect

    first, second = random_image(96, 128, seed=21), random_image(80, 100, seed=22)
    (tmp_path / "first.png").write_bytes(encode(first))
    (tmp_path / "second.png").write_bytes(encode(second))
    second_classes = np.unique(reference_predictor(checkpoints, "tiny-16").predict(second))
    with open_page(models_file) as (server, page):
        show_page(page, server)
        held = []  # /segment requests, answered when the test says so

        def hold(route):
            held.append(route)

        page.route("**/segment", hold)
        page.set_input_files("#file", str(tmp_path / "first.png"))
        dispatch_until(page, lambda: len(held) == 1)
        page.set_input_files("#file", str(tmp_path / "second.png"))
        dispatch_until(page, lambda: len(held) == 2)
        held[1].continue_()  # the second image's answer arrives first...
        overlay = page.locator("#overlay")
        expect(overlay).to_be_visible(timeout=30_000)
        with contextlib.suppress(Exception):  # the page aborted the first request: maybe nothing comes
            held[0].continue_()  # ...then the first one's
        expect(page.locator("#legend li")).to_have_count(len(second_classes))
        page.wait_for_function("() => document.getElementById('status').textContent.includes('tiny-16')")
        assert page.eval_on_selector("#overlay", SIZE) == [100, 80]
        assert page.eval_on_selector("#original", SIZE) == [100, 80]
        page.unroute("**/segment")
        bad = tmp_path / "notes.png"
        bad.write_bytes(b"not an image")
        page.set_input_files("#file", str(bad))
        expect(page.locator("#error")).to_contain_text("415")
        expect(overlay).to_be_hidden()
        expect(page.locator("#legend li")).to_have_count(0)


def test_the_api_docs_render_with_no_network(models_file):
    """/docs loads Swagger UI from the service itself: with every other host blocked it still renders."""
    from playwright.sync_api import expect

    with open_page(models_file) as (server, page):
        blocked = []

        def only_the_service(route):
            if route.request.url.startswith(server.url):
                route.continue_()
            else:
                blocked.append(route.request.url)
                route.abort()

        page.route("**/*", only_the_service)
        page.goto(server.url + "/docs")
        expect(page.locator(".opblock-summary-path").first).to_be_visible(timeout=30_000)
        assert "/segment" in page.locator(".swagger-ui").inner_text()
        assert blocked == []  # nothing was even asked of another host


def test_clicking_the_result_shows_where_that_patch_attends(models_file, tmp_path):
    from playwright.sync_api import expect

    (tmp_path / "photo.png").write_bytes(encode(random_image(96, 128, seed=23)))
    (tmp_path / "next.png").write_bytes(encode(random_image(80, 80, seed=24)))
    with open_page(models_file) as (server, page):
        show_page(page, server)
        expect(page.locator("#layer option")).to_have_count(2)  # tiny-16: 2 encoder layers
        page.set_input_files("#file", str(tmp_path / "photo.png"))
        overlay = page.locator("#overlay")
        expect(overlay).to_be_visible(timeout=30_000)
        page.select_option("#layer", "1")
        with page.expect_response("**/attention") as answer:
            overlay.click(position={"x": 20, "y": 30})
        assert answer.value.status == 200
        attention = page.locator("#attention")
        expect(attention).to_be_visible(timeout=30_000)
        assert page.eval_on_selector("#attention", SIZE)[0] >= 128  # a panel of the whole image per head
        expect(page.locator("#attention-status")).to_contain_text("pixel (")
        page.set_input_files("#file", str(tmp_path / "next.png"))  # a new image: the old maps go
        expect(attention).to_be_hidden()


def test_attention_on_an_exported_model_and_a_failed_click_says_why(tmp_path):
    """The demo int8 export (what `make serve` serves) offers attention maps, drawn from its source
    weights; a click whose request fails says so; an export without its weights says why, no controls."""
    from playwright.sync_api import expect

    int8 = {"backend": "openvino", "precision": "int8"}
    models_file = write_models(tmp_path, [
        {"name": "demo", "checkpoint": str(BUNDLED_DIR / "demo-seg-t16-int8"), **int8},
        {"name": "moved", "checkpoint": str(export_without_weights(tmp_path, "../gone/demo-seg-t16")), **int8}])
    (tmp_path / "photo.png").write_bytes(encode(random_image(96, 128, seed=25)))
    with open_page(models_file) as (server, page):
        show_page(page, server)
        expect(page.locator("#layer option")).to_have_count(4)  # demo-seg-t16's encoder layers, from /models
        page.set_input_files("#file", str(tmp_path / "photo.png"))
        overlay, attention = page.locator("#overlay"), page.locator("#attention")
        expect(overlay).to_be_visible(timeout=30_000)
        with page.expect_response("**/attention") as answer:
            overlay.click(position={"x": 20, "y": 30})
        assert answer.value.status == 200
        expect(attention).to_be_visible(timeout=30_000)
        page.route("**/attention", lambda route: route.abort())  # the next click's request fails
        overlay.click(position={"x": 60, "y": 30})
        expect(page.locator("#attention-status")).to_contain_text("the attention request failed")
        expect(attention).to_be_hidden()  # not the previous click's maps, as if they were this one's
        page.select_option("#model", "moved")
        expect(page.locator("#attention-controls")).to_be_hidden()
        expect(page.locator("#attention-unavailable")).to_contain_text("'moved' was exported without its PyTorch")
