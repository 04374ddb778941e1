"""A worker: carries out one run, then exits (a local worker process) or returns (a Ray task).

Started by the local executor's supervisor with multiprocessing's ``spawn`` method (a fresh interpreter:
nothing of the parent's torch state, threads or locks is inherited). It reads the run's request from the
store, records into the store, and stops when the store's stop flag is set (so the run can be stopped from
any process on the machine) or when the run's time limit passes. It writes its own identity with the
``running`` status, so readers can tell when it has died. Its output (its start and end, prints, warnings, a
crash's last words) goes to the run's ``worker.log``; a Ray task sends the same lines back to it
(:mod:`archs.training.executors.ray`). :func:`carry_out` is what both do.

Nothing heavy is imported at module level: a spare worker imports torch while it waits for a run
(:func:`spare_main`), and a run's thread count and visible GPU are set before any work.
"""

from __future__ import annotations

import faulthandler
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

from archs.training.request import Recorder, RunRequest, execute_request, worker_setup
from archs.training.store import RunStore, process_identity

LOG_NAME = "worker.log"


def configure(threads: int, cuda_devices: str | None) -> None:
    """Threads and GPU of this process, before its first torch computation."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    if cuda_devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = cuda_devices
    import torch  # heavy: after the thread settings above

    torch.set_num_threads(threads)


def _log_to(path) -> None:
    """This process's stdout and stderr (file descriptors 1 and 2, so native code's output too) to ``path``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def say(text: str) -> None:
    """A line of the run's log (this worker's stdout), stamped with the time."""
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}", flush=True)


def carry_out(run_id: str, recorder: Recorder, read_request: Callable[[], RunRequest], **options) -> dict:
    """A worker's whole job, wherever it runs: the operator's setup module, the request, :func:`execute_request`
    (``options`` go to it), with the run's start and end said on stdout (the run's log)."""
    say(f"run {run_id} starts in process {os.getpid()} on {socket.gethostname()}")
    try:
        worker_setup()
        request = read_request()
    except (ValueError, ImportError) as error:  # a request that cannot be read, or the operator's setup
        status = recorder.write_status(status="failed", error=f"cannot start the run: {error}",
                                       worker=process_identity())
    else:
        status = execute_request(request, recorder, worker=process_identity(), **options)
    reason = status.get("error") or status.get("message")
    say(f"run {run_id} {status.get('status')}" + (f": {reason}" if reason else ""))
    return status


def run_in_this_process(root: str, run_id: str) -> dict:
    """Carry out the stored run ``run_id`` here (the worker's whole job, also usable without a worker)."""
    store = RunStore(root)
    run = store.get(run_id)
    return carry_out(run_id, run, lambda: RunRequest.from_run(run), should_stop=run.stop_request, store=store)


def main(root: str, run_id: str, threads: int, cuda_devices: str | None = None) -> None:
    """Entry point of a worker started for one run."""
    _log_to(Path(root) / run_id / LOG_NAME)
    faulthandler.enable()  # a crash in native code leaves its Python traceback in the log
    configure(threads, cuda_devices)
    run_in_this_process(root, run_id)


def spare_main(connection, threads: int) -> None:
    """Entry point of a spare worker: import torch and the library now, then wait for a run (or None)."""
    configure(threads, None)
    import sklearn.datasets  # noqa: F401  (the offline default data set)
    import sklearn.model_selection  # noqa: F401

    import archs.builder  # noqa: F401  (heavy, on purpose: the imports that cost a second or two)
    import archs.training.loop  # noqa: F401

    try:
        job = connection.recv()
    except (EOFError, OSError):
        return
    if job is None:
        return
    main(*job)
