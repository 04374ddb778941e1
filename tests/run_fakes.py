"""A run store in memory, standing in for ``archs.training.store`` where a test needs stored runs without training.

It offers exactly the part of the run store's interface that ``archs.sources`` uses (``list_runs``, ``get``,
``mark_viewed``; a run's ``spec_json``, ``has_weights``, ``check_weights``, ``weights_bytes``, ``metrics``, ``info``:
``archs.training.stored`` reads its spec and weights from those, as from a stored run), and ``install`` points
``archs.sources._run_store`` at it, so the code under test goes through its one real entry point.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

import archs.sources
from archs import NetSpec, build_model


class FakeRunError(ValueError):
    pass


def trained_like(spec: NetSpec, seed: int = 0) -> dict[str, torch.Tensor]:
    """Weights that look trained: seeded, and BatchNorm running statistics taken from a batch (so an eval
    pass is normalised, as in a real trained net, instead of blowing up through identity norms)."""
    torch.manual_seed(seed)
    model = build_model(spec)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 1.0
    with torch.no_grad():
        model.train()(torch.randn(16, spec.in_channels, spec.input_size, spec.input_size))
    return {k: v.clone() for k, v in model.state_dict().items()}


def curve(steps: int = 4, start: float = 2.3) -> list[dict]:
    """Metric records shaped like a training run's: step records and one evaluation."""
    records = [{"kind": "step", "step": s, "loss": start / s, "train_accuracy": 0.2 * s} for s in range(1, steps + 1)]
    return records + [{"kind": "eval", "step": steps, "test_loss": start / steps, "test_accuracy": 0.5}]


class FakeRun:
    def __init__(self, run_id: str, spec: NetSpec, weights: dict | None = None, metrics: list | None = None,
                 label: str | None = None, status: str = "completed"):
        self.id, self._spec, self._weights = run_id, spec, weights
        self._metrics, self._label, self._status = metrics or [], label or f"{spec.name} run", status

    def spec_json(self) -> str:
        return self._spec.to_json()

    def has_weights(self) -> bool:
        return self._weights is not None

    def check_weights(self) -> bool:
        return self.has_weights()

    def weights_bytes(self) -> bytes:
        if self._weights is None:
            raise FakeRunError(f"run {self.id} has no saved weights")
        buffer = io.BytesIO()
        torch.save(self._weights, buffer)
        return buffer.getvalue()

    def metrics(self) -> list[dict]:
        return list(self._metrics)

    def chart_metrics(self, kinds: tuple[str, ...] = ("step", "epoch", "eval", "grad"), **_) -> list[dict]:
        return [r for r in self._metrics if r.get("kind") in kinds]

    def row(self) -> dict:
        return {"id": self.id, "label": self._label, "network": self._spec.name, "data": "digits",
                "status": self._status, "has_weights": self.has_weights()}


class FakeStore:
    root = Path("fake-runs")

    def __init__(self, runs: list[FakeRun]):
        self.runs = {run.id: run for run in runs}
        self.viewed: list[str] = []  # the ids pages marked as shown, in order

    def mark_viewed(self, run_ids) -> None:
        self.viewed += [i for i in run_ids if i in self.runs]

    def list_runs(self, kind: str | None = None, limit: int | None = None, weights: bool = False) -> list[dict]:
        return [run.row() for run in self.runs.values()][:limit]

    def get(self, run_id: str) -> FakeRun:
        if run_id not in self.runs:
            raise FakeRunError(f"no run {run_id!r} in {self.root}")
        return self.runs[run_id]


def install(monkeypatch, runs: list[FakeRun]) -> FakeStore:
    store = FakeStore(runs)
    monkeypatch.setattr(archs.sources, "_run_store", lambda: (store, FakeRunError))
    return store


def forget_cached_runs() -> None:
    """Forget what the dashboard cached about runs (its caches outlive one AppTest)."""
    from ui import compute, jobs

    for cached in (compute.runs, compute.run_metrics, compute.run_source, compute.export_file):
        cached.clear()
    jobs.forget()  # the measurements' results (quick jobs)


def install_for_app(monkeypatch, runs: list[FakeRun]) -> FakeStore:
    """``install``, with the dashboard's caches about runs forgotten."""
    store = install(monkeypatch, runs)
    forget_cached_runs()
    return store


def use_real_store(monkeypatch, runs_dir) -> None:
    """The dashboard on a real (empty) run store in ``runs_dir``, with its caches about runs forgotten."""
    monkeypatch.setenv("ARCHS_RUNS_DIR", str(runs_dir))
    forget_cached_runs()


def real_run(runs_dir, spec: NetSpec, weights: dict | None, label: str, owner: str = "session:trainer",
             data: str = "digits") -> str:
    """A completed run written into a real run store (no training): for views that measure it in a worker."""
    from archs.training import DataConfig, RunRequest, RunStore, TrainConfig
    from archs.training.stored import save_weights

    run = RunStore(runs_dir).create(RunRequest(spec, TrainConfig(), DataConfig(name=data), label=label, owner=owner))
    if weights is not None:
        save_weights(run, weights)
    run.write_status(status="completed", progress={"step": 1, "total_steps": 1})
    return run.id
