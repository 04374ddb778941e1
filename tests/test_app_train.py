"""The Train and Runs pages, driven through AppTest: a tiny background run on the offline digits, its
progress, Stop, a bad data path, and the Runs table with delete-with-confirmation.

Each test gets an empty runs folder (``ARCHS_RUNS_DIR``); runs execute in worker processes of the local
executor, as on a server. The network is a two-stage, one-block-per-stage residual net at 8x8 (the digits'
own size), so a run takes a few seconds on 2 cores. Pages are opened with a fixed session key in the URL,
as a reload of the same browser tab would.
"""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from app_helpers import assert_clean, open_app, run, stop_all, texts

import archs
from archs.studies.experiments import DegradationSettings
from archs.training import DataConfig, RunRequest, RunStore, TrainConfig
from ui.identity import owner_of_token

SESSION = "a-test-session-key-0001"  # the ?session= of one browser tab

TIMEOUT = 90  # generous: a loaded CI machine; the tests wait for states, never assert durations


def tiny_spec() -> archs.NetSpec:
    base = archs.PRESETS["cifar-resnet20"]
    stages = tuple(replace(stage, blocks=1) for stage in base.stages[:2])
    return replace(base, name="tiny-resnet", input_size=8, in_channels=1, stages=stages)


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHS_RUNS_DIR", str(tmp_path / "runs"))
    yield tmp_path / "runs"
    stop_all(tmp_path / "runs")


def open_page(page: str, session: str = SESSION):
    at = open_app(spec=archs.encode_spec(tiny_spec()), session=session)
    at.switch_page(f"pages/{page}.py")
    return run(at)


def status(at) -> str:
    values = [m.value for m in at.metric if m.label == "Status"]
    return values[0] if values else ""


def wait_until(at, done, what: str):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        run(at)
        if done(at):
            return at
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; status {status(at)!r}")


def progress_text(at) -> str:
    bars = at.get("progress")
    return bars[0].proto.text if bars else ""


def set_settings(at, **values):
    for name, value in values.items():
        at.number_input(key=f"train.{name}").set_value(value)
    return at


def test_train_page_loads_with_settings_from_train_config(runs_dir):
    at = open_page("train")
    assert at.title[0].value == "Train"
    assert at.selectbox(key="train.data").value == "digits"
    assert at.selectbox(key="train.optimizer").options == ["adam", "sgd"]
    assert at.selectbox(key="train.device").value == "auto"
    assert at.number_input(key="train.epochs").value == 5
    assert not at.button(key="train_start").disabled
    assert "No runs of yours yet" in texts(at.info)


def test_a_tiny_run_shows_progress_curves_and_then_lists_and_deletes_on_the_runs_page(runs_dir):
    at = open_page("train")
    set_settings(at, max_steps=12, batch_size=16, log_every=1, grad_every=3)
    run(at.button(key="train_start").click())
    assert len(RunStore(runs_dir).runs()) == 1
    assert at.get("progress"), "a progress bar while the run is queued or running"
    wait_until(at, lambda a: status(a) == "completed", "the run to complete")
    assert at.get("progress")[0].value == 100
    assert "step 12 of 12" in at.get("progress")[0].proto.text
    assert len(at.get("plotly_chart")) >= 2  # curves and gradient heatmap
    ips = [m.value for m in at.metric if m.label == "Images/s"][0]
    assert ips != "–"
    assert not at.button(key="train_start").disabled
    assert "started" in texts(at.caption) and "Runs execute in worker processes on this machine" in texts(at.caption)

    run(at.switch_page("pages/runs.py"))
    frame = at.dataframe[0].value
    assert list(frame["Status"]) == ["completed"]
    assert list(frame["Network"]) == ["tiny-resnet"]
    assert list(frame["Data"]) == ["digits"]
    assert frame["Steps"][0] == 12
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Spec (JSON)", "Weights (.pt)", "Metrics (CSV)"]
    assert f"run {frame['Id'][0]} starts in process" in texts(at.code)  # its worker's log, for its owner

    run(at.button(key="runs_delete").click())
    assert "for good" in texts(at.warning)
    assert len(RunStore(runs_dir).runs()) == 1  # nothing deleted before the confirmation
    run(at.button(key="runs_delete_no").click())
    assert len(RunStore(runs_dir).runs()) == 1
    run(at.button(key="runs_delete").click())
    run(at.button(key="runs_delete_yes").click())
    assert RunStore(runs_dir).runs() == []
    assert "No runs" in texts(at.info)


def test_stop_ends_a_running_run_as_stopped(runs_dir):
    at = open_page("train")
    set_settings(at, epochs=500, batch_size=16, log_every=1, grad_every=0)
    run(at.button(key="train_start").click())
    wait_until(at, lambda a: status(a) == "running" and "step 0 of" not in progress_text(a)
               and "of" in progress_text(a), "the first steps")
    assert not at.button(key="train_start").disabled  # Start never waits on a run
    reloaded = open_page("train")  # a reload (a new session, the same key in the URL) finds the run in the store
    assert status(reloaded) == "running"
    stranger = open_page("train", session="someone-else-entirely-01")
    assert "No runs of yours yet" in texts(stranger.info) and "1 other run is running or waiting" in texts(
        stranger.caption)
    run(reloaded.button(key="train_stop").click())
    wait_until(reloaded, lambda a: status(a) == "stopped", "the run to stop")
    wait_until(at, lambda a: status(a) == "stopped", "the first session to see it stopped")
    assert RunStore(runs_dir).runs()[0].status()["status"] == "stopped"
    assert not at.button(key="train_start").disabled


def test_a_bad_image_folder_shows_the_data_error_and_starts_nothing(runs_dir, tmp_path, monkeypatch):
    """Image folders are picked among those of the server's data folder; one gone since the page was drawn is
    named in the error, and no other folder is used instead."""
    import shutil

    from PIL import Image

    for folder in ("gone-folder", "kept"):
        for cls in ("a", "b"):
            (tmp_path / "data" / folder / cls).mkdir(parents=True)
            Image.new("L", (8, 8), 100).save(tmp_path / "data" / folder / cls / "0.png")
    monkeypatch.setenv("ARCHS_DATA_DIR", str(tmp_path / "data"))
    at = open_page("train")
    at.selectbox(key="train.data").select("folder")
    run(at)
    assert at.selectbox(key="train.folder").options == ["gone-folder", "kept"]
    at.selectbox(key="train.folder").select("gone-folder")
    run(at)
    shutil.rmtree(tmp_path / "data" / "gone-folder")
    run(at.button(key="train_start").click())
    assert_clean(at)
    message = texts(at.error)
    assert "No run started" in message and "gone-folder" in message
    assert RunStore(runs_dir).runs() == []


def test_a_missing_torchvision_data_set_shows_where_it_looked(runs_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHS_DATA_DIR", str(tmp_path / "empty"))
    at = open_page("train")
    at.selectbox(key="train.data").select("cifar10")
    run(at)
    assert not [w for w in at.text_input if w.key == "train.root"]  # read from the data folder, no typed root
    run(at.button(key="train_start").click())
    assert "No run started" in texts(at.error) and "cifar-10-batches-py" in texts(at.error)
    assert RunStore(runs_dir).runs() == []


def stored_run(runs_dir, final: str | None, records: list[dict]):
    """A run of this session's owner written into the run store as a worker would leave it (no training)."""
    from archs.training.store.files import make_run_folder

    run_ = RunStore(runs_dir).create(RunRequest(tiny_spec(), owner=owner_of_token(SESSION)))
    make_run_folder(run_.path)  # the supervisor makes it before the worker starts (records no longer need it)
    for record in records:
        run_.append_metric(record)
    if final is not None:
        run_.write_status(status=final, message="the loss became nan at step 3",
                          progress={"step": 3, "total_steps": 10, "loss": float("nan")},
                          result={"steps": 3, "train_loss": float("nan"), "images_per_second": 100.0})
    return run_


def test_a_diverged_run_says_so_and_keeps_its_curves(runs_dir):
    stored_run(runs_dir, "diverged", [
        {"kind": "step", "step": 1, "loss": 2.3, "train_accuracy": 0.1},
        {"kind": "step", "step": 2, "loss": 40.0, "train_accuracy": 0.1},
        {"kind": "step", "step": 3, "loss": float("nan"), "train_accuracy": 0.1},
    ])
    at = open_page("train")
    assert status(at) == "diverged"
    assert "Diverged" in texts(at.error) and "nan at step 3" in texts(at.error)
    assert len(at.get("plotly_chart")) >= 1
    run(at.switch_page("pages/runs.py"))
    assert list(at.dataframe[0].value["Status"]) == ["diverged"]


def test_a_run_left_queued_outside_the_queue_reads_as_interrupted(runs_dir):
    stored_run(runs_dir, None, [])  # created, but never handed to an executor
    at = open_page("train")
    assert status(at) == "interrupted"
    assert "Interrupted" in texts(at.warning)
    assert not at.button(key="train_start").disabled


def test_the_degradation_experiment_starts_a_study_of_the_four_nets(runs_dir):
    at = open_page("train")
    run(at.button(key="deg_start").click())
    store = RunStore(runs_dir)
    [study] = store.studies.list()
    assert study["kind"] == "claim" and study["definition"]["claim"] == "residual" and study["owner"] == owner_of_token(
        SESSION)
    assert sorted(f"{t['params']['family']}{t['params']['size']}" for t in store.studies.trials(study["id"])) == [
        "plain20", "plain56", "residual20", "residual56"]
    settings = study["definition"]["train"]
    defaults = DegradationSettings()  # the budget and recipe measured to show both effects
    assert (settings["optimizer"], settings["lr"], settings["max_steps"]) == (defaults.optimizer, defaults.lr,
                                                                            defaults.steps)
    stop_all(runs_dir)  # the behaviour under test is the start, not the training
    assert {r["group"] for r in store.list_runs()} <= {study["id"]}
    run(at)
    assert "Latest experiment" in texts(at.caption)


def test_the_degradation_section_plots_a_finished_group_with_its_verdicts(runs_dir):
    final = {"cifar-plain20": 0.5, "cifar-plain56": 0.9, "cifar-resnet20": 0.5, "cifar-resnet56": 0.4}
    store = RunStore(runs_dir)  # the experiment is a study (the residual claim) whose runs share its id as group
    study = store.studies.create(owner="session:someone", owner_name=None, kind="claim", name="degradation",
                                 definition={"kind": "claim", "claim": "residual", "name": "degradation"},
                                 executor="local", trials=[{"params": {"family": n}, "status": "completed"}
                                                           for n in final])
    store.studies.update(study, status="completed")
    for name, loss in final.items():
        run_ = store.create(RunRequest(replace(archs.PRESETS[name], name=name), TrainConfig(), DataConfig(),
                                       label=name, group=study, owner="session:someone"))
        for step in range(1, 9):
            run_.append_metric({"kind": "step", "step": step, "loss": loss, "train_accuracy": 0.5})
        run_.write_status(status="completed", progress={"step": 8, "total_steps": 8})
    at = open_page("train")
    words = texts(at.markdown)
    assert "Final: plain-56 (0.900) is **worse** than plain-20 (0.500)" in words
    assert "resnet-56 (0.400) is **not worse** than resnet-20 (0.500)" in words
    assert "4 of 4 runs finished" in texts(at.caption)


def test_a_run_that_failed_shows_why_on_the_train_and_runs_pages(runs_dir):
    run_ = stored_run(runs_dir, None, [{"kind": "step", "step": 1, "loss": 2.3, "train_accuracy": 0.1}])
    run_.write_status(status="failed", error="RuntimeError: boom: a bug inside the model at step 3")
    at = open_page("train")
    assert status(at) == "failed" and "boom: a bug inside the model" in texts(at.error)
    (run_.path / "worker.log").write_text("UserWarning: /srv/archs/data is slow\n")
    run(at.switch_page("pages/runs.py"))
    assert list(at.dataframe[0].value["Status"]) == ["failed"]
    assert "boom: a bug inside the model at step 3" in texts(at.error)
    assert "UserWarning: /srv/archs/data is slow" in texts(at.code)  # the log, to its owner
    stranger = open_page("runs", session="someone-else-entirely-01")
    assert "/srv/archs" not in texts(stranger.code) and "only they can read its log" in texts(stranger.caption)


def test_server_limits_show_where_they_bite(runs_dir, monkeypatch):
    monkeypatch.setenv("ARCHS_MAX_STEPS_PER_RUN", "30")
    monkeypatch.setenv("ARCHS_MAX_EPOCHS_PER_RUN", "3")
    at = open_page("train")
    assert "This server trains at most 30 steps per run" in texts(at.caption)
    assert "30 steps per run · 3 epochs per run" in texts(at.caption)
    run(at.button(key="train_start").click())  # the default 5 epochs: over the limit
    assert "No run started: epochs: this server trains at most 3 epochs per run" in texts(at.error)
    assert RunStore(runs_dir).runs() == []
    at.number_input(key="train.epochs").set_value(2)
    run(at.button(key="train_start").click())
    [made] = RunStore(runs_dir).runs()
    assert made.settings()["train"]["max_steps"] == 30


def test_a_recipe_fills_the_settings_which_stay_editable_and_the_run_records_it(runs_dir):
    at = open_page("train")
    run(at.selectbox(key="train.recipe").set_value("fast"))
    assert at.selectbox(key="train.optimizer").value == "sgd" and at.number_input(key="train.lr").value == 0.1
    assert at.selectbox(key="train.schedule").value == "onecycle" and at.number_input(key="train.batch_size").value == 128
    assert at.checkbox(key="train.decay_all").value is False
    at.number_input(key="train.lr").set_value(0.05)  # still editable
    set_settings(at, max_steps=3, target_accuracy=0.5, grad_every=0)
    run(at.button(key="train_start").click())
    [made] = RunStore(runs_dir).runs()
    train = made.settings()["train"]
    assert made.settings()["recipe"] == "fast"
    assert (train["optimizer"], train["lr"], train["label_smoothing"], train["target_accuracy"]) == ("sgd", 0.05, 0.1,
                                                                                                  0.5)
