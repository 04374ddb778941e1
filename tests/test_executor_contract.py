"""One contract, every registered executor: local worker processes, Ray tasks (a local Ray instance, started once
for this module and tests/test_ray.py) and the tests' own thread executor (tests/executor_for_tests.py, the
example of a new backend).

Each executor is built as the registry builds it (``cls(store, limits)``) and must: run a tiny request to the end
with its records, weights and a log; stop a slow run within a second or so; keep a second run queued while the
first holds the one slot, and stop it there; refuse a request over a limit; keep another owner from stopping,
deleting or reading a run; and delete a run.
"""

from __future__ import annotations

import executor_for_tests  # noqa: F401  (registers the "thread" executor)
import pytest
from test_runs import ME, TIMEOUT, long_request, request, step_of, wait_until

from archs.training import RunStore
from archs.training.executors import EXECUTORS, register
from archs.training.limits import LimitError, Limits
from archs.training.store import RunError

OTHER = "session:someone-else"


# in one xdist process (`make test`: --dist loadgroup), with tests/test_ray.py: one Ray cluster for both
# (``local_ray``, tests/conftest.py), never two at once
pytestmark = pytest.mark.xdist_group("ray")  # tests/conftest.py: RAY_GROUP


@pytest.fixture(params=sorted(EXECUTORS))
def make(request, tmp_path):
    """make(**limits): the executor under test over a fresh store, one run at a time unless the limits say
    otherwise; its runs stopped and its backend closed after the test."""
    if request.param == "ray":
        request.getfixturevalue("local_ray")
    made = []

    def make(**limits):
        made.append(EXECUTORS[request.param](RunStore(tmp_path / "runs"), Limits(**{"max_concurrent": 1, **limits})))
        return made[-1]

    yield make
    for executor in made:
        for run_id in executor.active():
            executor.stop(run_id, admin=True)
        assert executor.wait(timeout=60)
        executor.close()


def test_a_tiny_run_completes_with_its_records_and_a_log_for_its_owner(make):
    executor = make()
    described = executor.describe()
    assert described["executor"] == executor.name and described["where"] and described["max_concurrent"] == 1
    run_id = executor.submit(request())
    assert executor.wait(run_id, timeout=TIMEOUT)
    status = executor.status(run_id)
    assert status["status"] == "completed" and status["result"]["steps"] == 4, status
    run = executor.store.get(run_id)
    assert [r["step"] for r in run.metrics("step")] == [2, 4] and run.has_weights()
    assert f"run {run_id} starts" in executor.logs(run_id, owner=ME)
    assert executor.logs(run_id, admin=True) == executor.logs(run_id, owner=ME)
    for action in (executor.logs, executor.stop, executor.delete):
        with pytest.raises(RunError, match="started by someone else: only they can"):
            action(run_id, owner=OTHER)
    assert not executor.stop(run_id, owner=ME)  # ended already
    executor.delete(run_id, owner=ME)
    with pytest.raises(RunError, match="no run"):
        executor.status(run_id)
    assert executor.active() == [] and executor.queue() == []


def test_a_slow_run_stops_on_stop_and_the_one_queued_behind_it_too(make):
    executor = make(max_queued_per_owner=1)
    slow = executor.submit(long_request())
    wait_until(lambda: step_of(executor.store, slow) >= 2, what="the slow run's first steps")
    queued = executor.submit(request(label="queued"))  # the one slot is taken: it waits
    assert executor.queue() == [queued] and executor.active() == [slow, queued]
    assert executor.status(queued)["status"] == "queued"
    with pytest.raises(LimitError, match="you already have 1 run waiting"):
        executor.submit(request())
    with pytest.raises(RunError, match="started by someone else: only they can stop it"):
        executor.stop(slow, owner=OTHER)
    assert executor.stop(queued, owner=ME) and executor.stop(slow, owner=ME)
    assert executor.wait(timeout=TIMEOUT)
    stopped = executor.status(slow)
    assert stopped["status"] == "stopped" and stopped["message"] == f"stopped by {ME}"
    assert 2 <= stopped["result"]["steps"] < 500 * 8 and executor.store.get(slow).has_weights()
    assert executor.status(queued)["status"] == "stopped" and not executor.store.get(queued).metrics()
    assert executor.active() == [] and executor.queue() == []


def test_the_registry_refuses_a_taken_name_and_an_overridden_public_method():
    base = EXECUTORS["thread"]
    with pytest.raises(ValueError, match="the executor name 'thread' is taken by ThreadExecutor"):
        register(type("Again", (base,), {}))
    with pytest.raises(TypeError, match="overrides describe; a backend implements the hooks"):
        register(type("Loud", (base,), {"name": "loud", "describe": lambda self: {}}))
    assert register(base) is base and "loud" not in EXECUTORS  # registering the same class again is harmless
