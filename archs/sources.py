"""Where a network comes from: a preset, a spec file, or a stored training run (its spec, its trained
weights and its metric records).

This is the only module of ``archs`` that reads the run store: :func:`_run_store` is the one place that
imports it, so everything else (export, activation health, the Compare page) asks here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from .fields import SpecError
from .presets import PRESETS, load_spec
from .spec import NetSpec

__all__ = ["Source", "SourceError", "resolve", "list_runs", "mark_viewed", "run_has_weights", "run_spec", "run_weights",
           "run_metrics", "run_label"]


class SourceError(ValueError):
    """A run that does not exist or has no weights, or a name that is neither a preset, a file nor a run."""


def _run_store():
    """The run store and its error type (the one import of the run store in archs)."""
    from archs.training.store import RunError, RunStore

    return RunStore(), RunError


@dataclass(frozen=True)
class Source:
    spec: NetSpec
    label: str                                  # what to call it: a preset name, a file name, a run's label
    run_id: str | None = None                   # set for a stored run

    def weights(self) -> dict[str, torch.Tensor] | None:
        """The run's trained weights; None for a preset or a spec file (freshly initialised)."""
        return run_weights(self.run_id) if self.run_id else None


def _open_run(run_id: str):
    store, RunError = _run_store()
    try:
        return store.get(run_id)
    except RunError as error:
        raise SourceError(str(error)) from None


RUN_CHOICES = 200  # the newest training runs a page offers to pick from (the Runs page pages through them all)


def list_runs(limit: int = RUN_CHOICES) -> list[dict]:
    """The newest ``limit`` rows of the run store's training runs, newest first: ``id``, ``label``, ``network``,
    ``data``, ``status``, …, and ``has_weights``. One paged query, however many runs are stored, and no file looked
    at: ``has_weights`` is what the store recorded when the run ended, so a page that offers the runs with weights
    checks the file of the one run picked (:func:`run_has_weights`; :func:`run_weights` does). An unreadable store
    gives no rows."""
    store, RunError = _run_store()
    try:
        return store.list_runs(kind="train", limit=limit, weights=True)  # not the depth sweep's measurements
    except (OSError, RunError):
        return []


def run_has_weights(run_id: str) -> bool:
    """Whether the run's weights file is there, a regular file of its own (a link planted there is not), looked up
    on disk: for the one run someone picks from :func:`list_runs`' rows. A wrong record (a weights file removed or
    replaced since) is corrected, so the lists stop offering that run."""
    store, RunError = _run_store()
    try:
        return store.get(run_id).check_weights()
    except (OSError, RunError):
        return False


def mark_viewed(run_ids: Iterable[str | None]) -> None:
    """Say that a page shows these stored runs now, so that ``ARCHS_MAX_RUNS_KEPT``'s pruning spares them for a
    while (:meth:`archs.training.store.RunStore.mark_viewed`: a write once a minute at most, however often the page
    redraws). Every page that shows a stored run calls it on each run of its script, with the runs it shows: Compare
    (each side that is a run), Build's Export tab (the run whose weights it exports) and the Gradients page (the
    run whose activations it measures); the Runs page marks its own through the
    store it holds. ``None`` and ids of no run are passed over; a store that cannot be written only means the runs
    are not marked (the page carries on)."""
    ids = [i for i in run_ids if i]
    if not ids:
        return
    store, RunError = _run_store()
    try:
        store.mark_viewed(ids)
    except (OSError, RunError):
        pass


def run_spec(run_id: str) -> NetSpec:
    from archs.training.stored import spec_of  # above the run store, as _run_store's import

    run = _open_run(run_id)
    try:
        return spec_of(run)
    except SpecError as error:
        raise SourceError(f"run {run_id}: its spec.json is not a valid network ({error})") from None
    except (OSError, ValueError) as error:
        raise SourceError(f"run {run_id}: no readable network ({error})") from None


def run_weights(run_id: str) -> dict[str, torch.Tensor]:
    from archs.training.stored import weights_of  # above the run store, as _run_store's import

    run = _open_run(run_id)
    if not run.check_weights():
        raise SourceError(f"run {run_id} has no saved weights (only completed and stopped runs have them)")
    try:
        return weights_of(run)
    except Exception as error:  # noqa: BLE001 - a truncated or foreign file: say so, do not crash a page
        raise SourceError(f"run {run_id}: its weights cannot be read ({type(error).__name__})") from None


def run_metrics(run_id: str) -> list[dict]:
    """The run's step, epoch and evaluation records a chart draws (a few hundred, picked in the store's SQL)."""
    return _open_run(run_id).chart_metrics(("step", "epoch", "eval"))


def run_label(run_id: str) -> str:
    info = _open_run(run_id).row()
    return f"{info.get('label') or run_id} ({run_id[-6:]})"


def run_source(run_id: str) -> Source:
    return Source(run_spec(run_id), run_label(run_id), run_id)


def resolve(name: str) -> Source:
    """A preset name, the path of a JSON spec file, or the id of a stored run."""

    if name in PRESETS or name.lower().endswith(".json") or Path(name).exists():
        return Source(load_spec(name), Path(name).stem if name not in PRESETS else name)
    store, RunError = _run_store()
    try:
        store.get(name)
    except RunError:
        raise SourceError(f"{name!r} is not a preset, a spec file or a run in {store.root} (presets: "
                          f"{', '.join(PRESETS)})") from None
    return run_source(name)
