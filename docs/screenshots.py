"""Re-take docs/web-page.png: the bundled demo models served as `make serve` serves them, a
synthetic texture scene dropped on the page, and a click on the result for its attention maps.

    python docs/screenshots.py          # needs chromium (apt-get install chromium) and playwright

Run it whenever the page changes, so the README shows what a newcomer sees.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from training.data.synthetic import render

DOCS = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    from playwright.sync_api import expect, sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("needs chromium: apt-get install chromium")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--port", str(port)],
                              env={**os.environ, "SEGMENTER_TORCH_THREADS": "1"})
    try:
        deadline = time.monotonic() + 120
        while True:  # the bundled models load in a few seconds
            try:
                if httpx.get(url + "/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                sys.exit("the service did not become ready")
            time.sleep(0.2)
        with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
            picture = Path(tmp) / "scene.png"
            Image.fromarray(render(240, np.random.default_rng(7))[0]).save(picture)
            browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(url + "/")
            expect(page.locator("#model option")).to_have_count(2)
            page.set_input_files("#file", str(picture))
            expect(page.locator("#overlay")).to_be_visible(timeout=60_000)
            page.locator("#overlay").click(position={"x": 120, "y": 120})
            expect(page.locator("#attention")).to_be_visible(timeout=60_000)
            page.screenshot(path=str(DOCS / "web-page.png"), full_page=True)
            browser.close()
        print(f"wrote {DOCS / 'web-page.png'}")
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
