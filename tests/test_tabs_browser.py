"""The LIME tuner in headless Chromium at 1280x720: a tiny run from the tab ends with its front on screen and the
chosen settings in the editor. The screenshot goes to tests/artifacts/ (git-ignored) for a person to look at."""

from __future__ import annotations

import pytest
from browser import DESK, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def page(examples_dir, tmp_path_factory, chromium):
    from app_server import running_app, write_small_tables

    tables = write_small_tables(tmp_path_factory.mktemp("tables"))
    with running_app(examples_dir, tables, tmp_path_factory.mktemp("work")) as url:
        tab = chromium.new_page(viewport=DESK)
        tab.goto(url, timeout=60_000)
        yield tab


def fill(page, label_start: str, value: str) -> None:
    field = page.get_by_label(label_start, exact=False).first
    field.fill(value)
    field.press("Tab")


def test_a_tiny_tuning_run_shows_its_front_and_loads_the_editor(page):
    page.get_by_role("tab", name="LIME parameters").click()
    page.get_by_text("Find settings with the tuner").click()
    page.locator("#tuner-run").wait_for(timeout=30_000)
    fill(page, "Trials per image", "2")
    page.get_by_text("Search space and choice").click()
    fill(page, "Most num_samples a trial may use", "50")
    fill(page, "Samples of the converged reference", "60")
    page.locator("#tuner-run").click()
    page.get_by_text("Done", exact=False).first.wait_for(timeout=240_000)
    page.locator("#tuner-status").scroll_into_view_if_needed()
    page.wait_for_timeout(1000)
    status = page.locator("#tuner-status").inner_text()
    assert "their settings are now in the parameter editor" in status, status
    front = page.locator("#tuner-pareto img").first
    front.wait_for(timeout=30_000)
    assert front.evaluate("image => image.naturalWidth") > 100  # the pareto plot arrived
    shot(page, "tuner_1280x720.png")
    front.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    shot(page, "tuner_front_1280x720.png")
