"""Headless Chromium for the browser tests: Debian's binary driven by Playwright, which never downloads a browser.

Also the steps every browser test takes on the app's pages (open, drop an image, pick methods, run, screenshot),
so each test reads as what it checks.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
DESK = {"width": 1280, "height": 720}  # a classroom projector
PHONE = {"width": 390, "height": 844}
ARTIFACTS = Path(__file__).parent / "artifacts"  # screenshots for people to look at (git-ignored)
METHODS = ("Grad-CAM", "Score-CAM", "Ablation-CAM", "LIME")
# A file dropped as a person drops one: the events Gradio's upload area listens to, with a real DataTransfer.
DROP_JS = """([selector, name, type, data]) => {
    const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
    const transfer = new DataTransfer();
    transfer.items.add(new File([bytes], name, {type: type}));
    const target = document.querySelector(selector);
    for (const type of ['dragenter', 'dragover', 'drop']) {
        target.dispatchEvent(new DragEvent(type, {dataTransfer: transfer, bubbles: true, cancelable: true}));
    }
}"""
# True when the centre of the element is the element itself (or inside it): nothing is drawn over it.
UNCOVERED_JS = """element => {
    const box = element.getBoundingClientRect();
    const top = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
    return top !== null && (top === element || element.contains(top));
}"""


@contextmanager
def launched_chromium() -> Iterator[Any]:
    """A running headless Chromium, closed afterwards; the test is skipped, with the fix, where there is none."""
    if not Path(CHROMIUM).is_file():
        pytest.skip("headless Chromium is absent: apt-get install -y chromium")
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the package only)")
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def opened(browser: Any, url: str, viewport: dict) -> Iterator[Any]:
    """A tab on the app, once its image input is on screen; closed afterwards, whatever the test did."""
    page = browser.new_page(viewport=viewport)
    try:
        page.goto(url, timeout=60_000)
        page.wait_for_selector("#input-image button", timeout=60_000)
        page.wait_for_timeout(500)  # the page's own first requests settle
        yield page
    finally:
        page.close()


def synthetic_png() -> bytes:
    """A drawn picture (sky, an orange disc, grass): no preset pixels ever reach a committed screenshot."""
    image = Image.new("RGB", (320, 320), (90, 150, 210))
    draw = ImageDraw.Draw(image)
    draw.ellipse((80, 90, 240, 250), fill=(230, 120, 30))
    draw.rectangle((20, 250, 300, 310), fill=(40, 140, 60))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def drop_image(page: Any, data: bytes, name: str = "synthetic.png", mime: str = "image/png") -> None:
    """Drop an image file on the input, and wait until the input shows it."""
    page.evaluate(DROP_JS, ["#input-image button", name, mime, base64.b64encode(data).decode()])
    page.wait_for_selector("#input-image img", timeout=30_000)


def tick_only(page: Any, *titles: str) -> None:
    for title in METHODS:
        box = page.get_by_label(title, exact=True)
        box.check() if title in titles else box.uncheck()


def explain(page: Any, *titles: str, until: str = "Done.", timeout_s: float = 120) -> None:
    """Run the Explain button (with only `titles` ticked, or the defaults when none are named) until the
    status says `until`."""
    if titles:
        tick_only(page, *titles)
    page.locator("#explain-button").click()
    see(page, until, timeout_s)


def see(page: Any, text: str, timeout_s: float) -> None:
    """Wait until `text` is on the page (the first of its places)."""
    page.get_by_text(text).first.wait_for(timeout=timeout_s * 1000)


def in_viewport(box: dict | None, viewport: dict) -> bool:
    return bool(box) and box["y"] >= 0 and box["x"] >= 0 and box["y"] + box["height"] <= viewport["height"] + 0.5


def shot(page: Any, name: str, full_page: bool = False) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=full_page)
