"""The Ray executor on a local Ray instance (``local_ray``, tests/conftest.py): the same requests as the local
executor, their records relayed to the run store while they run, their output to the run's log, and stop. (What every
executor does is tests/test_executor_contract.py.)"""

from __future__ import annotations

import subprocess
import sys
import time
import warnings
from dataclasses import replace

import pytest

ray = pytest.importorskip("ray", reason="the Ray executor's optional requirement (requirements-ray.txt)")

from test_runs import ME, long_request, request, step_of, wait_until  # noqa: E402

from archs.training import RunStore  # noqa: E402
from archs.training.executors.ray import ChannelRecorder, RayExecutor, RunChannel  # noqa: E402
from archs.training.limits import Limits  # noqa: E402
from archs.training.stored import model_of  # noqa: E402

# in one xdist process (`make test`: --dist loadgroup), with tests/test_executor_contract.py: one Ray cluster at a
# time on the machine, started once for both (``local_ray``, tests/conftest.py)
pytestmark = pytest.mark.xdist_group("ray")  # tests/conftest.py: RAY_GROUP


@pytest.fixture
def ray_executor(local_ray, tmp_path):
    """RayExecutor(limits, cpus_per_run) over a fresh store; closed (its relay stopped) after the test."""
    made = []

    def make(max_concurrent: int, cpus_per_run: int) -> RayExecutor:
        made.append(RayExecutor(RunStore(tmp_path / "runs"), Limits(max_concurrent=max_concurrent),
                                cpus_per_run=cpus_per_run))
        return made[-1]

    yield make
    for executor in made:
        executor.close()
        assert not executor._relay.is_alive()


def test_two_runs_on_ray_one_stopped_midway(ray_executor):
    executor = ray_executor(max_concurrent=2, cpus_per_run=1)
    assert executor.describe()["executor"] == "ray" and executor.describe()["cpus_per_run"] == 1
    done = executor.submit(request(label="completes"))
    stopped = executor.submit(long_request(label="stopped midway"))
    wait_until(lambda: step_of(executor.store, stopped) >= 2, what="the long run's first records to be relayed")
    assert executor.status(stopped)["status"] == "running"  # records arrive while it runs, not at the end
    # stopped from another process (a shell on the server): the store's flag reaches the task through the relay
    out = subprocess.run([sys.executable, "-m", "archs", "runs", "--stop", stopped, "--runs-dir",
                          str(executor.store.root), "--owner", "session:me"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.startswith("stopping"), out.stderr
    assert executor.wait(timeout=120)
    store = executor.store
    a, b = store.get(done), store.get(stopped)
    assert a.status()["status"] == "completed" and a.status()["result"]["steps"] == 4
    assert [r["step"] for r in a.metrics("step")] == [2, 4] and a.has_weights()
    assert b.status()["status"] == "stopped", (b.status().get("error"), b.status().get("stored_status"))
    assert b.status()["message"] == "stopped by session:me"
    assert 2 <= b.status()["result"]["steps"] < 500 * 8
    assert len(b.metrics("step")) >= 2 and b.has_weights()
    assert model_of(a) is not None
    assert len(list(a.path.glob("events.out.tfevents.*"))) == 1  # relayed records go to one TensorBoard file
    assert executor.relay_error is None


def test_a_queued_ray_run_is_cancelled_and_a_failing_one_recorded(ray_executor):
    executor = ray_executor(max_concurrent=1, cpus_per_run=2)
    first = executor.submit(long_request())
    waiting = executor.submit(request())  # needs the 2 CPUs the first one holds
    time.sleep(0.5)
    assert executor.queue() == [waiting] or executor.queue() == [first, waiting]
    assert executor.stop(waiting, owner="session:me")
    executor.stop(first, owner="session:me")
    bug = executor.submit(request(spec=replace(request().spec, name="fault-raise")))
    assert executor.wait(timeout=120)
    assert executor.status(waiting)["status"] == "stopped"
    assert executor.status(bug)["status"] == "failed"
    assert executor.status(bug)["error"] == "RuntimeError: boom: a bug inside the model at step 3"
    wait_until(lambda: f"run {bug} failed: RuntimeError: boom" in executor.logs(bug, owner=ME),
               what="the task's last words in the run's log")


def test_a_ray_task_past_its_time_that_ignores_the_stop_is_killed_and_one_over_its_memory_cap_fails(
        ray_executor, monkeypatch):
    """The local supervisor's bounds, kept on Ray (issue 18): the deaf network (tests/faults.py) ignores its stop
    flag from step 2, so only a forced cancel ends its task; the hog asks for 64 GiB under the run's 2 GiB budget."""
    monkeypatch.setenv("ARCHS_STOP_GRACE_SECONDS", "1")
    executor = ray_executor(max_concurrent=2, cpus_per_run=1)
    deaf = executor.submit(request(spec=replace(request().spec, name="fault-deaf"), max_seconds=10,
                                   train=replace(request().train, epochs=50, max_steps=None, log_every=1,
                                                 grad_every=0)))
    hog = executor.submit(request(spec=replace(request().spec, name="fault-hog"), max_memory_bytes=2 << 30))
    assert executor.wait(timeout=120)  # before: the deaf task ran for ever, the hog's allocation was granted
    status = executor.status(deaf)
    assert status["status"] == "stopped" and status["killed"] is True
    assert status["message"].startswith("stopped after 10 s, this server's limit per run (ARCHS_MAX_RUN_SECONDS); "
                                        "its Ray task did not stop within 1 s and was cancelled")
    assert not executor.store.get(deaf).has_weights()
    status = executor.status(hog)
    assert status["status"] == "failed"
    assert status["error"].startswith("the run needed more memory than its cap of 2.0"), status["error"]
    wait_until(lambda: "memory cap 2.0 GiB" in executor.logs(hog, owner=ME), what="the cap in the hog's log")
    assert executor.relay_error is None


def _print_and_warn(channel) -> None:
    """A Ray task that prints and warns while its output goes to a run's log."""
    recorder = ChannelRecorder(channel, "r")
    with recorder.output_to_log():
        print("printed")
        warnings.warn("careful", stacklevel=1)
    recorder.flush()


def test_a_task_s_prints_and_warnings_come_back_as_its_log(local_ray):
    channel = ray.remote(RunChannel).remote()
    ray.get(ray.remote(_print_and_warn).remote(channel))
    text = "".join(payload for kind, payload in ray.get(channel.drain.remote())["r"] if kind == "log")
    assert "printed\n" in text and "UserWarning: careful" in text
