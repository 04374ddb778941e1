"""The file-based run store as it was at 624b2cf (before SQLite), kept as the baseline of bench_store.py only.

One folder per run (``settings.json``, ``status.json``, ``metrics.jsonl``), a FIFO queue of empty files in
``.queue/``; listing opens and parses every run's files. Trimmed to what the benchmark times (create, enqueue,
claim, list); nothing in the project imports it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import threading
import time
from pathlib import Path
from typing import Any

from archs.training.config import ACTIVE_STATUSES

__all__ = ["RunStore"]

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

    def metrics(self, kind: str | None = None) -> list[dict]:
        records = read_jsonl(self.path / "metrics.jsonl")
        return records if kind is None else [r for r in records if r.get("kind") == kind]

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

    # ----- writing (what the benchmark needs of it)
    def write_status(self, **fields: Any) -> dict:
        with _STATUS_LOCK:
            data = read_json(self.path / "status.json", default={}) or {}
            data.update(fields, updated=time.time())
            write_json_atomic(self.path / "status.json", data)
        return data


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
    def create(self, request, *, executor: str | None = None) -> Run:  # writes 3 files per run
        """A new run folder for a :class:`~archs.training.request.RunRequest`, with status ``queued``."""
        self.root.mkdir(parents=True, exist_ok=True)
        now = time.time()
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + f"{int(now * 1000) % 1000:03d}"
        name = request.spec.name
        path = self.root / f"{stamp}-{_slug(name)}-{secrets.token_hex(3)}"
        path.mkdir()
        run = Run(path)
        write_text_atomic(path / "spec.json", request.spec.to_json())
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

