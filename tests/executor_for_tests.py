"""An executor written for the tests, and the example of a backend: each run in a thread of this process.

The whole of a backend is here: a subclass of :class:`~archs.training.executors.Executor` registered with
``@register``, that says where runs execute and implements the hooks it needs. ``_start`` hands each new run to
a thread; at most ``max_concurrent`` train at once, the rest wait (status ``queued``). Its log is kept in memory
(``_logs``), to show that hook; a real backend keeps it where every server process can read it. The base class
does the rest: limits, owners, stop (the store's flag, polled by ``execute_request``), delete, the queue, status
and wait. Runs die with the process: fine for tests, not for a server.
"""

from __future__ import annotations

import os
import threading
import time

from archs.training.executors import Executor, register
from archs.training.request import execute_request, worker_setup
from archs.training.store import Run, RunError, process_identity
from archs.training.stored import RunRecorder


@register
class ThreadExecutor(Executor):
    name = "thread"
    where = "threads of the web server's own process (tests only)"
    runs_here = True

    def __init__(self, store=None, limits=None):
        super().__init__(store, limits)
        self._slots = threading.Semaphore(self.limits.max_concurrent)
        self._lines: dict[str, list[str]] = {}

    def _submit_fields(self) -> dict:
        return {"relay": process_identity()}  # this process is responsible for the runs: they end with it

    def _start(self, run: Run, request) -> None:
        threading.Thread(target=self._work, args=(run, request), name=f"run-{run.id}", daemon=True).start()

    def _work(self, run: Run, request) -> None:
        with self._slots:  # waits here, queued, while others train
            if run.stop_request():  # stopped while it waited
                run.write_status(status="stopped", message="stopped while queued", finished_at=time.time())
                return
            self._say(run, f"starts in thread {threading.current_thread().name} of process {os.getpid()}")
            try:
                worker_setup()
                status = execute_request(request, RunRecorder(run), should_stop=run.stop_request, store=self.store,
                                         worker=process_identity())
            except RunError:  # deleted meanwhile
                return
            self._say(run, f"{status['status']}: {status.get('error') or status.get('message') or ''}")

    def _say(self, run: Run, text: str) -> None:
        self._lines.setdefault(run.id, []).append(f"{time.strftime('%H:%M:%S')} run {run.id} {text}")

    def _logs(self, run: Run) -> str:
        return "\n".join(self._lines.get(run.id, []))
