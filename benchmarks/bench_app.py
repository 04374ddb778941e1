"""Dashboard timings: a rerun after one slider change, cold-start imports, first page. Prints figures.

    .venv/bin/python benchmarks/bench_app.py [--browser]

Targets (issue 3): a rerun after one slider change on the resnet18 preset at most 0.5 s in AppTest; at
most 3 s of imports from cold start to the first rendered page. ``--browser`` also times
``streamlit run`` until Chromium shows the first metric (needs the system Chromium).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _server import dashboard_server  # noqa: E402  (benchmarks/, the script's own folder)

# what dashboard.py and its pages import before drawing anything
APP_IMPORTS = ("import streamlit, pandas, plotly.graph_objects, plotly.subplots, archs, archs.diagram, archs.diff, "
               "ui.draft, ui.settings, ui.form, ui.compute, ui.charts")


def fresh_python(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    return time.perf_counter() - start


def bench_imports(repeats: int = 3) -> None:
    empty = min(fresh_python("pass") for _ in range(repeats))
    full = min(fresh_python(APP_IMPORTS) for _ in range(repeats))
    torch_only = min(fresh_python("import torch") for _ in range(repeats))
    check = subprocess.run([sys.executable, "-c", APP_IMPORTS + "; import sys; print('torchvision' in sys.modules)"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    print(f"cold-start imports of the app: {full - empty:.2f} s (target <= 3 s; torch alone "
          f"{torch_only - empty:.2f} s; interpreter start {empty:.2f} s excluded); torchvision imported: {check}")


def bench_first_page() -> None:
    code = ("import time; t = time.perf_counter(); import sys; sys.path.insert(0, '.'); "
            "from ui.apptest import app_test; at = app_test(); at.run(); "
            "assert not at.exception; print(f'{time.perf_counter() - t:.2f}')")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    print(f"fresh process to first rendered Build page (AppTest, default network, imports included): "
          f"{out.stdout.strip().splitlines()[-1]} s")


def bench_rerun(repeats: int = 3) -> None:
    from ui.apptest import app_test

    at = app_test()
    at.query_params["preset"] = "resnet18"
    at.run()
    assert not at.exception
    key = at.session_state["draft"].stages[0].key("blocks")
    channels = at.session_state["draft"].stages[2].key("channels")
    changed, same = [], []
    for round_ in range(repeats):           # every value new: each rerun summarises a network not seen before
        for value in range(3 + 4 * round_, 7 + 4 * round_):
            at.slider(key=key).set_value(value)
            start = time.perf_counter()
            at.run()
            changed.append(time.perf_counter() - start)
        for value in (250 + 2 * round_, 251 + 2 * round_):
            at.number_input(key=channels).set_value(value)
            start = time.perf_counter()
            at.run()
            changed.append(time.perf_counter() - start)
        start = time.perf_counter()
        at.run()
        same.append(time.perf_counter() - start)
    assert not at.exception
    print(f"resnet18, rerun after one slider change (new network, {len(changed)} reruns): median "
          f"{statistics.median(changed):.3f} s, max {max(changed):.3f} s (target <= 0.5 s: "
          f"{max(changed) / 0.5:.2f} of it)")
    print(f"resnet18, rerun with the network unchanged (cached): median {statistics.median(same):.3f} s")


def bench_browser() -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        print("browser: skipped, no chromium on PATH")
        return
    from playwright.sync_api import sync_playwright

    start = time.perf_counter()
    with dashboard_server() as url:
        up = time.perf_counter() - start
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True,
                                        args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
            page = browser.new_page()
            t = time.perf_counter()
            page.goto(f"{url}/")
            page.wait_for_selector('[data-testid="stMetricValue"]', timeout=60_000)
            shown = time.perf_counter() - t
            browser.close()
        print(f"browser: server healthy after {up:.2f} s; first metric drawn {shown:.2f} s after the page was "
              "requested (first session: imports of torch etc. happen on this first run)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--browser", action="store_true", help="also time streamlit run + Chromium")
    args = parser.parse_args()
    bench_imports()
    bench_first_page()
    bench_rerun()
    if args.browser:
        bench_browser()


if __name__ == "__main__":
    main()
