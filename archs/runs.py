"""Run history on disk and background training jobs.

A run is a folder under the runs directory (``$ARCHS_RUNS_DIR`` or ``./runs``)::

    <run id>/
        spec.json       the network (``NetSpec.to_json()``), rewritten when adapted to the data
        settings.json   {"train": TrainConfig, "data": DataConfig, "label", "group", "created"}
        status.json     status, progress, result or error; rewritten atomically (tmp + os.replace)
        metrics.jsonl   one JSON record per line as they arrive (see :func:`archs.train.train`)
        weights.pt      final ``state_dict`` (completed or stopped runs), written atomically

Status values: ``queued``, ``running``, ``completed``, ``stopped``, ``diverged``, ``failed``, and
``interrupted``: a run whose file says queued or running while no live job owns it (the server was
stopped). That last one is derived when reading, so a crash needs no clean-up to show correctly.

:class:`JobManager` runs jobs in daemon threads with a process-wide limit on concurrent runs and a
FIFO queue; :func:`get_job_manager` returns one shared manager per runs folder, so any page rerun
(or reload) finds the same jobs. Everything a page shows is read back from disk.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import shutil
import socket
import threading
import time
import traceback
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from archs import _process
from archs.data import DataError, check_dataset, load_dataset
from archs.train import ConfigError, TrainConfig, train

__all__ = [
    "ACTIVE_STATUSES",
    "DataConfig",
    "JobManager",
    "Run",
    "RunError",
    "RunStore",
    "FINAL_STATUSES",
    "default_runs_dir",
    "get_job_manager",
    "grad_heatmap",
]

ACTIVE_STATUSES = ("queued", "running")
FINAL_STATUSES = ("completed", "stopped", "diverged", "failed", "interrupted")


class RunError(ValueError):
    """A run that does not exist, or an action a run's state does not allow."""


def default_runs_dir() -> Path:
    return Path(os.environ.get("ARCHS_RUNS_DIR", "runs"))


@dataclass(frozen=True)
class DataConfig:
    """Which data set a run trains on. Size and channels follow the network's spec."""

    name: str = "digits"
    root: str | None = None
    download: bool = False
    train_limit: int | None = None
    test_limit: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "DataConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def check(self) -> str:
        """Raise DataError when the data set cannot be read (cheap: files, not contents)."""
        return check_dataset(self.name, self.root, download=self.download)


# ---------------------------------------------------------------------------------------------
# atomic files


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` so readers see the old or the new file, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, default=_json_default)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _json_default(value):
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.Tensor):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


def _read_json(path: Path, default=None):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


def read_jsonl(path: Path) -> list[dict]:
    """JSON lines, skipping a truncated or garbled line (a crash mid-write) instead of failing."""
    records = []
    try:
        with open(path, "rb") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    records.append(record)
    except OSError:
        pass
    return records


# ---------------------------------------------------------------------------------------------
# one run on disk

# run folder (resolved) -> job of this process, guarded by _LIVE_LOCK; kept in archs._process so that a
# reload of this module (Streamlit's file watcher) does not forget jobs that are still running
_LIVE: dict[str, "_Job"] = _process.LIVE_JOBS
_LIVE_LOCK = _process.LIVE_JOBS_LOCK
_STATUS_LOCK = threading.Lock()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


class Run:
    """A handle on one run folder. Every read goes to disk, so it is always current."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.id = self.path.name

    def __repr__(self) -> str:
        return f"Run({self.id!r})"

    # ----- reading
    def status(self) -> dict:
        """status.json with ``status`` made honest: queued/running with no live owner reads as
        ``interrupted``. Missing or unreadable files give ``{"status": "interrupted"}`` too."""
        data = _read_json(self.path / "status.json", default=None)
        if not isinstance(data, dict):
            data = {"status": "interrupted", "error": "status.json is missing or unreadable"}
        if data.get("status") in ACTIVE_STATUSES and not self._owned():
            data = {**data, "status": "interrupted", "stored_status": data.get("status")}
        data.setdefault("id", self.id)
        return data

    def _owned(self) -> bool:
        with _LIVE_LOCK:
            job = _LIVE.get(str(self.path.resolve()))
        if job is not None or any(t.name == f"archs-run-{self.id}" and t.is_alive() for t in threading.enumerate()):
            return True
        data = _read_json(self.path / "status.json", default={}) or {}
        pid, host = data.get("pid"), data.get("host")
        if pid is None or pid == os.getpid() or host != socket.gethostname():
            return False
        return _pid_alive(int(pid))  # another process on this machine (a CLI run) owns it

    def settings(self) -> dict:
        return _read_json(self.path / "settings.json", default={}) or {}

    def spec_json(self) -> str | None:
        try:
            return (self.path / "spec.json").read_text(encoding="utf-8")
        except OSError:
            return None

    def spec(self):
        """The run's ``NetSpec`` (as adapted to its data)."""
        from archs import NetSpec

        text = self.spec_json()
        if text is None:
            raise RunError(f"run {self.id} has no spec.json")
        return NetSpec.from_json(text)

    def metrics(self, kind: str | None = None) -> list[dict]:
        records = read_jsonl(self.path / "metrics.jsonl")
        return records if kind is None else [r for r in records if r.get("kind") == kind]

    def has_weights(self) -> bool:
        return (self.path / "weights.pt").is_file()

    def weights(self) -> dict[str, torch.Tensor]:
        if not self.has_weights():
            raise RunError(f"run {self.id} has no saved weights")
        return torch.load(self.path / "weights.pt", map_location="cpu", weights_only=True)

    def load_model(self):
        """The trained network: ``build_model(spec)`` with the saved weights, in eval mode."""
        from archs import build_model

        model = build_model(self.spec())
        model.load_state_dict(self.weights())
        return model.eval()

    def info(self) -> dict:
        """One row for a run table: plain values only."""
        status = self.status()
        settings = self.settings()
        result = status.get("result") or {}
        progress = status.get("progress") or {}
        train_cfg = settings.get("train") or {}
        return {
            "id": self.id,
            "label": settings.get("label") or self.id,
            "group": settings.get("group"),
            "network": status.get("network") or settings.get("network"),
            "data": (settings.get("data") or {}).get("name"),
            "status": status.get("status"),
            "created": settings.get("created"),
            "step": progress.get("step", result.get("steps")),
            "total_steps": progress.get("total_steps"),
            "epochs": train_cfg.get("epochs"),
            "batch_size": train_cfg.get("batch_size"),
            "lr": train_cfg.get("lr"),
            "optimizer": train_cfg.get("optimizer"),
            "device": result.get("device") or status.get("device"),
            "train_loss": result.get("train_loss", progress.get("loss")),
            "test_accuracy": result.get("test_accuracy"),
            "images_per_second": result.get("images_per_second", progress.get("images_per_second")),
            "error": status.get("error"),
        }

    # ----- writing (by the job that owns the run)
    def write_status(self, **fields: Any) -> dict:
        with _STATUS_LOCK:  # read-modify-write: the worker and stop() both update status.json
            data = _read_json(self.path / "status.json", default={}) or {}
            data.update(fields, updated=time.time())
            write_json_atomic(self.path / "status.json", data)
        return data

    def append_metric(self, record: dict) -> None:
        line = json.dumps(record, default=_json_default, allow_nan=True)
        with open(self.path / "metrics.jsonl", "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()

    def save_weights(self, state_dict: dict) -> None:
        tmp = self.path / f".weights.{os.getpid()}.tmp"
        torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, tmp)
        os.replace(tmp, self.path / "weights.pt")


# ---------------------------------------------------------------------------------------------
# the runs folder


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-")[:40] or "run"


class RunStore:
    """The runs folder: create, list, open and delete runs."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_runs_dir()

    def create(self, spec, train_config: TrainConfig, data_config: DataConfig, *,
               label: str | None = None, group: str | None = None) -> Run:
        self.root.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        name = getattr(spec, "name", "net")
        path = self.root / f"{stamp}-{_slug(name)}-{secrets.token_hex(3)}"
        path.mkdir()
        run = Run(path)
        write_text_atomic(path / "spec.json", spec.to_json())
        write_json_atomic(path / "settings.json", {
            "label": label or f"{name} on {data_config.name}", "group": group, "network": name,
            "created": time.time(), "train": train_config.to_dict(), "data": data_config.to_dict(),
        })
        write_json_atomic(path / "status.json", {
            "status": "queued", "network": name, "pid": os.getpid(), "host": socket.gethostname(),
            "queued_at": time.time(), "updated": time.time(),
        })
        return run

    def get(self, run_id: str) -> Run:
        if not run_id or "/" in run_id or "\\" in run_id or run_id.startswith("."):
            raise RunError(f"invalid run id {run_id!r}")
        path = self.root / run_id
        if not path.is_dir():
            raise RunError(f"no run {run_id!r} in {self.root}")
        return Run(path)

    def runs(self) -> list[Run]:
        """Every run folder, newest first (a folder without settings.json is skipped)."""
        if not self.root.is_dir():
            return []
        found = [Run(p) for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")]
        found = [r for r in found if (r.path / "settings.json").is_file() or (r.path / "status.json").is_file()]
        return sorted(found, key=lambda r: r.id, reverse=True)

    def list_runs(self, group: str | None = None) -> list[dict]:
        rows = [run.info() for run in self.runs()]
        return rows if group is None else [row for row in rows if row["group"] == group]

    def delete(self, run_id: str) -> None:
        run = self.get(run_id)
        if run.status()["status"] in ACTIVE_STATUSES:
            raise RunError(f"run {run_id} is {run.status()['status']}; stop it before deleting it")
        shutil.rmtree(run.path)


def grad_heatmap(records: list[dict]) -> dict:
    """Gradient-norm records of a run as a depth x step matrix for a heatmap.

    Returns ``{"steps": [...], "layers": [names by depth], "values": [[norm per step] per layer]}``
    (``None`` where a layer has no value at a step).
    """
    grads = [r for r in records if r.get("kind") == "grad"]
    steps = [r["step"] for r in grads]
    names: list[str] = []
    for r in grads:
        for layer in r.get("layers", []):
            if layer["name"] not in names:
                names.append(layer["name"])
    index = {name: i for i, name in enumerate(names)}
    values: list[list[float | None]] = [[None] * len(steps) for _ in names]
    for j, r in enumerate(grads):
        for layer in r.get("layers", []):
            values[index[layer["name"]]][j] = layer["grad_norm"]
    return {"steps": steps, "layers": names, "values": values}


# ---------------------------------------------------------------------------------------------
# background jobs


@dataclass
class _Job:
    run: Run
    spec: Any
    train_config: TrainConfig
    data_config: DataConfig
    model_factory: Callable | None
    stop_event: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    done: threading.Event = field(default_factory=threading.Event)


def _default_max_concurrent() -> int:
    value = os.environ.get("ARCHS_MAX_CONCURRENT_RUNS")
    if value:
        try:
            return max(1, int(value))
        except ValueError:
            pass
    return 2 if torch.cuda.is_available() else 1


class JobManager:
    """Runs training jobs in background threads, at most ``max_concurrent`` at a time, FIFO."""

    def __init__(self, store: RunStore | None = None, max_concurrent: int | None = None):
        self.store = store or RunStore()
        self._max = max_concurrent or _default_max_concurrent()
        self._lock = threading.RLock()
        self._queue: deque[_Job] = deque()
        self._running: dict[str, _Job] = {}
        self._jobs: dict[str, _Job] = {}

    # ----- configuration
    @property
    def max_concurrent(self) -> int:
        return self._max

    @max_concurrent.setter
    def max_concurrent(self, value: int) -> None:
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"max_concurrent must be a positive integer; got {value!r}")
        with self._lock:
            self._max = value
        self._dispatch()

    # ----- actions
    def submit(self, spec, train_config: TrainConfig | None = None, data_config: DataConfig | None = None, *,
               label: str | None = None, group: str | None = None,
               model_factory: Callable | None = None) -> str:
        """Queue a run and return its id. Checks the data set first: a missing one raises
        DataError and no run is created. ``model_factory(spec)`` defaults to ``build_model``."""
        train_config = train_config or TrainConfig()
        data_config = data_config or DataConfig()
        data_config.check()
        run = self.store.create(spec, train_config, data_config, label=label, group=group)
        job = _Job(run, spec, train_config, data_config, model_factory)
        with self._lock, _LIVE_LOCK:
            _LIVE[str(run.path.resolve())] = job
            self._jobs[run.id] = job
            self._queue.append(job)
        self._dispatch()
        return run.id

    def stop(self, run_id: str) -> bool:
        """Ask a run to stop (a queued run is dropped from the queue). False if not live here."""
        with self._lock:
            job = self._jobs.get(run_id)
            if job is None or job.done.is_set():
                return False
            job.stop_event.set()
            if job in self._queue:
                self._queue.remove(job)
                job.run.write_status(status="stopped", finished_at=time.time(), message="stopped while queued")
                self._finish(job)
                return True
        job.run.write_status(stop_requested=True)
        return True

    def stop_all(self) -> None:
        for run_id in list(self._jobs):
            self.stop(run_id)

    def delete(self, run_id: str, timeout: float = 30.0) -> None:
        """Stop the run if live, wait for it, and delete its folder."""
        if self.stop(run_id):
            self.wait(run_id, timeout)
        self.store.delete(run_id)

    # ----- queries
    def is_active(self, run_id: str) -> bool:
        with self._lock:
            job = self._jobs.get(run_id)
            return job is not None and not job.done.is_set()

    def active(self) -> list[str]:
        """Ids of this process's running then queued runs."""
        with self._lock:
            return list(self._running) + [job.run.id for job in self._queue]

    def status(self, run_id: str) -> dict:
        return self.store.get(run_id).status()

    def run(self, run_id: str) -> Run:
        return self.store.get(run_id)

    def wait(self, run_id: str | None = None, timeout: float | None = None) -> bool:
        """Wait for one run (or all of this manager's) to finish; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            jobs = [self._jobs[run_id]] if run_id is not None else list(self._jobs.values())
        for job in jobs:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not job.done.wait(left):
                return False
        return True

    # ----- internals
    def _dispatch(self) -> None:
        with self._lock:
            while self._queue and len(self._running) < self._max:
                job = self._queue.popleft()
                self._running[job.run.id] = job
                job.thread = threading.Thread(target=self._execute, args=(job,), daemon=True,
                                              name=f"archs-run-{job.run.id}")
                job.thread.start()

    def _finish(self, job: _Job) -> None:
        with self._lock, _LIVE_LOCK:
            self._running.pop(job.run.id, None)
            _LIVE.pop(str(job.run.path.resolve()), None)
            job.done.set()
        self._dispatch()

    def _execute(self, job: _Job) -> None:
        try:
            execute_run(job.run, job.spec, job.train_config, job.data_config,
                        stop_event=job.stop_event, model_factory=job.model_factory)
        except BaseException:  # execute_run records failures itself; never let a thread die silently
            traceback.print_exc()
        finally:
            self._finish(job)


def execute_run(run: Run, spec, train_config: TrainConfig, data_config: DataConfig, *,
                stop_event: threading.Event | None = None, model_factory: Callable | None = None) -> dict:
    """Load the data, build the model, train, and record everything in ``run``'s folder.

    Runs in the caller's thread (the JobManager calls it from a worker; the CLI directly).
    Returns the final status dict. Failures are recorded as status ``failed`` with a message.
    """
    key = str(run.path.resolve())
    with _LIVE_LOCK:
        registered_here = key not in _LIVE
        if registered_here:  # called directly (CLI, experiments): this call owns the run
            _LIVE[key] = True  # type: ignore[assignment]
    try:
        return _execute_run(run, spec, train_config, data_config, stop_event, model_factory)
    finally:
        if registered_here:
            with _LIVE_LOCK:
                _LIVE.pop(key, None)


def _execute_run(run, spec, train_config, data_config, stop_event, model_factory) -> dict:
    run.write_status(status="running", started_at=time.time(), pid=os.getpid(), host=socket.gethostname())
    try:
        data = load_dataset(data_config.name, root=data_config.root, input_size=spec.input_size,
                            in_channels=spec.in_channels, download=data_config.download,
                            train_limit=data_config.train_limit, test_limit=data_config.test_limit)
        if getattr(spec, "num_classes", data.num_classes) != data.num_classes:
            spec = dataclasses.replace(spec, num_classes=data.num_classes)
            write_text_atomic(run.path / "spec.json", spec.to_json())
        torch.manual_seed(train_config.seed)
        if model_factory is None:
            from archs import build_model as model_factory
        model = model_factory(spec)
    except (DataError, ConfigError, ValueError) as exc:
        return run.write_status(status="failed", error=str(exc), finished_at=time.time())
    except Exception as exc:
        (run.path / "error.txt").write_text(traceback.format_exc(), encoding="utf-8")
        return run.write_status(status="failed", error=f"{type(exc).__name__}: {exc}", finished_at=time.time())

    progress: dict[str, Any] = {}

    def sink(record: dict) -> None:
        run.append_metric(record)
        kind = record.get("kind")
        if kind == "start":
            progress.update(total_steps=record["total_steps"], step=0)
            run.write_status(device=record["device"], amp=record["amp"], progress=dict(progress),
                             data=data.summary())
        elif kind in ("step", "epoch", "eval"):
            progress.update({k: record[k] for k in ("step", "epoch", "loss", "train_accuracy", "test_accuracy",
                                                    "images_per_second", "lr") if k in record})
            run.write_status(progress=dict(progress))

    try:
        result = train(model, data, train_config, on_metrics=sink, stop_event=stop_event)
    except Exception as exc:
        (run.path / "error.txt").write_text(traceback.format_exc(), encoding="utf-8")
        return run.write_status(status="failed", error=f"{type(exc).__name__}: {exc}", finished_at=time.time())
    if result.status in ("completed", "stopped"):
        run.save_weights(model.state_dict())
    return run.write_status(status=result.status, result=result.to_dict(), message=result.message,
                            finished_at=time.time())


_MANAGERS: dict[str, JobManager] = _process.MANAGERS
_MANAGERS_LOCK = _process.MANAGERS_LOCK


def get_job_manager(runs_dir: str | os.PathLike | None = None, max_concurrent: int | None = None) -> JobManager:
    """The process-wide JobManager for a runs folder (created on first use).

    A Streamlit page calls this on every rerun and gets the same manager, with its live jobs.
    ``max_concurrent``, when given, updates the limit of the shared manager.
    """
    root = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    key = str(root.resolve())
    with _MANAGERS_LOCK:
        manager = _MANAGERS.get(key)
        if manager is None:
            manager = _MANAGERS[key] = JobManager(RunStore(root), max_concurrent)
    if max_concurrent is not None and manager.max_concurrent != max_concurrent:
        manager.max_concurrent = max_concurrent
    return manager
