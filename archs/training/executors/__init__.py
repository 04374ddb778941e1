"""Executors: where runs execute. Each backend is one module whose class registers itself by name
(``@register``); everything that lists, picks or describes an executor (``get_executor``, the command line's
``--executor``, the Train and Runs pages) reads :data:`EXECUTORS` and the class's ``describe()``.

- ``local`` (:mod:`.local`): a worker process per run on this machine, the default;
- ``ray`` (:mod:`.ray`): tasks on a Ray cluster (needs ``requirements-ray.txt``).

A new backend is one module: a subclass of :class:`Executor` that implements ``_start`` (and any other hook
of :mod:`.base` it needs), decorated with ``@register``, saved in this package: importing the package imports
every module of it, so nothing else is edited (tests/executor_for_tests.py is a whole example in under 120
lines). It must import cheaply (its heavy dependency only when the executor is constructed).
"""

from __future__ import annotations

import os
import threading

from archs._registry import import_modules
from archs.training.config import ConfigError
from archs.training.executors.base import EXECUTORS, Executor, register
from archs.training.store import RunStore

import_modules(__name__, __path__)  # every module but base: importing a backend registers it

__all__ = ["EXECUTORS", "Executor", "get_executor", "register"]

_SHARED: dict = {}
_SHARED_LOCK = threading.Lock()


def get_executor(kind: str | None = None, runs_dir: str | os.PathLike | None = None) -> Executor:
    """The executor ``kind`` (default ``$ARCHS_EXECUTOR``, else ``local``) for a runs folder (default
    ``$ARCHS_RUNS_DIR`` or ``./runs``), shared by everything in this process that asks for the same pair,
    with the limits of the environment at the time of the first call."""
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
