"""What a study costs beyond its runs, and how a search's wall time scales with concurrent runs.

1. Overhead per trial. The same runs (a sweep of seed002-inception's learning rate on Fashion-MNIST, 6 trials of
   about ten seconds) go through one local executor twice per round, alternated: as a study (its driver process,
   its trials' records, the cost of each network, the Pareto front) and bare (submitted together, waited for).
   What a study adds lies outside its runs (starting the driver, submitting, noticing that a run ended), so the
   overhead per trial is the difference of the two's seconds outside any run, over the trials; the runs' own
   speed, which varies by tens of percent from run to run on a shared 2-core machine, cancels out. Target: at
   most 2 % of a trial's time.
2. A 12-trial Optuna search (learning rate and the stages' 1x1 branch width, accuracy and parameters, multi-objective
   TPE), its wall time with 1 and with 2 concurrent runs (ARCHS_MAX_CONCURRENT_RUNS; torch threads per run are the
   cores over the runs).
3. Which sampler for several objectives (the driver's ``auto``): multi-objective TPE against NSGA-II (population a
   third of the trials, as the driver sets it) and random sampling, on ZDT1 (two objectives, three variables: a
   stand-in that costs nothing to evaluate) at the trial counts studies use, 12, 24 and 48; the median hypervolume
   over 10 seeds (reference point (1.1, 11)), higher is better.

Needs Fashion-MNIST in torchvision's layout under --data-root (default ./data).

    .venv/bin/python benchmarks/bench_study.py [--data-root data] [--rounds 2] [--steps 150]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import archs  # noqa: E402
from archs.studies.definition import StudyDefinition, plan_trials, trial_request  # noqa: E402
from archs.studies.driver import start_study, study_view  # noqa: E402
from archs.training import DataConfig, RunStore, TrainConfig  # noqa: E402
from archs.training.data import check_data  # noqa: E402
from archs.training.executors.local import LocalExecutor  # noqa: E402
from archs.training.limits import Limits  # noqa: E402

SPEC = archs.PRESETS["seed002-inception"]
OWNER = "cli:bench"


def sweep(data: DataConfig, steps: int) -> StudyDefinition:
    train = TrainConfig(epochs=1000, max_steps=steps, batch_size=64, grad_every=0, log_every=50)
    return StudyDefinition(kind="sweep", name="bench sweep", spec=SPEC.to_dict(), train=train.to_dict(),
                           data=data.to_dict(), vary=({"path": "train.lr", "values": [3e-4, 1e-3, 3e-3]},), seeds=2)


def wait_study(store: RunStore, study_id: str) -> None:
    while store.studies.get(study_id)["status"] == "running":
        time.sleep(0.05)


def outside_runs(store: RunStore, run_ids: list[str], wall: float) -> float:
    """The seconds of ``wall`` when none of these runs was between its start and its end: what a study adds to its
    runs (starting its driver, submitting, noticing ends) lies there, and the runs' own speed, which varies from run
    to run on a shared machine, does not."""
    spans = sorted((store.get(i).status()["started_at"], store.get(i).status()["finished_at"]) for i in run_ids)
    covered, end = 0.0, float("-inf")
    for start, finish in spans:
        covered += max(0.0, finish - max(start, end))
        end = max(end, finish)
    return wall - covered


def as_study(executor: LocalExecutor, definition: StudyDefinition) -> tuple[float, float, float]:
    """(wall seconds, seconds outside the runs, mean training seconds per trial)."""
    started = time.perf_counter()
    study_id = start_study(executor, definition, owner=OWNER)
    wait_study(executor.store, study_id)
    wall = time.perf_counter() - started
    view = study_view(executor.store, study_id)
    assert view["status"] == "completed", view
    ids = [t["run_id"] for t in view["trials"]]
    return wall, outside_runs(executor.store, ids, wall), statistics.fmean(t["train_seconds"] for t in view["trials"])


def bare(executor: LocalExecutor, definition: StudyDefinition) -> tuple[float, float]:
    """(wall seconds, seconds outside the runs) of the same runs submitted together."""
    requests = [trial_request(definition, params, study_id="bare", owner=OWNER, owner_name=None)
                for params in plan_trials(definition)]
    started = time.perf_counter()
    ids = executor.submit_many(requests)
    executor.wait(ids)
    wall = time.perf_counter() - started
    assert all(executor.status(i)["status"] == "completed" for i in ids)
    return wall, outside_runs(executor.store, ids, wall)


def search_wall(root: Path, data: DataConfig, steps: int, concurrent: int) -> float:
    """The 12-trial search, in a process of its own whose environment says how many runs at once."""
    script = ("import sys, time\n"
              "from archs.studies.definition import StudyDefinition\n"
              "from archs.studies.driver import start_study\n"
              "from archs.training import RunStore\n"
              "from archs.training.executors import get_executor\n"
              "d = StudyDefinition.from_dict(__import__('json').loads(sys.argv[2]))\n"
              "ex = get_executor('local', sys.argv[1])\n"
              "t = time.perf_counter(); sid = start_study(ex, d, owner='cli:bench')\n"
              "while ex.store.studies.get(sid)['status'] == 'running': time.sleep(0.05)\n"
              "print(time.perf_counter() - t, ex.store.studies.get(sid)['status'])\n")
    train = TrainConfig(epochs=1000, max_steps=steps, batch_size=64, grad_every=0, log_every=50)
    definition = StudyDefinition(kind="search", name="bench search", spec=SPEC.to_dict(), train=train.to_dict(),
                                 data=data.to_dict(), vary=({"path": "train.lr", "low": 1e-4, "high": 1e-2},
                                                            {"path": "stages[*].branch1x1", "low": 2, "high": 16}),
                                 objectives=("accuracy", "params"), trials=12)
    import json

    out = subprocess.run([sys.executable, "-c", script, str(root), json.dumps(definition.to_dict())], cwd=ROOT,
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT),
                                                              "ARCHS_MAX_CONCURRENT_RUNS": str(concurrent)})
    assert out.returncode == 0 and out.stdout.split()[1] == "completed", out.stderr
    return float(out.stdout.split()[0])


def zdt1(x: list[float]) -> tuple[float, float]:
    f1 = x[0]
    g = 1 + 9 * sum(x[1:]) / (len(x) - 1)
    return f1, g * (1 - (f1 / g) ** 0.5)


def hypervolume(points, ref=(1.1, 11.0)) -> float:
    """Area dominated by the points (both minimised) up to ``ref``."""
    area, best, previous = 0.0, float("inf"), ref[1]
    for f1, f2 in sorted(p for p in points if p[0] < ref[0] and p[1] < ref[1]):
        if f2 < best:
            area += (ref[0] - f1) * (previous - f2)
            previous = best = f2
    return area


def samplers(trials: int, seeds: int = 10) -> dict[str, float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    makers = {"multi-objective TPE": lambda s: optuna.samplers.TPESampler(seed=s, n_startup_trials=max(2, min(
        10, trials // 3))), "NSGA-II": lambda s: optuna.samplers.NSGAIISampler(seed=s, population_size=max(
            4, min(50, trials // 3))), "random": lambda s: optuna.samplers.RandomSampler(seed=s)}
    out = {}
    for name, make in makers.items():
        volumes = []
        for seed in range(seeds):
            study = optuna.create_study(directions=["minimize", "minimize"], sampler=make(seed))
            for _ in range(trials):
                trial = study.ask()
                study.tell(trial, zdt1([trial.suggest_float(f"x{i}", 0, 1) for i in range(3)]))
            volumes.append(hypervolume([t.values for t in study.trials]))
        out[name] = statistics.median(volumes)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--parts", default="1,2,3", help="which of the three measurements to make")
    args = parser.parse_args()
    parts = {int(p) for p in args.parts.split(",")}
    for trials in (12, 24, 48) if 3 in parts else ():
        volumes = samplers(trials)
        print(f"sampler for several objectives, {trials} trials (median hypervolume on ZDT1, 10 seeds): "
              + ", ".join(f"{name} {v:.3f}" for name, v in volumes.items()), flush=True)
    data = DataConfig(name="fashion-mnist", root=str(Path(args.data_root).resolve()), test_limit=2000)
    check_data(data)
    definition = sweep(data, args.steps)
    n = len(plan_trials(definition))
    overheads, trial_times = [], []
    with tempfile.TemporaryDirectory(prefix="bench-study-") as work:
        if 2 in parts:
            walls = {c: search_wall(Path(work) / f"search{c}", data, args.steps, c) for c in (1, 2)}
            print(f"12-trial search: {walls[1]:.0f} s with 1 run at a time, {walls[2]:.0f} s with 2 "
                  f"({walls[1] / walls[2]:.2f}x)", flush=True)
        if 1 not in parts:
            return 0
        # one store and one supervisor for both (another store's supervisor, idling with a spare worker that imports
        # torch, would slow whichever ran next); a first bare pass warms the probe's cache and the data files
        executor = LocalExecutor(RunStore(Path(work) / "runs"), Limits(max_concurrent=1, max_queued_per_owner=100))
        bare(executor, definition)
        for r in range(args.rounds):
            study, study_out, trial_seconds = as_study(executor, definition)
            plain, plain_out = bare(executor, definition)
            overhead = (study_out - plain_out) / n
            overheads.append(overhead)
            trial_times.append(plain / n)
            print(f"round {r + 1}: {n} trials as a study {study:.1f} s ({study_out:.1f} s outside the runs), bare "
                  f"{plain:.1f} s ({plain_out:.1f} s outside the runs): overhead {overhead:+.2f} s per trial = "
                  f"{100 * overhead / (plain / n):+.1f} % of a trial's {plain / n:.1f} s (training {trial_seconds:.1f} "
                  "s of it)", flush=True)
        share = statistics.median(overheads) / statistics.median(trial_times)
        print(f"overhead per trial: median {statistics.median(overheads):+.2f} s = {100 * share:+.1f} % of a trial "
              f"(target at most 2 %: {'met' if share <= 0.02 else 'NOT met'})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
