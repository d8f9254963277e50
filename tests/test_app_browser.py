"""A real browser (headless Chromium via Playwright): drop an image, run Grad-CAM, see the overlay.

Needs the Debian `chromium` package (/usr/bin/chromium) and the `playwright` Python package; it never
downloads browsers. The screenshot is kept under tests/artifacts/ (git-ignored) for people to look at.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from browser import drop_image, opened, shot, tick_only

TALL = {"width": 1400, "height": 1100}  # the whole result column on one screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def app_url(examples_dir, tmp_path_factory):
    from app_server import running_app, write_small_tables

    tables = write_small_tables(tmp_path_factory.mktemp("tables"))
    with running_app(examples_dir, tables, tmp_path_factory.mktemp("work")) as url:
        yield url


def run_gradcam_and_see_its_overlay(page, screenshot: str) -> None:
    """Grad-CAM alone on the image in the input: its overlay (the crop and its heat map) and status come back."""
    tick_only(page, "Grad-CAM")
    page.get_by_role("button", name="Explain", exact=True).click()
    overlay = page.locator("#side-by-side img").first
    overlay.wait_for(state="visible", timeout=120_000)
    page.wait_for_timeout(500)
    shot(page, screenshot, full_page=True)
    assert page.get_by_text("Finished: Grad-CAM").count() == 1  # the status line names the method
    assert overlay.evaluate("img => img.naturalWidth") >= 2 * 224  # the crop and its overlay


def test_drop_image_run_gradcam_and_see_overlay(chromium, app_url, examples_dir):
    image = examples_dir / "n01443537_goldfish.JPEG"
    with opened(chromium, app_url, TALL) as page:
        page.get_by_text("RANDOM WEIGHTS").first.wait_for(timeout=60_000)
        drop_image(page, image.read_bytes(), image.name, "image/jpeg")
        run_gradcam_and_see_its_overlay(page, "explain_gradcam.png")
        assert page.locator("#side-by-side img").count() == 1


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


def test_click_a_preset_from_an_outside_folder_run_gradcam_and_see_overlay(chromium, outside_presets, tmp_path_factory):
    """Issue 11: with --examples-dir outside cwd and /tmp, Gradio used to refuse the clicked file (InvalidPathError)."""
    from app_server import running_app, write_small_tables

    tables = write_small_tables(tmp_path_factory.mktemp("outside_tables"))
    work = tmp_path_factory.mktemp("outside_work")
    with running_app(outside_presets, tables, work) as url, opened(chromium, url, TALL) as page:
        page.get_by_text("RANDOM WEIGHTS").first.wait_for(timeout=60_000)
        page.locator("#presets img").first.wait_for(timeout=30_000)
        page.locator("#presets img").first.click()  # the first preset of the manifest
        page.wait_for_selector("#input-image img", timeout=30_000)  # the preset reached the input
        run_gradcam_and_see_its_overlay(page, "preset_outside_folder_gradcam.png")
        source = page.locator("#input-image img").first.get_attribute("src") or ""
        assert str(outside_presets) not in source  # a copy in Gradio's cache is served, not the folder
