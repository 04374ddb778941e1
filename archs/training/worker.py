"""A worker: carries out one run, then exits (a local worker process) or returns (a Ray task).

Started by the local executor's supervisor: forked from its fork server, a process that has only imported
:data:`PRELOAD` (no computation, no CUDA), or with multiprocessing's ``spawn`` method (a fresh interpreter). Either
way nothing of the supervisor's state, threads or locks is inherited. It reads the run's request from the
store, records into the store, and stops when the store's stop flag is set (so the run can be stopped from
any process on the machine) or when the run's time limit passes. It writes its own identity with the
``running`` status, so readers can tell when it has died. Its output (its start and end, prints, warnings, a
crash's last words) goes to the run's ``worker.log``; a Ray task sends the same lines back to it
(:mod:`archs.training.executors.ray`). :func:`carry_out` is what both do.

Nothing heavy is imported at module level (the supervisor imports this module): the fork server imports
:data:`PRELOAD`, a spawned spare worker imports torch while it waits for a run (:func:`spare_main`), and a run's
thread count and visible GPU are set before any work.
"""

from __future__ import annotations

import faulthandler
import importlib
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

from archs.training.request import Recorder, RunRequest, execute_request, worker_setup
from archs.training.store import RunStore, process_identity
from archs.training.store.files import append_fd
from archs.training.stored import RunRecorder

LOG_NAME = "worker.log"

# What a worker needs before its first run, imported once by the supervisor's fork server: torch (3-4 s on a 2-core
# server), torch._dynamo (2-3 s more: an optimizer's first param group imports it), the memory tracker of a measured
# cost, and the library's network, measurement and training code.
PRELOAD = ("torch", "torch._dynamo", "torch.distributed._tools.mem_tracker", "torchinfo", "archs.builder",
           "archs.cost", "archs.health", "archs.inspect", "archs.training.data", "archs.training.loop")


# A worker's scheduling priority (nice): below the web server's, so one person's measurement or run that takes every
# core still leaves the pages answering everyone else (issue 18: at the default 0, another session's Build page did
# not appear while a ResNet-50 gradient measurement at batch 64 ran). Alone on the machine it runs as fast as before.
WORKER_NICENESS = 10


def lower_priority() -> None:
    """This process (and what it starts) at :data:`WORKER_NICENESS`, never above where it is."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, max(os.getpriority(os.PRIO_PROCESS, 0), WORKER_NICENESS))
    except (AttributeError, OSError):  # not on this platform: the pages then share the cores evenly with runs
        pass


def configure(threads: int, cuda_devices: str | None) -> None:
    """Threads, GPU and priority of this process, before its first torch computation."""
    lower_priority()
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    if cuda_devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = cuda_devices
    import torch  # heavy: after the thread settings above

    torch.set_num_threads(threads)


def _log_to(path) -> None:
    """This process's stdout and stderr (file descriptors 1 and 2, so native code's output too) to ``path``
    (``0600``, in a run folder this server's processes made; never through a link: see
    :mod:`archs.training.store.files`)."""
    try:
        fd = append_fd(path.parent, path.name)
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


def run_in_this_process(root: str, run_id: str, max_memory: int | None = None) -> dict:
    """Carry out the stored run ``run_id`` here (the worker's whole job, also usable without a worker);
    ``max_memory``: the cap this process runs under, named in the error of a run that fails for want of memory."""
    store = RunStore(root)
    run = store.get(run_id)
    recorder = CappedRecorder(RunRecorder(run), max_memory) if max_memory else RunRecorder(run)
    return carry_out(run_id, recorder, lambda: RunRequest.from_run(run), should_stop=run.stop_request, store=store)


def limit_memory(max_bytes: int | None, cuda_devices: str | None) -> int | None:
    """Cap this process's address space (``RLIMIT_AS``, enforced by the OS) at what it maps now (torch and the
    library loaded) plus ``max_bytes``; an allocation past it fails in this process, never in the server. Not
    where a GPU is visible: CUDA reserves address space far beyond what it uses (the supervisor watches such a
    worker's resident memory instead). Returns the limit set, or None."""
    if not max_bytes or cuda_devices:
        return None
    try:
        import resource

        with open("/proc/self/statm", "rb") as handle:
            mapped = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        limit = mapped + int(max_bytes)
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        return limit
    except (ImportError, OSError, ValueError, IndexError):
        return None  # not Linux: the supervisor's watch of resident memory still applies


_OUT_OF_MEMORY = ("can't allocate memory", "cannot allocate memory", "out of memory", "memoryerror",
                  "std::bad_alloc", "failed to allocate")


class CappedRecorder:
    """A run's recorder in a worker under a memory cap: a run that fails for want of memory says so, with the cap,
    in the same write that ends it (its error was the allocator's words)."""

    def __init__(self, run, max_bytes: int):
        self.run, self.max_bytes = run, max_bytes

    def write_status(self, **fields):
        error = str(fields.get("error") or "")
        if fields.get("status") == "failed" and any(words in error.lower() for words in _OUT_OF_MEMORY):
            fields.update(error=f"the run needed more memory than its cap of {self.max_bytes / 2**30:.1f} GiB "
                                f"(ARCHS_MAX_WORKER_MEMORY, or the run's budget): {error[:300]}",
                          memory_cap=self.max_bytes)
        return self.run.write_status(**fields)

    def append_metric(self, record: dict) -> None:
        self.run.append_metric(record)

    def write_spec(self, spec) -> None:
        self.run.write_spec(spec)

    def write_error(self, text: str) -> None:
        self.run.write_error(text)

    def save_weights(self, state_dict: dict) -> None:
        self.run.save_weights(state_dict)

    def __getattr__(self, name):  # anything else a measurement records through (files of an export, say)
        return getattr(self.run, name)


def main(root: str, run_id: str, threads: int, cuda_devices: str | None = None, max_memory: int | None = None) -> None:
    """Entry point of a worker started for one run: its log, its threads and GPU, its memory cap, the run."""
    _log_to(Path(root) / run_id / LOG_NAME)
    faulthandler.enable()  # a crash in native code leaves its Python traceback in the log
    configure(threads, cuda_devices)
    limited = limit_memory(max_memory, cuda_devices)
    if limited:
        say(f"memory cap {max_memory / 2**30:.1f} GiB (address space {limited / 2**30:.1f} GiB)")
    run_in_this_process(root, run_id, max_memory if limited else None)


def spare_main(connection, threads: int) -> None:
    """Entry point of a spare worker (started with ``spawn``): import torch and the library now, then wait for a run
    (or None)."""
    configure(threads, None)
    # what the fork server preloads, then a tiny measurement so the first real one pays no one-off setup: only while
    # no run waits (a run imports what it still needs itself). A sweep's back-to-back measurements and a queue of
    # training runs never wait for these, and paid 8-17 s a run when the spare always did them (a depth sweep of 8
    # went from 1 to 2.5 minutes).
    try:
        for name in PRELOAD:
            if connection.poll():
                break
            importlib.import_module(name)
        if not connection.poll():
            importlib.import_module("archs.cost").warm_up()
    except Exception:  # noqa: BLE001 - a torch without distributed, or a warm-up that fails, costs only its time
        pass

    try:
        job = connection.recv()
    except (EOFError, OSError):
        return
    if job is None:
        return
    main(*job)
