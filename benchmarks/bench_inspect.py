"""Issue 10's views on ResNet-18 at 224x224: receptive field and measured cost, in the library and drawn by
the dashboard (AppTest), against a baseline in the same run: a rerun of the Build page's first tab.

    .venv/bin/python benchmarks/bench_inspect.py [--batch 1] [--repeats 3] [--rounds 5] [--pause 10] [--jobs-only]
                                                 [--browser]

Target: after the first measurement, the receptive field and measured cost tabs are drawn in under 2 s each.
The first measurement itself is printed, not targeted: it is as slow as the network at that batch.
``--browser`` also times it in Chromium (``streamlit run``): from a click on the tab to its chart on screen.

Issue 18: measurements run as quick jobs in a worker of the local executor, not in the web server. ``jobs:`` times
the same measurement in this process (as the server made it before) and as a job (submitted, carried out by a
worker forked from the supervisor's fork server, or its spare worker where workers are spawned, its result read
back), on small networks where the difference shows; target: at most
0.5 s more per measurement. Runs go to a fresh temporary runs folder.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_S = 2.0


def timed(fn, repeats: int = 1) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def bench_library(batch: int, repeats: int) -> None:
    from archs import PRESETS, measure_cost
    from archs.cost import _CACHE
    from archs.receptive import _receptive_fields, receptive_fields

    spec = PRESETS["resnet18"]
    _receptive_fields.cache_clear()
    _CACHE.clear()
    cold, _ = timed(lambda: receptive_fields(spec))
    warm, _ = timed(lambda: receptive_fields(spec), 5)
    print(f"library: receptive_fields(resnet18) {cold:.3f} s uncached, {warm * 1e6:.0f} µs cached")
    first, report = timed(lambda: measure_cost(spec, batch, "cpu", repeats))
    again, _ = timed(lambda: measure_cost(spec, batch, "cpu", repeats), 5)
    print(f"library: measure_cost(resnet18, batch {batch}, {repeats} repeats) {first:.1f} s to measure "
          f"(inference {report.forward_s * 1e3:.1f} ms, training step {report.train_step_s * 1e3:.1f} ms, peak "
          f"{report.peak_bytes / 2**20:.0f} MiB); {again * 1e6:.0f} µs cached")


def bench_dashboard(batch: int, repeats: int) -> None:
    from ui.apptest import app_test

    at = app_test(timeout=600)
    at.query_params.update({"preset": "resnet18", "batch": str(batch)})
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    at.session_state["cost_repeats"] = repeats

    def draw(tab: str):
        at.session_state["build_tab"] = tab
        at.run()
        assert not at.exception, [e.message for e in at.exception]
        return at

    draw("Per stage")
    baseline, _ = timed(lambda: draw("Per stage"), 5)
    first_rf, _ = timed(lambda: draw("Receptive field"))
    rf, _ = timed(lambda: draw("Receptive field"), 5)
    draw("Measured cost")
    if any(b.key == "cost_measure" for b in at.button):
        start = time.perf_counter()
        at.button(key="cost_measure").click().run()
        while not any(c.key == "cost_shares" for c in at.get("plotly_chart")):  # the page's fragment polls the job
            assert time.perf_counter() - start < 600 and not at.exception, [e.value for e in at.error]
            time.sleep(0.5)
            at.run()
        measured = time.perf_counter() - start
        print(f"dashboard: first measurement (a quick job), clicked and drawn: {measured:.1f} s")
    cost, _ = timed(lambda: draw("Measured cost"), 5)
    print(f"dashboard: Build page rerun, first tab (baseline): {baseline:.3f} s")
    print(f"dashboard: receptive field tab: first draw {first_rf:.3f} s, then {rf:.3f} s "
          f"({rf / baseline:.2f}x the baseline; target {TARGET_S:.0f} s: {rf / TARGET_S:.2f} of it)")
    print(f"dashboard: measured cost tab after the measurement: {cost:.3f} s "
          f"({cost / baseline:.2f}x the baseline; target {TARGET_S:.0f} s: {cost / TARGET_S:.2f} of it)")


def bench_jobs(rounds: int, pause: float) -> None:
    """The same measurements in this process and as quick jobs, alternately, with a pause after each job (as between
    two clicks: a spawned spare worker needs it to import torch again; a fork server does not)."""
    from archs import PRESETS, activation_health, gradient_profile, measure_cost, plain_twin
    from archs.cost import _CACHE
    from archs.training import RunRequest, TrainConfig
    from archs.training.executors import get_executor
    from archs.training.request import bound_quick_job

    executor = get_executor("local")
    spec = PRESETS["cifar-resnet20"]

    seeds = iter(range(1, 10**6))  # a new seed each time: the library caches gradients and activations per seed
    waits: list[float] = []  # from submitting a job to its worker starting it

    def here_cost():
        _CACHE.clear()
        measure_cost(spec, 4, "cpu", 1)

    def here_inspect():
        seed = next(seeds)
        for net in (spec, plain_twin(spec)):
            gradient_profile(net, 4, seed)
            activation_health(net, 4, seed)

    def job(kind: str, **fields):
        request = RunRequest(spec, TrainConfig(batch_size=4, seed=next(seeds), device="cpu"), kind=kind,
                             owner="bench:inspect", **fields)
        submitted = time.time()
        run_id = executor.submit(bound_quick_job(request))
        assert executor.wait(run_id, timeout=300, poll=0.02), "the job did not end"
        status = executor.status(run_id)
        assert status["status"] == "completed", status
        waits.append(status["started_at"] - submitted)

    cases = {"measured cost, cifar-resnet20 at batch 4, 1 repeat": (here_cost, lambda: job("cost", repeats=1)),
             "gradients and activations of cifar-resnet20 and its twin, batch 4": (here_inspect,
                                                                                   lambda: job("inspect"))}
    job("inspect")  # the supervisor starts, and its fork server (or spare worker) imports torch
    time.sleep(pause)
    for name, (here, as_job) in cases.items():
        here()  # warm: this process's first pass
        in_process, quick = [], []
        waits.clear()
        for _ in range(rounds):
            in_process.append(timed(here)[0])
            quick.append(timed(as_job)[0])
            time.sleep(pause)  # a spawned spare worker is replaced (it imports torch) before the next click
        a, b = statistics.median(in_process), statistics.median(quick)
        print(f"jobs: {name}: in this process {a:.2f} s, as a quick job {b:.2f} s (median of {rounds}; "
              f"{statistics.median(waits):.2f} s of it until a worker started it): {b - a:+.2f} s per measurement "
              "(target at most +0.5 s)")


def bench_browser(batch: int, repeats: int) -> None:
    import shutil

    chromium = shutil.which("chromium")
    if chromium is None:
        print("browser: skipped, no chromium on PATH")
        return
    from _server import dashboard_server
    from playwright.sync_api import sync_playwright

    idle = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
    with dashboard_server() as url:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True,
                                        args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
            page = browser.new_page(viewport={"width": 1440, "height": 1800})
            page.goto(f"{url}/?preset=resnet18&batch={batch}&tab=Measured+cost")
            page.wait_for_selector('[data-testid="stMetricValue"]', timeout=120_000)
            page.wait_for_function(idle, timeout=120_000)
            page.get_by_role("button", name="Measure").click()
            page.get_by_text("Peak memory").wait_for(timeout=600_000)
            page.wait_for_function(idle, timeout=120_000)

            def show(tab: str, ready: str) -> float:
                start = time.perf_counter()
                page.get_by_role("tab", name=tab).click()
                page.wait_for_selector(ready, timeout=60_000)
                page.wait_for_function(idle, timeout=60_000)
                return time.perf_counter() - start

            times = {"Receptive field": [], "Measured cost": [], "Per stage": []}
            for _ in range(3):
                times["Receptive field"].append(show("Receptive field", ".st-key-rf_chart .js-plotly-plot"))
                times["Measured cost"].append(show("Measured cost", ".st-key-cost_shares .js-plotly-plot"))
                times["Per stage"].append(show("Per stage", ".st-key-stage_bars .js-plotly-plot"))
            browser.close()
        base = statistics.median(times["Per stage"])
        for tab in ("Receptive field", "Measured cost"):
            t = statistics.median(times[tab])
            print(f"browser: {tab} tab, click to chart drawn: {t:.2f} s ({t / base:.2f}x the Per stage tab's "
                  f"{base:.2f} s; target {TARGET_S:.0f} s: {t / TARGET_S:.2f} of it)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each measurement, here and as a job")
    parser.add_argument("--pause", type=float, default=10.0,
                        help="seconds between two jobs (a person's pace: the spare worker is ready again)")
    parser.add_argument("--jobs-only", action="store_true", help="only the quick jobs against this process")
    parser.add_argument("--browser", action="store_true", help="also time the tabs in Chromium")
    args = parser.parse_args()
    os.environ["ARCHS_RUNS_DIR"] = tempfile.mkdtemp(prefix="bench-inspect-")  # its quick jobs' runs
    if not args.jobs_only:
        bench_dashboard(args.batch, args.repeats)      # first: its first draws find nothing cached
        bench_library(args.batch, args.repeats)
    bench_jobs(args.rounds, args.pause)
    if args.browser and not args.jobs_only:
        bench_browser(args.batch, args.repeats)


if __name__ == "__main__":
    main()
