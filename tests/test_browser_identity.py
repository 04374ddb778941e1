"""Session fixation, tried in real browsers (the system Chromium, two Playwright contexts: two browsers with
cookie jars of their own) against the server as `make serve` starts it, without login.

Browser 1 opens the dashboard: it is given a key, kept in its cookie (``archs_session``, SameSite=Strict),
never in the address, and starts a run. Browser 2 opens browser 1's full address, and then that address
with browser 1's key added as ``?session=`` (what the dashboard used to write, and what an attacker would
send a class): both times it is someone else, is told the link's key was not used, and can neither stop nor
delete browser 1's run. Browser 1, reloaded and in a second tab, is still the run's owner, and stops it.
"""

from __future__ import annotations

import pytest
from app_helpers import stop_all
from test_browser import CHROMIUM
from test_login import (  # noqa: F401  (fixtures: each page kept where it fails)
    ACTIVE,
    again_if_network_changed,
    buttons,
    click_disabled,
    new_page,
    pages_kept_on_failure,
    pick_run,
    picked,
    settle,
    start_run,
    stop_run,
    wait_rows,
    work,
)
from test_serve import Server

from ui.identity import COOKIE, owner_of_token

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (CI: apt-get install -y chromium)")


def key_in(page) -> str | None:
    """The browser's key, as its cookie jar holds it (None: no cookie); checks the cookie's attributes."""
    found = [c for c in page.context.cookies() if c["name"] == COOKIE]
    if not found:
        return None
    [cookie] = found
    assert cookie["sameSite"] == "Strict" and cookie["path"] == "/" and cookie["expires"] > 0, cookie
    return cookie["value"]


def open_at(page, url: str) -> None:
    def attempt(first: bool):
        page.goto(url)
        settle(page)

    again_if_network_changed(page, f"opening {url}", attempt)


@pytest.mark.usefixtures("pages_kept_on_failure")
def test_a_key_in_a_link_never_makes_its_reader_the_sender(tmp_path, browser):
    runs_dir = tmp_path / "runs"
    # its run idles (tests/faults.py): who may act on it is tested, not training
    server = Server(runs_dir, tmp_path / "server.log", env={"ARCHS_MAX_CONCURRENT_RUNS": "1", "ARCHS_AUTH": "",
                                                            "ARCHS_ADMINS": "", "FAULTS_IDLE_SECONDS": "0.5"})
    try:
        # two browsers: contexts of the session's Chromium (pages_kept_on_failure closes them)
        one, two = new_page(browser), new_page(browser)
        # browser 1: a key of its own, in its cookie and not in its address; it starts a run
        open_at(one, f"{server.url}/")
        one.wait_for_function(f"() => document.cookie.includes('{COOKIE}=')")  # the page's script wrote it
        assert key_in(one) and "session=" not in one.url
        key = key_in(one)
        start_run(one, server.url, epochs=200)
        rows = wait_rows(runs_dir, lambda rs: len(rs) == 1, "browser 1's run recorded")
        [run] = rows
        assert run["owner"] == owner_of_token(key) and run["status"] in ACTIVE
        address = one.url
        assert key not in address

        # browser 2 opens browser 1's full address, then that address carrying browser 1's key
        for url in (address, f"{server.url}/runs?session={key}", f"{address}&session={key}"):
            open_at(two, url)
            assert "session=" not in two.url
            if "session=" in url:
                assert two.get_by_text("This link carried someone's session key").count() > 0
            pick_run(two, server.url, run["id"])  # the session that opened the link (to Runs by its sidebar)
            assert " · you · " not in picked(two) and buttons(two) == {"stop": False, "delete": False}
            click_disabled(two, "runs_delete")
            assert two.locator(".st-key-runs_delete_yes").count() == 0
        assert key_in(two) not in (None, key)
        rows = wait_rows(runs_dir, bool, "the run")
        assert [(r["id"], r["status"] in ACTIVE) for r in rows] == [(run["id"], True)]   # untouched

        # browser 1, reloaded and in a second tab: the same owner, who stops the run
        def reload(first: bool):
            one.reload()
            settle(one)

        again_if_network_changed(one, "reloading browser 1", reload)
        assert key_in(one) == key
        pick_run(one, server.url, run["id"])
        assert picked(one).endswith(f" · you · {run['id']}") and buttons(one) == {"stop": True, "delete": True}
        tab = one.context.new_page()
        tab.failed, tab.mark = [], 0
        open_at(tab, f"{server.url}/runs")
        pick_run(tab, server.url, run["id"], fresh=False)
        assert picked(tab).endswith(f" · you · {run['id']}")
        tab.close()
        stop_run(one, server.url, run["id"], runs_dir)
        wait_rows(runs_dir, lambda rs: rs[0]["status"] == "stopped", "browser 1's run stopped by browser 1")
        assert [r["owner"] for r in wait_rows(runs_dir, bool, "the runs")] == [owner_of_token(key)]
    finally:
        server.stop()
        stop_all(runs_dir)
