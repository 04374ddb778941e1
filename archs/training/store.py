"""The run store: every run's request, status, metrics and weights on disk, and the queue of runs
waiting for a worker. It is the single record that every page, the CLI and every executor read.

A run is a folder under the runs directory (``$ARCHS_RUNS_DIR`` or ``./runs``)::

    <run id>/
        spec.json       the network (``NetSpec.to_json()``), rewritten when adapted to the data
        settings.json   {"train": TrainConfig, "data": DataConfig, "label", "group", "owner", "created", ...}
        status.json     status, progress, result or error; rewritten atomically (tmp + os.replace)
        metrics.jsonl   one JSON record per line as they arrive (see :func:`archs.training.loop.train`)
        events.out.tfevents.*  the same records for TensorBoard (:mod:`archs.training.events`)
        weights.pt      final ``state_dict`` (completed or stopped runs), written atomically
        error.txt       the traceback of an unexpected failure
        stop            present once someone asked the run to stop
    .queue/<ns>-<id>    one empty file per queued run, named so that sorting gives FIFO order;
                        renamed to ``claimed-<id>`` by the worker launcher that takes it

Status values: ``queued``, ``running``, ``completed``, ``stopped``, ``diverged``, ``failed``,
``interrupted``. Readers derive the truth from who is responsible for an active run, so a crash needs
no clean-up to show correctly: a running run whose worker process is gone reads as ``failed``; a run
relayed by a process that is gone (a remote run's records), or queued with no queue entry, reads as
``interrupted``.

This module imports neither torch nor the executors: the local executor's supervisor uses it to move
runs along without loading torch.
"""

from __future__ import annotations

import functools
import json
import os
import re
import secrets
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any

from archs.training.config import ACTIVE_STATUSES, FINAL_STATUSES

__all__ = ["ACTIVE_STATUSES", "FINAL_STATUSES", "Run", "RunError", "RunStore", "default_runs_dir", "grad_heatmap",
           "process_alive", "process_identity", "read_json", "read_jsonl", "write_json_atomic"]

QUEUE = ".queue"
CLAIMED = "claimed-"


class RunError(ValueError):
    """A run that does not exist, or an action a run's state (or its owner) does not allow."""


def default_runs_dir() -> Path:
    return Path(os.environ.get("ARCHS_RUNS_DIR", "runs"))


# ---------------------------------------------------------------------------------------------
# files that readers see whole or not at all


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
    if hasattr(value, "tolist"):  # a tensor or an array, without importing torch here
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


def read_json(path: Path, default=None):
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
# processes: who is responsible for an active run


def _start_time(pid: int) -> str | None:
    """The kernel's start time of a process (Linux), so a recycled pid is not taken for the old process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode("ascii", "replace")
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def process_identity(pid: int | None = None) -> dict:
    """``{"pid", "host", "start"}`` of a process (default: this one), as recorded in status.json."""
    pid = os.getpid() if pid is None else pid
    return {"pid": pid, "host": socket.gethostname(), "start": _start_time(pid)}


def process_alive(identity: Any) -> bool | None:
    """True or False for a process recorded by :func:`process_identity` on this host; None when it
    was recorded on another host (nothing can be known from here)."""
    if not isinstance(identity, dict) or not isinstance(identity.get("pid"), int):
        return False
    if identity.get("host") != socket.gethostname():
        return None
    pid = identity["pid"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except OSError:
        return False
    start = _start_time(pid)
    if start is not None and identity.get("start") not in (None, start):
        return False  # the pid now belongs to another process
    try:  # a zombie (dead, not yet reaped by its parent) still answers kill(pid, 0)
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


# ---------------------------------------------------------------------------------------------
# one run on disk

_STATUS_LOCK = threading.Lock()


class Run:
    """A handle on one run folder. Every read goes to disk, so it is always current.

    A run is also what :func:`archs.training.request.execute_request` records into (the *recorder*
    interface): ``write_status``, ``append_metric``, ``write_spec``, ``save_weights``, ``write_error``.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.id = self.path.name

    def __repr__(self) -> str:
        return f"Run({self.id!r})"

    @property
    def queue_dir(self) -> Path:
        return self.path.parent / QUEUE

    # ----- reading
    def stored_status(self) -> dict:
        data = read_json(self.path / "status.json", default=None)
        return data if isinstance(data, dict) else {"status": "interrupted",
                                                    "error": "status.json is missing or unreadable"}

    def status(self) -> dict:
        """status.json, with an active status checked against whoever is responsible for the run."""
        data = self.stored_status()
        data.setdefault("id", self.id)
        stored = data.get("status")
        if stored not in ACTIVE_STATUSES:
            return data
        if "relay" in data:  # a remote run: its records reach the store through this process
            if process_alive(data["relay"]) is False:
                return {**data, "status": "interrupted", "stored_status": stored,
                        "error": "the server relaying this run's records stopped"}
            return data
        if stored == "running" and "worker" in data:
            if process_alive(data["worker"]) is False:
                pid = data["worker"].get("pid")
                return {**data, "status": "failed", "stored_status": stored,
                        "error": data.get("error") or f"the worker process (pid {pid}) ended without recording "
                                                       "a result (killed, or out of memory)"}
            return data
        if stored == "queued" and self._queue_entry() is not None:
            return data
        return {**data, "status": "interrupted", "stored_status": stored,
                "error": data.get("error") or "the process that held this run stopped before it ended"}

    def _queue_entry(self) -> Path | None:
        try:
            for entry in os.scandir(self.queue_dir):
                if entry.name.endswith("-" + self.id) and not entry.name.startswith("."):
                    return Path(entry.path)
        except OSError:
            pass
        return None

    def settings(self) -> dict:
        return read_json(self.path / "settings.json", default={}) or {}

    @property
    def owner(self) -> str | None:
        return self.settings().get("owner")

    def spec_json(self) -> str | None:
        try:
            return (self.path / "spec.json").read_text(encoding="utf-8")
        except OSError:
            return None

    def spec(self):
        """The run's ``NetSpec`` (as adapted to its data)."""
        from archs.spec import NetSpec

        text = self.spec_json()
        if text is None:
            raise RunError(f"run {self.id} has no spec.json")
        return NetSpec.from_json(text)

    def request(self):
        """The :class:`~archs.training.request.RunRequest` this run was made from."""
        from archs.training.request import RunRequest

        return RunRequest.from_run(self)

    def metrics(self, kind: str | None = None) -> list[dict]:
        records = read_jsonl(self.path / "metrics.jsonl")
        return records if kind is None else [r for r in records if r.get("kind") == kind]

    def metrics_csv(self) -> str:
        """The step, epoch and evaluation records as CSV text."""
        from archs.training.events import metrics_csv

        return metrics_csv(self.metrics())

    def has_weights(self) -> bool:
        return (self.path / "weights.pt").is_file()

    def weights(self) -> dict:
        import torch

        if not self.has_weights():
            raise RunError(f"run {self.id} has no saved weights")
        return torch.load(self.path / "weights.pt", map_location="cpu", weights_only=True)

    def load_model(self):
        """The trained network: ``build_model(spec)`` with the saved weights, in eval mode."""
        from archs.builder import build_model

        model = build_model(self.spec())
        model.load_state_dict(self.weights())
        return model.eval()

    def stop_requested(self) -> bool:
        return (self.path / "stop").exists()

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
            "kind": settings.get("kind", "train"),
            "owner": settings.get("owner"),
            "owner_name": settings.get("owner_name"),
            "executor": status.get("executor"),
            "network": status.get("network") or settings.get("network"),
            "data": (settings.get("data") or {}).get("name"),
            "status": status.get("status"),
            "created": settings.get("created"),
            "queued_at": status.get("queued_at"),
            "dispatched_at": status.get("dispatched_at"),
            "started_at": status.get("started_at"),
            "finished_at": status.get("finished_at"),
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

    # ----- writing (by the one process responsible for the run at the time)
    def write_status(self, **fields: Any) -> dict:
        with _STATUS_LOCK:  # read-modify-write by threads of one process; one process writes at a time
            data = read_json(self.path / "status.json", default={}) or {}
            data.update(fields, updated=time.time())
            write_json_atomic(self.path / "status.json", data)
        if fields.get("status") in FINAL_STATUSES and "events" in self.__dict__:
            self.events.close()  # the run is over: flush its event file
        return data

    def append_metric(self, record: dict) -> None:
        self.append_metrics([record])

    def append_metrics(self, records: list[dict]) -> None:
        """Records appended to metrics.jsonl, and to the run's TensorBoard event files."""
        if not records:
            return
        text = "".join(json.dumps(r, default=_json_default, allow_nan=True) + "\n" for r in records)
        with open(self.path / "metrics.jsonl", "a", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
        self.events.write(records)

    @functools.cached_property
    def events(self):
        """This handle's TensorBoard writer (one per process that records the run)."""
        from archs.training.events import EventLog

        return EventLog(self.path)

    def write_spec(self, spec) -> None:
        write_text_atomic(self.path / "spec.json", spec.to_json())

    def write_error(self, text: str) -> None:
        write_text_atomic(self.path / "error.txt", text)

    def save_weights(self, state_dict: dict) -> None:
        import torch

        tmp = self.path / f".weights.{os.getpid()}.tmp"
        torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, tmp)
        os.replace(tmp, self.path / "weights.pt")

    def save_weights_file(self, data: bytes) -> None:
        """Weights already serialised by ``torch.save`` (sent back by a remote worker)."""
        tmp = self.path / f".weights.{os.getpid()}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, self.path / "weights.pt")

    def request_stop(self) -> None:
        (self.path / "stop").touch()


# ---------------------------------------------------------------------------------------------
# the runs folder


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-")[:40] or "run"


class RunStore:
    """The runs folder: create, list, open, queue and delete runs."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_runs_dir()

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    @property
    def queue_dir(self) -> Path:
        return self.root / QUEUE

    # ----- creating
    def create(self, request, *, executor: str | None = None) -> Run:
        """A new run folder for a :class:`~archs.training.request.RunRequest`, with status ``queued``."""
        self.root.mkdir(parents=True, exist_ok=True)
        now = time.time()
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + f"{int(now * 1000) % 1000:03d}"
        name = request.spec.name
        path = self.root / f"{stamp}-{_slug(name)}-{secrets.token_hex(3)}"
        path.mkdir()
        run = Run(path)
        run.write_spec(request.spec)
        write_json_atomic(path / "settings.json", {**request.settings_dict(), "created": now})
        write_json_atomic(path / "status.json", {"status": "queued", "network": name, "executor": executor,
                                                 "queued_at": now, "updated": now})
        return run

    # ----- the queue (FIFO, one empty file per queued run)
    def enqueue(self, run: Run) -> None:
        self.queue_dir.mkdir(parents=True, exist_ok=True)
        (self.queue_dir / f"{time.time_ns():020d}-{run.id}").touch()

    def queued(self) -> list[str]:
        """Ids of the runs waiting for a worker, first in line first."""
        try:
            names = sorted(n for n in os.listdir(self.queue_dir) if n[:1].isdigit())
        except OSError:
            return []
        return [name.split("-", 1)[1] for name in names]

    def claim(self, run_id: str) -> bool:
        """Take a queued run out of the queue to start it; False if it is no longer there (stopped,
        or taken by another launcher)."""
        run = self.get(run_id)
        entry = run._queue_entry()
        if entry is None or entry.name.startswith(CLAIMED):
            return False
        claimed = self.queue_dir / f"{CLAIMED}{run_id}"
        try:
            os.rename(entry, claimed)
            os.utime(claimed)  # the claim's age tells a stale claim (its launcher died) from a fresh one
        except FileNotFoundError:
            return False
        return True

    def release_claim(self, run_id: str) -> None:
        try:
            os.remove(self.queue_dir / f"{CLAIMED}{run_id}")
        except FileNotFoundError:
            pass

    def unqueue(self, run_id: str) -> bool:
        """Remove a run that is still waiting from the queue; False if a launcher already took it."""
        entry = self.get(run_id)._queue_entry()
        if entry is None or entry.name.startswith(CLAIMED):
            return False
        try:
            os.remove(entry)
        except FileNotFoundError:
            return False
        return True

    # ----- reading
    def get(self, run_id: str) -> Run:
        if not isinstance(run_id, str) or not run_id or "/" in run_id or "\\" in run_id or run_id.startswith("."):
            raise RunError(f"invalid run id {run_id!r}")
        path = self.root / run_id
        if not path.is_dir():
            raise RunError(f"no run {run_id!r} in {self.root}")
        return Run(path)

    def runs(self) -> list[Run]:
        """Every run folder, newest first (a folder with neither settings.json nor status.json is skipped)."""
        if not self.root.is_dir():
            return []
        found = [Run(p) for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")]
        found = [r for r in found if (r.path / "settings.json").is_file() or (r.path / "status.json").is_file()]
        return sorted(found, key=lambda r: r.id, reverse=True)

    def list_runs(self, group: str | None = None, kind: str | None = None) -> list[dict]:
        """A row per run (:meth:`Run.info`), newest first, with ``queue_position`` (1 = next) for queued runs."""
        positions = {run_id: n for n, run_id in enumerate(self.queued(), start=1)}
        rows = []
        for run in self.runs():
            row = run.info()
            if (group is not None and row["group"] != group) or (kind is not None and row["kind"] != kind):
                continue
            row["queue_position"] = positions.get(row["id"]) if row["status"] == "queued" else None
            rows.append(row)
        return rows

    def active(self) -> list[str]:
        """Ids of running then queued runs (queued ones in FIFO order)."""
        running = [r.id for r in self.runs() if r.stored_status().get("status") == "running"
                   and r.status()["status"] == "running"]
        return sorted(running) + self.queued()

    # ----- removing
    def check_owner(self, run: Run, owner: str | None, action: str) -> None:
        """Only whoever started a run may stop or delete it (``owner=None``: an administrator, the CLI)."""
        if owner is not None and run.owner not in (None, owner):
            raise RunError(f"run {run.id} was started by someone else: only they can {action} it")

    def delete(self, run_id: str, owner: str | None = None) -> None:
        run = self.get(run_id)
        self.check_owner(run, owner, "delete")
        status = run.status()["status"]
        if status in ACTIVE_STATUSES:
            raise RunError(f"run {run_id} is {status}; stop it before deleting it")
        shutil.rmtree(run.path)

    def prune(self, keep: int) -> list[str]:
        """Delete the oldest finished runs so that at most ``keep`` runs remain; return their ids."""
        runs = self.runs()
        excess = len(runs) - keep
        removed = []
        for run in reversed(runs):  # oldest first
            if excess <= 0:
                break
            if run.status()["status"] in FINAL_STATUSES:
                shutil.rmtree(run.path, ignore_errors=True)
                removed.append(run.id)
                excess -= 1
        return removed


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
