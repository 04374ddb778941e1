"""How much training a search's median pruner saves, and what it costs in the answer (issue 19 §3).

The same 24-trial Optuna search (TPE, the learning rate on a log scale and the Inception stages' 1x1 branch width,
seed002-inception, one objective: accuracy on the search's validation split) runs twice through one local
executor, one trial at a time: with the median pruner (its runs evaluated about 8 times each, no pruning in a run's
first quarter, two trials before any) and without. The budget is counted in training steps actually taken (what
the pruner saves whatever the machine), the answer as the best trial's validation and test accuracy. Both searches
draw from the same seeded sampler; they part where the first trial is pruned.

    .venv/bin/python benchmarks/bench_pruner.py [--data digits] [--steps 160] [--trials 24]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import archs  # noqa: E402
from archs.studies.definition import StudyDefinition  # noqa: E402
from archs.studies.driver import start_study, study_view  # noqa: E402
from archs.training import DataConfig, RunStore, TrainConfig  # noqa: E402
from archs.training.executors.local import LocalExecutor  # noqa: E402
from archs.training.limits import Limits  # noqa: E402


def search(runs: Path, pruner: str, args) -> dict:
    executor = LocalExecutor(RunStore(runs), Limits(max_concurrent=1))
    definition = StudyDefinition(
        kind="search", name=f"pruner {pruner}", spec=archs.PRESETS["seed002-inception"].to_dict(),
        train=TrainConfig(max_steps=args.steps, batch_size=32, log_every=20, grad_every=0, amp="off",
                          channels_last="off", compile="off").to_dict(),
        data=DataConfig(name=args.data).to_dict(), trials=args.trials, pruner=pruner, objectives=("accuracy",),
        vary=({"path": "train.lr", "low": 1e-4, "high": 3e-1, "scale": "log"},
              {"path": "stages[*].branch1x1", "low": 4, "high": 32}))
    started = time.monotonic()
    study_id = start_study(executor, definition, owner="session:bench")
    while executor.store.studies.get(study_id)["status"] == "running":
        time.sleep(1)
    seconds = time.monotonic() - started
    view = study_view(executor.store, study_id)
    steps = 0
    for trial in view["trials"]:
        if trial["run_id"]:
            steps += (executor.store.get(trial["run_id"]).status().get("result") or {}).get("steps") or 0
    scored = [t for t in view["trials"] if t["status"] == "completed" and t.get("val_accuracy") is not None]
    best = max(scored, key=lambda t: t["val_accuracy"])
    return {"steps": steps, "seconds": seconds, "pruned": sum(t["status"] == "pruned" for t in view["trials"]),
            "completed": len(scored), "best_val": best["val_accuracy"], "best_test": best["test_accuracy"],
            "best_lr": best.get("train.lr")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits")
    parser.add_argument("--steps", type=int, default=160)
    parser.add_argument("--trials", type=int, default=24)
    args = parser.parse_args()
    os.environ.setdefault("ARCHS_MAX_STUDIES_RUNNING", "4")
    with tempfile.TemporaryDirectory(prefix="bench-pruner-") as tmp:
        results = {p: search(Path(tmp) / p, p, args) for p in ("median", "none")}
    for pruner, r in results.items():
        print(f"pruner {pruner}: {r['steps']:,} training steps over {args.trials} trials ({r['pruned']} pruned, "
              f"{r['completed']} completed), {r['seconds']:.0f} s; best trial: validation {r['best_val']:.1%}, "
              f"test {r['best_test']:.1%} (lr {r['best_lr']:.3g})")
    saved = 1 - results["median"]["steps"] / results["none"]["steps"]
    print(f"the median pruner took {results['median']['steps'] / results['none']['steps']:.2f}x the steps "
          f"({saved:.0%} saved); best validation accuracy {results['median']['best_val']:.1%} against "
          f"{results['none']['best_val']:.1%} without it")


if __name__ == "__main__":
    main()
