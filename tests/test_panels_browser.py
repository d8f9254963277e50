"""The Explain tab's two panels in headless Chromium at 1280x720 (random weights, a drawn image).

Screenshots go to tests/artifacts/ (git-ignored): panels_1280x720_first_screen.png, panels_1280x720.png (the
concepts panel scrolled into view) and panels_1280x720_full.png (the whole page).
"""

from __future__ import annotations

import pytest
from browser import DESK, UNCOVERED_JS, drop_image, in_viewport, opened, see, shot, synthetic_png, tick_only

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    from app_server import running_app, write_small_tables

    tables = write_small_tables(tmp_path_factory.mktemp("tables"))
    with running_app(None, tables, tmp_path_factory.mktemp("work")) as url:
        yield url


def test_panels_stream_after_the_maps_and_fit_the_projector_screen(chromium, app_url):
    with opened(chromium, app_url, DESK) as page:
        drop_image(page, synthetic_png(), "drawn.png")
        tick_only(page, "Grad-CAM", "Ablation-CAM")
        metrics = page.locator("#trust-metrics")
        metrics.get_by_label("Deletion AUC", exact=True).check()
        metrics.get_by_label("Insertion AUC", exact=True).check()
        see(page, "model passes a map", timeout_s=10)  # the cost, said before the run
        page.locator("#explain-button").click()
        page.locator("#trust-table table").first.wait_for(timeout=180_000)
        see(page, "Done.", timeout_s=30)
        page.evaluate("window.scrollTo(0, 0)")
        page.wait_for_timeout(500)
        shot(page, "panels_1280x720_first_screen.png")
        assert in_viewport(page.locator("#explain-button").bounding_box(), DESK)  # issue 12's first screen holds
        assert in_viewport(page.locator("#side-by-side img").first.bounding_box(), DESK)

        strip = page.locator("#concepts-strip img")
        assert strip.count() >= 1
        panel = page.locator("#concepts-panel")
        panel.scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        shot(page, "panels_1280x720.png")
        shot(page, "panels_1280x720_full.png", full_page=True)
        for selector in ("#concepts-chart img", "#concepts-strip img", "#trust-table table", "#trust-curves img"):
            element = page.locator(selector).first
            element.scroll_into_view_if_needed()
            assert element.is_visible(), selector
            assert element.evaluate(UNCOVERED_JS), f"{selector} is covered"
        assert page.locator("#concepts-header").get_by_text("RANDOM WEIGHTS").count() >= 1  # said loudly
        table_text = page.locator("#trust-table").inner_text()
        assert "Deletion AUC" in table_text and "Insertion AUC" in table_text and "ROAD" not in table_text
        strip.first.click()  # opens the unit in Neuron concepts once the layout wires link.unit_picked
        page.wait_for_timeout(500)
        assert page.locator(".toast-body").count() == 0  # the click is accepted without an error
