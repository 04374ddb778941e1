"""The run store and its sharing rules, tried as a hostile (or merely unlucky) user of a shared server would.

Each test here failed on the file-based store (624b2cf): a stored file that breaks every page, a limit two
submits pass together, runs nobody owns, a submit that deletes someone else's runs, a sweep that skips every
limit, code named by stored data, a supervisor that dies of a full disk, a CLI that rewrites the server's
settings, a run with no time limit.
"""

from __future__ import annotations

import errno
import getpass
import json
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from test_runs import wait_until

import archs
from archs.training import DataConfig, RunRequest, RunStore, TrainConfig
from archs.training.executors.base import Executor
from archs.training.executors.local import LocalExecutor, _Supervisor
from archs.training.limits import LimitError, Limits
from archs.training.request import MemoryRecorder, execute_request
from archs.training.store import RunError
from archs.training.stored import metrics_csv_of, model_of, spec_of

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "runs_v1"
SPEC = archs.PRESETS["seed002-inception"]
DIGITS = DataConfig(name="digits", train_limit=128, test_limit=64)
TIMEOUT = 120


def request(**overrides) -> RunRequest:
    train = TrainConfig(epochs=1, max_steps=4, batch_size=16, log_every=2, grad_every=0)
    return RunRequest(**{"spec": SPEC, "train": train, "data": DIGITS, "owner": "session:me", **overrides})


def slow_request(**overrides) -> RunRequest:
    return request(**{"spec": replace(SPEC, name="fault-slow"),
                      "train": TrainConfig(epochs=500, batch_size=16, log_every=1, grad_every=0), **overrides})


def cli(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "archs", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, timeout=300, **kwargs)


class Parked(Executor):
    """An executor that records runs and starts none (the store's rules, without workers)."""

    name = "parked"
    queue_in_store = True

    def _start(self, run, request) -> None:
        pass


# ------------------------------------------------------------------------------------------ the store's records
def test_yesterdays_run_folders_are_imported_whole_and_a_hostile_file_breaks_nothing(tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(FIXTURE, runs)
    store = RunStore(runs)
    rows = {r["id"]: r for r in store.list_runs()}
    assert len(rows) == 7  # every folder, the one whose settings.json is a JSON list included
    hostile = rows["20261201-151218726-fixture-net-6c5813"]
    assert hostile["status"] == "interrupted" and hostile["label"] == hostile["id"]
    before = json.loads((FIXTURE.parent / "runs_v1.list.json").read_text())
    assert before["queue"] == store.queued() == ["20261201-151218719-fixture-net-b2e647"]
    assert rows["20261201-151218719-fixture-net-b2e647"]["queue_position"] == 1
    for old in before["runs"]:
        new = rows[old["id"]]
        assert list(new) == list(old)  # the same columns, in the same order
        changed = {k for k in old if old[k] != new[k]}
        if old["owner"] is None:  # runs the command line started before owners: its user owns them now
            assert new["owner"] == "cli:" + Path(FIXTURE / old["id"]).owner() and changed == {"owner"}
        else:
            assert changed == set(), (old["id"], {k: (old[k], new[k]) for k in changed})
    completed = store.get("20261201-151213636-fixture-net-f80f3d")
    assert [r["step"] for r in completed.metrics("step")] == [1, 2, 3, 4]  # the torn fifth line is left out
    assert metrics_csv_of(completed) == (FIXTURE.parent / "runs_v1.csv").read_text()
    import torch

    assert model_of(completed)(torch.zeros(1, 1, 8, 8)).shape == (1, 10)  # weights stay files, and load
    assert "RuntimeError: boom" in store.get("20261201-151218652-fixture-net-fa939a").traceback()
    assert RunStore(runs).list_runs() == store.list_runs()  # imported once: a second opening adds nothing
    assert (runs / "20261201-151213636-fixture-net-f80f3d" / "status.json").exists()  # nothing deleted


def test_the_listing_keeps_its_shape_reads_no_run_folder_and_imports_no_torch(tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(FIXTURE, runs)
    out = cli("runs", "--json", "--runs-dir", str(runs), env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    before = json.loads((FIXTURE.parent / "runs_v1.list.json").read_text())
    assert list(data) == list(before) == ["runs_dir", "queue", "runs"]
    assert [list(r) for r in data["runs"][1:]] == [list(r) for r in before["runs"]]
    imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines() if "|" in line}
    assert "torch" not in imported and "archs.training.store" in imported
    for folder in [p for p in runs.iterdir() if p.is_dir()]:  # the old files are no longer read: same listing
        for name in ("settings.json", "status.json", "metrics.jsonl", "spec.json"):
            (folder / name).unlink(missing_ok=True)
    again = json.loads(cli("runs", "--json", "--runs-dir", str(runs)).stdout)
    assert again["runs"] == data["runs"]


def test_eight_processes_submitting_at_once_never_pass_a_limit_together(tmp_path):
    """Each of 8 processes submits one run for the same owner, released at the same instant; the server queues 3
    per person: exactly 3 are created, 5 refused."""
    runs, go = tmp_path / "runs", tmp_path / "go"
    RunStore(runs).list_runs()  # the database exists before the race
    script = ("import sys, time, os\n"
              "from pathlib import Path\n"
              "sys.path.insert(0, sys.argv[3])\n"
              "from test_hostile_store import Parked, request\n"
              "from archs.training import RunStore\n"
              "from archs.training.limits import LimitError, Limits\n"
              "ex = Parked(RunStore(sys.argv[1]), Limits(max_concurrent=1, max_queued_per_owner=3))\n"
              "req = request()\n"
              "print('ready', flush=True)\n"
              "while not Path(sys.argv[2]).exists(): time.sleep(0.001)\n"
              "try:\n    ex.submit(req); print('queued')\n"
              "except LimitError as e:\n    print('refused', e)\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(runs), str(go), str(Path(__file__).parent)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT) for _ in range(8)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    go.touch()
    outcomes = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert sorted(o.split()[0] for o in outcomes) == ["queued"] * 3 + ["refused"] * 5, outcomes
    assert all("queues at most 3 per person" in o for o in outcomes if o.startswith("refused"))
    assert len(RunStore(runs).list_runs()) == 3


# ------------------------------------------------------------------------------------------ owners
def test_a_command_line_run_has_an_owner_and_no_dashboard_session_may_touch_it(tmp_path):
    runs = tmp_path / "runs"
    out = cli("train", "seed002-inception", "--data", "digits", "--train-limit", "64", "--test-limit", "32",
              "--max-steps", "2", "--batch-size", "16", "--save", "--runs-dir", str(runs), "--json")
    assert out.returncode == 0, out.stderr
    run_id = json.loads(out.stdout)["run_id"]
    store = RunStore(runs)
    me = "cli:" + getpass.getuser()
    assert store.get(run_id).owner == me
    ex = Parked(store, Limits(max_concurrent=1))
    with pytest.raises(RunError, match="started by someone else: only they can delete it"):
        ex.delete(run_id, owner="session:anyone")
    with pytest.raises(RunError, match="say who you are to delete"):
        ex.delete(run_id, owner=None)  # "no owner" is nobody, not everybody
    refused = cli("runs", "--delete", run_id, "--runs-dir", str(runs), "--owner", "cli:someone-else")
    assert refused.returncode == 2 and "started by someone else" in refused.stderr
    assert cli("runs", "--delete", run_id, "--runs-dir", str(runs), "--owner", "cli:someone-else",
               "--admin").returncode == 0
    assert store.list_runs() == []
    other = ex.submit(request(owner="session:student"))
    Parked(store, Limits(max_concurrent=1, admins=("user:ta@uni.edu",))).stop(other, owner="user:ta@uni.edu")
    assert store.get(other).status()["status"] == "stopped"


def test_a_flood_of_submits_eats_its_own_runs_before_anyone_elses(tmp_path):
    """ARCHS_MAX_RUNS_KEPT is a cap on the whole store (issue 18): a submit over it deletes the oldest finished runs
    of sessions that are gone first, then the submitter's own, and only then anyone else's."""
    store = RunStore(tmp_path / "runs")
    ex = Parked(store, Limits(max_concurrent=1, max_runs_kept=4))
    alice = [ex.submit(request(owner="session:alice")) for _ in range(2)]
    bob = [ex.submit(request(owner="session:bob")) for _ in range(2)]
    for run_id in alice + bob:
        store.get(run_id).write_status(status="completed")
    newest = ex.submit(request(owner="session:bob"))  # 5 stored, 4 kept: bob's oldest goes, not alice's older one
    assert {r["id"] for r in store.list_runs()} == set(alice) | {bob[1], newest}
    store.get(newest).write_status(status="completed")
    again = ex.submit(request(owner="session:bob"))
    assert {r["id"] for r in store.list_runs()} == set(alice) | {newest, again}


def test_a_sweep_counts_against_the_limits_and_is_refused_whole(tmp_path):
    """Sweeps, experiments and searches are studies: refused whole over a study limit (nothing stored), and each of
    their runs goes through the run limits like any other (a full queue makes a trial wait, not fail)."""
    from archs.studies.definition import StudyDefinition
    from archs.studies.driver import StudyDriver, start_study
    from archs.studies.experiments import submit_depth_sweep

    store = RunStore(tmp_path / "runs")
    ex = Parked(store, Limits(max_concurrent=1, max_queued_per_owner=1, max_trials_per_study=6,
                              max_studies_per_owner=1))
    with pytest.raises(LimitError, match="this study has 8 trials; this server runs at most 6 per study "
                                         ".ARCHS_MAX_TRIALS_PER_STUDY."):
        submit_depth_sweep(ex, [8, 14, 20, 26], owner="session:me")  # 8 measurements: one click, refused whole
    assert store.list_runs() == [] and store.studies.list() == []
    definition = StudyDefinition(kind="sweep", name="two lrs", spec=SPEC.to_dict(), train=request().train.to_dict(),
                                 data=DIGITS.to_dict(), vary=({"path": "train.lr", "values": [1e-3, 3e-3]},))
    study_id = start_study(ex, definition, owner="session:me", start_driver=False)
    with pytest.raises(LimitError, match="you already have 1 study running; this server runs at most 1 per person"):
        start_study(ex, definition, owner="session:me", start_driver=False)
    blocker = ex.submit(request())  # the owner's one waiting run: the queue is full for them
    driver = StudyDriver(store, study_id, executor=ex)
    assert driver.step() is None
    assert [t["status"] for t in store.studies.trials(study_id)] == ["pending", "pending"]  # waiting, not failed
    ex.stop(blocker, owner="session:me")
    driver.step()
    assert [t["status"] for t in store.studies.trials(study_id)] == ["queued", "pending"]
    assert len(store.list_runs(group=study_id)) == 1


# ------------------------------------------------------------------------------------------ data never names code
def test_a_stored_request_naming_code_imports_nothing(tmp_path, monkeypatch):
    marker = tmp_path / "PWNED"
    (tmp_path / "evil_factory.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n"
                                              "def build(spec):\n    raise SystemExit('ran')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    values = {**request().to_dict(), "model_factory": "evil_factory:build"}
    req = RunRequest.from_dict(values)  # as read back from the store, a URL or a Ray message
    assert "model_factory" not in req.to_dict()
    status = execute_request(req, MemoryRecorder())
    assert status["status"] == "completed" and not marker.exists() and "evil_factory" not in sys.modules
    store = RunStore(tmp_path / "runs")  # a hand-edited database row is data too
    run = store.create(request())
    with store.db.write() as conn:
        conn.execute("UPDATE runs SET settings = ? WHERE id = ?",
                     (json.dumps({**json.loads(conn.execute("SELECT settings FROM runs WHERE id = ?",
                                                            (run.id,)).fetchone()[0]),
                                  "model_factory": "evil_factory:build"}), run.id))
    assert execute_request(RunRequest.from_run(run), MemoryRecorder())["status"] == "completed" and not marker.exists()


# ------------------------------------------------------------------------------------------ the supervisor
def test_the_supervisor_keeps_serving_through_a_full_disk_and_says_so(tmp_path, monkeypatch):
    store = RunStore(tmp_path / "runs")
    [run] = store.submit([request()], executor="local")  # queued for the local executor's supervisor
    run_id = run.id
    supervisor = _Supervisor(store.root, {"max_concurrent": 1, "threads": 1, "gpus": 0, "spare": False}, 2.0)
    failures = {"left": 3}
    real_claim = supervisor.store.claim_next

    def full_disk(*args, **kwargs):
        if failures["left"]:
            failures["left"] -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_claim(*args, **kwargs)

    supervisor.store.claim_next = full_disk
    supervisor.store.list_runs = lambda *a, **k: []  # nothing to adopt
    seen = []
    thread = threading.Thread(target=supervisor.supervise, daemon=True)
    thread.start()
    wait_until(lambda: seen.append(store.health()) or any("No space left on device" in p for p in seen[-1]),
               what="the Runs page's message")
    wait_until(lambda: store.get(run_id).status()["status"] != "queued" or not thread.is_alive(),
               what="the run to start once the disk has room")
    assert thread.is_alive() or store.get(run_id).status()["status"] == "completed"
    wait_until(lambda: store.get(run_id).status()["status"] == "completed", what="the run to complete")
    thread.join(timeout=30)
    assert not [p for p in store.health() if "supervisor" in p]  # recovered: nothing wrong any more


def test_only_the_supervisor_decides_its_settings(tmp_path):
    """A server allows 2 runs at once; `archs runs --stop` from a shell without that setting changes nothing."""
    store = RunStore(tmp_path / "runs")
    ex = LocalExecutor(store, Limits(max_concurrent=2), threads=1)
    first, second = ex.submit(slow_request()), ex.submit(slow_request())
    wait_until(lambda: [ex.status(i)["status"] for i in (first, second)] == ["running"] * 2, what="two runs")
    third = ex.submit(slow_request())
    out = cli("runs", "--stop", third, "--runs-dir", str(store.root), "--owner", "session:me",
              env={"ARCHS_MAX_CONCURRENT_RUNS": "1"})
    assert out.returncode == 0 and out.stdout.startswith("stopping"), out.stderr
    LocalExecutor(store, Limits(max_concurrent=1))  # constructing one elsewhere writes nothing
    assert store.meta("supervisor")["config"]["max_concurrent"] == 2
    fourth = ex.submit(slow_request())
    ex.stop(first, owner="session:me")
    wait_until(lambda: ex.status(fourth)["status"] == "running", what="the next run in the freed slot")
    assert ex.status(second)["status"] == "running"  # still two at once
    for run_id in ex.active():
        ex.stop(run_id, admin=True)
    assert ex.wait(timeout=60)


def test_a_run_over_the_time_limit_is_stopped_with_the_reason(tmp_path):
    store = RunStore(tmp_path / "runs")
    ex = LocalExecutor(store, Limits(max_concurrent=1, max_run_seconds=3), threads=1)
    run_id = ex.submit(slow_request())
    assert ex.wait(run_id, timeout=TIMEOUT)
    status = ex.status(run_id)
    assert status["status"] == "stopped", status
    assert status["message"] == "stopped after 3 s, this server's limit per run (ARCHS_MAX_RUN_SECONDS)"
    assert status["finished_at"] - status["started_at"] < 30 and store.get(run_id).has_weights()


def test_stop_reaches_a_command_line_run_from_another_process(tmp_path):
    runs = tmp_path / "runs"
    train = subprocess.Popen([sys.executable, "-m", "archs", "train", "seed002-inception", "--data", "digits",
                              "--epochs", "500", "--batch-size", "16", "--save", "--runs-dir", str(runs), "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    store = RunStore(runs)
    wait_until(lambda: store.list_runs() and (store.list_runs()[0]["step"] or 0) > 0, what="the CLI run to train")
    run_id = store.list_runs()[0]["id"]
    out = cli("runs", "--stop", run_id, "--runs-dir", str(runs))  # its owner, from another shell
    assert out.returncode == 0 and out.stdout.startswith("stopping"), out.stderr
    stdout, _ = train.communicate(timeout=120)
    assert train.returncode == 1 and json.loads(stdout)["status"] == "stopped"
    assert store.get(run_id).status()["status"] == "stopped"


# ------------------------------------------------------------------------------------------ data for a view
def test_a_stored_runs_activation_health_is_measured_in_a_worker(tmp_path, monkeypatch):
    import torch

    import archs.training.data
    from archs.health import activation_stats
    from archs.studies.experiments import measure_run_health
    from archs.training.request import sample_test_batch

    store = RunStore(tmp_path / "runs")
    ex = LocalExecutor(store, Limits(max_concurrent=1), threads=1)
    run_id = ex.submit(request())
    assert ex.wait(run_id, timeout=TIMEOUT) and ex.status(run_id)["status"] == "completed"
    run = store.get(run_id)
    inputs, words = sample_test_batch(DIGITS, spec_of(run), 16, 0)
    expected = activation_stats(model_of(run), inputs, False)

    def refuse(*args, **kwargs):
        raise AssertionError("the web server's process read a data set")

    monkeypatch.setattr(archs.training.data, "load_dataset", refuse)
    trained, initial = measure_run_health(ex, run_id, 16, 0, owner="session:viewer")
    assert trained.inputs == words == "16 test images of digits"
    assert [b.std for b in trained.blocks] == pytest.approx([b.std for b in expected.blocks], rel=1e-5)
    assert [b.name for b in initial.blocks] == [b.name for b in trained.blocks]
    assert torch.is_tensor(inputs)
