"""One way to run a job: a :class:`RunRequest` and :func:`execute_request`.

A request is plain data (a network spec, training settings, data settings, and who asked) with a JSON
round trip, so it can be written into the run store, handed to a worker process or sent to a Ray
cluster unchanged. :func:`execute_request` is the one function that carries out a request: resolve
the data, the device and the model, train (or measure), and record everything through a *recorder*.
The CLI, every executor and the experiments call it; nothing else sets up a run.

A recorder is anything with the recording methods of :class:`archs.training.store.Run`
(``write_status``, ``append_metric``, ``write_spec``, ``write_error``, ``save_weights``): a run
folder, :class:`MemoryRecorder` (in memory, for the CLI and experiments that keep nothing), or a
remote worker's channel back to the run store (:mod:`archs.training.executors.ray`).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from archs.fields import SpecError
from archs.training.config import ConfigError, DataConfig, TrainConfig

__all__ = ["KINDS", "MemoryRecorder", "RunRequest", "execute_request", "load_factory"]

KINDS = ("train", "gradients")  # gradients: the norms at initialisation (the Gradients page's depth sweep)


@dataclass(frozen=True)
class RunRequest:
    """Everything needed to carry out a run, as plain data.

    ``kind`` is ``"train"`` or ``"gradients"`` (one forward and backward pass at initialisation with
    ``train.batch_size`` and ``train.seed``; ``data`` is then unused). ``owner`` identifies who may stop
    or delete the run (``owner_name`` is what a page shows). ``model_factory``, when given, is
    ``"package.module:function"``, a function that takes the spec and returns an ``nn.Module`` to train
    instead of ``build_model(spec)``.
    """

    spec: Any  # archs.NetSpec
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    kind: str = "train"
    label: str | None = None
    group: str | None = None
    owner: str | None = None
    owner_name: str | None = None
    model_factory: str | None = None
    recipe: str | None = None  # the recipe the settings came from, for the record (they may have been edited)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"kind: must be one of {', '.join(map(repr, KINDS))}, got {self.kind!r}", "kind")
        for name in ("label", "group", "owner", "owner_name", "model_factory", "recipe"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or len(value) > 200):
                raise ConfigError(f"{name}: must be a string of at most 200 characters", name)
        if self.model_factory is not None and ":" not in self.model_factory:
            raise ConfigError("model_factory: must be 'package.module:function'", "model_factory")

    @property
    def display_label(self) -> str:
        return self.label or f"{self.spec.name} on {self.data.name}"

    def settings_dict(self) -> dict:
        """Everything but the spec, as settings.json holds it."""
        return {"kind": self.kind, "label": self.display_label, "group": self.group, "owner": self.owner,
                "owner_name": self.owner_name, "network": self.spec.name, "model_factory": self.model_factory,
                "recipe": self.recipe, "train": self.train.to_dict(), "data": self.data.to_dict()}

    def to_dict(self) -> dict:
        return {"spec": self.spec.to_dict(), **self.settings_dict(), "label": self.label}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, values: dict) -> RunRequest:
        from archs.spec import NetSpec

        if not isinstance(values, dict):
            raise ConfigError("request: must be a JSON object")
        return cls._from_parts(NetSpec.from_dict(values.get("spec")), values)

    @classmethod
    def from_json(cls, text: str) -> RunRequest:
        try:
            values = json.loads(text)
        except ValueError as error:
            raise ConfigError(f"request: not valid JSON ({error})") from None
        return cls.from_dict(values)

    @classmethod
    def from_run(cls, run) -> RunRequest:
        """The request a run folder was created from (its spec as adapted to the data)."""
        return cls._from_parts(run.spec(), run.settings())

    @classmethod
    def _from_parts(cls, spec, values: dict) -> RunRequest:
        return cls(spec=spec, train=TrainConfig.from_dict(values.get("train") or {}),
                   data=DataConfig.from_dict(values.get("data") or {}), kind=values.get("kind", "train"),
                   label=values.get("label"), group=values.get("group"), owner=values.get("owner"),
                   owner_name=values.get("owner_name"), model_factory=values.get("model_factory"),
                   recipe=values.get("recipe"))


class MemoryRecorder:
    """A recorder that keeps everything in memory (and optionally passes each record on)."""

    def __init__(self, on_metric: Callable[[dict], None] | None = None):
        self.status: dict = {}
        self.records: list[dict] = []
        self.spec = None
        self.state_dict: dict | None = None
        self.error_text: str | None = None
        self._on_metric = on_metric

    def write_status(self, **fields: Any) -> dict:
        self.status.update(fields)
        return dict(self.status)

    def append_metric(self, record: dict) -> None:
        self.records.append(record)
        if self._on_metric is not None:
            self._on_metric(record)

    def write_spec(self, spec) -> None:
        self.spec = spec

    def write_error(self, text: str) -> None:
        self.error_text = text

    def save_weights(self, state_dict: dict) -> None:
        self.state_dict = state_dict


def load_factory(path: str) -> Callable:
    """``"package.module:function"`` -> the function."""
    module_name, _, name = path.partition(":")
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"model_factory: cannot import {path!r} ({error})", "model_factory") from None


def execute_request(request: RunRequest, recorder, *, stop_event: threading.Event | None = None,
                    model_factory: Callable | None = None, **status_fields: Any) -> dict:
    """Carry out ``request``, recording its status, metrics, adapted spec and weights in ``recorder``.

    Returns the final status dict. Bad settings or data end as status ``failed`` with the message; an
    unexpected exception ends as ``failed`` with its type and message (the traceback goes to
    ``recorder.write_error``). ``status_fields`` are written with the ``running`` status (e.g. the
    worker process's identity). ``model_factory`` (a callable) overrides the request's.
    """
    recorder.write_status(status="running", started_at=time.time(), **status_fields)
    try:
        if request.kind == "gradients":
            return _measure_gradients(request, recorder)
        return _train(request, recorder, stop_event, model_factory)
    except (SpecError, ValueError) as error:  # ConfigError, DataError: the message says what to fix
        return recorder.write_status(status="failed", error=str(error), finished_at=time.time())
    except Exception as error:  # noqa: BLE001 - any failure inside a run is the run's, not the caller's
        recorder.write_error(traceback.format_exc())
        return recorder.write_status(status="failed", error=f"{type(error).__name__}: {error}",
                                     finished_at=time.time())


def _train(request: RunRequest, recorder, stop_event, model_factory) -> dict:
    import torch

    from archs.builder import build_model
    from archs.training.data import load_dataset
    from archs.training.loop import train

    spec, data_config = request.spec, request.data
    data = load_dataset(data_config.name, root=data_config.root, input_size=spec.input_size,
                        in_channels=spec.in_channels, download=data_config.download,
                        train_limit=data_config.train_limit, test_limit=data_config.test_limit)
    if spec.num_classes != data.num_classes:
        spec = dataclasses.replace(spec, num_classes=data.num_classes)
        recorder.write_spec(spec)
    factory = model_factory or (load_factory(request.model_factory) if request.model_factory else build_model)
    torch.manual_seed(request.train.seed)
    model = factory(spec)
    progress: dict[str, Any] = {}

    def sink(record: dict) -> None:
        recorder.append_metric(record)
        kind = record.get("kind")
        if kind == "start":
            progress.update(total_steps=record["total_steps"], step=0)
            recorder.write_status(device=record["device"], amp=record["amp"], runtime=record.get("runtime"),
                                  progress=dict(progress), data=data.summary())
        elif kind in ("step", "epoch", "eval"):
            progress.update({k: record[k] for k in ("step", "epoch", "loss", "train_accuracy", "test_accuracy",
                                                    "images_per_second", "lr") if k in record})
            recorder.write_status(progress=dict(progress))

    result = train(model, data, request.train, on_metrics=sink, stop_event=stop_event)
    if result.status in ("completed", "stopped"):
        recorder.save_weights(model.state_dict())
    return recorder.write_status(status=result.status, result=result.to_dict(), message=result.message,
                                 finished_at=time.time())


def _measure_gradients(request: RunRequest, recorder) -> dict:
    from archs.inspect import gradient_profile

    profile = gradient_profile(request.spec, request.train.batch_size, request.train.seed)
    convs = [r.grad_norm for r in profile.layers if r.type == "Conv2d"]
    result = {"ratio": profile.first_last_ratio(), "first": profile.layers[0].grad_norm,
              "last_conv": convs[-1] if convs else None, "loss": profile.loss}
    recorder.append_metric({"kind": "grad", "step": 0, "layers": [dataclasses.asdict(r) for r in profile.layers]})
    return recorder.write_status(status="completed", result=result, finished_at=time.time())
