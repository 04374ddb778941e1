"""The executor interface: submit a run request, read its status, stop it, see the queue.

An executor holds no state a page needs: it writes every run into the run store
(:class:`~archs.training.store.RunStore`) and pages read the store. Two backends implement it:
:class:`~archs.training.executors.local.LocalExecutor` (a worker process per run, the default) and
:class:`~archs.training.executors.ray.RayExecutor` (tasks on a Ray cluster); :func:`get_executor`
picks one from ``ARCHS_EXECUTOR``.
"""

from __future__ import annotations

import os
import threading
import time
from abc import ABC, abstractmethod

from archs.training.config import ACTIVE_STATUSES
from archs.training.limits import Limits
from archs.training.store import Run, RunError, RunStore

__all__ = ["EXECUTORS", "Executor", "get_executor"]

EXECUTORS = ("local", "ray")


class Executor(ABC):
    """Submit, status, stop, queue. ``owner``, where given, must match the run's owner to stop or delete it
    (``None`` acts for everyone: the command line, an administrator)."""

    name = "?"

    def __init__(self, store: RunStore | None = None, limits: Limits | None = None):
        self.store = store if store is not None else RunStore()
        self.limits = limits if limits is not None else Limits.from_env()

    # ----- the interface
    def submit(self, request) -> str:
        """Queue a run and return its id at once. Raises LimitError over a server limit and DataError
        when the data cannot be read; in both cases nothing is created."""
        request = self.limits.apply(request, self.store)
        if request.kind == "train":
            request.data.check()
        run = self.store.create(request, executor=self.name)
        self._start(run, request)
        if self.limits.max_runs_kept:
            self.store.prune(self.limits.max_runs_kept)
        return run.id

    def status(self, run_id: str) -> dict:
        return self.store.get(run_id).status()

    def stop(self, run_id: str, owner: str | None = None) -> bool:
        """Ask a run to stop: a queued run leaves the queue as ``stopped``; a running one ends within about
        a second with its weights so far. False if the run has already ended."""
        run = self.store.get(run_id)
        self.store.check_owner(run, owner, "stop")
        if self._unqueue(run):
            run.write_status(status="stopped", finished_at=time.time(), message="stopped while queued")
            return True
        if run.status()["status"] not in ACTIVE_STATUSES:
            return False
        self._stop_running(run)
        return True

    def queue(self) -> list[str]:
        """Ids of the runs waiting to start, first in line first."""
        return self.store.queued()

    def active(self) -> list[str]:
        return self.store.active()

    def delete(self, run_id: str, owner: str | None = None, timeout: float = 30.0) -> None:
        """Stop the run if it is active, wait for it to end, and delete its folder."""
        self.store.check_owner(self.store.get(run_id), owner, "delete")
        if self.stop(run_id, owner):
            self.wait(run_id, timeout=timeout)
        self.store.delete(run_id, owner)

    def wait(self, run_id: str | list[str] | None = None, timeout: float | None = None, poll: float = 0.1) -> bool:
        """Wait until the run (or these runs, or every active run) has ended; False on timeout."""
        ids = [run_id] if isinstance(run_id, str) else list(run_id) if run_id is not None else self.active()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            pending = []
            for i in ids:
                try:
                    if self.store.get(i).status()["status"] in ACTIVE_STATUSES:
                        pending.append(i)
                except RunError:
                    pass
            if not pending:
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False
            ids = pending
            time.sleep(poll)

    def describe(self) -> dict:
        """What a page shows about where runs execute."""
        return {"executor": self.name, "max_concurrent": self.limits.max_concurrent, "runs": str(self.store.root)}

    # ----- what a backend provides
    @abstractmethod
    def _start(self, run: Run, request) -> None:
        """Hand a newly created run (status queued) to the backend."""

    def _unqueue(self, run: Run) -> bool:
        """Take a run that has not started out of the backend's queue; False if it has started or ended."""
        return self.store.unqueue(run.id)

    def _stop_running(self, run: Run) -> None:
        run.request_stop()


_EXECUTORS: dict = {}
_EXECUTORS_LOCK = threading.Lock()


def get_executor(kind: str | None = None, runs_dir: str | os.PathLike | None = None) -> Executor:
    """The executor ``kind`` (default ``$ARCHS_EXECUTOR``, else ``local``) for a runs folder (default
    ``$ARCHS_RUNS_DIR`` or ``./runs``), shared by everything in this process that asks for the same pair,
    with the limits of the environment at the time of the first call."""
    kind = (kind or os.environ.get("ARCHS_EXECUTOR") or "local").strip().lower()
    if kind not in EXECUTORS:
        from archs.training.config import ConfigError

        raise ConfigError(f"executor: must be one of {', '.join(EXECUTORS)}, got {kind!r} (ARCHS_EXECUTOR)",
                          "executor")
    store = RunStore(runs_dir)
    key = (kind, str(store.root.resolve()))
    with _EXECUTORS_LOCK:
        executor = _EXECUTORS.get(key)
        if executor is None:
            if kind == "ray":
                from archs.training.executors.ray import RayExecutor as cls
            else:
                from archs.training.executors.local import LocalExecutor as cls
            executor = _EXECUTORS[key] = cls(store)
    return executor
