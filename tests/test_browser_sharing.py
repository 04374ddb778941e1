"""Four people at once on one server, each in a browser of their own (Playwright contexts): each builds a network,
starts two runs and watches them stream while the others do the same. No page shows an exception, each sees its
own runs as its own and no one else's, no one can stop or delete another's, and all 8 runs complete (two at a
time: the server allows 2 concurrent runs, the rest wait in the FIFO queue)."""

from __future__ import annotations

import re
import time

import pytest
from test_browser import CHROMIUM, EXCEPTION, RERUN, SHOTS, settle, sync_api  # (skips without chromium)
from test_runs import wait_until
from test_serve import Server

from archs.training import RunStore

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (CI: apt-get install -y chromium)")
USERS = 4
STEPS = 12  # a run long enough to be seen queued, then training, then completed: the sharing is tested, not training


def set_number(page, key: str, value: int) -> None:
    box = page.locator(f'.st-key-{key.replace(".", "-")} input').first  # Streamlit's class for the widget key
    box.fill(str(value))
    box.press("Enter")
    settle(page, timeout=120_000)


def test_four_browsers_share_one_server_without_touching_each_others_runs(tmp_path, browser):
    from ui.identity import COOKIE, owner_of_token

    start = time.monotonic()

    def phase(name: str) -> None:  # shown where the test fails: how long each part took on this machine
        print(f"{time.monotonic() - start:6.1f} s  {name}", flush=True)

    runs_dir = tmp_path / "runs"
    store = RunStore(runs_dir)
    server = Server(runs_dir, tmp_path / "server.log", env={"ARCHS_MAX_CONCURRENT_RUNS": "2"})
    phase("server started")
    owners = []  # each browser's, from the key its cookie holds
    SHOTS.mkdir(parents=True, exist_ok=True)
    pages = []  # four browsers: contexts of the test session's one Chromium (tests/conftest.py)
    # what each page's progress text said, sampled whenever the test looks at the pages: a 12-step run can end
    # while the next user's Build page loads, so the pages are watched from the moment each starts its runs
    seen: dict[int, set[str]] = {n: set() for n in range(USERS)}

    def watch() -> None:
        for n, page in enumerate(pages):
            seen[n].add(" ".join(page.locator('[data-testid="stProgress"]').all_inner_texts()))
            assert page.locator(EXCEPTION).count() == 0

    try:
        for _ in range(USERS):
            context = browser.new_context(viewport={"width": 1400, "height": 1500})
            context.set_default_timeout(120_000)  # a loaded 2-core machine: the Build page took 35-48 s here
            page = context.new_page()
            pages.append(page)
            page.goto(f"{server.url}/?preset=cifar-resnet20")
            settle(page, timeout=120_000)
            page.wait_for_function(f"() => document.cookie.includes('{COOKIE}=')")
            [key] = [c["value"] for c in page.context.cookies() if c["name"] == COOKIE]
            owners.append(owner_of_token(key))
            stage = page.locator('[data-testid="stExpander"]').filter(has_text="Stage 1").first
            stage.locator("summary").click()
            thumb = stage.get_by_role("slider").first  # Blocks: 3 -> 2, a network of this user's own
            thumb.focus()
            thumb.press("ArrowLeft")
            sync_api.expect(thumb).to_have_value("2")  # the slider (an <input type="range">) took the key
            # the address holds the new network once the Build page's rerun has ended: in stop 29's CI that was
            # more than 30 s after the key (settle can return before a rerun has begun)
            page.wait_for_url(re.compile("spec="), timeout=RERUN)
            settle(page, timeout=120_000)
            page.get_by_role("link", name="Train").first.click()
            settle(page, timeout=120_000)
            set_number(page, "train.epochs", 1)
            set_number(page, "train.max_steps", STEPS)
            set_number(page, "train.batch_size", 16)
            for _ in range(2):
                started = len(store.list_runs())
                page.get_by_role("button", name="Start").click()
                # the run is in the store once the page's rerun has got that far: a second click before then could
                # land in the same rerun and start one run, not two
                wait_until(lambda: len(store.list_runs()) > started, RERUN / 1000,  # noqa: B023 (waited here)
                           what=f"run {started + 1} in the store")
                settle(page, timeout=120_000)
                assert page.locator('[data-testid="stAlert"]', has_text="No run started").count() == 0
                watch()
            assert page.locator(EXCEPTION).count() == 0
            phase(f"user {len(pages)} started two runs")
        assert len(store.list_runs()) == 2 * USERS and len(set(owners)) == USERS
        # every page streams its own run while the others train: its progress text moves on
        deadline = time.monotonic() + 600
        while any(r["status"] in ("queued", "running") for r in store.list_runs()):
            assert time.monotonic() < deadline, "the 8 runs did not finish"
            watch()
            time.sleep(1.0)
        watch()
        phase("the 8 runs ended")
        rows = store.list_runs()
        assert [r["status"] for r in rows] == ["completed"] * 2 * USERS, [r["error"] for r in rows]
        assert sorted(r["owner"] for r in rows) == sorted(owners * 2)
        starts, ends = sorted(r["started_at"] for r in rows), sorted(r["finished_at"] for r in rows)
        assert all(start >= ends[i - 2] for i, start in enumerate(starts) if i >= 2)  # never more than 2 at once
        assert sum(len(texts) > 1 for texts in seen.values()) >= 2, seen  # pages that saw their progress move
        for n, page in enumerate(pages):
            page.get_by_role("link", name="Runs").first.click()
            settle(page, timeout=120_000)
            page.locator('td[role="gridcell"]', has_text="completed").first.wait_for(state="attached", timeout=RERUN)
            assert page.locator(EXCEPTION).count() == 0
            mine = page.locator('td[role="gridcell"]', has_text=re.compile(r"^you$"))
            assert mine.count() == 2, mine.count()
            newest = rows[0]  # the run the "One run" picker shows first
            delete = page.get_by_role("button", name="Delete…")
            assert delete.is_disabled() == (newest["owner"] != owners[n]), (n, newest["owner"])
            page.screenshot(path=SHOTS / f"sharing-runs-user{n}.png", full_page=True)
        assert len(store.list_runs()) == 2 * USERS  # nothing deleted
        phase("the Runs pages checked")
    finally:
        for page in pages:
            page.context.close()
        server.stop()
