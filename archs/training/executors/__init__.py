"""Executors: where runs execute. Each backend is one module that registers its class here by name; everything
that lists or picks an executor (``get_executor``, the command line's ``--executor``, the Train and Runs pages)
reads :data:`EXECUTORS`.

- ``local`` (:mod:`.local`): a worker process per run on this machine, the default;
- ``ray`` (:mod:`.ray`): tasks on a Ray cluster (needs ``requirements-ray.txt``).

A backend module must import cheaply (its heavy dependency only when the executor is constructed).
"""

from __future__ import annotations

import os
import threading

from archs.training.executors.base import Executor
from archs.training.executors.local import LocalExecutor
from archs.training.executors.ray import RayExecutor

__all__ = ["EXECUTORS", "Executor", "get_executor"]

#: name -> executor class
EXECUTORS: dict[str, type[Executor]] = {cls.name: cls for cls in (LocalExecutor, RayExecutor)}

_SHARED: dict = {}
_SHARED_LOCK = threading.Lock()


def get_executor(kind: str | None = None, runs_dir: str | os.PathLike | None = None) -> Executor:
    """The executor ``kind`` (default ``$ARCHS_EXECUTOR``, else ``local``) for a runs folder (default
    ``$ARCHS_RUNS_DIR`` or ``./runs``), shared by everything in this process that asks for the same pair,
    with the limits of the environment at the time of the first call."""
    from archs.training.config import ConfigError
    from archs.training.store import RunStore

    kind = (kind or os.environ.get("ARCHS_EXECUTOR") or "local").strip().lower()
    cls = EXECUTORS.get(kind)
    if cls is None:
        raise ConfigError(f"executor: must be one of {', '.join(EXECUTORS)}, got {kind!r} (ARCHS_EXECUTOR)",
                          "executor")
    store = RunStore(runs_dir)
    key = (kind, str(store.root.resolve()))
    with _SHARED_LOCK:
        executor = _SHARED.get(key)
        if executor is None:
            executor = _SHARED[key] = cls(store)
    return executor
