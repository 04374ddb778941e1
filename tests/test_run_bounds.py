"""Runs are bounded where they run (issue 18), as a careless or hostile user would test them: a worker that ignores
its stop flag and SIGTERM is killed after the grace period and its run says why; a run that asks for more memory than
its cap fails with a clear reason while the supervisor carries on; metric records per run are bounded however often
they are asked for; the store keeps at most ARCHS_MAX_RUNS_KEPT runs, taking the gone sessions' oldest first.
"""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

import archs
from archs.training import DataConfig, RunRequest, RunStore, TrainConfig
from archs.training.executors.local import LocalExecutor
from archs.training.limits import Limits

SPEC = archs.PRESETS["seed002-inception"]
ME = "session:me"
DIGITS = DataConfig(name="digits", train_limit=128, test_limit=64)
TIMEOUT = 120


def request(**overrides) -> RunRequest:
    train = TrainConfig(epochs=1, batch_size=16, log_every=2, grad_every=0, max_steps=4)
    return RunRequest(**{"spec": SPEC, "train": train, "data": DIGITS, "owner": ME, **overrides})


def deaf(**overrides) -> RunRequest:
    """A run whose network hangs in its second step, ignoring the stop flag and SIGTERM (tests/faults.py)."""
    train = TrainConfig(epochs=50, batch_size=16, log_every=1, grad_every=0, amp="off", channels_last="off",
                        compile="off")  # no probe: its forward passes would count as steps
    return request(spec=replace(SPEC, name="fault-deaf"), train=train, **overrides)


def recorded(executor, run_id: str) -> dict:
    """The run's status once the supervisor has recorded its end (a reader sees a dead worker's run as failed at
    once; the supervisor records why a moment later)."""
    wait_until(lambda: executor.store.get(run_id).stored_status()["status"] not in ("queued", "running"),
               what=f"the end of {run_id}")
    return executor.status(run_id)


def wait_until(predicate, timeout: float = TIMEOUT, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def executor(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHS_STOP_GRACE_SECONDS", "1")
    ex = LocalExecutor(RunStore(tmp_path / "runs"), Limits(max_concurrent=1), threads=1, spare=False)
    yield ex
    for run_id in ex.active():
        ex.stop(run_id, admin=True)
    ex.wait(timeout=60)


# ------------------------------------------------------------------------------------------ time
def test_a_worker_that_ignores_its_time_limit_is_killed_and_the_run_says_why(executor):
    # 10 s: the run's clock starts before its data, network and optimizer are made (2-4 s on a busy box); a run out
    # of time before its second step stops there by itself, and nothing would be left to kill
    run_id = executor.submit(deaf(max_seconds=10))
    after = executor.submit(request(label="after"))
    status = recorded(executor, run_id)  # at c9dd131 it runs forever: only the stop flag was set
    assert status["status"] == "stopped" and status["killed"] is True
    assert "stopped after 10 s, this server's limit per run" in status["message"]
    assert "did not stop within 1 s and was killed" in status["message"]
    assert status["exit_code"] in (-15, -9)  # SIGTERM, or SIGKILL 5 s on once the network ignores SIGTERM
    assert not executor.store.get(run_id).has_weights()
    assert executor.wait(after, timeout=TIMEOUT) and executor.status(after)["status"] == "completed"  # it goes on


def test_a_worker_that_ignores_a_stop_is_killed_after_the_grace_period(executor):
    run_id = executor.submit(deaf())
    wait_until(lambda: "ignoring the stop flag and SIGTERM" in executor.logs(run_id, owner=ME), what="its hang")
    asked = time.monotonic()
    assert executor.stop(run_id, owner=ME)
    status = recorded(executor, run_id)
    assert time.monotonic() - asked < 60
    assert status["status"] == "stopped" and status["message"].startswith(f"stopped by {ME}; its worker did not stop")
    assert status["exit_code"] == -9  # SIGTERM ignored: SIGKILL


def test_a_worker_that_hangs_before_its_run_begins_is_killed_and_the_run_says_why(tmp_path, monkeypatch):
    """No clock of the run's own is running yet (it starts when the worker records the start), so the supervisor
    holds a worker to ARCHS_WORKER_START_SECONDS from its launch."""
    monkeypatch.setenv("ARCHS_STOP_GRACE_SECONDS", "1")
    monkeypatch.setenv("ARCHS_WORKER_START_SECONDS", "3")
    monkeypatch.setenv("ARCHS_WORKER_SETUP", "stuck_setup")  # tests/stuck_setup.py: never returns
    ex = LocalExecutor(RunStore(tmp_path / "runs"), Limits(max_concurrent=1), threads=1, spare=False)
    run_id = ex.submit(request())
    asked = time.monotonic()
    status = recorded(ex, run_id)  # before: its slot held for ever, the run "queued" or "running" with no end
    assert time.monotonic() - asked < 60
    assert status["status"] == "stopped" and status["killed"] is True
    assert status["message"].startswith("its worker had not begun the run 3 s after it was launched")
    assert "did not stop within 1 s and was killed" in status["message"]
    # SIGTERM while still importing torch (a busy machine), or SIGKILL 5 s on once stuck_setup ignores SIGTERM
    assert status["exit_code"] in (-15, -9)
    after = ex.submit(request(label="after"))  # its slot was given back (one at a time): the next one is held too
    assert recorded(ex, after)["status"] == "stopped"


def test_the_depth_sweep_s_measurements_are_quick_jobs_bounded_before_they_start(monkeypatch):
    """Each trial of the Gradients page's depth sweep is a measurement: the quick lane's time limit and memory cap,
    and the memory budget at its batch checked before it is queued (issue 18 §1), as for the page's own."""
    from archs.budget import BudgetError
    from archs.studies.definition import trial_request
    from archs.studies.experiments import depth_sweep_definition

    monkeypatch.setenv("ARCHS_QUICK_MAX_SECONDS", "42")
    definition = depth_sweep_definition([8, 56], batch_size=32)
    trial = {"stages[*].blocks": 9, "stages[*].skip": False}
    bounded = trial_request(definition, trial, study_id="s", owner=ME, owner_name=None)
    assert bounded.kind == "gradients" and bounded.max_seconds == 42
    assert 2 << 30 < bounded.max_memory_bytes < (2 << 30) + (1 << 30)  # twice its pass's estimate, plus 2 GiB
    monkeypatch.setenv("ARCHS_MAX_MEMORY_MB", "8")
    with pytest.raises(BudgetError, match="ARCHS_MAX_MEMORY_MB=8"):
        trial_request(definition, trial, study_id="s", owner=ME, owner_name=None)


# ------------------------------------------------------------------------------------------ memory
def test_a_run_over_its_memory_cap_fails_clearly_and_the_supervisor_survives(executor, monkeypatch):
    monkeypatch.setenv("ARCHS_MAX_WORKER_MEMORY", "2G")
    hog = executor.submit(request(spec=replace(SPEC, name="fault-hog")))
    after = executor.submit(request(label="after"))
    status = recorded(executor, hog)
    assert status["status"] == "failed"
    assert status["error"].startswith("the run needed more memory than its cap of 2.0 GiB (ARCHS_MAX_WORKER_MEMORY")
    assert recorded(executor, after)["status"] == "completed"
    log = executor.logs(hog, owner=ME)
    assert "memory cap 2.0 GiB" in log


# ------------------------------------------------------------------------------------------ records
def test_record_intervals_are_raised_on_long_runs_whatever_is_asked():
    from archs.training.config import MAX_GRAD_RECORDS, MAX_STEP_RECORDS, record_every

    assert record_every(1, 100, MAX_STEP_RECORDS) == 1  # a short run records what it asks
    assert record_every(1, 1_000_000, MAX_STEP_RECORDS) == 500
    assert 1_000_000 // record_every(1, 1_000_000, MAX_GRAD_RECORDS) == MAX_GRAD_RECORDS
    assert record_every(0, 1_000_000, MAX_GRAD_RECORDS) == 0  # never stays never
    assert record_every(10_000, 1_000_000, MAX_STEP_RECORDS) == 10_000


def test_log_every_1_and_grad_every_1_record_at_most_the_floor(monkeypatch, tmp_path):
    import archs.training.loop as loop
    from archs.training.request import execute_request
    from archs.training.stored import RunRecorder

    monkeypatch.setattr(loop, "MAX_STEP_RECORDS", 3)
    monkeypatch.setattr(loop, "MAX_GRAD_RECORDS", 2)
    store = RunStore(tmp_path / "runs")
    run = store.create(request(train=TrainConfig(epochs=2, batch_size=16, max_steps=12, log_every=1, grad_every=1,
                                                 amp="off", channels_last="off", compile="off")))
    assert execute_request(request(train=TrainConfig(epochs=2, batch_size=16, max_steps=12, log_every=1, grad_every=1,
                                                     amp="off", channels_last="off", compile="off")),
                           RunRecorder(run))["status"] == "completed"
    assert [r["step"] for r in run.metrics("step")] == [4, 8, 12]  # asked: every step
    assert [r["step"] for r in run.metrics("grad")] == [6, 12]


def test_the_store_keeps_at_most_its_cap_of_records_per_run(monkeypatch, tmp_path):
    import archs.training.store.records as records

    monkeypatch.setattr(records, "MAX_RECORDS_PER_RUN", 50)
    store = RunStore(tmp_path / "runs")
    run = store.create(request())
    run.append_metrics([{"kind": "step", "step": s, "loss": 1.0} for s in range(40)])
    again = store.get(run.id)  # another handle (a restarted relay) counts what is stored
    again.append_metrics([{"kind": "step", "step": s, "loss": 1.0} for s in range(40, 100)])
    assert len(run.metrics()) == 50 and again.dropped == 50
    monkeypatch.setattr(records, "MAX_RECORD_BYTES_PER_RUN", 10_000)
    big = store.create(request())
    big.append_metrics([{"kind": "note", "step": s, "text": "x" * 3000} for s in range(10)])
    assert len(big.metrics()) == 3  # 3 x ~3 kB fit in 10 kB


def test_a_chart_reads_a_few_hundred_points_of_a_long_run_picked_in_sql(tmp_path):
    store = RunStore(tmp_path / "runs")
    run = store.create(request())
    run.append_metrics([{"kind": "start", "total_steps": 4000}]
                       + [{"kind": "step", "step": s, "loss": 1 / s} for s in range(1, 4001)]
                       + [{"kind": "grad", "step": s, "layers": []} for s in range(10, 4001, 10)]
                       + [{"kind": "eval", "step": 4000, "test_accuracy": 0.9}])
    chart = run.chart_metrics()
    steps = [r["step"] for r in chart if r["kind"] == "step"]
    grads = [r["step"] for r in chart if r["kind"] == "grad"]
    assert 400 <= len(steps) <= 500 and steps[-1] == 4000 and steps == sorted(steps)  # the newest always
    assert steps[-1] - steps[-2] == steps[1] - steps[0]  # an even stride
    assert len(grads) <= 100 and grads[-1] == 4000
    assert [r["kind"] for r in chart].count("eval") == 1 and chart[0]["kind"] == "start"
    assert [r["kind"] for r in run.chart_metrics(("step",))] == ["step"] * len(steps)



def test_the_degradation_summary_reads_the_points_its_chart_draws_not_every_record(tmp_path, monkeypatch):
    """The Degradation page summarises its runs at every refresh: it reads at most 500 step records of each net's
    run (none of a later seed's, which never counted), and gives the same values as every record where a run has no
    more than that (the page's experiments log at most 240)."""
    from archs.studies.experiments import DEGRADATION_PRESETS, degradation_summary, summarize_curves
    from archs.training.store import Run

    store = RunStore(tmp_path / "runs")

    def steps(n: int, loss) -> list[dict]:
        return [{"kind": "step", "step": s, "loss": loss(s), "train_accuracy": 1 - loss(s) / 20} for s in range(1, n + 1)]

    every = {}
    for name, n in zip(DEGRADATION_PRESETS, (240, 240, 240, 2000)):
        every[name] = steps(n, lambda s: 10 / s)
        run = store.create(request(spec=archs.PRESETS[name], group="deg"))
        run.append_metrics([{"kind": "start", "total_steps": n}, *every[name], {"kind": "eval", "step": n}])
        run.write_status(status="completed")
    later_seed = store.create(request(spec=archs.PRESETS["cifar-plain20"], group="deg"))
    later_seed.append_metrics(steps(2000, lambda s: 100.0))
    read = []
    real = Run.chart_metrics
    monkeypatch.setattr(Run, "metrics", lambda *a, **k: pytest.fail("read every record of a run"))
    monkeypatch.setattr(Run, "chart_metrics", lambda run, *a, **k: read.append(run.id) or real(run, *a, **k))
    summary = degradation_summary(store, "deg")
    assert len(read) == 4 and later_seed.id not in read
    full = summarize_curves({name: every[name] for name in DEGRADATION_PRESETS[:3]})
    for name in DEGRADATION_PRESETS[:3]:
        assert summary["final_train_loss"][name] == full["final_train_loss"][name]
        assert summary["final_train_accuracy"][name] == full["final_train_accuracy"][name]
        assert summary["curves"][name]["step"] == list(range(1, 241))
    long = summary["curves"]["cifar-resnet56"]
    assert len(long["step"]) == 500 and long["step"][-1] == 2000 and long["step"][0] == 4  # every 4th, newest kept
    tail = range(1504, 2001, 4)  # the drawn points past 1,500, the run's last quarter
    assert summary["final_train_loss"]["cifar-resnet56"] == sum(10 / s for s in tail) / len(tail)
    assert summary["plain_degrades"] is False and summary["status"]["cifar-plain20"] == "completed"

# ------------------------------------------------------------------------------------------ the store's cap
def _age(store: RunStore, run_ids, seconds: float) -> None:
    """These runs as if created, updated (and viewed) ``seconds`` ago."""
    when = time.time() - seconds
    with store.db.write() as conn:
        conn.executemany("UPDATE runs SET created = ?, updated = ?, viewed_at = NULL WHERE id = ?",
                         [(when, when, i) for i in run_ids])


def _finished(store: RunStore, owner: str, n: int) -> list[str]:
    runs = store.submit([request(owner=owner) for _ in range(n)], executor="local")
    for run in runs:
        run.write_status(status="completed")
    return [run.id for run in runs]


def test_the_cap_is_on_the_whole_store_and_gone_sessions_go_first(tmp_path):
    store = RunStore(tmp_path / "runs")
    teacher = _finished(store, "user:teacher@uni.edu", 2)  # the oldest of all, of a person
    gone = _finished(store, "session:closed-tab", 3)      # a throw-away session, not seen for two hours
    _age(store, teacher + gone, 2 * 3600)
    here = _finished(store, "session:still-here", 2)
    assert store.prune(keep=5) == gone[:2]  # the gone session's oldest, before the older runs of others
    assert store.prune(keep=4) == [gone[2]]
    assert store.prune(keep=3) == [teacher[0]]  # then the oldest finished runs, anyone's
    assert {r["id"] for r in store.list_runs()} == {teacher[1], *here}


def test_pruning_spares_pinned_viewed_and_active_runs_and_running_studies(tmp_path):
    store = RunStore(tmp_path / "runs")
    runs = _finished(store, "session:gone", 5)
    _age(store, runs, 2 * 3600)
    store.pin(runs[0], admin=True)
    store.mark_viewed([runs[1]])  # on someone's Runs page now
    store.get(runs[2]).write_status(status="running", worker={"pid": 1, "host": "elsewhere"})
    queued = store.submit([request(owner="session:new")], executor="local")[0].id
    assert store.prune(keep=1) == [runs[3], runs[4]]
    assert {r["id"] for r in store.list_runs()} == {runs[0], runs[1], runs[2], queued}  # over the cap: nothing else
    with pytest.raises(Exception, match="only an administrator can pin a run"):
        store.pin(runs[1])
    assert store.get(runs[0]).pinned() and not store.get(runs[1]).pinned()


def test_a_run_open_on_compare_or_on_the_export_tab_is_not_pruned(tmp_path, monkeypatch):
    """Pruning never takes a run someone is looking at: the Compare page and Build's Export tab, like the Runs page,
    say which runs they show (archs.sources.mark_viewed)."""
    from app_helpers import open_app, run
    from run_fakes import real_run, trained_like, use_real_store

    runs_dir = tmp_path / "runs"
    use_real_store(monkeypatch, runs_dir)
    compared, exported, other = (real_run(runs_dir, SPEC, trained_like(SPEC) if n == 1 else None, f"run {n}")
                                 for n in range(3))
    store = RunStore(runs_dir)
    _age(store, [compared, exported, other], 2 * 3600)  # a gone session's, the oldest first: the first to go
    run(open_app(preset="cifar-resnet20", b=f"run:{compared}").switch_page("pages/compare.py"))
    at = open_app(preset="cifar-resnet20")
    at.session_state["build_tab"] = "Export"
    run(run(at).selectbox(key="export_source").select(exported))
    assert store.prune(keep=1) == [other]
    assert {r["id"] for r in store.list_runs()} == {compared, exported}


def test_a_run_is_pinned_from_the_command_line_by_an_administrator_only(tmp_path):
    import subprocess
    import sys

    store = RunStore(tmp_path / "runs")
    [run_id] = _finished(store, "session:gone", 1)

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "archs", "runs", "--runs-dir", str(store.root), *args],
                              capture_output=True, text=True, timeout=120)

    refused = cli("--pin", run_id)
    assert refused.returncode == 2 and "only an administrator can pin" in refused.stderr
    assert not store.get(run_id).pinned()
    assert cli("--pin", run_id, "--admin").returncode == 0 and store.get(run_id).pinned()
    _age(store, [run_id], 2 * 3600)
    store.submit([request(owner="session:new")], executor="local")
    assert store.prune(keep=1) == []  # the pinned run stays
    assert cli("--unpin", run_id, "--admin").returncode == 0 and not store.get(run_id).pinned()
    assert store.prune(keep=1) == [run_id]


def test_the_supervisor_kills_a_worker_whose_resident_memory_passes_its_cap(tmp_path, monkeypatch):
    """Where RLIMIT_AS cannot apply (a worker that sees a GPU: CUDA reserves address space far beyond what it uses),
    the supervisor watches the worker's resident memory and kills it over the cap, saying why."""
    import subprocess
    import sys

    import archs.training.executors.local as local

    monkeypatch.setattr(local, "WORKER_BASE_BYTES", 0)
    store = RunStore(tmp_path / "runs")
    run = store.submit([request()], executor="local")[0]
    hog = subprocess.Popen([sys.executable, "-c", "import time; x = b'x' * (200 << 20); print('ready', flush=True); "
                            "time.sleep(120)"], stdout=subprocess.PIPE, text=True)
    try:
        assert hog.stdout.readline().strip() == "ready"
        run.write_status(status="running", worker={"pid": hog.pid, "host": __import__("socket").gethostname(),
                                                   "start": None})
        supervisor = local._Supervisor(store.root, {"max_worker_memory": 50 << 20}, idle_seconds=1)
        supervisor.adopt()  # counted as a live worker of an earlier supervisor: bounded all the same
        assert run.id in supervisor.bounds
        supervisor.enforce(force=True)
        assert hog.wait(timeout=30) == -9
        supervisor.reap()
    finally:
        hog.kill()
    status = run.status()
    assert status["status"] == "failed" and status["killed"] is True
    assert status["error"].startswith("the run used 2") and "MiB of memory, over its cap of 50 MiB" in status["error"]
