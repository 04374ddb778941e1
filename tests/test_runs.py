"""Run history and background jobs: queueing, stop, crash recovery, reading runs back."""

from __future__ import annotations

import json
import os
import time

import pytest
import torch

import archs
from archs.data import DataError
from archs.runs import DataConfig, JobManager, RunError, RunStore, get_job_manager, grad_heatmap
from archs.train import TrainConfig

SPEC = archs.PRESETS["seed002-inception"]
DIGITS = DataConfig("digits", train_limit=128, test_limit=64)


def quick(**overrides) -> TrainConfig:
    return TrainConfig(**{"epochs": 1, "batch_size": 16, "log_every": 2, "grad_every": 4, **overrides})


def wait_until(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.02)


def test_two_runs_with_limit_one_queue_and_both_finish(tmp_path):
    manager = JobManager(RunStore(tmp_path), max_concurrent=1)
    first = manager.submit(SPEC, quick(max_steps=4), DIGITS, label="first")
    second = manager.submit(SPEC, quick(max_steps=4), DIGITS, label="second", group="g")
    assert manager.active() == [first, second]
    assert manager.status(second)["status"] == "queued"
    assert manager.wait(timeout=120)
    a, b = manager.status(first), manager.status(second)
    assert (a["status"], b["status"]) == ("completed", "completed")
    assert b["started_at"] >= a["finished_at"]
    assert a["result"]["steps"] == 4 and a["progress"]["step"] == 4
    rows = manager.store.list_runs()
    assert {row["label"] for row in rows} == {"first", "second"}
    assert [row["id"] for row in manager.store.list_runs(group="g")] == [second]
    assert manager.active() == []


def test_run_folder_contents_and_model_reload(tmp_path):
    manager = JobManager(RunStore(tmp_path))
    run_id = manager.submit(SPEC, quick(max_steps=8), DIGITS)
    manager.wait(run_id, timeout=120)
    run = manager.run(run_id)
    assert sorted(p.name for p in run.path.iterdir()) == [
        "metrics.jsonl", "settings.json", "spec.json", "status.json", "weights.pt"]
    assert run.spec() == SPEC
    assert TrainConfig.from_dict(run.settings()["train"]) == quick(max_steps=8)
    assert [r["step"] for r in run.metrics("step")] == [2, 4, 6, 8]
    heat = grad_heatmap(run.metrics())
    assert heat["steps"] == [4, 8] and len(heat["layers"]) == len(heat["values"]) > 3
    model = run.load_model()
    x = torch.randn(2, 1, 28, 28)
    assert model(x).shape == (2, 10)
    info = run.info()
    assert info["status"] == "completed" and info["data"] == "digits" and info["network"] == "seed002-inception"


def test_stop_a_running_job(tmp_path):
    manager = JobManager(RunStore(tmp_path))
    run_id = manager.submit(SPEC, quick(epochs=50, log_every=1, grad_every=0), DIGITS)
    wait_until(lambda: (manager.status(run_id).get("progress") or {}).get("step", 0) >= 1)
    assert manager.stop(run_id)
    assert manager.wait(run_id, timeout=60)
    status = manager.status(run_id)
    assert status["status"] == "stopped" and status["result"]["steps"] < 50 * 8
    assert manager.run(run_id).has_weights()
    assert not manager.stop(run_id)  # no longer live


def test_stop_a_queued_job(tmp_path):
    manager = JobManager(RunStore(tmp_path), max_concurrent=1)
    first = manager.submit(SPEC, quick(epochs=50, log_every=1, grad_every=0), DIGITS)
    second = manager.submit(SPEC, quick(max_steps=2), DIGITS)
    assert manager.stop(second)
    assert manager.status(second)["status"] == "stopped"
    manager.stop(first)
    manager.wait(timeout=60)
    assert manager.status(first)["status"] == "stopped"


def test_missing_data_starts_no_run(tmp_path):
    manager = JobManager(RunStore(tmp_path / "runs"))
    with pytest.raises(DataError, match="MNIST not found"):
        manager.submit(SPEC, quick(), DataConfig("mnist", root=str(tmp_path / "nothing")))
    assert manager.store.list_runs() == []


class NanFrom(torch.nn.Module):
    """Wraps a network; its output turns NaN from the ``calls``-th forward pass on."""

    def __init__(self, inner: torch.nn.Module, calls: int):
        super().__init__()
        self.inner, self.calls, self.count = inner, calls, 0

    def forward(self, x):
        self.count += 1
        out = self.inner(x)
        return out * float("nan") if self.count >= self.calls else out


def test_diverged_run_keeps_metrics(tmp_path):
    manager = JobManager(RunStore(tmp_path))
    run_id = manager.submit(SPEC, quick(log_every=1, grad_every=0), DIGITS,
                            model_factory=lambda spec: NanFrom(archs.build_model(spec), calls=3))
    manager.wait(run_id, timeout=60)
    run = manager.run(run_id)
    status = run.status()
    assert status["status"] == "diverged" and status["message"] == "the loss became nan at step 3"
    assert [r["step"] for r in run.metrics("step")] == [1, 2, 3] and not run.has_weights()


def test_crashed_run_reads_back_as_interrupted(tmp_path):
    store = RunStore(tmp_path)
    run = store.create(SPEC, quick(), DIGITS)
    run.write_status(status="running", pid=os.getpid(), progress={"step": 2, "total_steps": 8})
    run.append_metric({"kind": "step", "step": 2, "loss": 1.5})
    with open(run.path / "metrics.jsonl", "a") as handle:
        handle.write('{"kind": "step", "step": 4, "lo')  # cut off mid-line by the crash
    status = run.status()
    assert status["status"] == "interrupted" and status["stored_status"] == "running"
    assert run.metrics() == [{"kind": "step", "step": 2, "loss": 1.5}]
    assert store.list_runs()[0]["status"] == "interrupted" and store.list_runs()[0]["step"] == 2
    # a folder with almost nothing in it, and one with a garbled status file
    bare = tmp_path / "20000101-000000-bare"
    bare.mkdir()
    (bare / "settings.json").write_text(json.dumps({"label": "bare"}))
    garbled = tmp_path / "20000101-000001-garbled"
    garbled.mkdir()
    (garbled / "status.json").write_text('{"status": "runn')
    rows = {row["id"]: row for row in store.list_runs()}
    assert rows[bare.name]["status"] == "interrupted" and rows[garbled.name]["status"] == "interrupted"
    assert store.get(bare.name).metrics() == []
    with pytest.raises(RunError, match="has no saved weights"):
        store.get(bare.name).weights()
    store.delete(garbled.name)
    assert not garbled.exists()


def test_store_errors_and_shared_manager(tmp_path):
    store = RunStore(tmp_path)
    with pytest.raises(RunError, match="no run 'missing'"):
        store.get("missing")
    with pytest.raises(RunError, match="invalid run id"):
        store.get("../etc")
    assert get_job_manager(tmp_path) is get_job_manager(tmp_path / "." )
    assert get_job_manager(tmp_path, max_concurrent=3).max_concurrent == 3
    assert store.list_runs() == []


def test_degradation_plan_and_summary(tmp_path):
    from archs.experiments import (DEGRADATION_PRESETS, DegradationSettings, degradation_plan,
                                   degradation_summary, submit_degradation, summarize_curves)

    plan = degradation_plan(DegradationSettings())
    assert [name for name, _ in plan] == list(DEGRADATION_PRESETS)
    assert {(s.in_channels, s.input_size, s.num_classes) for _, s in plan} == {(1, 28, 10)}
    assert [s.stages[0].skip for _, s in plan] == [False, False, True, True]

    step = lambda s, loss: {"kind": "step", "step": s, "loss": loss, "train_accuracy": 0.5}  # noqa: E731
    curves = {"cifar-plain20": [step(10, 2.0), step(20, 1.0)], "cifar-plain56": [step(10, 2.0), step(20, 1.5)],
              "cifar-resnet20": [step(10, 2.0), step(20, 1.0)], "cifar-resnet56": [step(10, 2.0), step(20, 1.04)]}
    summary = summarize_curves(curves)
    assert summary["final_train_loss"]["cifar-plain56"] == 1.5
    assert (summary["plain_degrades"], summary["resnet_not_worse"]) == (True, True)
    assert summary["curves"]["cifar-plain20"]["loss"] == [2.0, 1.0]

    manager = JobManager(RunStore(tmp_path), max_concurrent=1)
    settings = DegradationSettings(data="digits", steps=2, batch_size=8, log_every=1, test_limit=16)
    ids = submit_degradation(manager, settings)
    assert len(ids) == 4 and manager.wait(timeout=120)
    group = manager.run(ids[0]).settings()["group"]
    assert group.startswith("degradation-") and manager.run(ids[0]).info()["label"] == "cifar-plain20"
    summary = degradation_summary(manager.store, group)
    assert summary["done"] and set(summary["status"].values()) == {"completed"}
    assert all(len(c["loss"]) == 2 for c in summary["curves"].values())
    assert manager.run(ids[1]).spec().input_size == 8  # adapted to the digits' own 8 x 8


def test_a_running_run_survives_a_reload_of_the_module(tmp_path):
    """Streamlit reloads a changed module; jobs still training must not read as interrupted."""
    import importlib

    import archs.runs

    manager = archs.runs.get_job_manager(tmp_path)
    run_id = manager.submit(SPEC, quick(epochs=50, log_every=1, grad_every=0), DIGITS)
    wait_until(lambda: (manager.status(run_id).get("progress") or {}).get("step", 0) >= 1)
    reloaded = importlib.reload(archs.runs)
    try:
        assert reloaded.RunStore(tmp_path).get(run_id).status()["status"] == "running"
        assert reloaded.get_job_manager(tmp_path) is manager
    finally:
        manager.stop(run_id)
        manager.wait(run_id, timeout=60)
    assert reloaded.RunStore(tmp_path).get(run_id).status()["status"] == "stopped"
