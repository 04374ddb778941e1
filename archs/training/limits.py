"""Limits of a shared server, and who administers it, from environment variables. Every executor applies
them to every kind of run (training, depth-sweep measurements, experiments, studies) at submit time.

=============================  =====================================================  ====================
variable                       what it limits                                         default
=============================  =====================================================  ====================
ARCHS_MAX_CONCURRENT_RUNS      runs training at once (the rest wait in a FIFO queue)  1 per GPU, else 1
ARCHS_MAX_QUEUED_PER_OWNER     runs one person may have waiting in the queue          10
ARCHS_MAX_QUEUED               runs waiting in the queue, everyone's together         100
ARCHS_MAX_STEPS_PER_RUN        optimizer steps of one run                             no limit
ARCHS_MAX_EPOCHS_PER_RUN       epochs of one run                                      no limit (1000)
ARCHS_MAX_TRAIN_PARAMS         parameters of a network to train                       no limit (200 M)
ARCHS_MAX_RUN_SECONDS          wall-clock seconds of one run (then it is stopped)     no limit
ARCHS_STOP_GRACE_SECONDS       seconds a local worker asked to stop (or past its      30
                               time) may take before it is killed (SIGTERM, SIGKILL)
ARCHS_MAX_WORKER_MEMORY        memory of one local worker (bytes, or 8G): over it,    3/4 of this
                               an allocation fails there (RLIMIT_AS; by resident      machine's memory
                               size where a GPU is visible), never in the server
ARCHS_MAX_RUNS_KEPT            runs kept in the store, everyone's: a submit deletes   no limit
                               the oldest finished runs, of gone sessions first, then
                               the submitter's own; never a pinned, viewed or active
                               one (``archs.training.store.RunStore.prune``)
ARCHS_MAX_TRIALS_PER_STUDY     trials of one study (sweep, search, claim)             200
ARCHS_MAX_STUDIES_PER_OWNER    studies one person may have running                    3
ARCHS_MAX_STUDY_DRIVERS        studies driven at once, everyone's together (one       4
                               process each; another is refused until one ends)
ARCHS_ADMINS                   owners who may stop and delete anyone's runs           none
                               (comma-separated, e.g. ``user:ta@uni.edu,cli:root``)
ARCHS_MAX_STAGES               stem parts and stages of a network                     64
ARCHS_MAX_BLOCKS               blocks of a network (residual blocks, dense layers,    1,000
                               Inception modules, plain conv layers)
ARCHS_MAX_MODULES              torch modules of a network, containers included        6,000
ARCHS_MAX_PARAMS               parameters of a network                                200 M
ARCHS_MAX_MEMORY_MB            estimated memory of one run's step at its batch and    32,768 (32 GB)
                               input size (training: weights, gradients, Adam state
                               and activations; a measurement: its own pass)
=============================  =====================================================  ====================

The last five are the network's size budget (:mod:`archs.budget`): checked from the spec, before anything is
built, wherever a network comes in (a link, an upload, the Build and Compare pages, a study trial, a run) and,
at a run's own batch size and input size, here at submit time. A network over one is refused with the setting's
name and value (:class:`archs.budget.BudgetError` there, :class:`LimitError` here).

A value that is not a positive integer is ignored (the default applies) rather than failing a server at
start. Going over a limit raises :class:`LimitError` with a message that says which limit, its value, and
what to change; nothing is created. Several runs submitted together (a sweep, an experiment) are admitted
or refused together: the count is checked in the same store transaction that creates them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass

from archs.budget import Budget, BudgetError, check, check_memory

__all__ = ["LimitError", "Limits", "MEMORY_MODES", "default_max_concurrent", "gpu_count"]

#: the pass a run of each kind makes (:func:`archs.budget.estimate`'s modes), for its memory budget: a training step
#: (training, measured cost); one forward and backward pass at initialisation (gradients, the Gradients page's
#: inspection); forward passes in eval mode (activation health, an export). A kind not listed counts as training.
MEMORY_MODES = {"train": "train", "gradients": "backward", "health": "forward", "inspect": "backward",
                "cost": "train", "export": "forward"}
EXPORT_BATCH = 2  # an export traces a batch of 2, whatever the request's batch size
EVAL_BATCH = 256  # a training run evaluates at max(its batch, this) (archs.training.loop)


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


def _positive(env: Mapping[str, str], *names: str) -> int | None:
    for name in names:
        try:
            value = int(env.get(name, ""))
        except ValueError:
            continue
        if value > 0:
            return value
    return None


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class Limits:
    max_concurrent: int = 1
    max_queued_per_owner: int | None = 10
    max_queued: int | None = 100
    max_steps: int | None = None
    max_epochs: int | None = None
    max_params: int | None = None
    max_runs_kept: int | None = None
    max_run_seconds: int | None = None
    max_trials_per_study: int | None = 200
    max_studies_per_owner: int | None = 3
    max_study_drivers: int | None = 4
    admins: tuple[str, ...] = ()
    budget: Budget = Budget()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Limits:
        env = os.environ if env is None else env
        concurrent = _positive(env, "ARCHS_MAX_CONCURRENT_RUNS")
        return cls(
            max_concurrent=concurrent or default_max_concurrent(),
            max_queued_per_owner=_positive(env, "ARCHS_MAX_QUEUED_PER_OWNER") or 10,
            max_queued=_positive(env, "ARCHS_MAX_QUEUED") or 100,
            max_steps=_positive(env, "ARCHS_MAX_STEPS_PER_RUN"),
            max_epochs=_positive(env, "ARCHS_MAX_EPOCHS_PER_RUN"),
            max_params=_positive(env, "ARCHS_MAX_TRAIN_PARAMS"),
            max_runs_kept=_positive(env, "ARCHS_MAX_RUNS_KEPT", "ARCHS_RUNS_KEPT"),
            max_run_seconds=_positive(env, "ARCHS_MAX_RUN_SECONDS"),
            max_trials_per_study=_positive(env, "ARCHS_MAX_TRIALS_PER_STUDY") or 200,
            max_studies_per_owner=_positive(env, "ARCHS_MAX_STUDIES_PER_OWNER") or 3,
            max_study_drivers=_positive(env, "ARCHS_MAX_STUDY_DRIVERS") or 4,
            admins=cls.admins_from_env(env),
            budget=Budget.from_env(env),
        )

    @staticmethod
    def admins_from_env(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
        """``ARCHS_ADMINS``: owners who may stop and delete anyone's runs (comma-separated)."""
        env = os.environ if env is None else env
        return tuple(sorted({a.strip() for a in env.get("ARCHS_ADMINS", "").split(",") if a.strip()}))

    def is_admin(self, owner: str | None) -> bool:
        return owner is not None and owner in self.admins

    def describe(self) -> list[str]:
        """The limits that are set, in words (for a page to show)."""
        lines = [f"{_plural(self.max_concurrent, 'run')} at a time"]
        if self.max_queued_per_owner:
            lines.append(f"{self.max_queued_per_owner} waiting per person")
        if self.max_queued:
            lines.append(f"{self.max_queued} waiting in all")
        if self.max_steps:
            lines.append(f"{self.max_steps:,} steps per run")
        if self.max_epochs:
            lines.append(f"{self.max_epochs:,} epochs per run")
        if self.max_run_seconds:
            lines.append(f"{_duration(self.max_run_seconds)} per run")
        if self.max_params:
            lines.append(f"networks up to {self.max_params:,} parameters")
        if self.max_runs_kept:
            lines.append(f"the newest {self.max_runs_kept:,} runs kept")
        return lines

    def prepare(self, request):
        """``request`` checked against the per-run limits (LimitError if over one), with its steps capped where
        it set none and the server has a step limit, and the server's time limit attached."""
        if self.max_run_seconds and (request.max_seconds is None or request.max_seconds > self.max_run_seconds):
            request = dataclasses.replace(request, max_seconds=float(self.max_run_seconds))
        self.check_budget(request)
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
        return request

    def check_budget(self, request) -> None:
        """``request``'s network against the size budget, at the run's batch size and input size (LimitError
        naming the setting if over it): a training run's step and its evaluation; a measurement's own pass."""
        mode = MEMORY_MODES.get(request.kind, "train")
        batch = EXPORT_BATCH if request.kind == "export" else request.train.batch_size
        try:
            footprint = check(request.spec, batch, mode=mode, budget=self.budget)
            if mode == "train":  # its evaluations: forward passes at a larger batch
                check_memory(request.spec, footprint, max(batch, EVAL_BATCH), "forward", self.budget,
                             doing=f"to evaluate (a training run evaluates at batch {EVAL_BATCH} or its own, if "
                                   "larger)")
        except BudgetError as error:
            raise LimitError(str(error), error.limit) from None

    def admit(self, counts, requests: list) -> None:
        """Refuse these requests, all together, if queueing them would pass a queue limit. ``counts`` is the
        store's count at this moment (:class:`archs.training.store.QueueCounts`), inside the transaction that
        will create them."""
        what = "these runs" if len(requests) > 1 else "this run"
        if self.max_queued:
            waiting = counts.queued()
            if waiting + len(requests) > self.max_queued:
                raise LimitError(f"the queue is full: {_plural(waiting, 'run')} waiting, and this server queues at "
                                 f"most {self.max_queued} in all (ARCHS_MAX_QUEUED); {what} ({len(requests)}) would "
                                 "pass it. Try again when some have started.", "ARCHS_MAX_QUEUED")
        if self.max_queued_per_owner:
            for owner in sorted({r.owner for r in requests}):
                mine = sum(1 for r in requests if r.owner == owner)
                waiting = counts.queued(owner)
                if waiting + mine > self.max_queued_per_owner:
                    have = f"you already have {_plural(waiting, 'run')} waiting" if waiting else "you have none waiting"
                    raise LimitError(f"{have}; this server queues at most {self.max_queued_per_owner} per person "
                                     f"(ARCHS_MAX_QUEUED_PER_OWNER), and {what} would add {mine}: wait for some to "
                                     "start, or stop some", "ARCHS_MAX_QUEUED_PER_OWNER")


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        return _plural(seconds // 3600, "hour")
    if seconds % 60 == 0:
        return _plural(seconds // 60, "minute")
    return _plural(seconds, "second")
