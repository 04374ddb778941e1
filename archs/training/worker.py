"""A worker process: carries out one run of the run store, then exits.

Started by the local executor's supervisor with multiprocessing's ``spawn`` method (a fresh
interpreter: nothing of the parent's torch state, threads or locks is inherited). It reads the run's
request from its folder, records through the folder itself, and watches for the folder's ``stop``
file, so the run can be stopped from any process on the machine. It writes its own identity into the
status, so readers can tell when it has died.

Nothing heavy is imported at module level: a spare worker imports torch while it waits for a run
(:func:`spare_main`), and a run's thread count and visible GPU are set before any work.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

STOP_POLL_SECONDS = 0.1


def configure(threads: int, cuda_devices: str | None) -> None:
    """Threads and GPU of this process, before its first torch computation."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    if cuda_devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = cuda_devices
    import torch

    torch.set_num_threads(threads)


def watch_stop(run, stop_event: threading.Event, done: threading.Event) -> threading.Thread:
    """A thread that sets ``stop_event`` once the run's ``stop`` file appears."""

    def poll() -> None:
        while not done.wait(STOP_POLL_SECONDS):
            if run.stop_requested():
                stop_event.set()
                return

    thread = threading.Thread(target=poll, name="archs-stop-watch", daemon=True)
    thread.start()
    return thread


def run_in_this_process(run_dir: str) -> dict:
    """Carry out the run in ``run_dir`` here (the worker's whole job, also usable without a worker)."""
    from archs.training.request import execute_request
    from archs.training.store import Run, RunStore, process_identity

    run = Run(Path(run_dir))
    store = RunStore(run.path.parent)
    stop_event, done = threading.Event(), threading.Event()
    if run.stop_requested():
        stop_event.set()
    watch_stop(run, stop_event, done)
    try:
        request = run.request()
    except ValueError as error:  # a run folder someone edited by hand
        store.release_claim(run.id)
        return run.write_status(status="failed", error=f"cannot read the run's request: {error}")
    try:
        return execute_request(request, _ReleasingRecorder(run, store), stop_event=stop_event,
                               worker=process_identity())
    finally:
        done.set()


class _ReleasingRecorder:
    """The run folder as recorder; the queue's claim on the run is released once it records "running"."""

    def __init__(self, run, store):
        self._run, self._store = run, store

    def write_status(self, **fields):
        data = self._run.write_status(**fields)
        if fields.get("status") == "running":
            self._store.release_claim(self._run.id)
        return data

    def __getattr__(self, name):
        return getattr(self._run, name)


def main(run_dir: str, threads: int, cuda_devices: str | None = None) -> None:
    """Entry point of a worker started for one run."""
    configure(threads, cuda_devices)
    run_in_this_process(run_dir)


def spare_main(connection, threads: int) -> None:
    """Entry point of a spare worker: import torch and the library now, then wait for a run (or None)."""
    configure(threads, None)
    import archs.builder  # noqa: F401  (the imports that cost a second or two)
    import archs.training.loop  # noqa: F401
    import sklearn.datasets  # noqa: F401  (the offline default data set)
    import sklearn.model_selection  # noqa: F401

    try:
        job = connection.recv()
    except (EOFError, OSError):
        return
    if job is None:
        return
    run_dir, threads, cuda_devices = job
    configure(threads, cuda_devices)
    run_in_this_process(run_dir)
