"""One way to run a job: a :class:`RunRequest` and :func:`execute_request`.

A request is plain data (a network spec, training settings, data settings, and who asked) with a JSON
round trip, so it can be written into the run store, handed to a worker process or sent to a Ray
cluster unchanged. :func:`execute_request` is the one function that carries out a request: resolve
the data, the device and the model, train (or measure), and record everything through a :class:`Recorder`.
The CLI, every executor and the experiments call it; nothing else sets up a run.

A request is data, and data never names code: the network is always ``build_model(spec)``. Python code
that wants another module trained passes a callable as ``execute_request(..., model_factory=f)``; nothing
read back from the store, a URL or a Ray message can. An operator who needs every worker to load code of
theirs (a stage type of their own) names a module in ``ARCHS_WORKER_SETUP``: configuration, not data.
"""

from __future__ import annotations

import _thread
import dataclasses
import importlib
import json
import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from archs.budget import Budget
from archs.budget import check as budget_check
from archs.fields import SpecError
from archs.training.config import ConfigError, DataConfig, TrainConfig
from archs.training.limits import EXPORT_BATCH, MEMORY_MODES
from archs.training.store import RunStore
from archs.training.stored import spec_of, weights_of

__all__ = ["KINDS", "MEASUREMENTS", "MemoryRecorder", "Recorder", "RunRequest", "StopWatch", "Stopped",
           "bound_quick_job", "build_network", "execute_request", "memory_words", "worker_setup"]

# train: a training run; gradients: the norms at initialisation (the Gradients page's depth sweep);
# health: activation health of a stored run's weights on its own test images (the Gradients page);
# and the measurements the pages ask for, carried out by a worker instead of the web server (issue 18):
# inspect: gradients and activation health at initialisation of a network and of its plain twin (Gradients page);
# cost: time and training memory per part (the Build page's Measured cost tab);
# export: a network's files in one format, with a stored run's weights or seed 0's (the Build page's Export tab)
KINDS = ("train", "gradients", "health", "inspect", "cost", "export")
MEASUREMENTS = KINDS[1:]  # quick jobs: short, bounded in memory and time, never in the web server's process
EXPORT_FOLDER = "export"  # an export job writes its files into its run's folder as export-<file name>
STOP_POLL_SECONDS = 0.1
PROGRESS_SECONDS = 0.5  # a measurement records its progress at most this often (the page redraws every 0.5 s)
# A quick job's bounds: wall-clock seconds when the operator sets none (then its worker is killed), and memory
# beyond twice the budget's estimate of its pass (torchinfo's pass, ONNX's tracing, the allocator's slack)
QUICK_SECONDS = 300.0
QUICK_SLACK_BYTES = 2 << 30


class Stopped(Exception):
    """A measurement asked to stop (Cancel) between two of its steps."""


@dataclass(frozen=True)
class RunRequest:
    """Everything needed to carry out a run, as plain data.

    ``kind`` is ``"train"``, ``"gradients"`` (one forward and backward pass at initialisation with
    ``train.batch_size`` and ``train.seed``; ``data`` is then unused) or ``"health"`` (the activation health
    of the stored run ``source_run``, with its trained weights and with the same network at initialisation,
    on ``train.batch_size`` of its own test images, read from ``data`` in the worker). ``owner`` identifies who may
    stop or delete the run (``owner_name`` is what a page shows). ``max_seconds`` stops the run after that much
    wall-clock time (the server's ``ARCHS_MAX_RUN_SECONDS``); ``max_memory_bytes`` caps the address space of the
    worker that carries it out (``RLIMIT_AS``), so an allocation past it fails there, not in the server.

    The quick kinds measure at initialisation with ``train.batch_size`` and ``train.seed``: ``"inspect"`` (gradients
    and activation health of ``spec`` and of its plain twin), ``"cost"`` (time and memory per part on
    ``train.device``, ``repeats`` timed runs) and ``"export"`` (the files of ``export_format``, written into the
    job's own folder, with the weights of ``source_run`` when one is named).
    """

    spec: Any  # archs.NetSpec
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    kind: str = "train"
    label: str | None = None
    group: str | None = None
    owner: str | None = None
    owner_name: str | None = None
    recipe: str | None = None  # the recipe the settings came from, for the record (they may have been edited)
    max_seconds: float | None = None
    source_run: str | None = None
    max_memory_bytes: int | None = None
    repeats: int | None = None          # cost
    export_format: str | None = None    # export

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"kind: must be one of {', '.join(map(repr, KINDS))}, got {self.kind!r}", "kind")
        for name in ("label", "group", "owner", "owner_name", "recipe", "source_run"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or len(value) > 200):
                raise ConfigError(f"{name}: must be a string of at most 200 characters", name)
        if self.max_seconds is not None and (isinstance(self.max_seconds, bool) or not isinstance(
                self.max_seconds, (int, float)) or not 0 < self.max_seconds < 1e9):
            raise ConfigError(f"max_seconds: must be a positive number of seconds, got {self.max_seconds!r}",
                              "max_seconds")
        if self.kind == "health" and not self.source_run:
            raise ConfigError("source_run: a health measurement names the stored run to measure", "source_run")
        if self.max_memory_bytes is not None and (isinstance(self.max_memory_bytes, bool) or not isinstance(
                self.max_memory_bytes, int) or not 1 << 20 <= self.max_memory_bytes < 1 << 50):
            raise ConfigError(f"max_memory_bytes: must be a whole number of bytes from 1 MiB, got "
                              f"{self.max_memory_bytes!r}", "max_memory_bytes")
        if self.repeats is not None and (isinstance(self.repeats, bool) or not isinstance(self.repeats, int)
                                         or not 1 <= self.repeats <= 100):
            raise ConfigError(f"repeats: must be a whole number from 1 to 100, got {self.repeats!r}", "repeats")
        if self.export_format is not None and (not isinstance(self.export_format, str)
                                               or len(self.export_format) > 20):
            raise ConfigError("export_format: must be the name of a format", "export_format")
        if self.kind == "export" and not self.export_format:
            raise ConfigError("export_format: an export names its format", "export_format")

    @property
    def display_label(self) -> str:
        return self.label or f"{self.spec.name} on {self.data.name}"

    def settings_dict(self) -> dict:
        """Everything but the spec, as the run store keeps it."""
        return {"kind": self.kind, "label": self.display_label, "group": self.group, "owner": self.owner,
                "owner_name": self.owner_name, "network": self.spec.name, "recipe": self.recipe,
                "max_seconds": self.max_seconds, "source_run": self.source_run,
                "max_memory_bytes": self.max_memory_bytes, "repeats": self.repeats,
                "export_format": self.export_format, "train": self.train.to_dict(), "data": self.data.to_dict()}

    def to_dict(self) -> dict:
        return {"spec": self.spec.to_dict(), **self.settings_dict(), "label": self.label}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, values: dict) -> RunRequest:
        from archs.spec import NetSpec  # heavy: torch

        if not isinstance(values, dict):
            raise ConfigError("request: must be a JSON object")
        return cls._from_parts(NetSpec.from_dict(values.get("spec")), values)

    @classmethod
    def from_json(cls, text: str) -> RunRequest:
        try:
            values = json.loads(text)
        except ValueError as error:
            raise ConfigError(f"request: not valid JSON ({str(error)[:200]})") from None
        except RecursionError:
            raise ConfigError("request: JSON nested too deeply") from None
        return cls.from_dict(values)

    @classmethod
    def from_run(cls, run) -> RunRequest:
        """The request a stored run was made from (its spec as adapted to its data)."""
        return cls._from_parts(spec_of(run), run.settings())

    @classmethod
    def _from_parts(cls, spec, values: dict) -> RunRequest:
        """A request from stored or received values: data, so any key not listed here (a ``model_factory``
        naming code to import, say) is ignored, and every value is checked."""
        train, data = values.get("train"), values.get("data")
        if train is not None and not isinstance(train, dict):
            raise ConfigError("train: must be an object of training settings", "train")
        if data is not None and not isinstance(data, dict):
            raise ConfigError("data: must be an object of data settings", "data")
        return cls(spec=spec, train=TrainConfig.from_dict(train or {}), data=DataConfig.from_dict(data or {}),
                   kind=values.get("kind", "train"), label=values.get("label"), group=values.get("group"),
                   owner=values.get("owner"), owner_name=values.get("owner_name"), recipe=values.get("recipe"),
                   max_seconds=values.get("max_seconds"), source_run=values.get("source_run"),
                   max_memory_bytes=values.get("max_memory_bytes"), repeats=values.get("repeats"),
                   export_format=values.get("export_format"))


@runtime_checkable
class Recorder(Protocol):
    """Where :func:`execute_request` records a run, one implementation per place: the run store
    (:class:`archs.training.stored.RunRecorder`, a local worker and the command line's ``--save``), memory
    (:class:`MemoryRecorder`), or a remote worker's channel back to the store
    (:class:`archs.training.executors.ray.ChannelRecorder`). Only the run's one worker calls them, in order."""

    def write_status(self, **fields: Any) -> dict: ...

    def append_metric(self, record: dict) -> None: ...

    def write_spec(self, spec) -> None: ...

    def write_error(self, text: str) -> None: ...

    def save_weights(self, state_dict: dict) -> None: ...


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


def worker_setup() -> None:
    """Import the module the operator names in ``ARCHS_WORKER_SETUP`` (once per process), before a run in a
    worker: the operator's hook for code every worker needs. Never named by a request."""
    name = os.environ.get("ARCHS_WORKER_SETUP", "").strip()
    if name:
        importlib.import_module(name)


def build_network(spec):
    """The network a request trains: ``build_model(spec)`` (module-level, so an operator's setup module can wrap it)."""
    from archs.builder import build_model  # heavy: torch

    return build_model(spec)


class StopWatch:
    """The one thread that watches for a reason to stop a run: someone asked (``should_stop()`` is polled,
    e.g. the run store's stop flag, or a Ray channel's; it returns a reason, True, or a false value), or the run's
    time limit passed. It sets ``stop_event``, which the training loop checks at every block, and keeps the
    reason; then it calls ``on_stop`` if given (a measurement interrupts its main thread: it has no loop to check)."""

    def __init__(self, stop_event: threading.Event, should_stop: Callable[[], str | bool | None] | None = None,
                 max_seconds: float | None = None, poll: float = STOP_POLL_SECONDS,
                 on_stop: Callable[[], None] | None = None):
        self.stop_event, self.should_stop, self.poll, self.on_stop = stop_event, should_stop, poll, on_stop
        self.deadline = None if max_seconds is None else time.monotonic() + max_seconds
        self.max_seconds = max_seconds
        self.reason: str | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="archs-stop-watch", daemon=True)

    def __enter__(self) -> StopWatch:
        if self.should_stop is not None or self.deadline is not None:
            self._check()
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()

    def _check(self) -> bool:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.reason = (f"stopped after {self.max_seconds:g} s, this server's limit per run "
                           "(ARCHS_MAX_RUN_SECONDS)")
        elif self.should_stop is not None:
            try:
                answer = self.should_stop()
            except Exception:  # noqa: BLE001 - a store or channel that cannot answer now: ask again later
                return False
            if not answer:
                return False
            self.reason = answer if isinstance(answer, str) else None
        else:
            return False
        self.stop_event.set()
        return True

    def _watch(self) -> None:
        while not self._done.wait(self.poll):
            if self.stop_event.is_set():
                return
            if self._check():
                if self.on_stop is not None and not self._done.is_set():
                    self.on_stop()
                return


def execute_request(request: RunRequest, recorder: Recorder, *, stop_event: threading.Event | None = None,
                    should_stop: Callable[[], str | bool | None] | None = None, model_factory: Callable | None = None,
                    store=None, on_metric: Callable[[dict], None] | None = None, **status_fields: Any) -> dict:
    """Carry out ``request``, recording its status, metrics, adapted spec and weights in ``recorder``.

    Returns the final status dict. Bad settings or data end as status ``failed`` with the message; an
    unexpected exception ends as ``failed`` with its type and message (the traceback goes to
    ``recorder.write_error``). ``status_fields`` are written with the ``running`` status (e.g. the
    worker process's identity). The run stops at its next block of compute once ``stop_event`` is set, once
    ``should_stop()`` (polled by a :class:`StopWatch`) says so, or after ``request.max_seconds``.
    ``model_factory`` (a callable: Python code only) builds the module to train instead of the spec's network.
    ``store`` is the run store a ``health`` request reads its source run from (default: ``$ARCHS_RUNS_DIR``).
    ``on_metric`` sees each training record once recorded (the command line prints progress with it).
    """
    stop_event = stop_event or threading.Event()
    recorder.write_status(status="running", started_at=time.time(), **status_fields)
    # a measurement (no loop checking stop_event) in a process's main thread, as in a worker: Cancel or its time
    # limit interrupts it between two torch operations (KeyboardInterrupt), not at its next progress report
    interrupt = request.kind in _MEASURE and threading.current_thread() is threading.main_thread()
    watch = StopWatch(stop_event, should_stop, request.max_seconds,
                      on_stop=_thread.interrupt_main if interrupt else None)
    try:
        with watch:
            if request.kind == "gradients":
                return _measure_gradients(request, recorder)
            if request.kind == "health":
                return _measure_health(request, recorder, store)
            if request.kind in ("inspect", "cost", "export"):
                return _MEASURE[request.kind](request, recorder, stop_event, store)
            return _train(request, recorder, stop_event, model_factory, watch, on_metric)
    except (Stopped, KeyboardInterrupt):
        if not stop_event.is_set():
            raise  # a real Ctrl-C
        return recorder.write_status(status="stopped", message=watch.reason or "stopped before it finished",
                                     finished_at=time.time())
    except (SpecError, ValueError) as error:  # ConfigError, DataError: the message says what to fix
        return recorder.write_status(status="failed", error=str(error), finished_at=time.time())
    except Exception as error:  # noqa: BLE001 - any failure inside a run is the run's, not the caller's
        recorder.write_error(traceback.format_exc())
        return recorder.write_status(status="failed", finished_at=time.time(),
                                     error=memory_words(error, request.max_memory_bytes)
                                     or f"{type(error).__name__}: {error}")


def memory_words(error: BaseException, cap: int | None) -> str | None:
    """What to record for an allocation that failed under the run's memory cap (None for any other error), in the
    same write as the run's end, so a reader never sees the allocator's words first."""
    text = str(error).lower()
    if not cap:
        return None
    if isinstance(error, SystemError) and "without exception set" in text:
        # native code whose allocation failed under RLIMIT_AS and said nothing (seen in CI from a batch of 4,096):
        # not certain, so said as likely, with what the run raised
        return (f"the run failed in native code ({type(error).__name__}: {error}) while under its memory cap of "
                f"{cap / 2**30:.2f} GiB (the server's memory budget for it): most likely an allocation past the cap; "
                "lower the batch size or the input size")
    if not (isinstance(error, MemoryError) or "can't allocate memory" in text or "cannot allocate memory" in text):
        return None
    return (f"the run needed more memory than its cap of {cap / 2**30:.2f} GiB (the server's memory budget for it): "
            "lower the batch size or the input size")


def _load_data(data_config: DataConfig, spec):
    from archs.training.data import load_dataset  # heavy: torch

    return load_dataset(data_config.name, root=data_config.root, input_size=spec.input_size,
                        in_channels=spec.in_channels, download=data_config.download,
                        train_limit=data_config.train_limit, test_limit=data_config.test_limit)


def _train(request: RunRequest, recorder, stop_event, model_factory, watch: StopWatch, on_metric) -> dict:
    import torch  # heavy, as are the loop's imports

    from archs.training.loop import train

    spec = request.spec
    data = _load_data(request.data, spec)
    validation = None
    if request.data.val_split:
        if not hasattr(data, "hold_out"):
            raise ConfigError("val_split: a validation split needs a data set held in memory; this image folder is "
                              "streamed from disk", "val_split")
        data, validation = data.hold_out(request.data.val_split)
    if spec.num_classes != data.num_classes:
        spec = dataclasses.replace(spec, num_classes=data.num_classes)
        recorder.write_spec(spec)
    torch.manual_seed(request.train.seed)
    model = (model_factory or build_network)(spec)
    progress: dict[str, Any] = {}

    def sink(record: dict) -> None:
        recorder.append_metric(record)
        if on_metric is not None:
            on_metric(record)
        kind = record.get("kind")
        if kind == "start":
            progress.update(total_steps=record["total_steps"], step=0)
            recorder.write_status(device=record["device"], amp=record["amp"], runtime=record.get("runtime"),
                                  progress=dict(progress), data=data.summary())
        elif kind in ("step", "epoch", "eval"):
            progress.update({k: record[k] for k in ("step", "epoch", "loss", "train_accuracy", "test_accuracy",
                                                    "images_per_second", "lr") if k in record})
            recorder.write_status(progress=dict(progress))

    result = train(model, data, request.train, on_metrics=sink, stop_event=stop_event, validation=validation)
    if result.status in ("completed", "stopped"):
        recorder.save_weights(model.state_dict())
    message = watch.reason if result.status == "stopped" and watch.reason else result.message
    return recorder.write_status(status=result.status, result=result.to_dict(), message=message,
                                 finished_at=time.time())


def _measure_gradients(request: RunRequest, recorder) -> dict:
    from archs.inspect import gradient_profile  # heavy: torch

    profile = gradient_profile(request.spec, request.train.batch_size, request.train.seed)
    convs = [r.grad_norm for r in profile.layers if r.type == "Conv2d"]
    result = {"ratio": profile.first_last_ratio(), "first": profile.layers[0].grad_norm,
              "last_conv": convs[-1] if convs else None, "loss": profile.loss}
    recorder.append_metric({"kind": "grad", "step": 0, "layers": [dataclasses.asdict(r) for r in profile.layers]})
    return recorder.write_status(status="completed", result=result, finished_at=time.time())


def sample_test_batch(data_config: DataConfig, spec, batch_size: int, seed: int):
    """A seeded batch of a data set's test images, normalised as training normalises them, and a few words
    saying what it is; None when the data cannot be read here (moved, never downloaded)."""
    import torch  # heavy, as is data

    from archs.training.data import normalize_batch

    try:
        data = _load_data(data_config, spec)  # with the run's limits: its mean and std, as trained
        x, _ = next(data.test_batches(max(data.test_size, 1)))
    except Exception:  # noqa: BLE001 - any unreadable data: the caller falls back to random images
        return None
    pick = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:batch_size]
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    return normalize_batch(x[pick], mean, std), f"{len(pick)} test images of {data.name}"


def _measure_health(request: RunRequest, recorder, store) -> dict:
    """Activation health of a stored run, with its trained weights and at initialisation (seeded), both in eval
    mode on one seeded batch of its own test images (random images where they cannot be read here)."""
    import torch  # heavy, as are the network's modules

    from archs.builder import build_model
    from archs.health import activation_stats, random_batch

    store = store if store is not None else RunStore()
    spec, seed, batch_size = request.spec, request.train.seed, request.train.batch_size
    weights = weights_of(store.get(request.source_run))
    batch = sample_test_batch(request.data, spec, batch_size, seed)
    inputs, words = batch if batch is not None else (random_batch(spec, batch_size, seed), "random normal images")
    result = {}
    for name, trained in (("trained", True), ("initial", False)):
        torch.manual_seed(seed)
        model = build_model(spec, init_weights=not trained)
        if trained:
            model.load_state_dict(weights)
        result[name] = dataclasses.replace(activation_stats(model, inputs, False), inputs=words).to_dict()
    return recorder.write_status(status="completed", result=result, finished_at=time.time())


# ----- the quick measurements (issue 18: each in a worker, never in the web server)
def _checkpoint(stop_event: threading.Event) -> None:
    """Between two steps of a measurement: end it if someone asked (Cancel) or its time is up."""
    if stop_event.is_set():
        raise Stopped()


def _measure_inspect(request: RunRequest, recorder, stop_event: threading.Event, store) -> dict:
    """Gradients and activation health at initialisation of the network and, when it has skips, of its plain twin,
    on the same seeded batch (the Gradients page's charts)."""
    from archs.health import activation_health  # heavy: torch
    from archs.inspect import gradient_profile, plain_twin

    spec, batch_size, seed = request.spec, request.train.batch_size, request.train.seed
    twin = plain_twin(spec)
    result: dict[str, Any] = {}
    steps = [("network", spec)] + ([("twin", twin)] if twin != spec else [])
    for n, (name, measured) in enumerate(steps):
        _checkpoint(stop_event)
        recorder.write_status(progress={"fraction": n / len(steps), "message": f"Gradients of the {name}…"})
        gradients = gradient_profile(measured, batch_size, seed).to_dict()
        _checkpoint(stop_event)
        recorder.write_status(progress={"fraction": (n + 0.5) / len(steps), "message": f"Activations of the {name}…"})
        result[name] = {"gradients": gradients, "health": activation_health(measured, batch_size, seed).to_dict()}
    return recorder.write_status(status="completed", result=result, finished_at=time.time())


def _measure_cost(request: RunRequest, recorder, stop_event: threading.Event, store) -> dict:
    """:func:`archs.cost.measure_cost` on ``train.device`` with ``repeats`` (its progress as the run's)."""
    from archs.cost import measure_cost  # heavy: torch

    last = [0.0]

    def progress(fraction: float, message: str) -> None:
        _checkpoint(stop_event)
        if time.monotonic() - last[0] >= PROGRESS_SECONDS:  # a write to the store each time: a few per second at most
            last[0] = time.monotonic()
            recorder.write_status(progress={"fraction": fraction, "message": message})

    device = "cpu" if request.train.device == "auto" else request.train.device
    report = measure_cost(request.spec, request.train.batch_size, device, request.repeats or 5,
                          seed=request.train.seed, progress=progress)
    return recorder.write_status(status="completed", result=report.to_dict(), finished_at=time.time())


def _measure_export(request: RunRequest, recorder, stop_event: threading.Event, store) -> dict:
    """The files of an export, written into the job's own folder (``export-<file name>``, never through a link);
    the result lists their names and sizes, the main file first."""
    from archs.export import export_bytes  # heavy: torch (and onnx, for that format)
    from archs.training.store.files import replace_file

    weights = None
    if request.source_run:
        store = store if store is not None else RunStore()
        weights = weights_of(store.get(request.source_run))
    _checkpoint(stop_event)
    recorder.write_status(progress={"fraction": 0.1, "message": f"Exporting as {request.export_format}…"})
    files = export_bytes(request.spec, request.export_format, weights)
    _checkpoint(stop_event)
    folder = getattr(recorder, "path", None)
    if folder is None:  # a recorder without a folder (in memory): nowhere to leave files
        raise ValueError("an export job needs a run folder to write its files into")
    for name, data in files.items():
        replace_file(folder, f"{EXPORT_FOLDER}-{name}", lambda handle, data=data: handle.write(data))
    return recorder.write_status(status="completed", finished_at=time.time(),
                                 result={"files": [[name, len(data)] for name, data in files.items()]})


_MEASURE = {"inspect": _measure_inspect, "cost": _measure_cost, "export": _measure_export}


def bound_quick_job(request: RunRequest, env=None) -> RunRequest:
    """A quick job checked against the server's memory budget at its batch and input size before it is queued
    (:func:`archs.budget.check` raises BudgetError, a SpecError naming the setting, over it), and given its bounds:
    ``max_seconds`` from ``ARCHS_QUICK_MAX_SECONDS`` (default 300; the worker is killed after it and a grace
    period) and ``max_memory_bytes``, the cap the OS enforces on its worker: twice the budget's estimate of its
    pass (never more than the budget) plus 2 GiB."""
    env = os.environ if env is None else env
    try:
        seconds = float(env.get("ARCHS_QUICK_MAX_SECONDS", ""))
    except ValueError:
        seconds = QUICK_SECONDS
    seconds = seconds if 0 < seconds < 1e9 else QUICK_SECONDS
    mode = MEMORY_MODES.get(request.kind, "train")
    batch = EXPORT_BATCH if request.kind == "export" else request.train.batch_size
    limits = Budget.from_env(env)
    footprint = budget_check(request.spec, batch, None, mode, limits)
    memory = min(2 * footprint.memory_bytes(batch, mode), limits.max_memory_bytes) + QUICK_SLACK_BYTES
    return dataclasses.replace(request, max_seconds=min(seconds, request.max_seconds or seconds),
                               max_memory_bytes=int(memory))
