"""``python -m archs speedrun mnist|fashion-mnist``: the network and recipe the project holds fastest for a
data set, trained until its test accuracy reaches the target.

Each speedrun is a preset the dashboard builds (``speedrun-mnist``, ``speedrun-fashion-mnist``), the
``fast`` recipe with the step budget and peak rate measured best for that data set, and a target. It
runs as any run does (:func:`~archs.training.request.execute_request`), layout and precision chosen by
the probe. ``seconds`` is the wall time of the training run (placing the data, the probe, every step and
every evaluation, up to the one that reached the target); reading and decoding the data set and building
the model are reported apart, as ``load_seconds``.

Measured against the source article's loop on the same machine: ``benchmarks/bench_speedrun.py``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

from archs.training.config import DataConfig, TrainConfig
from archs.training.recipes import RECIPES

__all__ = ["SPEEDRUNS", "Speedrun", "run_speedrun"]


@dataclass(frozen=True)
class Speedrun:
    data: str
    preset: str
    target: float
    epochs: float                       # the step budget, in epochs of the training set (a fraction is fine)
    settings: dict = field(default_factory=dict)   # over the fast recipe
    recipe: str = "fast"

    def train_config(self, train_size: int, seed: int = 0) -> TrainConfig:
        """The fast recipe, this speedrun's settings, its step budget, and evaluations every tenth of an epoch
        over the last tenth of the run (with a one-cycle schedule the accuracy peaks at the end: earlier
        evaluations would mostly cost time)."""
        config = RECIPES[self.recipe].apply(TrainConfig(seed=seed, target_accuracy=self.target, grad_every=0,
                                                        log_every=50))
        config = dataclasses.replace(config, **self.settings)
        per_epoch = train_size // config.batch_size
        return dataclasses.replace(config, epochs=math.ceil(self.epochs), max_steps=round(self.epochs * per_epoch),
                                   eval_every=max(1, per_epoch // 10), eval_from=0.9)


SPEEDRUNS: dict[str, Speedrun] = {
    # 99.0 %: one epoch at a peak rate of 0.2, no augmentation (a digit cropped off-centre helps nobody in one pass)
    "mnist": Speedrun("mnist", "speedrun-mnist", 0.99, 1.0, {"lr": 0.2, "augment": "none"}),
    # 91.0 %: two and a half epochs at 0.3, no augmentation
    "fashion-mnist": Speedrun("fashion-mnist", "speedrun-fashion-mnist", 0.91, 2.5,
                              {"lr": 0.3, "augment": "none"}),
}


def run_speedrun(name: str, root: str | None = None, *, seed: int = 0, download: bool = False,
                 on_metric=None) -> dict:
    """Train the speedrun ``name`` in this process; its figures (see the module docstring)."""
    from archs.presets import PRESETS
    from archs.training.data import load_dataset
    from archs.training.request import MemoryRecorder, RunRequest, execute_request

    run = SPEEDRUNS[name]
    spec = PRESETS[run.preset]
    started = time.perf_counter()
    data = load_dataset(run.data, root=root, input_size=spec.input_size, in_channels=spec.in_channels,
                        download=download)  # kept in the process's cache: the run finds it there
    load_seconds = time.perf_counter() - started
    request = RunRequest(spec, run.train_config(data.train_size, seed), DataConfig(name=run.data, root=root),
                         label=f"speedrun {name}", recipe=run.recipe)
    recorder = MemoryRecorder(on_metric)
    status = execute_request(request, recorder)
    if status["status"] != "completed":
        raise RuntimeError(f"speedrun {name}: {status.get('error') or status.get('message') or status['status']}")
    result = status["result"]
    start = next(r for r in recorder.records if r["kind"] == "start")
    return {"data": name, "preset": run.preset, "spec": spec.to_dict(), "recipe": run.recipe,
            "settings": request.train.to_dict(), "target": run.target, "reached": result["test_accuracy"] >= run.target,
            "seconds": result["seconds"], "test_accuracy": result["test_accuracy"], "steps": result["steps"],
            "epochs": result["epochs"], "images_per_second": result["images_per_second"],
            "load_seconds": load_seconds,
            "runtime": start.get("runtime", {}).get("chosen"), "message": result["message"], "seed": seed}
