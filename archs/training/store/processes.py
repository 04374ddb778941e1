"""Who is responsible for an active run, and whether that process is still alive: a crash needs no clean-up
to show correctly, because readers derive the truth from the process recorded with the run."""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path
from typing import Any

from archs.training.config import ACTIVE_STATUSES
from archs.training.store.files import safe_append_fd

__all__ = ["derive_status", "process_alive", "process_identity"]


def _start_time(pid: int) -> str | None:
    """The kernel's start time of a process (Linux), so a recycled pid is not taken for the old process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode("ascii", "replace")
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def process_identity(pid: int | None = None) -> dict:
    """``{"pid", "host", "start"}`` of a process (default: this one), as recorded with a run."""
    pid = os.getpid() if pid is None else pid
    return {"pid": pid, "host": socket.gethostname(), "start": _start_time(pid)}


def process_alive(identity: Any) -> bool | None:
    """True or False for a process recorded by :func:`process_identity` on this host; None when it was
    recorded on another host (nothing can be known from here)."""
    if not isinstance(identity, dict) or not isinstance(identity.get("pid"), int) or isinstance(
            identity.get("pid"), bool):
        return False
    if identity.get("host") != socket.gethostname():
        return None
    pid = identity["pid"]
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except (OSError, OverflowError):
        return False
    start = _start_time(pid)
    if start is not None and identity.get("start") not in (None, start):
        return False  # the pid now belongs to another process
    try:  # a zombie (dead, not yet reaped by its parent) still answers kill(pid, 0)
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def derive_status(stored: dict, in_queue: bool = True) -> dict:
    """A stored status checked against whoever is responsible for the run (see the module docstring).
    ``in_queue``: a ``queued`` run is in the store's queue (a run queued nowhere, with no relay, is held by no one)."""
    status = stored.get("status")
    if status not in ACTIVE_STATUSES:
        return stored
    if stored.get("relay") is not None:  # a remote run: its records reach the store through that process
        if process_alive(stored["relay"]) is False:
            return {**stored, "status": "interrupted", "stored_status": status,
                    "error": "the server relaying this run's records stopped"}
        return stored
    if status == "running":
        if process_alive(stored.get("worker")) is False:
            pid = (stored.get("worker") or {}).get("pid") if isinstance(stored.get("worker"), dict) else None
            return {**stored, "status": "failed", "stored_status": status,
                    "error": stored.get("error") or f"the worker process (pid {pid}) ended without recording a "
                                                    "result (killed, or out of memory)"}
    elif not in_queue:
        return {**stored, "status": "interrupted", "stored_status": status,
                "error": stored.get("error") or "the process that held this run stopped before it ended"}
    return stored


# ---------------------------------------------------------------------------------------------
# the database


def lock_held(path: Path) -> bool:
    """Whether a process holds the ``flock`` on ``path`` (a supervisor's, a study driver's): the lock ends with
    its process, however that ends, so this never reads a stale claim."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(safe_append_fd(path), "a") as handle:  # never a link's target (archs.training.store.files)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False
