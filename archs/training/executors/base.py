"""The executor interface: submit run requests, read their status and logs, stop and delete them, see the queue.

An executor holds no state a page needs: it writes every run into the run store
(:class:`~archs.training.store.RunStore`) and pages read the store. The public methods here are the whole
interface, final and the same for every backend; a backend implements only the hooks at the bottom
(``_start``, and optionally ``_submit_fields``, ``_describe``, ``_logs``, ``_close``) and registers its class
with :func:`register`. Stopping is a flag in the run store, so it reaches the process responsible for the run
(a local worker, the server relaying a Ray task) whichever process asks.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import final

from archs.training.config import ACTIVE_STATUSES
from archs.training.limits import Limits
from archs.training.store import Run, RunError, RunStore
from archs.training.store.files import UnsafeFile, read_tail
from archs.training.worker import LOG_NAME

__all__ = ["EXECUTORS", "Executor", "register"]

LOG_TAIL_BYTES = 256 * 1024  # of a run's log read back: its last lines are what anyone needs


class Executor(ABC):
    """Submit, status, logs, stop, delete, queue. Every run has an owner; only its owner, or an administrator
    (``admin=True``: the command line's ``--admin``; or an owner listed in ``ARCHS_ADMINS``), may stop or
    delete it, or read its log (a log can name the server's paths)."""

    #: the name ``--executor`` and ``ARCHS_EXECUTOR`` take, and the run store records
    name = "?"
    #: where runs execute, completing "Runs execute in ..." on the Train and Runs pages
    where = "?"
    #: runs use this machine's devices: a page checks the chosen device exists here before submitting
    runs_here = False
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
        from archs.training.data import check_data  # heavy: torch (the `archs runs` command submits nothing)

        prepared = [self.limits.prepare(request) for request in requests]
        for data in dict.fromkeys(request.data for request in prepared if request.kind == "train"):  # each once
            check_data(data)
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
        """Whether ``owner`` may stop or delete ``run``, or read its log."""
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
    def logs(self, run_id: str, owner: str | None = None, admin: bool = False, lines: int = 200) -> str:
        """The last ``lines`` lines of what the run's worker printed (its start and end, warnings, a crash's last
        words); "" when it printed nothing. For the run's owner or an administrator only: a log can name the
        server's paths."""
        run = self.store.get(run_id)
        self.store.check_owner(run, owner, "read the log of", admin or self.limits.is_admin(owner))
        return "\n".join(self._logs(run).splitlines()[-lines:])

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

    @final
    def describe(self) -> dict:
        """What a page shows about where runs execute: ``executor``, ``where``, ``max_concurrent``, ``runs``
        (the store's folder), and what the backend adds."""
        return {"executor": self.name, "where": self.where, "max_concurrent": self.limits.max_concurrent,
                "runs": str(self.store.root), **self._describe()}

    @final
    def close(self) -> None:
        """Let go of what the backend holds in this process (Ray's relay thread); runs go on where they can."""
        self._close()

    # ----- what a backend provides
    @abstractmethod
    def _start(self, run: Run, request) -> None:
        """Hand a newly created run (status queued) to the backend."""

    def _submit_fields(self) -> dict:
        """Status fields recorded with each run this executor creates (in the creating transaction)."""
        return {}

    def _describe(self) -> dict:
        """What :meth:`describe` adds for this backend (its settings)."""
        return {}

    def _logs(self, run: Run) -> str:
        """The run's log: by default the ``worker.log`` in its folder, where the built-in backends write it."""
        try:  # never through a link planted in the run's folder (see archs.training.store.files)
            return read_tail(run.path, LOG_NAME, LOG_TAIL_BYTES).decode("utf-8", errors="replace")
        except UnsafeFile as error:
            return f"(the log cannot be read safely: {error})"

    def _close(self) -> None:  # noqa: B027 (a hook with nothing to do by default, not an abstract one)
        """Release what :meth:`close` lets go of."""


#: name -> executor class, filled by :func:`register`; everything that lists or picks an executor reads it
EXECUTORS: dict[str, type[Executor]] = {}


def register(cls: type[Executor]) -> type[Executor]:
    """Make an executor class known by its ``name`` (use it as a class decorator). A name taken by another class
    is refused, and so is a class that overrides a public (final) method instead of implementing the hooks."""
    if not (isinstance(cls, type) and issubclass(cls, Executor)) or cls.name == "?":
        raise TypeError(f"register: {cls!r} is not an Executor subclass with a name of its own")
    overridden = [name for name, method in vars(Executor).items()
                  if getattr(method, "__final__", False) and getattr(cls, name) is not method]
    if overridden:
        raise TypeError(f"register: {cls.__qualname__} overrides {', '.join(overridden)}; a backend implements the "
                        "hooks (_start, _submit_fields, _describe, _logs, _close) instead")
    if EXECUTORS.setdefault(cls.name, cls) is not cls:
        raise ValueError(f"register: the executor name {cls.name!r} is taken by {EXECUTORS[cls.name].__qualname__}")
    return cls
