"""Files only the server writes (issue 18 §3), tried as a shell user of the server would: plant a symbolic link
where each of a run's files goes (``weights.pt`` -> the server's secrets, ``worker.log`` -> a file outside, the
temporary weights file, the run folder itself) and find nothing outside the run folder read, written or offered for
download; logs are 0600; the run's folder is made by the server's processes, not by whoever submits.
"""

from __future__ import annotations

import io
import os
import stat
import time

import pytest

import archs
from archs.training import DataConfig, RunRequest, RunStore, TrainConfig
from archs.training.executors.local import LOG, LocalExecutor
from archs.training.limits import Limits
from archs.training.store import RunError
from archs.training.store.files import UnsafeFile, append_fd, make_run_folder
from archs.training.stored import save_weights, weights_of

SPEC = archs.PRESETS["seed002-inception"]
ME = "session:me"
SECRET = b'[auth]\nclient_secret = "do-not-leak"\n'


def request() -> RunRequest:
    return RunRequest(SPEC, TrainConfig(epochs=1, batch_size=16, log_every=2, grad_every=0, max_steps=2),
                      DataConfig(name="digits", train_limit=64, test_limit=32), owner=ME)


@pytest.fixture
def secrets_file(tmp_path):
    path = tmp_path / "secrets.toml"
    path.write_bytes(SECRET)
    return path


def test_submitting_makes_no_folder_the_submitter_would_own(tmp_path):
    store = RunStore(tmp_path / "runs")
    run = store.submit([request()], executor="local")[0]
    assert not run.path.exists()  # the supervisor makes it, as the server's user, when a worker takes the run


def test_a_linked_weights_file_is_neither_offered_nor_read(tmp_path, secrets_file):
    store = RunStore(tmp_path / "runs")
    run = store.create(request())
    make_run_folder(run.path)
    (run.path / "weights.pt").symlink_to(secrets_file)
    assert not run.has_weights()  # the Runs page offers no download of it
    with pytest.raises(RunError, match="cannot be read safely"):
        run.weights_bytes()
    with pytest.raises(RunError):
        weights_of(run)
    os.link(secrets_file, tmp_path / "second-name")  # a hard link is refused too (st_nlink > 1)
    (run.path / "weights.pt").unlink()
    os.link(secrets_file, run.path / "weights.pt")
    assert not run.has_weights()
    with pytest.raises(RunError):
        run.weights_bytes()


class Planted:
    """A pickle that runs a command when unpickled: what an attacker who can write a run's folder plants."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_weights_file_that_would_run_code_or_is_damaged_is_refused_with_a_message(tmp_path):
    import pickle

    import torch

    store = RunStore(tmp_path / "runs")
    run = store.create(request())
    make_run_folder(run.path)
    marker = tmp_path / "ran"
    damaged = io.BytesIO()
    torch.save({"w": torch.ones(3)}, damaged)
    for planted, says in ((pickle.dumps({"stem.0.weight": Planted(marker)}, protocol=2), "holds more than tensors"),
                          (b"", "is damaged (EOFError)"), (damaged.getvalue()[:100], "is damaged (RuntimeError)")):
        (run.path / "weights.pt").write_bytes(planted)
        with pytest.raises(RunError) as caught:
            weights_of(run)
        assert str(caught.value).startswith(f"run {run.id}: its weights file {says}")
        assert "weights_only" not in str(caught.value)  # torch's advice to turn the check off is not passed on
    assert not marker.exists()


def test_a_linked_run_folder_is_neither_read_nor_written(tmp_path, secrets_file):
    store = RunStore(tmp_path / "runs")
    run = store.create(request())
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "weights.pt").write_bytes(SECRET)
    store.root.mkdir(parents=True, exist_ok=True)
    run.path.symlink_to(outside, target_is_directory=True)
    assert not run.has_weights()
    with pytest.raises(RunError):
        run.weights_bytes()
    with pytest.raises(UnsafeFile):
        save_weights(run, {})
    with pytest.raises(UnsafeFile):
        make_run_folder(run.path)
    assert sorted(p.name for p in outside.iterdir()) == ["weights.pt"] and (outside / "weights.pt").read_bytes() == SECRET


def test_saving_weights_replaces_a_planted_link_and_never_writes_through_it(tmp_path, secrets_file):
    import torch

    store = RunStore(tmp_path / "runs")
    run = store.create(request())
    make_run_folder(run.path)
    (run.path / "weights.pt").symlink_to(secrets_file)
    (run.path / f".weights.{os.getpid()}.tmp").symlink_to(secrets_file)  # the temporary name used at c9dd131
    save_weights(run, {"w": torch.ones(3)})
    assert secrets_file.read_bytes() == SECRET
    assert not (run.path / "weights.pt").is_symlink() and run.has_weights()
    assert torch.equal(weights_of(run)["w"], torch.ones(3))
    assert stat.S_IMODE(os.stat(run.path / "weights.pt").st_mode) == 0o600


def test_a_linked_log_is_neither_appended_to_nor_shown(tmp_path, secrets_file):
    store = RunStore(tmp_path / "runs")
    run = store.create(request())
    make_run_folder(run.path)
    (run.path / "worker.log").symlink_to(secrets_file)
    with pytest.raises(UnsafeFile):
        append_fd(run.path, "worker.log")
    executor = LocalExecutor(store, Limits(), resume=False)
    shown = executor.logs(run.id, owner=ME)
    assert "do-not-leak" not in shown and "cannot be read safely" in shown
    assert secrets_file.read_bytes() == SECRET


def test_a_run_with_every_file_planted_as_a_link_writes_nothing_outside(tmp_path, secrets_file):
    """End to end: the run is queued, a shell user plants links in its folder before a worker takes it; the run
    completes, its weights and log are files of its own, and the files outside are untouched."""
    outside_log = tmp_path / "outside.log"
    outside_log.write_bytes(b"")
    store = RunStore(tmp_path / "runs")
    [run] = store.submit([request()], executor="local")
    store.root.mkdir(parents=True, exist_ok=True)
    os.mkdir(run.path, 0o777)
    (run.path / "weights.pt").symlink_to(secrets_file)
    (run.path / "worker.log").symlink_to(outside_log)
    executor = LocalExecutor(store, Limits(max_concurrent=1), threads=1, spare=False)  # resumes the queue
    assert executor.wait(run.id, timeout=180)
    deadline = time.monotonic() + 30
    while store.get(run.id).stored_status()["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert run.status()["status"] == "completed"
    assert secrets_file.read_bytes() == SECRET and outside_log.read_bytes() == b""
    assert not (run.path / "weights.pt").is_symlink() and run.has_weights()
    assert "do-not-leak" not in executor.logs(run.id, owner=ME)
    supervisor_log = store.root / LOG
    assert stat.S_IMODE(os.stat(supervisor_log).st_mode) == 0o600


def test_worker_logs_are_private(tmp_path):
    store = RunStore(tmp_path / "runs")
    executor = LocalExecutor(store, Limits(max_concurrent=1), threads=1, spare=False)
    run_id = executor.submit(request())
    assert executor.wait(run_id, timeout=180)
    run = store.get(run_id)
    assert stat.S_IMODE(os.stat(run.path / "worker.log").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(run.path).st_mode) == 0o700
    assert f"run {run_id} starts" in executor.logs(run_id, owner=ME)


def test_the_runs_page_offers_no_linked_weights_and_lets_an_administrator_pin(tmp_path, monkeypatch, secrets_file):
    from app_helpers import open_app, run, texts

    from ui.identity import owner_of_token

    session = "a-runs-page-admin-key-0001"
    monkeypatch.setenv("ARCHS_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("ARCHS_ADMINS", owner_of_token(session))
    store = RunStore(tmp_path / "runs")
    planted = store.create(request())
    planted.write_status(status="completed")
    make_run_folder(planted.path)
    (planted.path / "weights.pt").symlink_to(secrets_file)
    at = open_app(session=session)
    run(at.switch_page("pages/runs.py"))
    assert [b.label for b in at.get("download_button")] == ["Spec (JSON)", "Metrics (CSV)"]  # no weights offered
    assert "No weights saved" in texts(at.caption)
    assert store.get(planted.id).row() and store.db.read("SELECT viewed_at FROM runs")[0]["viewed_at"]  # viewed
    run(at.button(key="runs_pin").click())
    assert store.get(planted.id).pinned() and at.button(key="runs_pin").label == "Unpin"
    stranger = open_app(session="a-runs-page-student-key-01")
    run(stranger.switch_page("pages/runs.py"))
    assert not [b for b in stranger.button if b.key == "runs_pin"]  # administrators only


def test_a_linked_study_lock_or_log_is_neither_created_nor_written(tmp_path, secrets_file, capsys):
    """A study's driver locks ``.<id>.lock`` and writes ``.<id>.log`` beside the runs: a link planted at either (to
    a file that does not exist yet, or to the secrets) is refused by name, and nothing outside is made or written."""
    from archs.studies.definition import StudyDefinition
    from archs.studies.driver import drive, ensure_driver, start_study

    store = RunStore(tmp_path / "runs")
    executor = LocalExecutor(store, Limits(), resume=False)
    d = StudyDefinition(kind="sweep", name="planted", spec=SPEC.to_dict(), train=request().train.to_dict(),
                        data=request().data.to_dict(), vary=({"path": "train.lr", "values": [1e-3]},))
    study_id = start_study(executor, d, owner=ME, start_driver=False)
    lock, log = store.root / f".{study_id}.lock", store.root / f".{study_id}.log"
    outside = tmp_path / "outside"
    lock.symlink_to(outside)  # dangling: following it would create the file as the server's user
    with pytest.raises(RunError, match=rf"^the study's lock file {lock} is a link or a file not its own"):
        ensure_driver(store, study_id, by=ME)  # the page shows this when its owner opens the study
    assert drive(store.root, study_id) == 1
    assert f"study driver: the study's lock file {lock} is a link" in capsys.readouterr().err
    lock.unlink()
    lock.symlink_to(secrets_file)
    assert drive(store.root, study_id) == 1
    lock.unlink()
    log.symlink_to(outside)
    with pytest.raises(RunError, match=rf"^the study's driver log {log} is a link or a file not its own"):
        ensure_driver(store, study_id, by=ME)
    assert not outside.exists() and secrets_file.read_bytes() == SECRET
    assert stat.S_IMODE(os.stat(lock).st_mode) == 0o600  # the real one, made by the look at whether a driver runs
