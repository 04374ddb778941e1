"""The run store (SQLite), run requests and the local executor: worker processes, the FIFO queue, stop, crashes,
a worker outliving the process that submitted it, limits and owners.

Runs here are tiny (seed002-inception on a slice of the offline digits): a few seconds each, most of it
starting a worker process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import faults
import pytest
import torch

import archs
from archs.training import DataConfig, RunRequest, RunStore, TrainConfig
from archs.training.config import ConfigError
from archs.training.data import DataError
from archs.training.executors.local import LocalExecutor, describe_exit
from archs.training.limits import LimitError, Limits
from archs.training.request import MemoryRecorder, Recorder, execute_request
from archs.training.store import RunError, grad_heatmap, process_identity
from archs.training.stored import RunRecorder, metrics_csv_of, model_of, spec_of, weights_of

SPEC = archs.PRESETS["seed002-inception"]
SLOW = replace(SPEC, name="fault-slow")  # each step sleeps 50 ms in a worker (tests/faults.py, the workers' setup)
ME = "session:me"
DIGITS = DataConfig(name="digits", train_limit=128, test_limit=64)
TIMEOUT = 120  # generous, for a loaded CI machine: tests wait for states, they never assert durations


def quick(**overrides) -> TrainConfig:
    return TrainConfig(**{"epochs": 1, "batch_size": 16, "log_every": 2, "grad_every": 4, **overrides})


def request(**overrides) -> RunRequest:
    return RunRequest(**{"spec": SPEC, "train": quick(max_steps=4), "data": DIGITS, "owner": ME, **overrides})


def long_request(**overrides) -> RunRequest:
    """A run that would take minutes: it is stopped or killed in these tests."""
    return request(**{"spec": SLOW, "train": quick(epochs=500, log_every=1, grad_every=0), **overrides})


def wait_until(predicate, timeout: float = TIMEOUT, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def step_of(store: RunStore, run_id: str) -> int:
    return (store.get(run_id).status().get("progress") or {}).get("step", 0)


@pytest.fixture
def executor(tmp_path):
    ex = LocalExecutor(RunStore(tmp_path / "runs"), Limits(max_concurrent=1), threads=1)
    yield ex
    for run_id in ex.active():
        ex.stop(run_id, admin=True)
    ex.wait(timeout=60)


# ------------------------------------------------------------------------------------------ requests
def test_a_request_round_trips_through_json_and_the_store(tmp_path):
    req = request(label="first", group="g", owner="session:abc", owner_name="session abc", max_seconds=30.0)
    assert RunRequest.from_json(req.to_json()) == req
    run = RunStore(tmp_path).create(req)
    assert RunRequest.from_run(run) == req
    assert run.settings()["owner"] == "session:abc" and run.owner == "session:abc"
    assert run.status()["status"] == "interrupted"  # queued in no queue, by no one
    with pytest.raises(ConfigError, match="^kind: must be one of 'train', 'gradients', 'health', .*, got 'dance'"):
        request(kind="dance")
    with pytest.raises(ConfigError, match="^max_seconds: must be a positive number of seconds"):
        request(max_seconds=-1)
    with pytest.raises(ConfigError, match="unknown data setting 'path'"):
        RunRequest.from_dict({**req.to_dict(), "data": {"path": "x"}})
    with pytest.raises(ConfigError, match="^lr: must be a finite number"):  # not an OverflowError
        RunRequest.from_dict({**req.to_dict(), "train": {**req.to_dict()["train"], "lr": 10**400}})
    with pytest.raises(archs.SpecError, match="stages\\[0\\]"):
        RunRequest.from_dict({**req.to_dict(), "spec": {**SPEC.to_dict(), "stages": [{"type": "residual"}]}})
    with pytest.raises(ConfigError, match="^train: must be an object"):
        RunRequest.from_dict({**req.to_dict(), "train": [1, 2]})


def test_execute_request_in_this_process_records_everything(tmp_path):
    from archs.training.executors.ray import ChannelRecorder

    recorder, seen = MemoryRecorder(), []
    status = execute_request(request(train=quick(max_steps=8)), recorder, on_metric=seen.append)
    assert status["status"] == "completed" and status["result"]["steps"] == 8 and seen == recorder.records
    for where in (recorder, RunRecorder(RunStore(tmp_path).create(request())), ChannelRecorder(None, "r")):  # one per place
        assert isinstance(where, Recorder)
    assert [r["step"] for r in recorder.records if r["kind"] == "step"] == [2, 4, 6, 8]
    assert status["progress"]["step"] == 8 and status["data"]["train"] == 128
    assert set(recorder.state_dict) == set(archs.build_model(SPEC).state_dict())


def test_a_request_that_cannot_run_fails_with_the_reason():
    status = execute_request(request(data=DataConfig(name="mnist", root="/nonexistent")), MemoryRecorder())
    assert status["status"] == "failed" and status["error"].startswith("MNIST not found")
    recorder = MemoryRecorder()
    status = execute_request(request(), recorder, model_factory=faults.raise_at_step_3)  # Python code may
    assert status["status"] == "failed"
    assert status["error"] == "RuntimeError: boom: a bug inside the model at step 3"
    assert "Traceback" in recorder.error_text and [r["step"] for r in recorder.records if r["kind"] == "step"] == [2]


# ------------------------------------------------------------------------------------------ the store
def test_crashed_run_reads_back_honestly(tmp_path):
    store = RunStore(tmp_path)
    run = store.create(request())
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    run.write_status(status="running", worker=process_identity(int(dead.stdout)),
                     progress={"step": 2, "total_steps": 8})
    run.append_metric({"kind": "step", "step": 2, "loss": 1.5})
    status = run.status()
    assert status["status"] == "failed" and status["stored_status"] == "running"
    assert "ended without recording a result" in status["error"]
    assert run.metrics() == [{"kind": "step", "step": 2, "loss": 1.5}]
    row = store.list_runs()[0]
    assert (row["status"], row["step"]) == ("failed", 2)
    run.write_status(worker=process_identity())  # a live worker (this process): running it is
    assert run.status()["status"] == "running"
    with pytest.raises(RunError, match="has no saved weights"):
        weights_of(run)
    with pytest.raises(RunError, match="is running; stop it before deleting it"):
        store.delete(run.id, owner=ME)


def test_a_writer_killed_mid_stream_loses_at_most_the_record_it_was_writing(tmp_path):
    """A process appends records and rewrites the status as fast as it can, and is SIGKILLed: every record the
    store holds is whole, in order, and the database passes SQLite's integrity check."""
    store = RunStore(tmp_path)
    run = store.create(request())
    script = (f"from archs.training import RunStore\nrun = RunStore({str(tmp_path)!r}).get({run.id!r})\n"
              "print('ready', flush=True)\n"
              "for step in range(1, 10**7):\n"
              "    run.append_metrics([{'kind': 'step', 'step': step, 'loss': 1.0 / step, 'pad': 'x' * 2000}])\n"
              "    run.write_status(progress={'step': step})\n")
    writer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "ready"
    wait_until(lambda: len(run.metrics("step")) >= 200, what="records")
    writer.kill()
    writer.wait()
    steps = [r["step"] for r in run.metrics("step")]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 200
    assert all(r["pad"] == "x" * 2000 for r in run.metrics("step"))
    assert run.status()["progress"]["step"] in (len(steps) - 1, len(steps))
    import sqlite3

    assert sqlite3.connect(store.db_path).execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_store_queue_owners_and_pruning(tmp_path):
    store = RunStore(tmp_path)
    with pytest.raises(RunError, match="no run 'missing'"):
        store.get("missing")
    for bad in ("../etc", "/etc/passwd", "", ".hidden", "a/b", "x" * 500, "a\x00b"):
        with pytest.raises(RunError, match="invalid run id"):
            store.get(bad)
    runs = store.submit([request(owner=f"session:{n}") for n in range(4)], executor="local")
    assert store.queued() == [r.id for r in runs]
    assert [row["queue_position"] for row in reversed(store.list_runs())] == [1, 2, 3, 4]
    assert store.claim_next("local", process_identity()) == runs[0].id
    assert store.queued() == [r.id for r in runs[1:]] and runs[0].status()["status"] == "queued"  # claimed
    assert store.unqueue(runs[1].id) and not store.unqueue(runs[0].id)  # taken already: not unqueued
    assert runs[1].status()["status"] == "stopped" and runs[1].status()["message"] == "stopped while queued"
    with pytest.raises(RunError, match="started by someone else: only they can delete it"):
        store.delete(runs[2].id, owner="session:intruder")
    with pytest.raises(RunError, match="say who you are to delete"):
        store.delete(runs[2].id, owner=None)
    with pytest.raises(RunError, match="is queued; stop it before deleting it"):
        store.delete(runs[2].id, owner="session:2")
    for run in runs:
        run.write_status(status="completed")
    assert store.prune(keep=4) == []  # not over the cap
    assert store.prune(keep=3) == [runs[0].id]  # a cap on the whole store: the oldest finished run, anyone's
    assert [r.id for r in store.runs()] == [r.id for r in reversed(runs[1:])]
    runs[2].write_status(status="running", worker=process_identity())
    assert store.prune(keep=1) == [runs[1].id, runs[3].id]  # only finished runs
    assert {r["owner"] for r in store.list_runs()} == {"session:2"}


# ------------------------------------------------------------------------------------------ local executor
def test_runs_queue_in_fifo_order_and_finish_in_worker_processes(executor):
    first = executor.submit(request(label="first"))
    second = executor.submit(request(label="second", group="g"))
    assert executor.queue()[-1] == second  # returned at once: queued
    assert executor.wait(timeout=TIMEOUT)
    a, b = executor.status(first), executor.status(second)
    assert (a["status"], b["status"]) == ("completed", "completed")
    assert b["started_at"] >= a["finished_at"]  # limit 1: one after the other, in order
    assert a["worker"]["pid"] != os.getpid() and a["worker"]["pid"] != b["worker"]["pid"]
    assert a["result"]["steps"] == 4 and a["progress"]["step"] == 4
    assert [row["id"] for row in executor.store.list_runs(group="g")] == [second]
    assert executor.active() == [] and executor.queue() == []


def test_run_folder_contents_and_model_reload(executor):
    run_id = executor.submit(request(train=quick(max_steps=8)))
    executor.wait(run_id, timeout=TIMEOUT)
    run = executor.store.get(run_id)
    files = sorted(p.name for p in run.path.iterdir())
    assert [f for f in files if not f.startswith("events.out.tfevents.")] == ["weights.pt", "worker.log"]
    assert len(files) == 3  # and one TensorBoard event file: the records themselves are in the database
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run.path), size_guidance={"scalars": 0, "histograms": 0})
    events.Reload()
    tags = events.Tags()
    assert {"train/loss", "train/accuracy", "train/lr", "train/images_per_second", "test/loss",
            "test/accuracy"} <= set(tags["scalars"]) and tags["histograms"] == ["grad_norm/log10"]
    assert [e.step for e in events.Scalars("train/loss")] == [2, 4, 6, 8]
    assert [e.value for e in events.Scalars("train/loss")] == pytest.approx([r["loss"] for r in run.metrics("step")])
    assert [e.step for e in events.Histograms("grad_norm/log10")] == [4, 8]
    layer_tags = [t for t in tags["scalars"] if t.startswith("grad_norm/")]
    assert len(layer_tags) == len(run.metrics("grad")[0]["layers"]) and layer_tags[0].startswith("grad_norm/001 ")
    csv_rows = metrics_csv_of(run).splitlines()
    assert csv_rows[0] == "kind,step,epoch,loss,train_accuracy,test_loss,test_accuracy,lr,images_per_second,elapsed"
    assert [row.split(",")[:2] for row in csv_rows[1:]] == [["step", "2"], ["step", "4"], ["step", "6"],
                                                             ["step", "8"], ["epoch", "8"]]
    assert spec_of(run) == SPEC
    assert TrainConfig.from_dict(run.settings()["train"]) == quick(max_steps=8)
    assert [r["step"] for r in run.metrics("step")] == [2, 4, 6, 8]
    heat = grad_heatmap(run.metrics())
    assert heat["steps"] == [4, 8] and len(heat["layers"]) == len(heat["values"]) > 3
    assert model_of(run)(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    info = run.row()
    assert info["status"] == "completed" and info["data"] == "digits" and info["network"] == "seed002-inception"
    assert info["executor"] == "local"


def test_stop_a_running_run_across_processes(executor):
    run_id = executor.submit(long_request())
    wait_until(lambda: step_of(executor.store, run_id) >= 2, what="the first steps")
    with pytest.raises(RunError, match="started by someone else: only they can stop it"):
        executor.stop(run_id, owner="session:other")
    assert executor.stop(run_id, owner=ME)
    assert executor.wait(run_id, timeout=60)
    status = executor.status(run_id)
    assert status["status"] == "stopped" and status["result"]["steps"] < 500 * 8
    assert status["message"] == f"stopped by {ME}"
    assert executor.store.get(run_id).has_weights()
    assert not executor.stop(run_id, owner=ME)  # no longer active


def test_stop_a_queued_run(executor):
    first = executor.submit(long_request())
    second = executor.submit(request())
    assert executor.stop(second, owner=ME)
    assert executor.status(second)["status"] == "stopped" and second not in executor.queue()
    executor.stop(first, owner=ME)
    executor.wait(timeout=60)
    assert executor.status(first)["status"] == "stopped"


def test_a_killed_worker_fails_its_run_keeps_its_metrics_and_the_queue_moves_on(executor):
    victim = executor.submit(long_request())
    after = executor.submit(request(label="after"))
    # 4,000 steps at log_every=1: a record every 2nd step (at most 2,000 per run, archs.training.config)
    wait_until(lambda: step_of(executor.store, victim) >= 6, what="the victim's first steps")
    os.kill(executor.status(victim)["worker"]["pid"], signal.SIGKILL)
    assert executor.wait(timeout=TIMEOUT)
    status = executor.status(victim)
    assert status["status"] == "failed" and "SIGKILL" in status["error"] and status["exit_code"] == -9
    assert len(executor.store.get(victim).metrics("step")) >= 3
    assert executor.status(after)["status"] == "completed"


def test_a_segfault_and_an_exception_inside_training_fail_their_runs(executor):
    crash = executor.submit(request(spec=replace(SPEC, name="fault-segfault"), train=quick(log_every=1)))
    bug = executor.submit(request(spec=replace(SPEC, name="fault-raise")))
    nan = executor.submit(request(spec=replace(SPEC, name="fault-nan"), train=quick(log_every=1, grad_every=0)))
    assert executor.wait(timeout=TIMEOUT)
    assert executor.status(crash)["status"] == "failed"
    assert executor.status(crash)["error"] == describe_exit(-signal.SIGSEGV)
    assert [r["step"] for r in executor.store.get(crash).metrics("step")] == [1, 2]
    assert "Fatal Python error: Segmentation fault" in (executor.store.get(crash).path / "worker.log").read_text()
    assert executor.status(bug)["error"] == "RuntimeError: boom: a bug inside the model at step 3"
    assert "Traceback" in executor.store.get(bug).traceback()
    diverged = executor.status(nan)
    assert diverged["status"] == "diverged" and diverged["message"] == "the loss became nan at step 3"
    assert not executor.store.get(nan).has_weights()


def test_a_run_outlives_the_process_that_submitted_it(tmp_path):
    """The web server is killed mid-run: the worker carries on, records the end, and a new server reads it."""
    runs = tmp_path / "runs"
    script = (f"import sys, time, archs\n"
              f"from archs.training import RunRequest, RunStore, TrainConfig, DataConfig\n"
              f"from archs.training.executors.local import LocalExecutor\n"
              f"from dataclasses import replace\n"
              f"ex = LocalExecutor(RunStore({str(runs)!r}))\n"
              f"ex.submit(RunRequest(replace(archs.PRESETS['seed002-inception'], name='fault-slow'), "
              f"TrainConfig(epochs=10, max_steps=40, batch_size=16, log_every=1, grad_every=0), "
              f"DataConfig(train_limit=128, test_limit=64), owner='session:server'))\n"
              f"ex.submit(RunRequest(archs.PRESETS['seed002-inception'], TrainConfig(epochs=1, max_steps=2, "
              f"batch_size=16), DataConfig(train_limit=128, test_limit=64), label='queued behind', "
              f"owner='session:server'))\n"
              f"print('submitted', flush=True)\n"
              f"time.sleep(600)\n")
    server = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(archs.__file__).parents[1]),
                                                                              os.environ["PYTHONPATH"]])})
    assert server.stdout.readline().strip() == "submitted"
    store = RunStore(runs)
    wait_until(lambda: any(r["status"] == "running" and (r["step"] or 0) >= 2 for r in store.list_runs()),
               what="the run to be training")
    server.kill()  # SIGKILL: no clean-up at all
    server.wait()
    executor = LocalExecutor(store)  # "the restarted server"
    assert executor.wait(timeout=TIMEOUT)
    rows = {r["label"]: r for r in store.list_runs()}
    assert rows["queued behind"]["status"] == "completed"
    trained = rows["fault-slow on digits"]
    assert trained["status"] == "completed" and trained["step"] == 40


def test_limits_refuse_with_a_clear_message_and_create_nothing(tmp_path):
    limits = Limits(max_concurrent=1, max_queued_per_owner=1, max_queued=3, max_steps=50, max_epochs=3,
                    max_params=50_000, max_runs_kept=10)
    ex = LocalExecutor(RunStore(tmp_path / "runs"), limits, threads=1)
    with pytest.raises(LimitError, match="this server trains at most 3 epochs per run .ARCHS_MAX_EPOCHS_PER_RUN.; "
                                         "you asked for 4"):
        ex.submit(request(train=quick(epochs=4)))
    with pytest.raises(LimitError, match="max_steps: this server trains at most 50 steps per run"):
        ex.submit(request(train=quick(max_steps=51)))
    with pytest.raises(LimitError, match="this network has 97,298 parameters; this server trains networks of at most "
                                         "50,000 .ARCHS_MAX_TRAIN_PARAMS."):
        ex.submit(request())
    with pytest.raises(RunError, match="a run needs an owner"):
        ex.submit(request(owner=None))
    assert ex.store.runs() == []
    small = replace(archs.PRESETS["cifar-resnet20"], name="fault-slow-small", in_channels=1, input_size=8,
                    stages=tuple(replace(s, blocks=1) for s in archs.PRESETS["cifar-resnet20"].stages[:2]))
    capped = ex.submit(request(spec=small, train=quick(epochs=2, max_steps=None), owner="session:a"))
    assert TrainConfig.from_dict(ex.store.get(capped).settings()["train"]).max_steps == 50  # capped, not refused
    wait_until(lambda: ex.status(capped)["status"] == "running", what="the first run to start")
    ex.submit(request(spec=small, owner="session:a"))  # waits behind it
    with pytest.raises(LimitError, match="you already have 1 run waiting; this server queues at most 1 per person"):
        ex.submit(request(spec=small, owner="session:a"))
    ex.submit(request(spec=small, owner="session:b"))  # someone else may still queue
    ex.submit(request(spec=small, owner="session:c"))
    with pytest.raises(LimitError, match="the queue is full: 3 runs waiting, and this server queues at most 3 in "
                                         "all .ARCHS_MAX_QUEUED."):
        ex.submit(request(spec=small, owner="session:d"))  # a new session per reload cannot flood the queue
    with pytest.raises(RunError, match="started by someone else: only they can stop it"):
        ex.stop(capped, owner="session:b")
    for run_id in ex.active():
        ex.stop(run_id, admin=True)
    assert ex.wait(timeout=60)


def test_limits_from_the_environment():
    limits = Limits.from_env({"ARCHS_MAX_CONCURRENT_RUNS": "3", "ARCHS_MAX_QUEUED_PER_OWNER": "2",
                              "ARCHS_MAX_STEPS_PER_RUN": "1000", "ARCHS_MAX_TRAIN_PARAMS": "junk",
                              "ARCHS_MAX_RUNS_KEPT": "-4", "ARCHS_MAX_QUEUED": "40", "ARCHS_MAX_RUN_SECONDS": "600",
                              "ARCHS_ADMINS": " user:ta@uni.edu, cli:root ,,"})
    assert limits == Limits(max_concurrent=3, max_queued_per_owner=2, max_queued=40, max_steps=1000,
                            max_run_seconds=600, admins=("cli:root", "user:ta@uni.edu"))
    assert Limits.from_env({}).max_concurrent == 1  # this CPU-only machine: one run at a time
    assert Limits.from_env({"ARCHS_RUNS_KEPT": "7"}).max_runs_kept == 7
    assert limits.describe() == ["3 runs at a time", "2 waiting per person", "40 waiting in all",
                                 "1,000 steps per run", "10 minutes per run"]
    assert limits.is_admin("cli:root") and not limits.is_admin("cli:rooty") and not limits.is_admin(None)


def test_missing_data_starts_no_run(executor, tmp_path):
    with pytest.raises(DataError, match="MNIST not found"):
        executor.submit(request(data=DataConfig(name="mnist", root=str(tmp_path / "nothing"))))
    assert executor.store.runs() == []


# ------------------------------------------------------------------------------------------ experiments
def test_degradation_experiment_through_the_executor(executor):
    from archs.studies.experiments import (
        DEGRADATION_PRESETS,
        DegradationSettings,
        degradation_plan,
        degradation_summary,
        submit_degradation,
        summarize_curves,
    )

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

    settings = DegradationSettings(data="digits", steps=2, batch_size=8, log_every=1, test_limit=16)
    study_id = submit_degradation(executor, settings, owner="session:me")  # a study: the residual claim
    wait_until(lambda: executor.store.studies.get(study_id)["status"] != "running", what="the experiment")
    assert executor.store.studies.get(study_id)["status"] == "completed"
    rows = executor.store.list_runs(group=study_id)
    assert sorted(r["network"] for r in rows) == sorted(DEGRADATION_PRESETS) and {r["owner"] for r in rows} == {
        "session:me"}
    summary = degradation_summary(executor.store, study_id)
    assert summary["done"] and set(summary["status"].values()) == {"completed"}
    assert all(len(c["loss"]) == 2 for c in summary["curves"].values())
    verdict = executor.store.studies.get(study_id)["summary"]["verdict"]
    assert verdict["claim"] == "residual" and verdict["runs"] == 4


def test_depth_sweep_through_the_executor_matches_the_in_process_sweep(executor):
    from archs.studies.experiments import depth_sweep_results, submit_depth_sweep

    study_id = submit_depth_sweep(executor, [8, 14], batch_size=4, seed=0, owner=ME)
    assert executor.store.studies.get(study_id)["kind"] == "sweep"
    wait_until(lambda: depth_sweep_results(executor.store, study_id)[1] == 4, what="the four measurements")
    results, done, total = depth_sweep_results(executor.store, study_id)
    assert (done, total) == (4, 4) and len(executor.store.list_runs(group=study_id)) == 4
    expected = archs.depth_sweep([8, 14], batch_size=4, seed=0)
    assert [(r["depth"], r["skip"]) for r in results] == [(r["depth"], r["skip"]) for r in expected]
    assert [r["ratio"] for r in results] == pytest.approx([r["ratio"] for r in expected], rel=1e-4)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the fork server is used on Linux only")
def test_workers_fork_from_a_server_that_imported_torch_once_but_not_beside_gpus():
    import importlib.util

    from archs.training import worker
    from archs.training.executors.local import worker_context

    assert worker_context(0).get_start_method() == "forkserver"
    assert worker_context(2).get_start_method() == "spawn"  # a CUDA driver touched before a fork is unusable after
    # multiprocessing skips a preload that fails to import, silently: a misspelt name would only cost time
    missing = [name for name in worker.PRELOAD if importlib.util.find_spec(name) is None]
    assert missing == []
    assert {"torch", "torch._dynamo", "archs.builder", "archs.training.loop"} <= set(worker.PRELOAD)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the fork server is used on Linux only")
def test_the_fork_server_starts_with_the_first_worker_not_before(tmp_path, monkeypatch):
    """A supervisor woken for a run that was stopped or refused while queued imports no torch (its fork server's
    4 CPU-s); once it has started a worker, the fork server stays up as the spare for the next."""
    import multiprocessing.forkserver

    from archs.training.executors import local

    started = []
    monkeypatch.setattr(multiprocessing.forkserver, "ensure_running", lambda: started.append(True))
    supervisor = local._Supervisor(tmp_path / "runs", {"spare": True}, idle_seconds=1)
    assert supervisor.context.get_start_method() == "forkserver"
    supervisor.keep_spare()
    assert started == []                                  # nothing launched: no fork server
    supervisor.launched = True
    supervisor.keep_spare()
    assert started == [True]                              # after a launch it is the spare
    supervisor.config["spare"] = False
    supervisor.keep_spare()
    assert started == [True]                              # no spare asked for: none
