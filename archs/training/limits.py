"""Limits of a shared server, from environment variables. Every executor applies them at submit time.

=============================  =====================================================  ====================
variable                       what it limits                                         default
=============================  =====================================================  ====================
ARCHS_MAX_CONCURRENT_RUNS      runs training at once (the rest wait in a FIFO queue)  1 per GPU, else 1
ARCHS_MAX_QUEUED_PER_OWNER     runs one person may have waiting in the queue          5
ARCHS_MAX_STEPS_PER_RUN        optimizer steps of one run                             no limit
ARCHS_MAX_EPOCHS_PER_RUN       epochs of one run                                      no limit (1000)
ARCHS_MAX_TRAIN_PARAMS         parameters of a network to train                       no limit (200 M)
ARCHS_MAX_RUNS_KEPT            runs kept on disk (the oldest finished ones go first)  no limit
=============================  =====================================================  ====================

A value that is not a positive integer is ignored (the default applies) rather than failing a server
at start. Going over a limit raises :class:`LimitError` with a message that says which limit, its
value, and what to change; nothing is created.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Mapping

__all__ = ["LimitError", "Limits", "default_max_concurrent", "gpu_count"]


class LimitError(ValueError):
    """A request over one of the server's limits. ``limit`` names the environment variable."""

    def __init__(self, message: str, limit: str):
        super().__init__(message)
        self.limit = limit


def gpu_count() -> int:
    """CUDA devices here (0 without torch's CUDA). Imports torch: call it where torch is loaded anyway."""
    import torch

    try:
        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001 - a broken driver is "no GPU" here
        return 0


def default_max_concurrent() -> int:
    """One run per GPU; one on a CPU-only machine (two runs on one CPU only share its cores)."""
    return max(1, gpu_count())


def _positive(env: Mapping[str, str], name: str) -> int | None:
    try:
        value = int(env.get(name, ""))
    except ValueError:
        return None
    return value if value > 0 else None


@dataclass(frozen=True)
class Limits:
    max_concurrent: int = 1
    max_queued_per_owner: int | None = 5
    max_steps: int | None = None
    max_epochs: int | None = None
    max_params: int | None = None
    max_runs_kept: int | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Limits:
        env = os.environ if env is None else env
        return cls(
            max_concurrent=_positive(env, "ARCHS_MAX_CONCURRENT_RUNS") or default_max_concurrent(),
            max_queued_per_owner=_positive(env, "ARCHS_MAX_QUEUED_PER_OWNER") or 5,
            max_steps=_positive(env, "ARCHS_MAX_STEPS_PER_RUN"),
            max_epochs=_positive(env, "ARCHS_MAX_EPOCHS_PER_RUN"),
            max_params=_positive(env, "ARCHS_MAX_TRAIN_PARAMS"),
            max_runs_kept=_positive(env, "ARCHS_MAX_RUNS_KEPT"),
        )

    def describe(self) -> list[str]:
        """The limits that are set, in words (for a page to show)."""
        lines = [f"{self.max_concurrent} run{'s' if self.max_concurrent != 1 else ''} at a time"]
        if self.max_queued_per_owner:
            lines.append(f"{self.max_queued_per_owner} waiting per person")
        if self.max_steps:
            lines.append(f"{self.max_steps:,} steps per run")
        if self.max_epochs:
            lines.append(f"{self.max_epochs:,} epochs per run")
        if self.max_params:
            lines.append(f"networks up to {self.max_params:,} parameters")
        if self.max_runs_kept:
            lines.append(f"the newest {self.max_runs_kept:,} runs kept")
        return lines

    def apply(self, request, store) -> object:
        """``request`` checked against the limits (LimitError if over one), with its steps capped where
        it set none and the server has a step limit."""
        if request.kind != "train":
            return request
        train = request.train
        if self.max_epochs and train.epochs > self.max_epochs:
            raise LimitError(f"epochs: this server trains at most {self.max_epochs:,} epochs per run "
                             f"(ARCHS_MAX_EPOCHS_PER_RUN); you asked for {train.epochs:,}", "ARCHS_MAX_EPOCHS_PER_RUN")
        if self.max_steps:
            if train.max_steps is not None and train.max_steps > self.max_steps:
                raise LimitError(f"max_steps: this server trains at most {self.max_steps:,} steps per run "
                                 f"(ARCHS_MAX_STEPS_PER_RUN); you asked for {train.max_steps:,}",
                                 "ARCHS_MAX_STEPS_PER_RUN")
            if train.max_steps is None:
                request = dataclasses.replace(request, train=dataclasses.replace(train, max_steps=self.max_steps))
        if self.max_params:
            params = request.spec.num_params()
            if params > self.max_params:
                raise LimitError(f"this network has {params:,} parameters; this server trains networks of at most "
                                 f"{self.max_params:,} (ARCHS_MAX_TRAIN_PARAMS)", "ARCHS_MAX_TRAIN_PARAMS")
        if self.max_queued_per_owner and request.owner is not None:
            waiting = sum(1 for run_id in store.queued() if _owner_of(store, run_id) == request.owner)
            if waiting >= self.max_queued_per_owner:
                raise LimitError(f"you already have {waiting} run{'s' if waiting != 1 else ''} waiting; this server "
                                 f"queues at most "
                                 f"{self.max_queued_per_owner} per person (ARCHS_MAX_QUEUED_PER_OWNER): wait for "
                                 "one to start, or stop one", "ARCHS_MAX_QUEUED_PER_OWNER")
        return request


def _owner_of(store, run_id: str) -> str | None:
    try:
        return store.get(run_id).owner
    except ValueError:
        return None
