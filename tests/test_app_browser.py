"""A real browser (headless Chromium via Playwright): drop an image, run Grad-CAM, see the overlay.

Needs the Debian `chromium` package (/usr/bin/chromium) and the `playwright` Python package; it never
downloads browsers. The screenshot is kept under tests/artifacts/ (git-ignored) for people to look at.
"""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def sync_playwright():
    if not Path(CHROMIUM).is_file() and not shutil.which("chromium"):
        pytest.skip("headless Chromium is absent: apt-get install -y chromium")
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the package only)")
    return playwright.sync_playwright


@pytest.fixture(scope="module")
def app_url(examples_dir, tmp_path_factory):
    from app_server import running_app, write_small_tables

    tables = write_small_tables(tmp_path_factory.mktemp("tables"))
    with running_app(examples_dir, tables, tmp_path_factory.mktemp("work")) as url:
        yield url


DROP_JS = """([selector, name, data]) => {
    const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
    const transfer = new DataTransfer();
    transfer.items.add(new File([bytes], name, {type: 'image/jpeg'}));
    const target = document.querySelector(selector);
    for (const type of ['dragenter', 'dragover', 'drop']) {
        target.dispatchEvent(new DragEvent(type, {dataTransfer: transfer, bubbles: true, cancelable: true}));
    }
}"""


def test_drop_image_run_gradcam_and_see_overlay(sync_playwright, app_url, examples_dir):
    image = examples_dir / "n01443537_goldfish.JPEG"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(app_url, timeout=60_000)
            page.get_by_text("RANDOM WEIGHTS").first.wait_for(timeout=60_000)
            upload_area = "#input-image button"
            page.wait_for_selector(upload_area, timeout=30_000)
            page.evaluate(DROP_JS, [upload_area, image.name, base64.b64encode(image.read_bytes()).decode()])
            page.wait_for_selector("#input-image img", timeout=30_000)  # the dropped image is shown
            for title in ("Score-CAM", "Ablation-CAM", "LIME"):
                page.get_by_label(title, exact=True).uncheck()
            page.get_by_role("button", name="Explain", exact=True).click()
            overlay = page.locator("#side-by-side img").first
            overlay.wait_for(state="visible", timeout=120_000)
            page.wait_for_timeout(500)
            page.screenshot(path=str(ARTIFACTS / "explain_gradcam.png"), full_page=True)
            assert page.locator("#side-by-side img").count() == 1
            assert page.get_by_text("Finished: Grad-CAM").count() == 1  # the status line names the method
            assert overlay.evaluate("img => img.naturalWidth") >= 2 * 224  # the crop and its overlay
        finally:
            browser.close()


@pytest.fixture(scope="module")
def outside_presets(examples_dir):
    """The ten presets copied to a folder outside both the working directory and the temp directory."""
    import secrets
    import tempfile

    folder = Path.home() / f".xai-lens-browser-test-{secrets.token_hex(6)}"
    for outside in (Path.cwd(), Path(tempfile.gettempdir())):
        assert not folder.resolve().is_relative_to(outside.resolve()), (folder, outside)
    folder.mkdir()
    try:
        for image in examples_dir.glob("*.JPEG"):
            shutil.copy2(image, folder / image.name)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_click_a_preset_from_an_outside_folder_run_gradcam_and_see_overlay(
    sync_playwright, outside_presets, tmp_path_factory
):
    """Issue 11: with --examples-dir outside cwd and /tmp, Gradio used to refuse the clicked file (InvalidPathError)."""
    from app_server import running_app, write_small_tables

    tables = write_small_tables(tmp_path_factory.mktemp("outside_tables"))
    ARTIFACTS.mkdir(exist_ok=True)
    work = tmp_path_factory.mktemp("outside_work")
    with running_app(outside_presets, tables, work) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(url, timeout=60_000)
            page.get_by_text("RANDOM WEIGHTS").first.wait_for(timeout=60_000)
            page.locator("#presets img").first.wait_for(timeout=30_000)
            page.locator("#presets img").first.click()  # the first preset of the manifest
            page.wait_for_selector("#input-image img", timeout=30_000)  # the preset reached the input
            for title in ("Score-CAM", "Ablation-CAM", "LIME"):
                page.get_by_label(title, exact=True).uncheck()
            page.get_by_role("button", name="Explain", exact=True).click()
            overlay = page.locator("#side-by-side img").first
            overlay.wait_for(state="visible", timeout=120_000)
            page.wait_for_timeout(500)
            page.screenshot(path=str(ARTIFACTS / "preset_outside_folder_gradcam.png"), full_page=True)
            assert page.get_by_text("Finished: Grad-CAM").count() == 1
            assert overlay.evaluate("img => img.naturalWidth") >= 2 * 224
            source = page.locator("#input-image img").first.get_attribute("src") or ""
            assert str(outside_presets) not in source  # a copy in Gradio's cache is served, not the folder
        finally:
            browser.close()
