"""The web page in headless Chromium: drop an image, the overlay and a legend appear.

Needs Debian's `chromium` package (`.ci/run` installs it) and Playwright. Without a browser
the test is skipped, loudly — unless SEGMENTER_REQUIRE_BROWSER=1 (set by CI), where it fails.
"""

from __future__ import annotations

import os
import shutil

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


def test_dropping_an_image_shows_the_overlay_and_legend(models_file, checkpoints, tmp_path):
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    rgb = random_image(96, 128, seed=21)
    picture = tmp_path / "photo.png"
    picture.write_bytes(encode(rgb))
    expected_classes = np.unique(reference_predictor(checkpoints, "tiny-32").predict(rgb))

    app = create_app(make_settings(models_file, fail_fast=True))
    with LiveServer(app) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.goto(server.url + "/")
            expect(page.locator("#model option")).to_have_count(2)
            page.select_option("#model", "tiny-32")
            page.set_input_files("#file", str(picture))
            expect(page.locator("#overlay")).to_be_visible(timeout=30_000)
            expect(page.locator("#original")).to_be_visible()
            legend = page.locator("#legend li")
            expect(legend).to_have_count(len(expected_classes))
            assert "class" in legend.first.inner_text() and "%" in legend.first.inner_text()
            size = page.eval_on_selector("#overlay", "img => [img.naturalWidth, img.naturalHeight]")
            assert size == [128, 96]  # the overlay of the whole image, without the PNG legend
            assert page.locator("#error").inner_text() == ""
            # A file that is not an image shows the service's message instead.
            bad = tmp_path / "notes.png"
            bad.write_bytes(b"not an image")
            page.set_input_files("#file", str(bad))
            expect(page.locator("#error")).to_contain_text("415")
        finally:
            browser.close()
