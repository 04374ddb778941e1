"""Studies end to end through the local executor: a sweep and a search of tiny trials on the offline digits, a
search killed mid-way and resumed without repeating a finished trial, infeasible trials recorded as such, the
claims at a tiny budget, and the command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from test_runs import wait_until

import archs
from archs.studies.definition import StudyDefinition
from archs.studies.driver import ensure_driver, start_study, study_view
from archs.studies.pareto import dominates
from archs.training import DataConfig, RunStore, TrainConfig
from archs.training.executors.local import LocalExecutor
from archs.training.limits import Limits
from archs.training.stored import spec_of

ROOT = Path(__file__).resolve().parents[1]
SPEC = archs.PRESETS["seed002-inception"]
TRAIN = TrainConfig(epochs=1, max_steps=4, batch_size=16, log_every=2, grad_every=0, eval_every=2)
DIGITS = DataConfig(name="digits", train_limit=128, test_limit=64)
TIMEOUT = 300


@pytest.fixture
def executor(tmp_path):
    # no spare worker: a study keeps one run queued behind the running one, so a spare was started only when the
    # queue ran dry at the end, and its import of torch (seconds of CPU) was thrown away when the supervisor left
    ex = LocalExecutor(RunStore(tmp_path / "runs"), Limits(max_concurrent=1), threads=1, spare=False)
    yield ex
    for record in ex.store.studies.list():
        if record["status"] in ("running", "interrupted"):
            ex.store.studies.request_stop(record["id"], None, admin=True)
    for run_id in ex.active():
        ex.stop(run_id, admin=True)
    ex.wait(timeout=60)


def definition(**overrides) -> StudyDefinition:
    return StudyDefinition(**{"kind": "sweep", "name": "tiny", "spec": SPEC.to_dict(), "train": TRAIN.to_dict(),
                              "data": DIGITS.to_dict(), **overrides})


def finished(store: RunStore, study_id: str, timeout: float = TIMEOUT) -> dict:
    wait_until(lambda: store.studies.get(study_id)["status"] not in ("running",), timeout, "the study to end")
    return study_view(store, study_id)


def brute_front(trials: list[dict], objectives: list[str]) -> list[str]:
    """The Pareto set by definition: a completed trial no other completed trial dominates."""
    sign = {"accuracy": -1, "params": 1, "mult_adds": 1, "train_flops": 1, "train_seconds": 1}  # to minimise
    key = {"accuracy": "test_accuracy"}
    done = [t for t in trials if t["status"] == "completed"]
    vectors = [[sign[o] * t[key.get(o, o)] for o in objectives] for t in done]
    return [t["run_id"] for t, v in zip(done, vectors) if not any(dominates(w, v) for w in vectors if w is not v)]


def test_a_sweep_of_two_fields_times_two_seeds(executor):
    d = definition(vary=({"path": "stages[*].branch1x1", "values": [4, 8]}, {"path": "train.lr", "values": [1e-3]}),
                   seeds=2)
    study_id = start_study(executor, d, owner="session:me")
    view = finished(executor.store, study_id)
    assert view["status"] == "completed" and view["kind"] == "sweep"
    trials = view["trials"]
    assert [(t["stages[*].branch1x1"], t["train.lr"], t["seed"]) for t in trials] == [
        (4, 1e-3, 0), (8, 1e-3, 0), (4, 1e-3, 1), (8, 1e-3, 1)]
    assert [t["status"] for t in trials] == ["completed"] * 4
    for trial in trials:
        run = executor.store.get(trial["run_id"])
        spec = spec_of(run)
        assert all(stage.branch1x1 == trial["stages[*].branch1x1"] for stage in spec.stages if hasattr(stage,
                                                                                                       "branch1x1"))
        assert trial["params"] == spec.num_params() and trial["mult_adds"] == archs.summarize(spec).mult_adds
        assert run.settings()["group"] == study_id and run.owner == "session:me"
        assert trial["train_flops"] == 6 * trial["mult_adds"] * 4 * 16  # 3 x 2 x mult-adds x images seen
        assert 0 <= trial["test_accuracy"] <= 1 and trial["train_seconds"] > 0
    assert trials[0]["params"] < trials[1]["params"]
    assert sorted(view["pareto"]) == sorted(brute_front(trials, ["accuracy", "params"]))
    assert executor.store.studies.get(study_id)["summary"]["completed"] == 4


def test_a_search_asks_optuna_tells_it_and_prunes(executor):
    import optuna

    from archs.studies.driver import optuna_url

    d = definition(kind="search", vary=({"path": "train.lr", "low": 1e-4, "high": 3e-2},), objectives=("accuracy",),
                   trials=5, train=replace(TRAIN, max_steps=8).to_dict())
    study_id = start_study(executor, d, owner="session:me")
    view = finished(executor.store, study_id)
    assert view["status"] == "completed" and len(view["trials"]) == 5
    assert all(1e-4 <= t["train.lr"] <= 3e-2 for t in view["trials"])
    assert {t["status"] for t in view["trials"]} <= {"completed", "pruned"}
    optuna_study = optuna.load_study(study_name=study_id, storage=optuna_url(executor.store))
    states = [t.state.name for t in optuna_study.trials]
    assert len(states) == 5 and set(states) <= {"COMPLETE", "PRUNED"}
    for trial, frozen in zip(view["trials"], optuna_study.trials):
        assert frozen.params["train.lr"] == trial["train.lr"]
        if frozen.state.name == "COMPLETE":
            assert frozen.values == [trial["val_accuracy"]]  # selected on held-out training images, never the test set
            assert frozen.intermediate_values  # each evaluation was reported as it came
    importances = executor.store.studies.get(study_id)["summary"]["importances"]  # stored by the driver
    assert importances["finished"] == states.count("COMPLETE") and set(importances["values"]) == {"train.lr"}
    multi = start_study(executor, definition(kind="search", name="two objectives", trials=3,
                                             vary=({"path": "stages[*].branch1x1", "low": 2, "high": 16},),
                                             objectives=("accuracy", "params")), owner="session:me")
    view = finished(executor.store, multi)
    # 3 draws among 15 widths may draw one again: that trial is answered from the first one's result, not run again
    assert view["status"] == "completed" and view["trials"][0]["status"] == "completed"
    for trial in view["trials"][1:]:
        assert trial["status"] == "completed" or (trial["status"] == "repeated" and any(
            t["stages[*].branch1x1"] == trial["stages[*].branch1x1"] and t["params"] == trial["params"]
            for t in view["trials"] if t["status"] == "completed"))
    assert sorted(view["pareto"]) == sorted(brute_front(view["trials"], ["accuracy", "params"]))


def test_no_process_repeats_a_search_s_draw(executor):
    from archs.studies.driver import StudyDriver

    # 8 trials over train.lr, asked as a search asks them: the first two by the process that stores the study,
    # the rest by drivers, each a fresh process (a fresh sampler) as after a restart; every draw is new
    d = definition(kind="search", vary=({"path": "train.lr", "low": 1e-4, "high": 1e-1},), objectives=("accuracy",),
                   trials=8)
    study_id = start_study(executor, d, owner="session:me", start_driver=False)
    drawn = [StudyDriver(executor.store, study_id, executor)._ask()["params"]["train.lr"] for _ in range(2)]
    first = StudyDriver(executor.store, study_id, executor)
    drawn += [first._ask()["params"]["train.lr"] for _ in range(3)]
    drawn += [StudyDriver(executor.store, study_id, executor)._ask()["params"]["train.lr"] for _ in range(3)]
    assert len(drawn) == 8 and len(set(drawn)) == 8, drawn
    assert [t["params"]["train.lr"] for t in executor.store.studies.trials(study_id)] == drawn
    # and another study of the same definition draws its own values
    other = start_study(executor, d, owner="session:me", start_driver=False)
    assert StudyDriver(executor.store, other, executor)._ask()["params"]["train.lr"] not in drawn


def test_a_search_takes_a_list_as_a_choice_and_one_that_cannot_start_is_never_stored(executor):
    from archs.fields import SpecError
    from archs.studies.driver import StudyDriver

    d = definition(kind="search", objectives=("accuracy",), trials=20,
                   vary=({"path": "stages[*].branch1x1", "values": [4, 8]}, {"path": "train.lr", "low": 1e-3,
                                                                            "high": 1e-2}))
    study_id = start_study(executor, d, owner="session:me", start_driver=False)
    driver = StudyDriver(executor.store, study_id, executor)
    drawn = [driver._ask()["params"] for _ in range(20)]
    assert {p["stages[*].branch1x1"] for p in drawn} <= {4, 8} and all(1e-3 <= p["train.lr"] <= 1e-2 for p in drawn)
    assert len({p["stages[*].branch1x1"] for p in drawn}) == 2  # both choices (one alone: 2 in a million)
    free_text = definition(kind="search", objectives=("accuracy",), trials=2, vary=({"path": "name"},))
    with pytest.raises(SpecError, match="^name: is free text"):  # no domain: refused before anything is stored
        start_study(executor, free_text, owner="session:me")
    assert [s["id"] for s in executor.store.studies.list()] == [study_id]


def test_a_search_answers_a_repeated_configuration_from_its_stored_trial(executor):
    import optuna

    from archs.studies.driver import optuna_url

    # one choice: every trial draws the same values, so one run answers all three
    d = definition(kind="search", vary=({"path": "stages[*].branch1x1", "values": [4]},), objectives=("accuracy",),
                   trials=3, pruner="none")
    study_id = start_study(executor, d, owner="session:me")
    view = finished(executor.store, study_id)
    first, *repeats = view["trials"]
    assert view["status"] == "completed" and first["status"] == "completed"
    assert [t["status"] for t in repeats] == ["repeated", "repeated"]
    assert all(t["test_accuracy"] == first["test_accuracy"] and t["run_id"] is None for t in repeats)
    assert all(t["error"].startswith("the values of trial 0") for t in repeats)
    assert len(executor.store.list_runs(group=study_id)) == 1  # trained once
    told = optuna.load_study(study_name=study_id, storage=optuna_url(executor.store)).trials
    assert [t.state.name for t in told] == ["COMPLETE"] * 3 and {t.values[0] for t in told} == {
        first["val_accuracy"]}  # a search is told its validation accuracy, never the test set's
    assert view["pareto"] == [first["run_id"]]


def dead_driver() -> dict:
    from archs.training.store import process_identity

    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return {**process_identity(), "pid": int(child.stdout)}  # a process that has ended


def test_the_server_drives_at_most_its_cap_of_studies_everyone_s_together(tmp_path):
    from archs.training.limits import LimitError

    store = RunStore(tmp_path / "runs")
    executor = LocalExecutor(store, Limits(max_concurrent=1, max_study_drivers=2, max_studies_per_owner=5), threads=1)
    d = definition(vary=({"path": "train.lr", "values": [1e-3]},))
    first = start_study(executor, d, owner="session:a", start_driver=False)  # a driver being started counts
    second = start_study(executor, d, owner="session:b", start_driver=False)
    with pytest.raises(LimitError, match="ARCHS_MAX_STUDY_DRIVERS") as refused:
        start_study(executor, d, owner="session:c", start_driver=False)
    assert "at most 2 at once" in str(refused.value) and len(store.studies.list()) == 2  # nothing stored
    store.studies.update(second, driver=dead_driver())  # its driver died: it is interrupted and drives nothing
    assert store.studies.get(second)["status"] == "interrupted"
    third = start_study(executor, d, owner="session:c", start_driver=False)
    with pytest.raises(LimitError, match="ARCHS_MAX_STUDY_DRIVERS"):  # reviving it would pass the cap
        ensure_driver(store, second, by="session:b", max_drivers=2)
    assert store.studies.get(second)["status"] == "interrupted"
    store.studies.update(first, status="stopped")  # one ended: a slot is free again
    assert store.studies.claim_start(second, 2) is None and store.studies.get(second)["status"] == "running"
    assert store.studies.claim_start(third, 2) is None  # a study's own driver is not counted against it
    assert Limits.from_env({"ARCHS_MAX_CONCURRENT_RUNS": "1"}).max_study_drivers == 4
    assert Limits.from_env({"ARCHS_MAX_CONCURRENT_RUNS": "1", "ARCHS_MAX_STUDY_DRIVERS": "7"}).max_study_drivers == 7


def test_a_driver_waiting_on_a_full_queue_reads_it_and_backs_off_without_the_write_lock(tmp_path, monkeypatch):
    import archs.studies.driver as driver_module
    from archs.studies.driver import StudyDriver
    from archs.training.request import RunRequest

    store = RunStore(tmp_path / "runs")
    executor = LocalExecutor(store, Limits(max_concurrent=1, max_queued=1), threads=1)
    store.create(RunRequest(SPEC, TRAIN, DIGITS, owner="session:other"), queue=True)  # the one place in the queue
    study_id = start_study(executor, definition(vary=({"path": "train.lr", "values": [1e-3, 3e-3]},)),
                           owner="session:me", start_driver=False)
    writes = []
    real_write = store.db.write
    monkeypatch.setattr(store.db, "write", lambda: writes.append(1) or real_write())
    driver = StudyDriver(store, study_id, executor)
    for _ in range(3):
        assert driver.step() is None and driver.waiting_on_queue
    assert writes == []  # looked at the queue three times, never took the lock to be refused
    assert [t["status"] for t in store.studies.trials(study_id)] == ["pending", "pending"]

    class Enough(BaseException):
        pass

    delays = []

    def sleep(seconds):
        delays.append(seconds)
        if len(delays) == 5:
            raise Enough

    monkeypatch.setattr(driver_module.time, "sleep", sleep)
    with pytest.raises(Enough):
        driver.run(poll=0.25)
    assert delays == [0.5, 1.0, 2.0, 2.0, 2.0]  # backs off to QUEUE_BACKOFF_SECONDS
    assert len(writes) == 1  # claiming the study as its driver, once
    per_owner = LocalExecutor(store, Limits(max_concurrent=1, max_queued=None, max_queued_per_owner=1), threads=1,
                              resume=False)  # only reads the queue: the waiting run is not started (nor left running)
    assert not StudyDriver(store, study_id, per_owner)._queue_full()  # the waiting run is someone else's


def test_deleting_a_study_deletes_its_optuna_records_lock_and_log(executor):
    import optuna

    from archs.studies.driver import StudyDriver, delete_study, optuna_url
    from archs.training.store import RunError

    store = executor.store
    d = definition(kind="search", vary=({"path": "train.lr", "low": 1e-4, "high": 1e-1},), objectives=("accuracy",),
                   trials=3)
    gone, kept = (start_study(executor, d, owner="session:me", start_driver=False) for _ in range(2))
    for study_id in (gone, kept):
        StudyDriver(store, study_id, executor)._ask()  # Optuna has seen it
        (store.root / f".{study_id}.lock").touch()
        (store.root / f".{study_id}.log").write_text("its driver's log")
        store.studies.update(study_id, status="stopped")
    with pytest.raises(RunError, match="someone else"):
        delete_study(store, gone, "session:other")
    assert (store.root / f".{gone}.lock").exists()
    assert delete_study(store, gone, "session:me") == []
    with pytest.raises(KeyError):
        optuna.load_study(study_name=gone, storage=optuna_url(store))
    assert not (store.root / f".{gone}.lock").exists() and not (store.root / f".{gone}.log").exists()
    assert len(optuna.load_study(study_name=kept, storage=optuna_url(store)).trials) == 1  # the other one's kept
    assert (store.root / f".{kept}.lock").exists() and (store.root / f".{kept}.log").exists()
    sweep = start_study(executor, definition(vary=({"path": "train.lr", "values": [1e-3]},)), owner="session:me",
                        start_driver=False)
    store.studies.update(sweep, status="stopped")
    delete_study(store, sweep, "session:me")  # Optuna never saw a sweep: nothing to delete there


def test_a_search_killed_midway_resumes_without_repeating_a_finished_trial(executor):
    store = executor.store
    d = definition(kind="search", vary=({"path": "train.lr", "low": 1e-4, "high": 1e-2},), objectives=("accuracy",),
                   trials=5, pruner="none")
    study_id = start_study(executor, d, owner="session:me")
    wait_until(lambda: sum(t["status"] == "completed" for t in store.studies.trials(study_id)) >= 2,
               what="two finished trials")
    driver = store.studies.get(study_id)["driver"]
    os.kill(driver["pid"], signal.SIGKILL)  # no clean-up at all
    wait_until(lambda: store.studies.get(study_id)["status"] == "interrupted", what="the study to read interrupted")
    before = {t["number"]: t["run_id"] for t in store.studies.trials(study_id) if t["status"] == "completed"}
    assert not ensure_driver(store, study_id, by="session:someone-else")  # someone else only looks at it
    assert store.studies.get(study_id)["status"] == "interrupted"
    assert ensure_driver(store, study_id, by="session:me")  # opened again by its owner
    view = finished(store, study_id)
    assert view["status"] == "completed" and len(view["trials"]) == 5
    after = {t["number"]: t["run_id"] for t in view["trials"]}
    assert all(after[n] == run_id for n, run_id in before.items())  # the finished ones kept, not run again
    assert len(store.list_runs(group=study_id)) == 5  # one run per trial, none repeated


def test_infeasible_trials_are_recorded_with_their_error_not_a_crash(executor, tmp_path, monkeypatch):
    d = definition(vary=({"path": "input_size", "values": [8, 28]},))  # 8 x 8: its 5 x 5 windows do not fit
    study_id = start_study(executor, d, owner="session:me")
    view = finished(executor.store, study_id)
    bad, good = view["trials"]
    assert bad["status"] == "infeasible" and bad["run_id"] is None
    assert bad["error"].startswith("stage 2 (plain): a 2x2 feature map is smaller than a 5x5 window"), bad["error"]
    assert good["status"] == "completed" and view["status"] == "completed"
    monkeypatch.setenv("ARCHS_MAX_TRAIN_PARAMS", "50000")  # the server's limit, which the study's driver reads
    capped = LocalExecutor(RunStore(tmp_path / "capped"), Limits(max_concurrent=1, max_params=50_000), threads=1,
                           spare=False)
    study_id = start_study(capped, definition(vary=({"path": "stages[*].branch1x1", "values": [4]},)),
                           owner="session:me")
    [trial] = finished(capped.store, study_id)["trials"]
    assert trial["status"] == "infeasible" and "ARCHS_MAX_TRAIN_PARAMS" in trial["error"]


@pytest.mark.parametrize("claim", ["residual", "dense", "inception"])
def test_each_claim_end_to_end_at_a_tiny_budget(tmp_path, claim):
    from executor_for_tests import ThreadExecutor

    from archs.studies.driver import StudyDriver
    from archs.studies.families import CLAIMS

    # A claim's own plumbing (its nets, two seeds each, the verdict) at 2 steps of 16 images (the whole training
    # subset: a batch is at most the set), tested on 32. Its 8-40 runs train in threads of this process, driven
    # here: a run in a worker of its own was mostly that worker's start (torch and its compiler imported again,
    # ~6 s of CPU), 214 s for the inception claim's 40 on the 2-core box. The local executor's workers and the
    # detached driver are the sweep's and the search's tests above.
    executor = ThreadExecutor(RunStore(tmp_path / "runs"), Limits(max_concurrent=2))
    d = StudyDefinition(kind="claim", name=f"{claim} tiny", claim=claim, seeds=2, steps=2,
                        data=DataConfig(name="digits", train_limit=16, test_limit=32).to_dict(),
                        objectives=("accuracy", CLAIMS[claim].objective_x), parallel=2)
    study_id = start_study(executor, d, owner="session:me", start_driver=False)
    StudyDriver(executor.store, study_id, executor).run(poll=0.05)
    view = finished(executor.store, study_id, timeout=600)
    assert view["status"] == "completed"
    assert [t["status"] for t in view["trials"]] == ["completed"] * 2 * len(CLAIMS[claim].nets)
    assert sorted({(t["family"], t["size"]) for t in view["trials"]}) == sorted(
        (n.family, n.size) for n in CLAIMS[claim].nets)
    verdict = executor.store.studies.get(study_id)["summary"]["verdict"]
    assert verdict["claim"] == claim and verdict["runs"] == 2 * len(CLAIMS[claim].nets)
    assert verdict["verdict"] in ("holds", "does not hold", "not decided") and verdict["statement"]
    assert all(n["seeds"] == 2 and n["sd"] is not None for n in verdict["nets"])


def test_a_search_with_seeds_runs_each_configuration_once_per_seed_and_tells_optuna_their_mean(executor):
    import statistics

    import optuna

    from archs.studies.cli import _trial_line, seed_table
    from archs.studies.driver import optuna_url

    d = definition(kind="search", vary=({"path": "train.lr", "low": 1e-3, "high": 3e-2},), objectives=("accuracy",),
                   trials=2, seeds=2)
    study_id = start_study(executor, d, owner="session:me")
    view = finished(executor.store, study_id)
    assert view["status"] == "completed" and view["planned"] == 4
    trials = view["trials"]
    assert [t["status"] for t in trials] == ["completed"] * 4 and len(executor.store.list_runs(group=study_id)) == 4
    told = optuna.load_study(study_name=study_id, storage=optuna_url(executor.store)).trials
    assert [t.state.name for t in told] == ["COMPLETE"] * 2  # one Optuna trial per configuration
    for frozen in told:
        group = [t for t in trials if t["train.lr"] == frozen.params["train.lr"]]
        assert sorted(t["seed"] for t in group) == [0, 1]  # the same values, once per seed
        accs = [t["val_accuracy"] for t in group]  # a search is told validation accuracy, never the test set's
        assert frozen.values == [pytest.approx(statistics.mean(accs))]
        spread = {"mean": pytest.approx(statistics.mean(accs)), "sd": pytest.approx(statistics.stdev(accs)), "n": 2}
        assert frozen.user_attrs["over_seeds"]["accuracy"] == spread
        assert all(t["over_seeds"]["accuracy"] == spread for t in group)  # stored with each trial
    lines = seed_table(view)
    assert lines[0] == "Over seeds (mean ± SD):" and len(lines) == 3 and all("n=2" in line for line in lines[1:])
    assert "mean over 2 seeds" in _trial_line(trials[0], view["varied"])


def test_infeasible_draws_are_constraint_violations_outside_the_trial_budget(tmp_path):
    import optuna

    from archs.studies.driver import StudyDriver, optuna_url

    # branch1x1=64 is 130,514 parameters, over this server's limit; 4 is 88,994
    executor = LocalExecutor(RunStore(tmp_path / "runs"), Limits(max_concurrent=1, max_params=100_000), threads=1,
                             spare=False)
    d = definition(kind="search", objectives=("accuracy",), trials=2, pruner="none",
                   vary=({"path": "stages[*].branch1x1", "values": [4, 64]},
                         {"path": "train.lr", "low": 1e-3, "high": 3e-2}))
    study_id = start_study(executor, d, owner="session:me", start_driver=False)
    driver = StudyDriver(executor.store, study_id, executor)
    driver.optuna_study.enqueue_trial({"stages[*].branch1x1": 64, "train.lr": 0.01})  # the first draw: over it
    assert driver.run(poll=0.05) == "completed"
    view = study_view(executor.store, study_id)
    feasible = [t for t in view["trials"] if t["status"] != "infeasible"]
    infeasible = [t for t in view["trials"] if t["status"] == "infeasible"]
    assert [t["status"] for t in feasible] == ["completed", "completed"]  # the whole budget, feasible trials only
    assert all(t["stages[*].branch1x1"] == 4 for t in feasible) and infeasible
    assert all(t["stages[*].branch1x1"] == 64 and "parameters" in t["error"] for t in infeasible)
    assert len(executor.store.list_runs(group=study_id)) == 2
    told = {t.number: t for t in optuna.load_study(study_name=study_id, storage=optuna_url(executor.store)).trials}
    for t in executor.store.studies.trials(study_id):
        frozen = told[t["optuna_number"]]
        if t["status"] == "infeasible":
            assert frozen.state.name == "COMPLETE" and frozen.constraints == {"infeasible": 1.0}
            assert frozen.user_attrs["infeasible"] == t["error"]
        else:
            assert frozen.constraints == {"infeasible": 0.0} and frozen.values == [t["objectives"]["val_accuracy"]]
    executor.wait(timeout=60)


def test_a_search_of_an_all_infeasible_space_ends_with_a_message(tmp_path):
    from archs.studies.driver import INFEASIBLE_DRAWS_PER_TRIAL, StudyDriver

    executor = LocalExecutor(RunStore(tmp_path / "runs"), Limits(max_concurrent=1, max_params=1_000), threads=1,
                             spare=False)
    d = definition(kind="search", objectives=("accuracy",), trials=2,
                   vary=({"path": "train.lr", "low": 1e-3, "high": 3e-2},))
    study_id = start_study(executor, d, owner="session:me", start_driver=False)
    assert StudyDriver(executor.store, study_id, executor).run(poll=0.01) == "failed"
    view = study_view(executor.store, study_id)
    assert len(view["trials"]) == INFEASIBLE_DRAWS_PER_TRIAL * 2 == 20
    assert {t["status"] for t in view["trials"]} == {"infeasible"} and not executor.store.list_runs(group=study_id)
    assert view["error"].startswith("the search ended after 20 infeasible draws (10 x its budget of 2 trials) with "
                                    "0 feasible")


def test_the_command_line_keeps_a_range_s_scale_and_step():
    import argparse

    from archs.studies.cli import _definition, add_parser

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["study", "search", "seed002-inception", "--vary", "train.lr=1e-4:1e-1:log", "--vary",
                              "stages[*].branch1x1=4:16:4", "--vary", "train.momentum=0.5:0.9:linear", "--trials",
                              "2", "--seeds", "2", "--data", "digits"])
    d = _definition(args)
    assert list(d.vary) == [{"path": "train.lr", "low": 1e-4, "high": 0.1, "scale": "log"},
                            {"path": "stages[*].branch1x1", "low": 4, "high": 16, "step": 4},
                            {"path": "train.momentum", "low": 0.5, "high": 0.9, "scale": "linear"}] and d.seeds == 2
    spec, train, _ = StudyDefinition.from_dict(d.to_dict()).base()
    lr, width, momentum = d.domains(spec, train)
    assert lr.log and (width.step, width.log) == (4, False) and not momentum.log


def test_the_command_line(tmp_path, capsys):
    from types import SimpleNamespace

    from archs.cli import main

    runs = str(tmp_path / "runs")

    def command(*args):  # `python -m archs study ...` in a process of its own, as typed in a shell
        return subprocess.run([sys.executable, "-m", "archs", "study", *args, "--runs-dir", runs], cwd=ROOT,
                              capture_output=True, text=True, timeout=TIMEOUT)

    def cli(*args):
        """The same command line run in this process (the study's driver and workers are still processes of their
        own): a process per command imported torch again, ~4 s of CPU each, seven times."""
        try:
            code = main(["study", *args, "--runs-dir", runs])
        except SystemExit as exit_:
            code = exit_.code
        out = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)

    out = command("sweep", "seed002-inception", "--vary", "train.lr=0.001,0.003", "--data", "digits", "--train-limit",
              "128", "--test-limit", "64", "--max-steps", "4", "--batch-size", "16", "--json")
    assert out.returncode == 0, out.stderr
    view = json.loads(out.stdout)
    assert set(view) >= {"study_id", "status", "trials", "pareto"} and view["status"] == "completed"
    assert [t["train.lr"] for t in view["trials"]] == [0.001, 0.003]
    assert set(view["trials"][0]) >= {"run_id", "status", "test_accuracy", "params", "mult_adds", "train_flops",
                                      "train_seconds", "seed"}
    listed = json.loads(cli("list", "--json").stdout)["studies"]
    assert [s["id"] for s in listed] == [view["study_id"]]
    shown = json.loads(cli("show", view["study_id"], "--json").stdout)
    assert shown["trials"] == view["trials"] and shown["pareto"] == view["pareto"]
    bad = cli("sweep", "seed002-inception", "--vary", "stages[9].branch1x1=4,8", "--data", "digits")
    assert bad.returncode == 2 and bad.stderr.startswith("error: stages[9].branch1x1:"), bad.stderr
    bad = cli("search", "seed002-inception", "--vary", "train.nope", "--trials", "2", "--data", "digits")
    assert bad.returncode == 2 and "train.nope" in bad.stderr
    assert cli("show", "study-nothing-here").returncode == 2
    deleted = cli("delete", view["study_id"])
    assert deleted.returncode == 0 and "and its 2 runs" in deleted.stdout, deleted.stderr
    assert json.loads(cli("list", "--json").stdout)["studies"] == []
