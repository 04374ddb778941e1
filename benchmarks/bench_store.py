"""The SQLite run store against the file-based store it replaced (benchmarks/baseline_file_store.py, 624b2cf),
read the same way, at 100, 1,000 and 10,000 stored runs.

For each size both stores hold the same runs: completed ones with 20 metric records each and a tenth queued. In
alternated rounds (machine noise hits both alike), medians of:

- submit: the limit check (queued runs of this owner) and the creation of one run;
- claim:  the supervisor taking the next queued run;
- list:   every run's table row (what ``archs runs --json`` and the old Runs page read).

Then, for the SQLite store only (the old ones are in the issue: the Runs page 0.10, 0.32, 0.89 s at 100, 1,000,
5,000 runs; ``archs runs --json`` 2.0-3.7 s): ``python -m archs runs --json`` as a process, and a rerun of the Runs
page (AppTest, one page of 100 rows). Target: both under 1 s at 10,000 runs. Prints the growth from 100 to 10,000.

    .venv/bin/python benchmarks/bench_store.py [--sizes 100,1000,10000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import baseline_file_store as old_store  # noqa: E402

import archs  # noqa: E402
from archs.training import DataConfig, RunRequest, TrainConfig  # noqa: E402
from archs.training.executors.base import Executor  # noqa: E402
from archs.training.limits import Limits  # noqa: E402
from archs.training.store import RunStore, process_identity  # noqa: E402

SPEC = archs.PRESETS["seed002-inception"]
RECORDS = [{"kind": "step", "step": s, "epoch": s / 20, "loss": 2.3 / s, "train_accuracy": 0.05 * s, "lr": 1e-3,
            "images_per_second": 900.0, "elapsed": 0.1 * s} for s in range(1, 21)]
RESULT = {"status": "completed", "steps": 20, "train_loss": 0.2, "test_accuracy": 0.93, "images_per_second": 900.0,
          "device": "cpu"}


class Parked(Executor):
    """Submits through the real limits and store, starts nothing."""

    name = "parked"  # not the local executor's: no supervisor starts these runs
    queue_in_store = True

    def _start(self, run, request) -> None:
        pass


def request(n: int) -> RunRequest:
    return RunRequest(SPEC, TrainConfig(epochs=1), DataConfig(), label=f"run {n}", owner=f"session:{n % 30:04d}")


def fill_new(store: RunStore, n: int) -> None:
    batch = 500
    for start in range(0, n, batch):
        runs = store.submit([request(i) for i in range(start, min(n, start + batch))], executor="parked")
        for i, run in enumerate(runs, start=start):
            if i % 10:
                run.append_metrics(RECORDS)
                run.write_status(status="completed", progress={"step": 20, "total_steps": 20}, result=RESULT,
                                 finished_at=time.time())


def fill_old(store, n: int) -> None:
    for i in range(n):
        run = store.create(request(i), executor="local")
        if i % 10:
            with open(run.path / "metrics.jsonl", "w") as handle:
                handle.write("".join(json.dumps(r) + "\n" for r in RECORDS))
            run.write_status(status="completed", progress={"step": 20, "total_steps": 20}, result=RESULT,
                             finished_at=time.time())
        else:
            store.enqueue(run)


def old_submit(store, req) -> None:
    """What the file store's executor did: count this owner's queued runs (a file read per queued run), create."""
    waiting = sum(1 for run_id in store.queued() if store.get(run_id).settings().get("owner") == req.owner)
    assert waiting >= 0
    store.enqueue(store.create(req, executor="local"))


def old_claim(store) -> None:
    queued = store.queued()
    if queued:
        store.claim(queued[0])


def timed(fn, repeat: int = 1) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - started) / repeat


def cli_listing(root: Path) -> float:
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "archs", "runs", "--json", "--runs-dir", str(root)],
                         capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    elapsed = time.perf_counter() - started
    assert out.returncode == 0, out.stderr
    return elapsed


def page_rerun(root: Path) -> float:
    from app_helpers import open_app, run

    os.environ["ARCHS_RUNS_DIR"] = str(root)
    at = open_app(preset="seed002-inception", session="bench-store-session-0001")
    run(at.switch_page("pages/runs.py"))  # first render: imports and caches
    started = time.perf_counter()
    run(at)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    limits = Limits(max_concurrent=1, max_queued_per_owner=10**6, max_queued=10**7)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-store-") as work:
        for n in sizes:
            new, old = RunStore(Path(work) / f"new-{n}"), old_store.RunStore(Path(work) / f"old-{n}")
            started = time.perf_counter()
            fill_new(new, n)
            fill_old(old, n)
            print(f"{n:,} runs stored in each ({time.perf_counter() - started:.0f} s)", flush=True)
            executor = Parked(new, limits)
            figures: dict[str, list[float]] = {k: [] for k in ("submit", "old submit", "claim", "old claim", "list",
                                                               "old list", "cli", "page")}
            for _ in range(args.rounds):
                figures["submit"].append(timed(lambda: executor.submit(request(n)), 20))
                figures["old submit"].append(timed(lambda: old_submit(old, request(n)), 20))
                figures["claim"].append(timed(lambda: new.claim_next("parked", process_identity()), 20))
                figures["old claim"].append(timed(lambda: old_claim(old), 20))
                figures["list"].append(timed(new.list_runs))
                figures["old list"].append(timed(old.list_runs))
                figures["cli"].append(cli_listing(new.root))
                figures["page"].append(page_rerun(new.root))
            medians = {k: statistics.median(v) for k, v in figures.items()}
            rows.append((n, medians))
            print(f"  submit {1e3 * medians['submit']:.2f} ms (file store {1e3 * medians['old submit']:.2f} ms, "
                  f"{medians['old submit'] / medians['submit']:.1f}x) · claim {1e3 * medians['claim']:.2f} ms "
                  f"(file store {1e3 * medians['old claim']:.2f} ms, {medians['old claim'] / medians['claim']:.1f}x) "
                  f"· list {medians['list']:.3f} s (file store {medians['old list']:.3f} s, "
                  f"{medians['old list'] / medians['list']:.1f}x)", flush=True)
            print(f"  archs runs --json {medians['cli']:.2f} s · Runs page rerun {medians['page']:.2f} s", flush=True)
    print("\n| runs | submit | claim | list | file store's list | list speed-up | `archs runs --json` | Runs page |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n, m in rows:
        print(f"| {n:,} | {1e3 * m['submit']:.2f} ms | {1e3 * m['claim']:.2f} ms | {m['list']:.3f} s | "
              f"{m['old list']:.3f} s | {m['old list'] / m['list']:.1f}x | {m['cli']:.2f} s | {m['page']:.2f} s |")
    if len(rows) > 1:
        (a, first), (b, last) = rows[0], rows[-1]
        print(f"\nfrom {a:,} to {b:,} runs ({b / a:.0f}x): list {last['list'] / first['list']:.1f}x, "
              f"archs runs --json {last['cli'] / first['cli']:.1f}x, Runs page {last['page'] / first['page']:.1f}x, "
              f"submit {last['submit'] / first['submit']:.1f}x, claim {last['claim'] / first['claim']:.1f}x")
        worst = max(last["cli"], last["page"])
        print(f"target: archs runs --json and the Runs page under 1 s at {b:,} runs: "
              f"{'met' if worst < 1 else 'NOT met'} ({worst:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
