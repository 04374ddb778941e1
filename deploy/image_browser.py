"""The image's pages in a real browser, for deploy/image-test.sh: Chromium (Debian's) through Playwright.

    image_browser.py train URL --state FILE --shots DIR   Build page, then Train: 1 epoch, a few steps, Start,
                                                          wait for the run to end; prints one JSON line; keeps
                                                          the browser's cookies in FILE
    image_browser.py runs URL --state FILE --run ID --shots DIR
                                                          the same browser (FILE's cookies): the Runs page
                                                          lists run ID as completed, and as its own

Only the pages are read (and what they show), never the run store's files. Exit status 1, with the reason,
on any failure; a screenshot of the page is saved beside the others then too.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
from pathlib import Path

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

EXCEPTION = '[data-testid="stException"]'
ENDED = re.compile(r"\b(completed|failed|diverged|interrupted|stopped) at \d")


def settle(page, timeout: float = 120_000) -> None:
    """Wait until Streamlit has finished running the script (its status widget is gone), twice."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout)
    for _ in range(2):
        page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout)
        page.wait_for_timeout(300)


def no_exception(page, where: str) -> None:
    if page.locator(EXCEPTION).count():
        raise AssertionError(f"{where}: the page shows an exception: {page.locator(EXCEPTION).first.inner_text()}")


def number_input(page, label: str, value: int) -> None:
    box = page.get_by_label(label, exact=True).and_(page.get_by_test_id("stNumberInputField"))
    box.fill(str(value))
    box.press("Enter")
    settle(page)
    got = box.input_value()
    if got.replace(",", "") != str(value):
        raise AssertionError(f"Train page: {label} holds {got!r} after typing {value}")


def open_page(page, link: str, args) -> None:
    """Follow the sidebar's link as a user would (the address keeps the network; never a session key)."""
    page.get_by_role("link", name=link, exact=True).first.click()
    settle(page)
    page.wait_for_url(re.compile(rf"{re.escape(args.url)}/{link.lower()}\b"), timeout=60_000)
    if "session=" in page.url:
        raise AssertionError(f"{link} page: the address holds a session key: {page.url}")


def build_page(page, args, shot: str) -> None:
    """The Build page, fully drawn. First, always: until a session has run dashboard.py, a fresh server serves
    a page file on its own, with Streamlit's older navigation (lower-case page names) and none of our links."""
    page.goto(f"{args.url}/?preset={args.preset}")
    settle(page)
    page.get_by_role("link", name="Runs", exact=True).first.wait_for(timeout=60_000)
    page.get_by_text(f"Current network: {args.preset}").first.wait_for(timeout=60_000)
    page.locator('[data-testid="stMetricValue"]').first.wait_for(timeout=60_000)
    page.wait_for_selector(".js-plotly-plot", timeout=120_000)
    settle(page)
    no_exception(page, "Build page")
    page.screenshot(path=args.shots / shot, full_page=True)


def train(page, args) -> dict:
    build_page(page, args, "image-build.png")
    open_page(page, "Train", args)
    page.get_by_role("button", name="Start").wait_for(timeout=60_000)
    no_exception(page, "Train page")
    number_input(page, "Epochs", args.epochs)
    number_input(page, "Max steps", args.max_steps)
    page.screenshot(path=args.shots / "image-train-settings.png", full_page=True)
    started = time.monotonic()
    page.get_by_role("button", name="Start").click()
    ended = page.get_by_text(ENDED).first
    ended.wait_for(timeout=args.timeout * 1000)
    seconds = time.monotonic() - started
    settle(page)
    text = ended.inner_text()
    page.screenshot(path=args.shots / "image-train-ended.png", full_page=True)
    if not text.startswith("completed"):
        raise AssertionError(f"Train page: the run ended as {text!r}")
    no_exception(page, "Train page")
    caption = page.get_by_text(re.compile(r"· run \S+$")).first.inner_text()
    run_id = caption.rsplit("· run ", 1)[1].strip()
    return {"run": run_id, "shown": text, "seconds_from_start_click": round(seconds, 1), "page": page.url}


def runs(page, args) -> dict:
    build_page(page, args, "image-build-after-restart.png")
    open_page(page, "Runs", args)
    no_exception(page, "Runs page")
    # the "One run" picker: "<label> · <status> · <owner> · <id>", the owner "you": the same browser's cookie
    page.get_by_text(re.compile(rf"· completed · you · {re.escape(args.run)}")).first.wait_for(timeout=60_000)
    page.locator('td[role="gridcell"]', has_text="completed").first.wait_for(state="attached", timeout=60_000)
    page.screenshot(path=args.shots / "image-runs-after-restart.png", full_page=True)
    return {"run": args.run, "listed": "completed", "page": page.url}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("train", "runs"))
    parser.add_argument("url")
    parser.add_argument("--state", type=Path, required=True,
                        help="the browser's cookies between the two calls (its key: the same owner across restarts)")
    parser.add_argument("--shots", type=Path, required=True)
    parser.add_argument("--run", help="runs: the id the Runs page must list as completed")
    parser.add_argument("--preset", default="seed002-inception")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-steps", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=600, help="seconds for the run to end")
    args = parser.parse_args()
    args.url = args.url.rstrip("/")
    args.shots.mkdir(parents=True, exist_ok=True)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("no chromium on PATH (apt-get install -y chromium)", file=sys.stderr)
        return 1
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        state = args.state if args.what == "runs" else None
        page = browser.new_context(viewport={"width": 1440, "height": 1600}, storage_state=state).new_page()
        try:
            result = train(page, args) if args.what == "train" else runs(page, args)
            if args.what == "train":
                page.context.storage_state(path=args.state)
        except (AssertionError, PlaywrightError) as error:
            page.screenshot(path=args.shots / f"image-{args.what}-failed.png", full_page=True)
            print(f"{args.what}: {error}", file=sys.stderr)
            return 1
        finally:
            browser.close()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
