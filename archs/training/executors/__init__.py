"""Executors: where runs execute. ``local`` (a worker process per run, the default) or ``ray``."""

from archs.training.executors.base import EXECUTORS, Executor, get_executor

__all__ = ["EXECUTORS", "Executor", "get_executor"]
