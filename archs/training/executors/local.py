"""The local executor: every run in a worker process of its own, on this machine. Nothing to install.

Submitting writes the run into the run store and a file into its FIFO queue (``<runs>/.queue``), then
makes sure a *supervisor* is running for that runs folder: a small detached process (its own session,
so it outlives the web server that started it, and a Ctrl-C in the server's terminal) that

- starts queued runs in FIFO order, at most ``max_concurrent`` at a time, each in a worker process
  started with multiprocessing's ``spawn`` method (:mod:`archs.training.worker`), with
  ``cores // max_concurrent`` torch threads so concurrent workers do not oversubscribe the cores,
  and one GPU each (``CUDA_VISIBLE_DEVICES``) on a machine with GPUs;
- keeps one *spare* worker that has already imported torch, so a run starts without the 1-2 s import
  (only while a slot is free: a spare importing beside busy workers would take their cores);
- reaps its workers: one that exits without recording an end (a crash, a segfault, an out-of-memory
  kill) leaves its run ``failed`` with the signal or exit code, its metrics kept;
- adopts the runs of an earlier supervisor's workers still alive after a restart, and exits when it
  has had nothing to do for ``ARCHS_SUPERVISOR_IDLE`` seconds (default 60).

At most one supervisor serves a runs folder (an exclusive ``flock`` on ``.queue/supervisor.lock``).
The supervisor imports neither torch nor the network code: it only moves files and processes.
"""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from archs.training.executors.base import Executor
from archs.training.limits import Limits
from archs.training.store import Run, RunError, RunStore, read_json, process_alive, write_json_atomic

__all__ = ["LocalExecutor", "serve"]

LOCK = "supervisor.lock"
CONFIG = "config.json"
POLL_SECONDS = 0.05


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, store: RunStore | None = None, limits: Limits | None = None, *,
                 threads: int | None = None, spare: bool = True):
        super().__init__(store, limits)
        from archs.training.limits import gpu_count

        self.gpus = gpu_count()
        from archs.training.device import cpu_count  # here, not at the top: the supervisor imports no torch

        cores = cpu_count()
        self.threads = threads or max(1, cores // self.limits.max_concurrent)
        self.spare = spare
        self._write_config()
        if self.store.queued():  # a queue left by a stopped server (and its supervisor): resume it
            self.ensure_supervisor()

    def describe(self) -> dict:
        return {**super().describe(), "threads_per_run": self.threads, "gpus": self.gpus}

    def _write_config(self) -> None:
        self.store.queue_dir.mkdir(parents=True, exist_ok=True)
        config = {"max_concurrent": self.limits.max_concurrent, "threads": self.threads, "gpus": self.gpus,
                  "spare": self.spare}
        path = self.store.queue_dir / CONFIG
        if read_json(path) != config:
            write_json_atomic(path, config)

    def _start(self, run: Run, request) -> None:
        self.store.enqueue(run)
        self.ensure_supervisor()

    def ensure_supervisor(self) -> None:
        """Start the supervisor of this runs folder unless one is running."""
        if _supervisor_running(self.store):
            return
        log = open(self.store.queue_dir / "supervisor.log", "ab")
        try:
            subprocess.Popen([sys.executable, "-m", "archs.training.executors.local", str(self.store.root.resolve())],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                             cwd=os.getcwd(), env={**os.environ, "PYTHONPATH": _pythonpath()})
        finally:
            log.close()


def _pythonpath() -> str:
    """The worker must import this very package, wherever the caller found it."""
    here = str(Path(__file__).resolve().parents[3])
    parts = [here] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != here]
    return os.pathsep.join(parts)


def _supervisor_running(store: RunStore) -> bool:
    path = store.queue_dir / LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def describe_exit(code: int | None) -> str:
    """Words for a worker's exit code (negative: the signal that killed it)."""
    if code is None:
        return "the worker process vanished"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = {"SIGKILL": " (killed; out of memory is the usual cause)", "SIGSEGV": " (a segmentation fault)",
                "SIGABRT": " (aborted)", "SIGBUS": " (a bus error)"}.get(name, "")
        return f"the worker process was killed by {name}{hint}"
    return f"the worker process exited with status {code} without recording a result"


# ---------------------------------------------------------------------------------------------
# the supervisor


class _Supervisor:
    def __init__(self, root: Path, idle_seconds: float):
        self.store = RunStore(root)
        self.idle_seconds = idle_seconds
        self.context = multiprocessing.get_context("spawn")
        self.workers: dict[str, tuple] = {}  # run id -> (process, gpu slot)
        self.adopted: dict[str, dict] = {}   # run id -> worker identity, for workers of an earlier supervisor
        self.spare = None                    # (process, connection)
        self.config: dict = {}

    # ----- one pass
    def read_config(self) -> None:
        self.config = read_json(self.store.queue_dir / CONFIG) or {"max_concurrent": 1, "threads": 1, "gpus": 0}

    def adopt(self) -> None:
        """Count the live workers of an earlier supervisor against the limit; re-queue runs it had claimed
        but not started."""
        for run in self.store.runs():
            stored = run.stored_status()
            if stored.get("status") == "running" and process_alive(stored.get("worker")):
                self.adopted[run.id] = stored["worker"]

    def requeue_stale_claims(self, age: float = 60.0) -> None:
        """A run claimed long ago whose worker never recorded "running" (the launcher died between the
        two) goes back to the front of the queue."""
        for name in os.listdir(self.store.queue_dir):
            if not name.startswith("claimed-"):
                continue
            run_id = name[len("claimed-"):]
            path = self.store.queue_dir / name
            try:
                stale = time.time() - path.stat().st_mtime > age
            except FileNotFoundError:
                continue
            if stale and run_id not in self.workers and run_id not in self.adopted:
                try:
                    os.replace(path, self.store.queue_dir / f"{0:020d}-{run_id}")
                except FileNotFoundError:
                    pass

    def reap(self) -> None:
        for run_id, (process, _slot) in list(self.workers.items()):
            if process.is_alive():
                continue
            process.join()
            del self.workers[run_id]
            self.store.release_claim(run_id)
            try:
                run = self.store.get(run_id)
            except RunError:
                continue  # deleted meanwhile
            if run.stored_status().get("status") in ("queued", "running"):
                run.write_status(status="failed", error=describe_exit(process.exitcode), exit_code=process.exitcode,
                                 finished_at=time.time())
        for run_id, identity in list(self.adopted.items()):
            if not process_alive(identity):
                del self.adopted[run_id]

    def launch(self) -> None:
        limit = int(self.config.get("max_concurrent", 1))
        for run_id in self.store.queued():
            if len(self.workers) + len(self.adopted) >= limit:
                return
            try:
                claimed = self.store.claim(run_id)
            except RunError:  # deleted while queued
                claimed = False
            if not claimed:
                continue
            # the run leaves the queue now (FIFO is the order of this time); no worker writes its status yet
            self.store.get(run_id).write_status(dispatched_at=time.time())
            slot = self.free_gpu()
            cuda = str(slot) if slot is not None else None
            job = (str(self.store.root / run_id), int(self.config.get("threads", 1)), cuda)
            process = self.use_spare(job)
            if process is None:
                from archs.training import worker

                process = self.context.Process(target=worker.main, args=job, name=f"archs-run-{run_id}")
                process.start()
            self.workers[run_id] = (process, slot)

    def free_gpu(self) -> int | None:
        gpus = int(self.config.get("gpus", 0))
        if not gpus:
            return None
        used = {slot for _, slot in self.workers.values()}
        return next((g for g in range(gpus) if g not in used), None)

    # ----- the spare worker
    def use_spare(self, job):
        if self.spare is None:
            return None
        process, connection = self.spare
        self.spare = None
        if not process.is_alive():
            return None
        try:
            connection.send(job)
        except (OSError, EOFError):
            return None
        connection.close()
        return process

    def keep_spare(self) -> None:
        """A spare worker while the queue may soon need one; none when idle for long."""
        if not self.config.get("spare", True):
            return
        if self.spare is not None and not self.spare[0].is_alive():
            self.spare[0].join()
            self.spare = None
        if self.spare is None:
            from archs.training import worker

            parent, child = self.context.Pipe()
            process = self.context.Process(target=worker.spare_main, args=(child, int(self.config.get("threads", 1))),
                                           name="archs-spare-worker")
            process.start()
            child.close()
            self.spare = (process, parent)

    def drop_spare(self) -> None:
        if self.spare is not None:
            process, connection = self.spare
            try:
                connection.send(None)
            except (OSError, EOFError):
                pass
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
            self.spare = None

    # ----- the loop
    def serve(self) -> None:
        self.read_config()
        self.adopt()
        idle_since = time.monotonic()
        while True:
            self.read_config()
            self.reap()
            self.requeue_stale_claims()
            self.launch()
            if self.workers or self.adopted or self.store.queued():
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > self.idle_seconds:
                return
            if len(self.workers) + len(self.adopted) < int(self.config.get("max_concurrent", 1)):
                self.keep_spare()  # only with a slot free: a spare importing torch beside busy workers slows them
            time.sleep(POLL_SECONDS)


def serve(root: str | os.PathLike, idle_seconds: float | None = None) -> int:
    """Run the supervisor of a runs folder until it has been idle for ``idle_seconds``; 0 at once if
    another supervisor serves the folder."""
    store = RunStore(root)
    store.queue_dir.mkdir(parents=True, exist_ok=True)
    if idle_seconds is None:
        try:
            idle_seconds = float(os.environ.get("ARCHS_SUPERVISOR_IDLE", 60))
        except ValueError:
            idle_seconds = 60.0
    handle = open(store.queue_dir / LOCK, "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0
    supervisor = _Supervisor(store.root, idle_seconds)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        supervisor.serve()
    finally:
        supervisor.drop_spare()
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
    # a run queued between the last look and the unlock would wait for the next submit: look again
    if store.queued() and not _supervisor_running(store):
        return serve(root, idle_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1]))
