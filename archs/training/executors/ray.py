"""The Ray executor: the same run requests as Ray tasks, on an existing cluster or a local one.

``ARCHS_EXECUTOR=ray`` selects it; ``ARCHS_RAY_ADDRESS`` names a cluster (``ray://host:10001`` or
``host:6379``), else a local Ray instance is started with this machine's cores. Needs the optional
``requirements-ray.txt`` (``ray==2.60.0``) here and torch on the cluster's nodes; this package's code is
shipped to the workers with each job (Ray's ``py_modules``).

How a run's records reach the run store when its worker is on another machine without this disk:
the task records into a :class:`ChannelRecorder`, which batches every record (status, metric records,
the adapted spec, the final weights as ``torch.save`` bytes) and pushes them a few times a second to
one :class:`RunChannel` actor per executor. A relay thread in the submitting process (the server)
drains the actor five times a second and writes into the local run store, in order. So pages read the
store exactly as for local runs; the worker never touches the server's disk.

Resources: each run asks Ray for ``ARCHS_RAY_CPUS_PER_RUN`` CPUs (default: this machine's cores over
``ARCHS_MAX_CONCURRENT_RUNS``) and one GPU when it trains on CUDA (``device`` cuda, or auto on a
cluster that has GPUs). Runs wait in Ray's own queue until their resources are free.

Logs: the task's ``sys.stdout`` and ``sys.stderr`` (its start and end, prints, warnings) go through the same
channel, and the relay appends them to the run folder's ``worker.log``, where a local worker writes its own.

Stop: whichever process asks (a page, ``archs runs --stop``), the request is the run store's stop flag; the
relay forwards it to the channel, whose flag the task polls (within about half a second, then the loop's
block-level stop); a run that has not started yet is cancelled. Ray ties tasks to the process that
submitted them: if the server stops, Ray cancels its runs, and the store shows them ``interrupted``
(the relay that recorded them is gone).

Bounds, as the local supervisor keeps them: each task runs in a worker process of its own (``max_calls=1``)
under a memory cap that the OS enforces (``RLIMIT_AS``: the run's ``max_memory_bytes``, at most
``ARCHS_MAX_WORKER_MEMORY``, default three quarters of the node's memory; not where a GPU is visible), and a task
asked to stop (its flag, or past its time limit) that has not ended ``ARCHS_STOP_GRACE_SECONDS`` later is
cancelled with force (Ray kills its worker), its run recording why.

Nothing from the channel is trusted more than a stored record: the relay applies only the operations a
recorder makes (status, metric records, a spec, a traceback, log text, weights bytes saved as a file without
being loaded), and a request sent to a task is plain JSON (no code is named in it).
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import time
from pathlib import Path

from archs.training.config import ACTIVE_STATUSES, ConfigError
from archs.training.executors.base import Executor, register
from archs.training.limits import Limits
from archs.training.request import RunRequest
from archs.training.store import Run, RunError, RunStore, process_identity
from archs.training.store.files import append_fd
from archs.training.stored import RunRecorder
from archs.training.worker import LOG_NAME, CappedRecorder, carry_out, configure, limit_memory

from .local import max_worker_memory, stop_grace_seconds

__all__ = ["ChannelRecorder", "RayExecutor"]

RELAY_SECONDS = 0.2
PUSH_SECONDS = 0.3
WEIGHTS_LIMIT = 2 << 30  # bytes of weights a task may send back


def _ray():
    try:
        import ray  # heavy, and optional
    except ImportError as error:
        raise ConfigError("executor: 'ray' needs the Ray package: pip install -r requirements-ray.txt "
                          f"({error})", "executor") from None
    return ray


class RunChannel:
    """Records on their way from remote tasks to the run store, and stop flags the other way."""

    def __init__(self):
        self.pending: dict[str, list] = {}
        self.stops: dict[str, str] = {}

    def push(self, run_id: str, operations: list) -> bool:
        self.pending.setdefault(run_id, []).extend(operations)
        return run_id in self.stops

    def drain(self) -> dict[str, list]:
        pending, self.pending = self.pending, {}
        return pending

    def request_stop(self, run_id: str, reason: str = "stopped") -> None:
        self.stops.setdefault(run_id, reason)

    def should_stop(self, run_id: str) -> str | None:
        return self.stops.get(run_id)

    def forget(self, run_id: str) -> None:
        self.stops.pop(run_id, None)
        self.pending.pop(run_id, None)


class ChannelRecorder:
    """The recorder of a remote run: every recording call becomes an operation, pushed in batches; so does
    the task's output (``write_log``, :meth:`output_to_log`)."""

    def __init__(self, channel, run_id: str):
        self.channel, self.run_id = channel, run_id
        self.buffer: list = []
        self.last_push = 0.0
        self.lock = threading.RLock()  # re-entered if pushing makes Ray write to the redirected output

    def _add(self, operation: tuple, urgent: bool = False) -> None:
        with self.lock:
            self.buffer.append(operation)
            if urgent or time.monotonic() - self.last_push > PUSH_SECONDS:
                self.flush_locked()

    def flush(self) -> None:
        with self.lock:
            self.flush_locked()

    def flush_locked(self) -> None:
        pending, self.buffer = self.buffer, []
        if pending:
            _ray().get(self.channel.push.remote(self.run_id, pending))
        self.last_push = time.monotonic()

    def write_status(self, **fields) -> dict:
        self._add(("status", fields), urgent=fields.get("status") is not None)
        return dict(fields)

    def append_metric(self, record: dict) -> None:
        self._add(("metric", record))

    def write_spec(self, spec) -> None:
        self._add(("spec", spec.to_json()))

    def write_error(self, text: str) -> None:
        self._add(("error", text))

    def write_log(self, text: str) -> None:
        self._add(("log", text))

    @contextlib.contextmanager
    def output_to_log(self):
        """Meanwhile, what this process writes to ``sys.stdout`` and ``sys.stderr`` (prints, warnings) goes to
        the run's log."""
        stream = _LogStream(self)
        with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
            yield

    def save_weights(self, state_dict: dict) -> None:
        import torch  # heavy (loaded in a task anyway)

        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, buffer)
        self._add(("weights", buffer.getvalue()), urgent=True)


class _LogStream(io.TextIOBase):
    """A task's ``sys.stdout`` and ``sys.stderr`` while it runs: what it writes goes to the run's log."""

    def __init__(self, recorder: ChannelRecorder):
        self.recorder = recorder

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.recorder.write_log(str(text))
        return len(text)


def _remote_run(request_json: str, run_id: str, channel, threads: int) -> dict:
    """The body of a run's Ray task: a worker's job (:func:`~archs.training.worker.carry_out`), recorded into
    the channel, its output too."""
    configure(threads, None)  # Ray itself sets CUDA_VISIBLE_DEVICES for a task that asked for a GPU
    ray = _ray()
    recorder = ChannelRecorder(channel, run_id)
    # this worker process serves this task only (max_calls=1), so its cap ends with it
    try:
        own = RunRequest.from_json(request_json).max_memory_bytes
    except ValueError:
        own = None  # a request that cannot be read: carry_out records why, as a local worker does
    caps = [c for c in (own, max_worker_memory()) if c]
    cap = min(caps) if caps else None
    limited = limit_memory(cap, os.environ.get("CUDA_VISIBLE_DEVICES") or None)
    try:
        with recorder.output_to_log():
            if limited:
                print(f"memory cap {cap / 2**30:.1f} GiB (address space {limited / 2**30:.1f} GiB)")
            status = carry_out(run_id, CappedRecorder(recorder, cap) if limited else recorder,
                               lambda: RunRequest.from_json(request_json),
                               should_stop=lambda: ray.get(channel.should_stop.remote(run_id)))
    finally:
        recorder.flush()
    return {"status": status.get("status")}


@register
class RayExecutor(Executor):
    name = "ray"
    where = "tasks on a Ray cluster"

    def __init__(self, store: RunStore | None = None, limits: Limits | None = None, *, address: str | None = None,
                 cpus_per_run: int | None = None):
        super().__init__(store, limits)
        ray = _ray()
        self.address = address or os.environ.get("ARCHS_RAY_ADDRESS") or None
        self.where = f"Ray ({self.address or 'local Ray instance'})"
        if not ray.is_initialized():
            package = str(Path(__file__).resolve().parents[2])
            # the data folder the dashboard's folder names resolve in; the workers' memory cap
            env_vars = {k: os.environ[k] for k in ("ARCHS_WORKER_SETUP", "ARCHS_DATA_DIR", "PYTHONPATH",
                                                   "ARCHS_MAX_WORKER_MEMORY") if os.environ.get(k)}
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
                     runtime_env={"py_modules": [package], "env_vars": env_vars})
        from archs.training.device import cpu_count  # heavy: torch (Ray has loaded much already)

        cores = cpu_count()
        env_cpus = os.environ.get("ARCHS_RAY_CPUS_PER_RUN", "")
        self.cpus_per_run = cpus_per_run or (int(env_cpus) if env_cpus.isdigit() and int(env_cpus) > 0
                                             else max(1, cores // self.limits.max_concurrent))
        self.has_gpus = ray.cluster_resources().get("GPU", 0) > 0
        self.channel = ray.remote(num_cpus=0)(RunChannel).remote()
        self.task = ray.remote(max_calls=1)(_remote_run)  # a worker process per task: its memory cap ends with it
        self.refs: dict[str, object] = {}
        self.stopping: set[str] = set()
        self.grace = stop_grace_seconds()
        self.asked: dict[str, tuple[float, str]] = {}  # run id -> (monotonic time it was asked to stop, why)
        self.killed: dict[str, str] = {}  # run id -> why its task was cancelled with force
        self.max_seconds: dict[str, float] = {}
        self.submitted: set[str] = set()  # runs whose records this process relays
        self.handles: dict[str, RunRecorder] = {}
        self.lock = threading.Lock()
        self.relay_error: str | None = None
        self._closed = threading.Event()
        self._relay = threading.Thread(target=self._relay_loop, daemon=True, name="archs-ray-relay")
        self._relay.start()

    # ----- the hooks
    def _close(self) -> None:
        """Stop relaying (before ``ray.shutdown()``); records a run sends afterwards stay in its channel."""
        self._closed.set()
        self._relay.join(timeout=2 * RELAY_SECONDS + 5)

    def _describe(self) -> dict:
        return {"address": self.address, "cpus_per_run": self.cpus_per_run, "gpus": self.has_gpus}

    def _submit_fields(self) -> dict:
        return {"relay": process_identity()}  # the records of these runs reach the store through this process

    def _start(self, run: Run, request) -> None:
        wants_gpu = request.train.device == "cuda" or (request.train.device == "auto" and self.has_gpus)
        options = {"num_cpus": self.cpus_per_run, "num_gpus": 1 if wants_gpu and request.kind == "train" else 0,
                   "max_retries": 0, "name": f"archs-run-{run.id}"}
        self.submitted.add(run.id)
        if request.max_seconds:
            self.max_seconds[run.id] = float(request.max_seconds)
        with self.lock:
            self.refs[run.id] = self.task.options(**options).remote(request.to_json(), run.id, self.channel,
                                                                    self.cpus_per_run)

    def _forward_stops(self, ray) -> None:
        """Stop requests recorded in the store (by any process) for runs this process relays."""
        with self.lock:
            refs = dict(self.refs)
        for run_id in self.store.stop_requests([i for i in refs if i not in self.stopping]):
            self.stopping.add(run_id)
            try:
                run = self.store.get(run_id)
                started, reason = run.stored_status().get("status") != "queued", run.stop_request() or "stopped"
            except RunError:
                started, reason = True, "stopped"
            if not started:
                ray.cancel(refs[run_id])
            ray.get(self.channel.request_stop.remote(run_id, reason))

    def _enforce(self, ray) -> None:
        """A task asked to stop (its flag, or its time limit counted from the start its worker recorded) that has
        not ended ``ARCHS_STOP_GRACE_SECONDS`` later is cancelled with force: Ray kills its worker process."""
        with self.lock:
            refs = dict(self.refs)
        running = [i for i in refs if i not in self.killed]
        now = time.monotonic()
        for run_id, state in self.store.stop_states(running).items():
            if run_id not in self.asked:
                why = state.get("stop")
                limit, started = self.max_seconds.get(run_id), state.get("started_at")
                if not why and limit and isinstance(started, (int, float)) and time.time() - started >= limit:
                    why = f"stopped after {limit:g} s, this server's limit per run (ARCHS_MAX_RUN_SECONDS)"
                if why:
                    self.asked[run_id] = (now, why)
            elif now - self.asked[run_id][0] >= self.grace:
                self.killed[run_id] = (f"{self.asked[run_id][1]}; its Ray task did not stop within {self.grace:g} s "
                                       "and was cancelled (its worker killed), so no weights were saved")
                ray.cancel(refs[run_id], force=True)

    # ----- the relay
    def _relay_loop(self) -> None:
        ray = _ray()
        while not self._closed.wait(RELAY_SECONDS):
            if not ray.is_initialized():
                return  # Ray was shut down: calling it now would start a new instance (its auto-init hook)
            try:
                self._forward_stops(ray)
                self._enforce(ray)
                self._apply(ray.get(self.channel.drain.remote()))
                self._collect_finished(ray)
            except Exception as error:  # noqa: BLE001 - keep relaying; say what went wrong
                self.relay_error = f"{type(error).__name__}: {error}"

    def _run(self, run_id: str) -> RunRecorder:
        """One recorder per run while it is relayed, so its TensorBoard events go to one file."""
        run = self.handles.get(run_id)
        if run is None:
            run = self.handles[run_id] = RunRecorder(self.store.get(run_id))
        return run

    def _apply(self, pending: dict[str, list]) -> None:
        """Write what tasks sent into the store. It is data from another process: only the operations a
        recorder makes, each checked for its type, for runs this process relays."""
        for run_id, operations in pending.items():
            if run_id not in self.submitted or not isinstance(operations, list):
                continue
            try:
                run = self._run(run_id)
            except RunError:
                continue  # deleted meanwhile
            metrics: list[dict] = []
            logged: list[str] = []
            for operation in operations:
                if not (isinstance(operation, tuple) and len(operation) == 2):
                    continue
                kind, payload = operation
                if kind == "metric" and isinstance(payload, dict):
                    metrics.append(payload)
                    continue
                if kind == "log" and isinstance(payload, str):
                    logged.append(payload)
                    continue
                run.append_metrics(metrics)
                metrics = []
                try:
                    if kind == "status" and isinstance(payload, dict):
                        run.write_status(**{k: v for k, v in payload.items() if isinstance(k, str)
                                            and k.isidentifier()})
                    elif kind == "spec" and isinstance(payload, str):
                        from archs.spec import NetSpec  # heavy: torch (only a run that adapts its spec sends one)

                        run.write_spec(NetSpec.from_json(payload))
                    elif kind == "error" and isinstance(payload, str):
                        run.write_error(payload[:100_000])
                    elif kind == "weights" and isinstance(payload, bytes) and len(payload) < WEIGHTS_LIMIT:
                        run.save_weights_file(payload)  # stored as a file; read back only with weights_only=True
                except ValueError as error:  # a spec that does not parse, a status that does not fit
                    self.relay_error = f"run {run_id}: {error}"
            run.append_metrics(metrics)
            try:
                if logged:
                    # 0600, made by this server, never through a link (archs.training.store.files)
                    with open(append_fd(run.path, LOG_NAME), "a", encoding="utf-8", errors="replace") as log:
                        log.write("".join(logged))
            except OSError as error:  # its folder deleted meanwhile, a full disk: the rest of the batch still counts
                self.relay_error = f"run {run_id}: {error}"

    def _collect_finished(self, ray) -> None:
        with self.lock:
            refs = dict(self.refs)
        if not refs:
            return
        ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=0)
        ready = set(ready)
        for run_id, ref in refs.items():
            if ref not in ready:
                continue
            self._apply(ray.get(self.channel.drain.remote()))  # whatever the task sent before it ended
            error = None
            try:
                ray.get(ref)
            except ray.exceptions.TaskCancelledError:
                error = ("stopped", "stopped while queued")
            except Exception as exc:  # noqa: BLE001 - a crashed worker, a lost node
                error = ("failed", f"the Ray task failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
            killed = self.killed.pop(run_id, None)
            try:
                run = self.store.get(run_id)
                if run.stored_status().get("status") in ACTIVE_STATUSES:
                    status, message = ("stopped", killed) if killed else error or (
                        "failed", "the Ray task ended without recording a result")
                    key = "message" if status == "stopped" else "error"
                    run.write_status(status=status, finished_at=time.time(), **{key: message},
                                     **({"killed": True} if killed else {}))
            except RunError:
                pass
            with self.lock:
                self.refs.pop(run_id, None)
            self.stopping.discard(run_id)
            self.asked.pop(run_id, None)
            self.max_seconds.pop(run_id, None)
            handle = self.handles.pop(run_id, None)
            if handle is not None:
                handle.events.close()
            self.channel.forget.remote(run_id)
