"""Experiments made of several training runs. First: the degradation problem (He et al. 2016, Fig. 1).

Plain nets get *worse* at fitting their training set as they get deeper (plain-56 above plain-20),
while the same depths with identity shortcuts do not (resnet-56 at or below resnet-20). Here the
four CIFAR nets are adapted to the chosen data set (its channels, size and classes) and trained on
one fixed budget of steps with identical settings, so their training curves can be overlaid.

Two ways to run it:

- :func:`submit_degradation` queues the four runs on a :class:`~archs.runs.JobManager` (background,
  stored in the run history under one ``group``); :func:`degradation_summary` reads them back.
- :func:`run_degradation` trains them one after another in the caller's thread and returns the same
  summary (the command line and benchmarks use it).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from archs.data import check_dataset, dataset_info, load_dataset
from archs.runs import DataConfig, JobManager, RunStore
from archs.train import TrainConfig, train

__all__ = [
    "DEGRADATION_PRESETS",
    "DegradationSettings",
    "degradation_plan",
    "degradation_summary",
    "run_degradation",
    "submit_degradation",
    "summarize_curves",
]

DEGRADATION_PRESETS = ("cifar-plain20", "cifar-plain56", "cifar-resnet20", "cifar-resnet56")


@dataclass(frozen=True)
class DegradationSettings:
    """One budget for all four nets. The defaults fit five CPU-minutes on Fashion-MNIST (two cores;
    measured: 4 x 140 steps took 301 CPU-seconds, so 135 steps leave a margin). At this budget
    (about 0.15 epoch) Adam at 1e-3 showed both effects of Fig. 1: plain-56 far above plain-20
    and resnet-56 below resnet-20. He et al.'s SGD (lr 0.05-0.1, momentum 0.9) showed the plain
    gap too, but left resnet-56 above resnet-20 this early."""

    data: str = "fashion-mnist"
    root: str | None = None
    steps: int = 135
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    warmup_steps: int = 0
    log_every: int = 10
    seed: int = 0
    train_limit: int | None = None
    test_limit: int | None = 2000
    input_size: int | None = None  # None: the data set's own size

    def train_config(self) -> TrainConfig:
        return TrainConfig(epochs=1000, max_steps=self.steps, batch_size=self.batch_size, lr=self.lr,
                           optimizer=self.optimizer, momentum=self.momentum, weight_decay=self.weight_decay,
                           schedule="constant", warmup_steps=self.warmup_steps, log_every=self.log_every,
                           grad_every=0, seed=self.seed)

    def data_config(self) -> DataConfig:
        return DataConfig(self.data, self.root, False, self.train_limit, self.test_limit)


def degradation_plan(settings: DegradationSettings = DegradationSettings(), *, channels: int | None = None,
                     size: int | None = None, classes: int | None = None) -> list[tuple[str, object]]:
    """(preset name, adapted spec) for the four nets. Channels, size and classes default to the data
    set's own (image folders: 3 x 32 x 32, classes read when trained)."""
    from archs import PRESETS

    info = dataset_info(settings.data)
    channels = channels or info.channels
    size = size or settings.input_size or info.size or 32
    plan = []
    for name in DEGRADATION_PRESETS:
        spec = PRESETS[name]
        spec = dataclasses.replace(spec, in_channels=channels, input_size=size,
                                   num_classes=classes or spec.num_classes)
        plan.append((name, spec))
    return plan


def submit_degradation(manager: JobManager, settings: DegradationSettings | None = None, *,
                       data_config: DataConfig | None = None,
                       train_config: TrainConfig | None = None) -> list[str]:
    """Queue the four runs under one ``group`` (``degradation-<time>``); return their ids, in
    :data:`DEGRADATION_PRESETS` order. ``data_config`` / ``train_config``, when given, replace the
    ones ``settings`` would make (a page passes its own form's values). Raises DataError when the
    data is missing, before any run is queued."""
    settings = settings or DegradationSettings()
    data_config = data_config or settings.data_config()
    train_config = train_config or settings.train_config()
    check_dataset(data_config.name, data_config.root, download=data_config.download)
    group = f"degradation-{time.strftime('%Y%m%d-%H%M%S')}"
    plan = degradation_plan(dataclasses.replace(settings, data=data_config.name, root=data_config.root))
    return [manager.submit(spec, train_config, data_config, label=name, group=group) for name, spec in plan]


def summarize_curves(curves: dict[str, list[dict]], tail: float = 0.25, tolerance: float = 0.05) -> dict:
    """Final training loss per net (mean of the step records in the last ``tail`` of the run) and the
    two verdicts of Fig. 1: ``plain_degrades`` (plain-56 above plain-20) and ``resnet_not_worse``
    (resnet-56 at most ``tolerance`` above resnet-20, relative)."""
    final: dict[str, float | None] = {}
    final_acc: dict[str, float | None] = {}
    for name, records in curves.items():
        steps = [r for r in records if r.get("kind") == "step"]
        if not steps:
            final[name] = final_acc[name] = None
            continue
        cut = steps[-1]["step"] * (1 - tail)
        last = [r for r in steps if r["step"] > cut] or steps[-1:]
        final[name] = sum(r["loss"] for r in last) / len(last)
        final_acc[name] = sum(r["train_accuracy"] for r in last) / len(last)

    def worse(a: str, b: str, tol: float = 0.0) -> bool | None:
        if final.get(a) is None or final.get(b) is None:
            return None
        return final[a] > final[b] * (1 + tol)

    plain = worse("cifar-plain56", "cifar-plain20")
    resnet = worse("cifar-resnet56", "cifar-resnet20", tolerance)
    return {
        "final_train_loss": final,
        "final_train_accuracy": final_acc,
        "plain_degrades": plain,
        "resnet_not_worse": None if resnet is None else not resnet,
        "curves": {name: {"step": [r["step"] for r in recs if r.get("kind") == "step"],
                          "loss": [r["loss"] for r in recs if r.get("kind") == "step"],
                          "train_accuracy": [r["train_accuracy"] for r in recs if r.get("kind") == "step"]}
                   for name, recs in curves.items()},
    }


def degradation_summary(store: RunStore, group: str) -> dict:
    """The summary of a submitted group, from the run history (works while runs are in progress)."""
    curves, status = {}, {}
    for run in store.runs():
        settings = run.settings()
        if settings.get("group") != group:
            continue
        name = settings.get("network")
        curves[name] = run.metrics("step")
        status[name] = run.status().get("status")
    summary = summarize_curves(curves)
    summary["status"] = status
    summary["done"] = bool(status) and all(s not in ("queued", "running") for s in status.values())
    return summary


def run_degradation(settings: DegradationSettings = DegradationSettings(), *,
                    on_progress: Callable[[str, dict], None] | None = None,
                    stop_event: threading.Event | None = None) -> dict:
    """Train the four nets one after another here; return :func:`summarize_curves` plus per-net
    results, CPU seconds (process CPU time) and wall seconds."""
    info = dataset_info(settings.data)
    data = load_dataset(settings.data, root=settings.root, input_size=settings.input_size,
                        train_limit=settings.train_limit, test_limit=settings.test_limit)
    curves, results = {}, {}
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    for name, spec in degradation_plan(settings, channels=data.in_channels, size=data.input_size,
                                       classes=data.num_classes):
        from archs import build_model

        torch.manual_seed(settings.seed)
        model = build_model(spec)
        records: list[dict] = []

        def sink(record, name=name, records=records):
            records.append(record)
            if on_progress is not None:
                on_progress(name, record)

        cpu0, wall0 = time.process_time(), time.perf_counter()
        result = train(model, data, settings.train_config(), on_metrics=sink, stop_event=stop_event)
        results[name] = {**result.to_dict(), "cpu_seconds": time.process_time() - cpu0,
                         "wall_seconds": time.perf_counter() - wall0}
        curves[name] = records
        if result.status == "stopped":
            break
    summary = summarize_curves(curves)
    summary.update(results=results, settings=asdict(settings), data=info.name,
                   cpu_seconds=time.process_time() - cpu_start, wall_seconds=time.perf_counter() - wall_start)
    return summary
