"""Render docs/images/web.jpg: the page of `unblur serve` after deblurring the bundled sample with the default.

Run from the repository root:  .venv/bin/python docs/make_web_screenshot.py
Needs the web extra, Playwright and a system Chromium (Debian: apt-get install chromium); nothing is downloaded.
The slider is set at 40 % so that the picture shows both sides.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

from playwright.sync_api import sync_playwright

from unblur.web import create_app
from unblur.web.server import background

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main(out: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("no Chromium on this machine (Debian: apt-get install chromium)")
    sample = Path(str(resources.files("unblur") / "samples" / "blurred_camera.png"))
    with tempfile.TemporaryDirectory() as work, background(create_app(workdir=work)) as url, \
            sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.goto(url)
        page.wait_for_function("document.getElementById('choice').options.length > 0")
        page.set_input_files("#file", str(sample))
        page.wait_for_selector("#result", state="visible", timeout=600_000)
        page.wait_for_function("document.getElementById('estimate-img').naturalWidth > 0")
        page.locator("#slider").evaluate("e => { e.value = 40; e.dispatchEvent(new Event('input')); }")
        page.screenshot(path=str(out), full_page=True, type="jpeg", quality=85)
        browser.close()
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(__file__).resolve().parent / "images" / "web.jpg")
