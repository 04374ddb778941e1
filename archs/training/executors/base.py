"""The executor interface: submit run requests, read their status, stop and delete them, see the queue.

An executor holds no state a page needs: it writes every run into the run store
(:class:`~archs.training.store.RunStore`) and pages read the store. The public methods here are the whole
interface and are the same for every backend; a backend implements only the hooks at the bottom
(``_start``, and optionally ``_submit_fields``). Stopping is a flag in the run store, so it reaches the
process responsible for the run (a local worker, the server relaying a Ray task) whichever process asks.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import final

from archs.training.config import ACTIVE_STATUSES
from archs.training.limits import Limits
from archs.training.store import Run, RunError, RunStore

__all__ = ["Executor"]


class Executor(ABC):
    """Submit, status, stop, delete, queue. Every run has an owner; only its owner, or an administrator
    (``admin=True``: the command line's ``--admin``; or an owner listed in ``ARCHS_ADMINS``), may stop or
    delete it."""

    name = "?"
    #: the backend's queue is the run store's FIFO queue (the local executor); otherwise the backend keeps its own
    queue_in_store = False

    def __init__(self, store: RunStore | None = None, limits: Limits | None = None):
        self.store = store if store is not None else RunStore()
        self.limits = limits if limits is not None else Limits.from_env()

    # ----- the interface
    @final
    def submit(self, request) -> str:
        """Queue a run and return its id at once. Raises LimitError over a server limit and DataError when
        the data cannot be read; in both cases nothing is created."""
        return self.submit_many([request])[0]

    @final
    def submit_many(self, requests: list) -> list[str]:
        """Queue several runs together (a sweep, an experiment): all of them, or none, and the limits count
        them together. Returns their ids in order."""
        if not all(request.owner for request in requests):
            raise RunError("a run needs an owner (who may stop and delete it)")
        prepared = [self.limits.prepare(request) for request in requests]
        checked = set()
        for request in prepared:
            if request.kind == "train" and request.data not in checked:
                request.data.check()
                checked.add(request.data)
        runs = self.store.submit(prepared, executor=self.name, queue=self.queue_in_store, admit=self.limits.admit,
                                 keep=self.limits.max_runs_kept, **self._submit_fields())
        for run, request in zip(runs, prepared):
            self._start(run, request)
        return [run.id for run in runs]

    @final
    def status(self, run_id: str) -> dict:
        return self.store.get(run_id).status()

    @final
    def may_act(self, run: Run, owner: str | None, admin: bool = False) -> bool:
        """Whether ``owner`` may stop or delete ``run``."""
        return admin or self.limits.is_admin(owner) or (owner is not None and run.owner == owner)

    @final
    def stop(self, run_id: str, owner: str | None = None, admin: bool = False) -> bool:
        """Ask a run to stop: a run still waiting in the store's queue leaves it as ``stopped``; any other
        active run ends within about a second (at its next block of compute), with its weights so far.
        False if the run has already ended."""
        run = self.store.get(run_id)
        self.store.check_owner(run, owner, "stop", admin or self.limits.is_admin(owner))
        if self.store.unqueue(run_id):
            return True
        if run.status()["status"] not in ACTIVE_STATUSES:
            return False
        run.request_stop(f"stopped by {owner or 'an administrator'}")
        return True

    @final
    def delete(self, run_id: str, owner: str | None = None, admin: bool = False, timeout: float = 30.0) -> None:
        """Stop the run if it is active, wait for it to end, and delete it."""
        admin = admin or self.limits.is_admin(owner)
        self.store.check_owner(self.store.get(run_id), owner, "delete", admin)
        if self.stop(run_id, owner, admin):
            self.wait(run_id, timeout=timeout)
        self.store.delete(run_id, owner, admin)

    @final
    def queue(self) -> list[str]:
        """Ids of this executor's runs waiting to start, first in line first."""
        return self.store.waiting(self.name)

    @final
    def active(self) -> list[str]:
        """Ids of every run that is running or waiting, running ones first."""
        return self.store.active()

    @final
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
        """What a page shows about where runs execute (a backend may add to it)."""
        return {"executor": self.name, "max_concurrent": self.limits.max_concurrent, "runs": str(self.store.root)}

    # ----- what a backend provides
    @abstractmethod
    def _start(self, run: Run, request) -> None:
        """Hand a newly created run (status queued) to the backend."""

    def _submit_fields(self) -> dict:
        """Status fields recorded with each run this executor creates (in the creating transaction)."""
        return {}
