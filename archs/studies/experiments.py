"""Experiments made of several runs, submitted through an executor so that on a cluster they run side by
side: He et al.'s degradation experiment (2016, Fig. 1) and the Gradients page's depth sweep.

**Degradation.** Plain nets get *worse* at fitting their training set as they get deeper (plain-56
above plain-20), while the same depths with identity shortcuts do not (resnet-56 at or below
resnet-20). The four CIFAR nets are adapted to the chosen data set (its channels, size and classes)
and trained on one fixed budget of steps with identical settings, so their training curves can be
overlaid. :func:`submit_degradation` starts it as a study (the ``residual`` claim of
:mod:`archs.studies.families`, whose runs share the study's id as their ``group``);
:func:`degradation_summary` reads them back from the run store; :func:`run_degradation` trains them one
after another in the caller's process (the command line and benchmarks use it, with the requests of
:func:`degradation_requests`).

**Depth sweep.** He et al.'s CIFAR nets at several depths, with and without skips: the first conv's
gradient norm over the last conv's at initialisation, a study sweeping ``stages[*].blocks`` and
``stages[*].skip`` with one ``gradients`` measurement per network (:func:`submit_depth_sweep`,
:func:`depth_sweep_results`).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from archs.health import ActivationHealth
from archs.presets import PRESETS, cifar_resnet
from archs.studies.definition import StudyDefinition
from archs.studies.driver import start_study
from archs.training.config import ACTIVE_STATUSES, DataConfig, TrainConfig
from archs.training.data import check_dataset, dataset_info
from archs.training.request import MemoryRecorder, RunRequest, bound_quick_job, execute_request
from archs.training.store import RunError, RunStore
from archs.training.store.records import CHART_POINTS
from archs.training.stored import spec_of

__all__ = [
    "DEGRADATION_PRESETS",
    "DegradationSettings",
    "degradation_plan",
    "degradation_requests",
    "degradation_summary",
    "depth_sweep_results",
    "latest_degradation",
    "measure_run_health",
    "run_degradation",
    "submit_degradation",
    "submit_depth_sweep",
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
        return DataConfig(name=self.data, root=self.root, train_limit=self.train_limit, test_limit=self.test_limit)


def degradation_plan(settings: DegradationSettings = DegradationSettings(), *, channels: int | None = None,
                     size: int | None = None, classes: int | None = None) -> list[tuple[str, object]]:
    """(preset name, adapted spec) for the four nets. Channels, size and classes default to the data
    set's own (image folders: 3 x 32 x 32, classes read when trained)."""
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


def degradation_requests(settings: DegradationSettings | None = None, *, data_config: DataConfig | None = None,
                         train_config: TrainConfig | None = None, owner: str | None = None,
                         owner_name: str | None = None) -> list[RunRequest]:
    """The four requests, in :data:`DEGRADATION_PRESETS` order, under one ``group``
    (``degradation-<time>``). ``data_config`` / ``train_config``, when given, replace the ones
    ``settings`` would make (a page passes its own form's values)."""
    settings = settings or DegradationSettings()
    data_config = data_config or settings.data_config()
    train_config = train_config or settings.train_config()
    group = f"degradation-{time.strftime('%Y%m%d-%H%M%S')}"
    plan = degradation_plan(dataclasses.replace(settings, data=data_config.name, root=data_config.root))
    return [RunRequest(spec, train_config, data_config, label=name, group=group, owner=owner, owner_name=owner_name)
            for name, spec in plan]


def submit_degradation(executor, settings: DegradationSettings | None = None, *,
                       data_config: DataConfig | None = None, train_config: TrainConfig | None = None,
                       owner: str, owner_name: str | None = None, seeds: int = 1) -> str:
    """Start the experiment as a study (the seed articles' ``residual`` claim: the four nets, ``seeds`` seeds each,
    on one budget) driven through ``executor``; return its id, which is its runs' ``group``. Raises DataError when
    the data is missing and LimitError over a study limit, before anything is stored."""

    settings = settings or DegradationSettings()
    data_config = data_config or settings.data_config()
    train_config = train_config or settings.train_config()
    check_dataset(data_config.name, data_config.root, download=data_config.download)
    definition = StudyDefinition(kind="claim", claim="residual", name=f"degradation on {data_config.name}",
                                 data=data_config.to_dict(), train=train_config.to_dict(), seeds=seeds,
                                 objectives=("accuracy", "params"))
    return start_study(executor, definition, owner=owner, owner_name=owner_name)


def latest_degradation(store: RunStore, owner: str | None = None) -> str | None:
    """The newest degradation experiment (a ``residual`` claim study) of ``owner``, else of anyone."""
    for who in ((owner, None) if owner else (None,)):
        for record in store.studies.list(owner=who, limit=50):
            if record["kind"] == "claim" and record["definition"].get("claim") == "residual":
                return record["id"]
    return None


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
    """The summary of a submitted group, from the run history (works while runs are in progress).

    A page asks for it at every refresh, so it reads what the page draws: of each network's run (the oldest of its
    seeds, as ever) at most :data:`CHART_POINTS` step records (:meth:`Run.chart_metrics`, picked in SQL at an even
    stride back from the newest, which is always kept), never every record of every run. The summary is the same as
    from every record while a run has that many or fewer (the page's experiments log at most 240); past that, the
    final loss is the mean of the drawn points in the run's last quarter."""
    chosen, status = {}, {}
    for row in store.list_runs(group=group):  # newest first: a network's oldest run is the one that stays
        chosen[row["network"]] = row["id"]
        status[row["network"]] = row["status"]
    curves = {name: store.get(run_id).chart_metrics(("step",), points=CHART_POINTS) for name, run_id in chosen.items()}
    summary = summarize_curves(curves)
    summary["status"] = status
    try:  # a study's runs appear as its driver submits them: it is done when the study is
        running = store.studies.get(group)["status"] == "running"
    except ValueError:
        running = False
    summary["done"] = bool(status) and not running and all(s not in ACTIVE_STATUSES for s in status.values())
    return summary


def run_degradation(settings: DegradationSettings = DegradationSettings(), *,
                    on_progress: Callable[[str, dict], None] | None = None,
                    stop_event: threading.Event | None = None) -> dict:
    """Train the four nets one after another in this process; return :func:`summarize_curves` plus per-net
    results, CPU seconds (process CPU time) and wall seconds."""
    curves, results = {}, {}
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    for request in degradation_requests(settings):
        name = request.label
        recorder = MemoryRecorder(on_metric=None if on_progress is None else lambda r, name=name: on_progress(name, r))
        cpu0, wall0 = time.process_time(), time.perf_counter()
        status = execute_request(request, recorder, stop_event=stop_event)
        if status["status"] == "failed":
            raise RuntimeError(f"{name}: {status['error']}")
        results[name] = {**status["result"], "cpu_seconds": time.process_time() - cpu0,
                         "wall_seconds": time.perf_counter() - wall0}
        curves[name] = recorder.records
        if status["status"] == "stopped":
            break
    summary = summarize_curves(curves)
    summary.update(results=results, settings=asdict(settings), data=dataset_info(settings.data).name,
                   cpu_seconds=time.process_time() - cpu_start, wall_seconds=time.perf_counter() - wall_start)
    return summary


# ---------------------------------------------------------------------------------------------
# the depth sweep


def submit_depth_sweep(executor, depths, batch_size: int = 32, seed: int = 0, in_channels: int = 3,
                       norm: str = "batch", *, owner: str, owner_name: str | None = None) -> str:
    """Start the sweep as a study: He et al.'s CIFAR net with ``stages[*].blocks`` at each depth's (6n+2) and
    ``stages[*].skip`` on and off, one ``gradients`` measurement each (a quick job, bounded as a page's
    measurement is). Returns the study's id, its runs' group."""
    definition = depth_sweep_definition(depths, batch_size, seed, in_channels, norm)
    return start_study(executor, definition, owner=owner, owner_name=owner_name)


def depth_sweep_definition(depths, batch_size: int = 32, seed: int = 0, in_channels: int = 3,
                           norm: str = "batch") -> StudyDefinition:
    """The study :func:`submit_depth_sweep` starts."""
    for depth in depths:
        if (depth - 2) % 6 or depth < 8:
            raise ValueError(f"depth must be 6n+2 with n >= 1, got {depth}")
    base = dataclasses.replace(cifar_resnet(8), in_channels=in_channels, norm=norm)
    return StudyDefinition(kind="sweep", name=f"depth sweep {min(depths)}-{max(depths)}", spec=base.to_dict(),
                           train=TrainConfig(batch_size=batch_size, seed=seed, device="cpu").to_dict(),
                           vary=({"path": "stages[*].blocks", "values": [(d - 2) // 6 for d in depths]},
                                 {"path": "stages[*].skip", "values": [True, False]}),
                           run_kind="gradients", objectives=("accuracy", "params"))


def depth_sweep_results(store: RunStore, study_id: str) -> tuple[list[dict], int, int]:
    """(results so far, measurements finished, measurements in all) of a sweep started by
    :func:`submit_depth_sweep`, read from its study's trials. Each result is ``{"depth", "skip", "ratio", "first",
    "last_conv"}``, as :func:`archs.depth_sweep` returns them."""
    trials = store.studies.trials(study_id)
    results = []
    done = sum(t["status"] not in ("pending", "queued", "running") for t in trials)
    for trial in trials:
        measured = trial["objectives"]
        if trial["status"] != "completed" or measured.get("ratio") is None:
            continue
        results.append({"depth": 2 + 6 * int(trial["params"]["stages[*].blocks"]),
                        "skip": bool(trial["params"]["stages[*].skip"]),
                        **{k: measured[k] for k in ("ratio", "first", "last_conv")}})
    return sorted(results, key=lambda r: (r["depth"], not r["skip"])), done, len(trials)


# ---------------------------------------------------------------------------------------------
# a stored run's activation health


def measure_run_health(executor, run_id: str, batch_size: int = 64, seed: int = 0, *, owner: str,
                       owner_name: str | None = None, timeout: float = 300.0) -> tuple:
    """Activation health of a stored run (trained, and at initialisation) measured by a worker of ``executor``,
    never in the calling process: the run's data is read there. Returns two
    :class:`archs.health.ActivationHealth`. Raises RunError if the run has no weights, or the measurement fails
    or takes longer than ``timeout``."""

    source = executor.store.get(run_id)
    if not source.has_weights():
        raise RunError(f"run {run_id} has no saved weights (only completed and stopped runs have them)")
    data = DataConfig.from_dict(source.settings().get("data") or {})
    request = RunRequest(spec_of(source), TrainConfig(batch_size=batch_size, seed=seed, device="cpu"), data,
                         kind="health", label=f"activation health of {run_id}", source_run=run_id, owner=owner,
                         owner_name=owner_name)
    measurement = executor.submit(bound_quick_job(request))  # the budget at its batch, the quick lane's bounds
    if not executor.wait(measurement, timeout=timeout):
        executor.stop(measurement, owner)
        raise RunError(f"measuring run {run_id}'s activations took longer than {timeout:.0f} s")
    status = executor.status(measurement)
    if status.get("status") != "completed":
        raise RunError(f"measuring run {run_id}'s activations failed: {status.get('error') or status.get('status')}")
    result = status["result"]
    return ActivationHealth.from_dict(result["trained"]), ActivationHealth.from_dict(result["initial"])
