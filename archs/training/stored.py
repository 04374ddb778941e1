"""What a stored run is as a network: its ``NetSpec``, its weights as tensors, its trained model, the CSV of its
records, and the recorder a worker writes a run through (:class:`RunRecorder`: the store's writes plus the run's
TensorBoard event files and ``torch.save``).

The run store (:mod:`archs.training.store`) keeps text, numbers and files and imports no torch, so that the
local executor's supervisor and the pages' listings never load it; these need torch, the network code or
TensorBoard, and sit above the store. Importing this module loads none of them either (the supervisor and the
command line import it): each function imports what it needs when called.
"""

from __future__ import annotations

import functools
import io
from typing import TYPE_CHECKING, Any

from archs.training.config import FINAL_STATUSES
from archs.training.events import EventLog, metrics_csv  # light: events loads tensorboard only when it writes
from archs.training.store import Run, RunError
from archs.training.store.files import replace_file
from archs.training.store.records import WEIGHTS_NAME

if TYPE_CHECKING:
    import torch

    from archs.spec import NetSpec

__all__ = ["RunRecorder", "metrics_csv_of", "model_of", "save_weights", "spec_of", "weights_of"]


def spec_of(run: Run) -> NetSpec:
    """The run's ``NetSpec`` (as adapted to its data)."""
    from archs.spec import NetSpec  # heavy (torch), as each import below: only when called

    text = run.spec_json()
    if text is None:
        raise RunError(f"run {run.id} has no network")
    return NetSpec.from_json(text, check_budget=False)  # admitted when it was submitted


def weights_of(run: Run) -> dict:
    """The run's saved weights (a state dict on the CPU), loaded with ``weights_only``: RunError when there are
    none, they cannot be read safely (:meth:`Run.weights_bytes`), they hold more than tensors (a pickle of other
    objects, which could run code when loaded), or the file is damaged."""
    import pickle

    import torch  # heavy

    try:
        return torch.load(io.BytesIO(run.weights_bytes()), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch's own message advises weights_only=False: never shown to a user
        raise RunError(f"run {run.id}: its weights file holds more than tensors and was not loaded (loading it "
                       "could run code)") from None
    except (EOFError, RuntimeError) as error:  # empty, truncated: not a zip archive torch can read
        raise RunError(f"run {run.id}: its weights file is damaged ({type(error).__name__})") from None


def model_of(run: Run) -> torch.nn.Module:
    """The trained network: ``build_model(spec)`` with the saved weights, in eval mode."""
    from archs.builder import build_model  # heavy

    model = build_model(spec_of(run))
    model.load_state_dict(weights_of(run))
    return model.eval()


def metrics_csv_of(run: Run) -> str:
    """The run's step, epoch and evaluation records as CSV text."""
    return metrics_csv(run.metrics())


def save_weights(run: Run, state_dict: dict) -> None:
    """The weights, written to a fresh temporary file and renamed to ``weights.pt``
    (see :mod:`archs.training.store.files`)."""
    import torch  # heavy

    cpu = {k: v.detach().cpu() for k, v in state_dict.items()}
    replace_file(run.path, WEIGHTS_NAME, lambda handle: torch.save(cpu, handle))


class RunRecorder:
    """A stored run as the recorder of :func:`archs.training.request.execute_request` (a local worker, the command
    line's ``--save``, the Ray executor's relay): each write goes to the store, the metric records also to the
    run's TensorBoard event files (one writer per recorder, closed when the run ends), the weights through
    ``torch.save``."""

    def __init__(self, run: Run):
        self.run = run

    def __repr__(self) -> str:
        return f"RunRecorder({self.run!r})"

    @property
    def id(self) -> str:
        return self.run.id

    @property
    def path(self):
        return self.run.path

    @functools.cached_property
    def events(self) -> EventLog:
        """This recorder's TensorBoard writer (one per process that records the run)."""
        return EventLog(self.path)

    def write_status(self, **fields: Any) -> dict:
        """Merge ``fields`` into the run's status (:meth:`Run.write_status`); a final status flushes the event file."""
        data = self.run.write_status(**fields)
        if fields.get("status") in FINAL_STATUSES and "events" in self.__dict__:
            self.events.close()  # the run is over: flush its event file
        return data

    def append_metric(self, record: dict) -> None:
        self.append_metrics([record])

    def append_metrics(self, records: list[dict]) -> None:
        """Records appended to the run's metrics (:meth:`Run.append_metrics`, bounded), and those kept to its
        TensorBoard event files."""
        kept = self.run.append_metrics(records)
        if records:
            self.events.write(kept)  # the event files are bounded alike

    def write_spec(self, spec) -> None:
        self.run.write_spec(spec)

    def write_error(self, text: str) -> None:
        self.run.write_error(text)

    def save_weights(self, state_dict: dict) -> None:
        save_weights(self.run, state_dict)

    def save_weights_file(self, data: bytes) -> None:
        self.run.save_weights_file(data)
