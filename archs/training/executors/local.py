"""The local executor: every run in a worker process of its own, on this machine. Nothing to install.

Submitting writes the run into the run store's FIFO queue, then makes sure a *supervisor* is running for
that runs folder: a small detached process (its own session, so it outlives the web server that started
it, and a Ctrl-C in the server's terminal) that

- starts queued runs in FIFO order, at most ``max_concurrent`` training runs at a time, each in a worker
  process (:mod:`archs.training.worker`: forked from a fork server that has imported torch, on Linux without
  GPUs; a fresh interpreter, multiprocessing's ``spawn``, elsewhere: :func:`worker_context`), with
  ``cores // max_concurrent`` torch threads so concurrent workers do not oversubscribe the cores, and one
  GPU each (``CUDA_VISIBLE_DEVICES``) on a machine with GPUs; quick measurements (the depth sweep's
  gradients, a stored run's activation health) have a lane of their own, one at a time, so a page that
  asks for one does not wait behind a long training run;
- keeps its fork server (or, with ``spawn``, one *spare* worker) that has already imported torch, so a run starts
  without the 5-7 s of imports (only while a slot is free: imports beside busy workers would take their cores);
- reaps its workers: one that exits without recording an end (a crash, a segfault, an out-of-memory
  kill) leaves its run ``failed`` with the signal or exit code, its metrics kept;
- bounds its workers where they run (:class:`_Bounds`): a worker asked to stop (its stop flag, or its time limit,
  ``ARCHS_MAX_RUN_SECONDS`` or the run's own ``max_seconds``) that has not ended ``ARCHS_STOP_GRACE_SECONDS``
  later (default 30) gets SIGTERM, then SIGKILL 5 s on, and its run records why (so does one that has not
  begun its run ``ARCHS_WORKER_START_SECONDS`` after its launch, default 120: hung in an import); each worker
  runs under a memory cap (the run's ``max_memory_bytes``, at most ``ARCHS_MAX_WORKER_MEMORY``, default three
  quarters of this machine's memory) that the OS enforces with ``RLIMIT_AS`` in the worker (not where a GPU is
  visible to it: CUDA reserves address space far beyond what it uses), and that the supervisor enforces by
  resident memory for every worker (SIGKILL over the cap);
- counts the live workers of an earlier supervisor after a restart, puts back in line the runs a dead
  supervisor took but never started, and exits when it has had nothing to do for ``ARCHS_SUPERVISOR_IDLE``
  seconds (default 60);
- keeps serving through errors of the store (a full disk, a read-only folder): it backs off (up to 30 s
  between tries), records what is wrong where the Runs page reads it, and carries on when it can.

At most one supervisor serves a runs folder (an exclusive ``flock`` on ``.supervisor.lock``). Its settings
(concurrency, threads, GPUs) are fixed when it starts, from the environment of the process that started it,
and recorded by the supervisor alone; another process opening the store (``archs runs --stop``) changes
nothing. The supervisor imports neither torch nor the network code: it only moves records and processes.
"""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from archs.training import worker
from archs.training.executors.base import Executor, register
from archs.training.limits import Limits, gpu_count
from archs.training.store import Run, RunError, RunStore, StoreUnavailable, process_alive, process_identity
from archs.training.store.files import UnsafeFile, make_run_folder, safe_append_fd
from archs.training.store.processes import lock_held

__all__ = ["LocalExecutor", "describe_exit", "run_supervisor"]

LOCK = ".supervisor.lock"
LOG = ".supervisor.log"
ERROR_FILE = ".supervisor-error"
POLL_SECONDS = 0.05
BEAT_SECONDS = 2.0
MAX_BACKOFF_SECONDS = 30.0
BOUNDS_SECONDS = 0.5  # how often stop flags, deadlines and workers' memory are looked at
STOP_GRACE_SECONDS = 30.0  # after a stop flag or a time limit, before SIGTERM
START_LIMIT_SECONDS = 120.0  # from a worker's launch until it records that its run began (imports, setup module)
KILL_AFTER_SECONDS = 5.0  # after SIGTERM, before SIGKILL
MEMORY_FRACTION = 0.75  # of this machine's memory: a worker's cap when none is set
# a worker's resident memory before its run (the interpreter, torch, the library; a CUDA context's host side):
# the watch of resident memory allows this beyond the cap, as RLIMIT_AS counts from what the worker maps then
WORKER_BASE_BYTES = 1 << 30
TRAIN_KINDS = ("train",)
QUICK_KINDS = ("gradients", "health", "inspect", "cost", "export")  # request.MEASUREMENTS


@register
class LocalExecutor(Executor):
    name = "local"
    where = "worker processes on this machine"
    runs_here = True
    queue_in_store = True

    def __init__(self, store: RunStore | None = None, limits: Limits | None = None, *,
                 threads: int | None = None, spare: bool = True, resume: bool = True):
        super().__init__(store, limits)
        self._threads, self.spare = threads, spare
        if resume and self.store.queued("local"):  # a queue left by a stopped server (and its supervisor)
            self.ensure_supervisor()

    def _describe(self) -> dict:
        supervisor = self.store.meta("supervisor") or {}
        config = (supervisor.get("config") if isinstance(supervisor, dict) else None) or self._config()
        return {"threads_per_run": config["threads"], "gpus": config["gpus"]}

    def _config(self) -> dict:
        """The supervisor's settings, from this process's environment (used only when this process starts it)."""
        from archs.training.device import cpu_count  # heavy: torch (the supervisor itself imports none)

        threads = self._threads or max(1, cpu_count() // self.limits.max_concurrent)
        return {"max_concurrent": self.limits.max_concurrent, "threads": threads, "gpus": gpu_count(),
                "spare": self.spare, "stop_grace": stop_grace_seconds(), "max_worker_memory": max_worker_memory(),
                "start_limit": _env_number("ARCHS_WORKER_START_SECONDS") or START_LIMIT_SECONDS}

    def _start(self, run: Run, request) -> None:
        self.ensure_supervisor()

    def ensure_supervisor(self) -> None:
        """Start the supervisor of this runs folder unless one is running."""
        if _supervisor_running(self.store):
            return
        self.store.root.mkdir(parents=True, exist_ok=True)
        log = os.fdopen(safe_append_fd(self.store.root / LOG), "ab")  # 0600, never through a link
        try:
            subprocess.Popen([sys.executable, "-c", "import sys, json; from archs.training.executors.local import "
                              "run_supervisor; sys.exit(run_supervisor(sys.argv[1], json.loads(sys.argv[2])))",
                              str(self.store.root.resolve()), json.dumps(self._config())],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                             cwd=os.getcwd(), env={**os.environ, "PYTHONPATH": _pythonpath()})
        finally:
            log.close()


def _seconds(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else None


def _pythonpath() -> str:
    """The worker must import this very package, wherever the caller found it."""
    here = str(Path(__file__).resolve().parents[3])
    parts = [here] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != here]
    return os.pathsep.join(parts)


def _env_number(name: str) -> float | None:
    try:
        value = float(os.environ.get(name, ""))
    except ValueError:
        return None
    return value if value > 0 else None


def stop_grace_seconds() -> float:
    """``ARCHS_STOP_GRACE_SECONDS``: how long a worker asked to stop may take before it is killed (default 30)."""
    return _env_number("ARCHS_STOP_GRACE_SECONDS") or STOP_GRACE_SECONDS


def machine_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def max_worker_memory() -> int | None:
    """``ARCHS_MAX_WORKER_MEMORY`` (bytes; a suffix K, M, G or T allowed): the most memory one worker may use;
    default three quarters of this machine's memory."""
    text = os.environ.get("ARCHS_MAX_WORKER_MEMORY", "").strip().upper().removesuffix("B")
    scale = 1
    if text[-1:] in ("K", "M", "G", "T"):
        scale = 1024 ** ("KMGT".index(text[-1]) + 1)
        text = text[:-1]
    try:
        value = int(float(text) * scale)
    except ValueError:
        value = 0
    if value > 0:
        return value
    total = machine_memory()
    return int(total * MEMORY_FRACTION) if total else None


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def _supervisor_running(store: RunStore) -> bool:
    return lock_held(store.root / LOCK)


class _Bounds:
    """What bounds one worker: its deadline, its memory cap, and what the supervisor has done to it."""

    def __init__(self, pid: int | None, max_seconds: float | None, memory: int | None):
        self.pid, self.memory = pid, memory
        self.deadline: float | None = None  # monotonic; counted from when the worker recorded the run started,
        self.max_seconds = max_seconds      # as the worker's own clock (StopWatch) counts it
        self.launched = time.monotonic()    # a worker that never records its start is held to its limit from here
        self.budgeted = False               # its cap is the run's own memory budget (a measurement's), not only ours
        self.asked_at: float | None = None   # when it was asked to stop (its flag seen, or its deadline passed)
        self.asked_why: str | None = None
        self.term_at: float | None = None    # when SIGTERM was sent
        self.killed: str | None = None       # why the supervisor killed it (recorded with the run)
        self.final = "stopped"               # the status recorded when it was killed


def _resident_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


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
    def __init__(self, root: Path, config: dict, idle_seconds: float):
        self.store = RunStore(root)
        self.config = {"max_concurrent": 1, "threads": 1, "gpus": 0, "spare": True, "stop_grace": STOP_GRACE_SECONDS,
                       "start_limit": START_LIMIT_SECONDS, "max_worker_memory": None, **config}
        self.idle_seconds = idle_seconds
        self.context = worker_context(int(self.config["gpus"]))
        self.identity = process_identity()
        self.workers: dict[str, tuple] = {}  # run id -> (process, gpu slot, lane)
        self.bounds: dict[str, _Bounds] = {}  # run id -> its limits and what was done about them
        self.last_bounds = 0.0
        self.adopted: dict[str, dict] = {}   # run id -> worker identity, for workers of an earlier supervisor
        self.spare = None                    # (process, connection)
        self.launched = False                # a worker has been started: the fork server is worth keeping warm
        self.exiting: list = []              # workers whose run has ended, while their process exits
        self.error: str | None = None
        self.error_since: float | None = None
        self.last_beat = 0.0

    def limit(self, lane: str) -> int:
        return int(self.config["max_concurrent"]) if lane == "train" else 1

    def busy(self, lane: str) -> int:
        return sum(1 for _, _, used in self.workers.values() if used == lane) + (
            len(self.adopted) if lane == "train" else 0)

    # ----- one pass
    def adopt(self) -> None:
        """Count the live workers of an earlier supervisor against the limit."""
        for row in self.store.list_runs(status="running"):
            if row["executor"] != "local" or row["status"] != "running":
                continue
            run = self.store.get(row["id"])
            stored = run.stored_status()
            if process_alive(stored.get("worker")):
                self.adopted[row["id"]] = stored["worker"]
                settings = run.settings()
                self.bounds[row["id"]] = _Bounds(stored["worker"].get("pid"), _seconds(settings.get("max_seconds")),
                                                 self.memory_cap(settings))

    def reap(self) -> None:
        for run_id, (process, _slot, _lane) in list(self.workers.items()):
            if process.is_alive():
                if self.store_says_ended(run_id):  # its run has recorded its end: the process is only exiting
                    self.exiting.append((process, time.monotonic()))  # (a second or two of interpreter teardown):
                    del self.workers[run_id]                            # free the slot now
                    self.bounds.pop(run_id, None)
                continue
            process.join()
            self.record_end(run_id, process.exitcode)
            del self.workers[run_id]
        for run_id, identity in list(self.adopted.items()):
            if not process_alive(identity):
                self.record_end(run_id, None)
                del self.adopted[run_id]
        for process, since in list(self.exiting):
            if not process.is_alive():
                process.join()
                self.exiting.remove((process, since))
            elif time.monotonic() - since > float(self.config["stop_grace"]):
                process.kill()  # an end recorded, then stuck in teardown: it holds memory and a GPU for nothing

    def record_end(self, run_id: str, exitcode: int | None) -> None:
        """A worker has gone: its run, if it recorded no end, ends ``failed`` with why (or as the supervisor
        ended it: ``stopped`` or ``failed`` with the reason it was killed)."""
        bounds = self.bounds.pop(run_id, None)
        try:
            run = self.store.get(run_id)
            if run.stored_status().get("status") not in ("queued", "running"):
                return
            if bounds is not None and bounds.killed:
                fields = {"message" if bounds.final == "stopped" else "error": bounds.killed}
                run.write_status(status=bounds.final, exit_code=exitcode, killed=True, finished_at=time.time(),
                                 **fields)
            elif exitcode is not None:
                error = describe_exit(exitcode)
                if bounds is not None and bounds.budgeted and bounds.memory:
                    # a measurement's cap is its own budget, often tight: an allocation that failed in native code
                    # under it can end the worker so
                    error += (f"; it ran under a memory cap of {_gib(bounds.memory)} (its memory budget): if it "
                              "needed more, that is why")
                run.write_status(status="failed", error=error, exit_code=exitcode, finished_at=time.time())
        except RunError:
            pass  # deleted meanwhile

    # ----- bounds
    def memory_cap(self, settings: dict) -> int | None:
        """A run's memory cap: its own ``max_memory_bytes`` (its budget), at most the server's."""
        server = self.config.get("max_worker_memory")
        own = settings.get("max_memory_bytes")
        own = int(own) if isinstance(own, (int, float)) and not isinstance(own, bool) and own > 0 else None
        caps = [int(c) for c in (server, own) if c]
        return min(caps) if caps else None

    def enforce(self, force: bool = False) -> None:
        """Stop flags, deadlines and memory of the running workers: a worker asked to stop that has not ended within
        the grace period gets SIGTERM, then SIGKILL; one over its memory cap gets SIGKILL at once."""
        now = time.monotonic()
        if not self.bounds or (not force and now - self.last_bounds < BOUNDS_SECONDS):
            return
        self.last_bounds = now
        grace = float(self.config["stop_grace"])
        start_limit = float(self.config["start_limit"])
        states = self.store.stop_states(list(self.bounds))
        for run_id, bounds in list(self.bounds.items()):
            if bounds.pid is None or not self.still_running(run_id):
                continue
            state = states.get(run_id) or {}
            started = state.get("started_at")
            if bounds.deadline is None and bounds.max_seconds and isinstance(started, (int, float)):
                bounds.deadline = now - max(0.0, time.time() - started) + bounds.max_seconds
            if bounds.asked_at is None:
                if state.get("stop"):
                    bounds.asked_at, bounds.asked_why = now, state["stop"]
                elif bounds.deadline is not None and now >= bounds.deadline:
                    bounds.asked_at = now
                    bounds.asked_why = (f"stopped after {bounds.max_seconds:g} s, this server's limit per run "
                                        "(ARCHS_MAX_RUN_SECONDS)")
                elif not isinstance(started, (int, float)) and now - bounds.launched >= start_limit:
                    # hung before its run began (the operator's setup module, an import, a stuck file system):
                    # no clock of the run's own is running yet, so it is held to a limit from its launch
                    bounds.asked_at = now
                    bounds.asked_why = (f"its worker had not begun the run {start_limit:g} s after it was launched "
                                        "(ARCHS_WORKER_START_SECONDS)")
            rss = _resident_bytes(bounds.pid) if bounds.memory else None
            if rss is not None and rss > bounds.memory + WORKER_BASE_BYTES and not bounds.killed:
                bounds.final = "failed"
                bounds.killed = (f"the run used {_gib(rss)} of memory, over its cap of {_gib(bounds.memory)} "
                                 "(ARCHS_MAX_WORKER_MEMORY, or the run's budget): its worker was killed")
                self.signal(bounds, signal.SIGKILL)
                continue
            if bounds.asked_at is not None and now - bounds.asked_at >= grace:
                if bounds.term_at is None:
                    bounds.killed = (f"{bounds.asked_why}; its worker did not stop within {grace:g} s and was "
                                     "killed, so no weights were saved")
                    bounds.term_at = now
                    self.signal(bounds, signal.SIGTERM)
                elif now - bounds.term_at >= KILL_AFTER_SECONDS:
                    self.signal(bounds, signal.SIGKILL)

    def still_running(self, run_id: str) -> bool:
        if run_id in self.workers:
            return self.workers[run_id][0].is_alive()
        return run_id in self.adopted and bool(process_alive(self.adopted[run_id]))

    def signal(self, bounds: _Bounds, signum: int) -> None:
        try:
            os.kill(bounds.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def store_says_ended(self, run_id: str) -> bool:
        try:
            return self.store.get(run_id).stored_status().get("status") not in ("queued", "running")
        except RunError:
            return True

    def launch(self) -> None:
        for lane, kinds in (("quick", QUICK_KINDS), ("train", TRAIN_KINDS)):
            while self.busy(lane) < self.limit(lane):
                run_id = self.store.claim_next("local", self.identity, kinds)
                if run_id is None:
                    break
                run = self.store.get(run_id)
                try:  # the run's folder is made here, by the server's own process (never by whoever submitted)
                    make_run_folder(self.store.root / run_id)
                except (UnsafeFile, OSError) as error:
                    run.write_status(status="failed", error=f"cannot start the run: {error}", finished_at=time.time())
                    continue
                settings = run.settings()
                memory = self.memory_cap(settings)
                slot = self.free_gpu() if lane == "train" else None
                # a measurement sees no GPU, but GPU 0 when it measures on one (the Measured cost tab's "cuda")
                on_gpu = (settings.get("train") or {}).get("device") == "cuda"
                cuda = str(slot) if slot is not None else (
                    ("0" if on_gpu else "") if lane == "quick" and self.config["gpus"] else None)
                # a measurement takes the cores no training run uses (all of them on an idle laptop, as when the
                # web server measured in its own process), one beside a training run
                threads = int(self.config["threads"]) if lane == "train" or not self.busy("train") else 1
                job = (str(self.store.root), run_id, threads, cuda, memory)
                process = self.use_spare(job)  # quick jobs too: a measurement then starts without importing torch
                if process is None:
                    process = self.context.Process(target=worker.main, args=job, name=f"archs-run-{run_id}")
                    process.start()
                self.launched = True
                self.workers[run_id] = (process, slot, lane)
                self.bounds[run_id] = _Bounds(process.pid, _seconds(settings.get("max_seconds")), memory)
                self.bounds[run_id].budgeted = bool(settings.get("max_memory_bytes"))

    def free_gpu(self) -> int | None:
        gpus = int(self.config["gpus"])
        if not gpus:
            return None
        used = {slot for _, slot, _ in self.workers.values()}
        return next((g for g in range(gpus) if g not in used), None)

    def beat(self, force: bool = False) -> None:
        """Record that this supervisor is alive, its settings and what is wrong (for the Runs page)."""
        now = time.time()
        if not force and now - self.last_beat < BEAT_SECONDS:
            return
        self.store.set_meta("supervisor", {"process": self.identity, "config": self.config, "beat": now,
                                           "error": self.error, "error_since": self.error_since,
                                           "workers": sorted(self.workers)})
        self.last_beat = now
        if self.error is None:
            try:
                (self.store.root / ERROR_FILE).unlink()
            except OSError:
                pass

    def failed(self, error: BaseException) -> None:
        """A pass that could not read or write the store: remember why, say so where it can be read."""
        text = f"{type(error).__name__}: {error}" if not isinstance(error, StoreUnavailable) else str(error)
        if self.error != text:
            self.error, self.error_since = text, time.time()
            print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} supervisor: {text}", file=sys.stderr, flush=True)
        try:
            self.beat(force=True)
        except (OSError, sqlite3.Error, RunError):
            try:  # the database cannot take it: a small file beside it may still be writable (never a link's target)
                with os.fdopen(safe_append_fd(self.store.root / ERROR_FILE), "w", encoding="utf-8") as handle:
                    handle.truncate(0)
                    handle.write(text + "\n")
            except OSError:
                pass

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
        if self.context.get_start_method() == "forkserver":  # the fork server is the spare (a no-op once it runs)
            # but only once a worker has started: a supervisor woken for a run that was stopped or refused while
            # queued imports nothing (CI: 6 of 67 fork servers imported torch, 4 CPU-s each, and forked nothing)
            if self.launched:
                multiprocessing.forkserver.ensure_running()
            return
        if self.spare is not None and not self.spare[0].is_alive():
            self.spare[0].join()
            self.spare = None
        if self.spare is None:
            parent, child = self.context.Pipe()
            process = self.context.Process(target=worker.spare_main, args=(child, int(self.config["threads"])),
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
    def supervise(self) -> None:
        idle_since = time.monotonic()
        backoff = POLL_SECONDS
        adopted = False
        last_requeue = 0.0
        while True:
            try:
                if not adopted:
                    self.adopt()
                    adopted = True
                self.reap()
                self.enforce()
                if time.monotonic() - last_requeue > 5.0:
                    self.store.requeue_stale_claims("local")
                    last_requeue = time.monotonic()
                self.launch()
                waiting = bool(self.store.queued("local"))
                if self.error is not None:
                    self.error = self.error_since = None
                    self.beat(force=True)
                self.beat()
                backoff = POLL_SECONDS
            except (OSError, sqlite3.Error, StoreUnavailable) as error:
                self.failed(error)
                backoff = min(MAX_BACKOFF_SECONDS, max(0.5, backoff * 2))
                time.sleep(backoff)
                idle_since = time.monotonic()  # it cannot know whether runs wait: it is not idle
                continue
            if self.workers or self.adopted or waiting:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > self.idle_seconds:
                return
            if self.busy("train") < self.limit("train"):
                self.keep_spare()  # only with a slot free: a spare importing torch beside busy workers slows them
            time.sleep(POLL_SECONDS)


def worker_context(gpus: int) -> multiprocessing.context.BaseContext:
    """How the supervisor starts workers. On Linux without GPUs: forked from a fork server that imported torch and
    the library once (``worker.PRELOAD``, no computation: no thread pool, no CUDA), so a run or a measurement starts
    in milliseconds instead of a fresh interpreter's 5-7 s of imports (each supervisor pays them once, in its fork
    server, where it used to pay them in every worker and in a spare that was often never used). Elsewhere (macOS,
    Windows, or GPUs to hand out: a CUDA driver touched in a fork server's parent would be unusable in its children)
    a fresh interpreter per worker (``spawn``), with a spare one kept warm (:meth:`_Supervisor.keep_spare`)."""
    if sys.platform.startswith("linux") and not gpus and "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(list(worker.PRELOAD))
        return context
    return multiprocessing.get_context("spawn")


def run_supervisor(root: str | os.PathLike, config: dict | None = None, idle_seconds: float | None = None) -> int:
    """Run the supervisor of a runs folder until it has been idle for ``idle_seconds``; 0 at once if another
    supervisor serves the folder."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if idle_seconds is None:
        try:
            idle_seconds = float(os.environ.get("ARCHS_SUPERVISOR_IDLE", 60))
        except ValueError:
            idle_seconds = 60.0
    try:
        handle = os.fdopen(safe_append_fd(root / LOCK), "a")  # never a link's target
    except OSError as error:
        print(f"supervisor: cannot open its lock {root / LOCK}: {error}", file=sys.stderr)
        return 1
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0
    # below the web server, as its workers are: the fork server's imports (5-7 s of CPU) then never slow the pages
    worker.lower_priority()
    supervisor = _Supervisor(root, config or {}, idle_seconds)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        supervisor.supervise()
    finally:
        supervisor.drop_spare()
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
    # a run queued between the last look and the unlock would wait for the next submit: look again
    try:
        again = bool(RunStore(root).queued("local")) and not _supervisor_running(RunStore(root))
    except (OSError, sqlite3.Error, RunError):
        again = False
    return run_supervisor(root, config, idle_seconds) if again else 0

