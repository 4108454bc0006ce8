"""The web page in headless Chromium: drop an image, the overlay and a legend appear; only the
latest request's answer is shown; errors clear the result; /docs works without a network.

Needs Debian's `chromium` package (`.ci/run` installs it) and Playwright. Without a browser
the test is skipped, loudly — unless SEGMENTER_REQUIRE_BROWSER=1 (set by CI), where it fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time

import numpy as np
import pytest

from service.main import create_app
from tests.service.conftest import encode, make_settings, random_image, reference_predictor
from tests.service.live_server import LiveServer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _require_browser():
    missing = []
    if CHROMIUM is None:
        missing.append("chromium (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install playwright)")
    if missing:
        message = "web page test needs " + " and ".join(missing)
        if os.environ.get("SEGMENTER_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)


@contextlib.contextmanager
def _page(models_file):
    """A live service and a Chromium page on its web page, the model list loaded."""
    _require_browser()
    from playwright.sync_api import sync_playwright

    app = create_app(make_settings(models_file, fail_fast=True))
    with LiveServer(app) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            yield server, page
        finally:
            browser.close()


def _open(page, server) -> None:
    from playwright.sync_api import expect

    page.goto(server.url + "/")
    expect(page.locator("#model option")).to_have_count(2)


def _dispatch_until(page, condition, timeout_s: float = 30) -> None:
    """Let Playwright deliver its events (route handlers run on this thread) until `condition()`
    holds; fail after `timeout_s`. A check of the condition each time, not a guess at a delay."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the page did not get there in time"
        page.wait_for_timeout(20)


SIZE = "img => [img.naturalWidth, img.naturalHeight]"


def test_dropping_an_image_shows_the_overlay_and_legend(models_file, checkpoints, tmp_path):
    from playwright.sync_api import expect

    rgb = random_image(96, 128, seed=21)
    picture = tmp_path / "photo.png"
    picture.write_bytes(encode(rgb))
    expected_classes = np.unique(reference_predictor(checkpoints, "tiny-32").predict(rgb))
    with _page(models_file) as (server, page):
        _open(page, server)
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
    with _page(models_file) as (server, page):
        _open(page, server)
        held = []  # /segment requests, answered when the test says so

        def hold(route):
            held.append(route)

        page.route("**/segment", hold)
        page.set_input_files("#file", str(tmp_path / "first.png"))
        _dispatch_until(page, lambda: len(held) == 1)
        page.set_input_files("#file", str(tmp_path / "second.png"))
        _dispatch_until(page, lambda: len(held) == 2)
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

    with _page(models_file) as (server, page):
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
    with _page(models_file) as (server, page):
        _open(page, server)
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
