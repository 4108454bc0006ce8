"""Headless Chromium on a live service, for the web page tests (tests/service/test_web_page*.py).

Needs Debian's `chromium` package (`.ci/run` installs it) and Playwright. Without a browser a
test is skipped, loudly — unless SEGMENTER_REQUIRE_BROWSER=1 (set by CI), where it fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time

import pytest

from service.main import create_app
from tests.service.conftest import make_settings
from tests.service.live_server import LiveServer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def require_browser():
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
def open_page(models_file):
    """A live service and a Chromium page on its web page, the model list loaded."""
    require_browser()
    from playwright.sync_api import sync_playwright

    app = create_app(make_settings(models_file, fail_fast=True))
    with LiveServer(app) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            yield server, page
        finally:
            browser.close()


def show_page(page, server) -> None:
    from playwright.sync_api import expect

    page.goto(server.url + "/")
    expect(page.locator("#model option")).to_have_count(2)


def dispatch_until(page, condition, timeout_s: float = 30) -> None:
    """Let Playwright deliver its events (route handlers run on this thread) until `condition()`
    holds; fail after `timeout_s`. A check of the condition each time, not a guess at a delay."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the page did not get there in time"
        page.wait_for_timeout(20)


SIZE = "img => [img.naturalWidth, img.naturalHeight]"
