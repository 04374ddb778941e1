"""The Studies page in a real browser: start a sweep from the page, watch it finish, read its chart; the address
holds the study and the chart's axis; a selected point opens its network on the Build page."""

from __future__ import annotations

import re
import time

import pytest
from test_browser import CHROMIUM, EXCEPTION, RERUN, SHOTS, settle, sync_api  # (skips without chromium)
from test_serve import Server

from archs.training import RunStore

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (CI: apt-get install -y chromium)")


def steady_centre(page, locator, timeout: float = 30.0) -> tuple[float, float]:
    """The centre of ``locator`` once two readings 250 ms apart agree (a chart redrawn after a rerun or a resize
    moves its points)."""
    deadline = time.monotonic() + timeout
    before = None
    while True:
        box = locator.bounding_box()
        if box is not None and box == before:
            return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        assert time.monotonic() < deadline, f"{locator} did not keep still: {before} then {box}"
        before = box
        page.wait_for_timeout(250)


def select_first_point(page, chart, tries: int = 3) -> None:
    """Click the chart's first point as a person does: hover until plotly shows its label (plotly's click selects
    what its hover found), click, and read plotly's own selection. A click that selected nothing (a redraw took
    it, on a busy machine) is clicked again; a selected point is never clicked twice (that would unselect it)."""
    selected = "el => el.data.some(t => Array.isArray(t.selectedpoints) && t.selectedpoints.length > 0)"
    for _ in range(tries):
        x, y = steady_centre(page, chart.locator(".scatterlayer .point").first)  # under plotly's drag layer
        page.mouse.move(x, y, steps=4)
        chart.locator(".hoverlayer .hovertext").first.wait_for(timeout=30_000)
        if chart.evaluate(selected):
            return
        page.mouse.click(x, y)
        try:
            page.wait_for_function(selected, arg=chart.element_handle(), timeout=10_000)
            return
        except sync_api.TimeoutError:
            page.mouse.move(0, 0)  # away, so that the next hover is new
    raise AssertionError(f"{tries} clicks on the chart's first point selected nothing")


def test_a_sweep_started_on_the_studies_page_charts_and_opens_its_networks(tmp_path, browser):
    runs_dir = tmp_path / "runs"
    store = RunStore(runs_dir)
    server = Server(runs_dir, tmp_path / "server.log")
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 1700})  # the test session's Chromium
    try:
        page = context.new_page()
        page.goto(f"{server.url}/studies?preset=seed002-inception")
        settle(page, timeout=120_000)
        page.get_by_role("tab", name="Sweep").click()
        field = page.locator(".st-key-sweep_path0 input")
        field.click()
        field.fill("stages[*].branch1x1")  # the list is long: type to find the field
        page.get_by_role("option", name="stages[*].branch1x1", exact=True).click()
        settle(page)
        values = page.locator(".st-key-sweep_values0 input")
        values.fill("4,8")
        values.press("Enter")
        settle(page)
        for key, value in (("sweep_steps", 6), ("sweep_batch", 16)):
            box = page.locator(f".st-key-{key} input")
            box.fill(str(value))
            box.press("Enter")
            settle(page)
        page.get_by_role("button", name="Run the sweep").click()
        settle(page, timeout=120_000)
        assert page.locator(EXCEPTION).count() == 0
        [study] = store.studies.list()
        page.wait_for_url(re.compile(f"study={study['id']}"), timeout=RERUN)
        deadline = time.monotonic() + 300
        while store.studies.get(study["id"])["status"] == "running":
            assert time.monotonic() < deadline, "the sweep did not finish"
            time.sleep(1)
        assert store.studies.get(study["id"])["status"] == "completed"
        page.get_by_text("completed · 2 of 2 trials ended").first.wait_for(timeout=RERUN)  # the page has seen it end
        chart = page.locator(".js-plotly-plot").first
        chart.wait_for(timeout=RERUN)
        page.locator(".st-key-studies_x").get_by_text("Mult-adds", exact=True).click()  # a segmented control
        settle(page)
        page.wait_for_url(re.compile("sx=mult_adds"), timeout=RERUN)
        assert page.locator(EXCEPTION).count() == 0
        page.screenshot(path=SHOTS / "studies-sweep.png", full_page=True)
        select_first_point(page, chart)  # the selection opens its network
        opener = page.get_by_role("button", name="Open on the Build page")
        try:
            opener.wait_for(timeout=RERUN)
        except sync_api.TimeoutError as error:
            page.screenshot(path=SHOTS / "studies-selection-lost.png", full_page=True)
            points = chart.evaluate("el => JSON.stringify(el.data.map(t => t.selectedpoints))")
            raise AssertionError(f"plotly selected the point, the page offered nothing to open: {points}") from error
        opener.click()
        settle(page, timeout=120_000)
        page.get_by_role("heading", name="Build").first.wait_for(timeout=RERUN)
        first = store.studies.trials(study["id"])[0]  # the first point drawn: branch1x1 = 4
        assert first["params"]["stages[*].branch1x1"] == 4
        page.get_by_text(f"{first['objectives']['params']:,}").first.wait_for(timeout=RERUN)  # its parameters
        assert page.locator(EXCEPTION).count() == 0
    finally:
        context.close()
        server.stop()
