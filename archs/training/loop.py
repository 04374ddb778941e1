"""The training loop: a built model, a :class:`~archs.training.data.TensorData`, a :class:`TrainConfig`.

The whole data set sits in tensors (on the device when it fits); each step indexes a batch, augments
it as one tensor and normalises it, so the hot loop runs no per-sample Python. Metrics go to a
callback as plain dicts (see :func:`train`), a ``threading.Event`` stops the run within one block's
forward or backward pass, and a NaN or infinite loss ends it as ``"diverged"`` with the metrics so
far kept.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from archs.training.config import (
    MAX_EVAL_RECORDS,
    MAX_GRAD_RECORDS,
    MAX_STEP_RECORDS,
    ConfigError,
    TrainConfig,
    record_every,
)
from archs.training.data import TensorData, augment_batch, normalize_batch
from archs.training.device import Runtime, make_generator, place_data, resolve_device, resolve_runtime
from archs.training.distributed import Context, context
from archs.training.tuning import choose

__all__ = ["MetricsSink", "StopRequested", "TrainResult", "evaluate", "lr_at", "make_optimizer", "plan_steps",
           "train"]

MetricsSink = Callable[[dict], None]


class StopRequested(Exception):
    """Raised inside a forward or backward pass when the run's stop event is set."""


@dataclass
class TrainResult:
    status: str  # "completed" | "stopped" | "diverged"
    device: str
    amp: str
    steps: int
    epochs: float
    train_loss: float | None
    train_accuracy: float | None
    test_loss: float | None
    test_accuracy: float | None
    images_per_second: float
    seconds: float
    message: str = ""
    world_size: int = 1
    val_loss: float | None = None      # on the validation images held out of the training set (DataConfig.val_split)
    val_accuracy: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# the pieces a step is made of


def plan_steps(config: TrainConfig, train_size: int) -> tuple[int, int, int]:
    """(batch size, steps per epoch, total steps). Partial last batches are dropped
    (a batch of one breaks batch norm), unless the whole set is smaller than one batch."""
    batch = min(config.batch_size, train_size)
    per_epoch = max(train_size // batch, 1)
    total = per_epoch * config.epochs
    if config.max_steps:
        total = min(total, config.max_steps)
    return batch, per_epoch, total


def warmup_steps(config: TrainConfig, total: int) -> int:
    return config.warmup_steps or int(round(config.warmup_fraction * total))


def lr_at(config: TrainConfig, step: int, total: int) -> float:
    """Learning rate for 0-based ``step`` of ``total``: linear warm-up, then constant, cosine or a straight
    line down to 0 (onecycle)."""
    warm = warmup_steps(config, total)
    if warm and step < warm:
        return config.lr * (step + 1) / warm
    if config.schedule == "constant":
        return config.lr
    progress = min((step - warm) / max(total - warm, 1), 1.0)
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    return config.lr * (1.0 - progress)


def make_optimizer(params, config: TrainConfig) -> torch.optim.Optimizer:
    """The configured optimizer over ``params`` (a model's ``parameters()``; frozen ones are left out).
    Without ``decay_all``, weight decay skips 1-dimensional parameters (norm layers' scales, biases)."""
    params = [p for p in params if p.requires_grad]
    decayed = [p for p in params if config.decay_all or p.ndim > 1]
    groups = [{"params": decayed, "weight_decay": config.weight_decay}]
    if len(decayed) < len(params):
        groups.append({"params": [p for p in params if not (config.decay_all or p.ndim > 1)], "weight_decay": 0.0})
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.momentum > 0)
    return torch.optim.Adam(groups, lr=config.lr)


@torch.inference_mode()
def evaluate(model: nn.Module, data: TensorData, runtime: Runtime | None = None, batch_size: int = 512,
             dist: Context = Context()) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (0..1) of ``model`` on the test split, in eval mode (on several
    processes, each evaluates its share and the sums are combined)."""
    runtime = runtime or resolve_runtime(TrainConfig(device=next(model.parameters()).device.type))
    batches = data.test_batches(batch_size, dist.rank, dist.world_size)
    device = runtime.device
    mean = torch.tensor(data.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(data.std, device=device).view(1, -1, 1, 1)
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    count = 0
    try:
        for x, y in batches:
            x = normalize_batch(x.to(device, non_blocking=True), mean, std, runtime.memory_format)
            y = y.to(device, non_blocking=True)
            count += len(y)
            with runtime.autocast():
                out = model(x)
            loss_sum += F.cross_entropy(out.float(), y, reduction="sum")
            correct += (out.argmax(1) == y).sum()
    finally:
        model.train(was_training)
    loss_sum, correct, n = dist.sum(loss_sum, correct, count)
    n = max(n, 1)
    return loss_sum / n, correct / n


class Meter:
    """Loss, correct predictions and images summed over a span of steps (a logging window, an epoch),
    kept on the device so that adding a step never waits for it; and the seconds those steps took."""

    def __init__(self, device: torch.device):
        self.loss = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.long)
        self.images = 0
        self.steps = 0
        self.seconds = 0.0

    def add(self, loss: torch.Tensor, correct: torch.Tensor, images: int, seconds: float) -> None:
        self.loss += loss * images
        self.correct += correct
        self.images += images
        self.steps += 1
        self.seconds += seconds

    def summary(self, dist: Context = Context()) -> dict:
        """Mean loss, accuracy and images/s, over all processes of the run (reading them waits for the device)."""
        loss, correct, images = dist.sum(self.loss, self.correct, self.images)
        n = max(images, 1)
        return {"loss": loss / n, "train_accuracy": correct / n,
                "images_per_second": images / self.seconds if self.seconds > 0 else 0.0}


@contextlib.contextmanager
def stop_checks(model: nn.Module, stop_event: threading.Event | None):
    """While active, a set ``stop_event`` raises :class:`StopRequested` at the next block boundary of a
    forward pass, or of the backward pass through it. So a stop takes effect within one block's compute
    (a whole step of a large network on a CPU can take seconds). Parameters only change in
    ``optimizer.step``, so a step cut short leaves the weights of the last completed step."""
    if stop_event is None:
        yield
        return

    def check(*_):
        if stop_event.is_set():
            raise StopRequested

    def watch_backward(_module, _inputs, output):
        if isinstance(output, torch.Tensor) and output.requires_grad:
            output.register_hook(check)

    handles = []
    for module in _blocks(model):
        handles.append(module.register_forward_pre_hook(check))
        handles.append(module.register_forward_hook(watch_backward))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _blocks(model: nn.Module) -> list[nn.Module]:
    """The children of the model's children (a Network's blocks), or its children if it has no deeper level."""
    blocks = [grandchild for child in model.children() for grandchild in child.children()]
    return blocks or list(model.children()) or [model]


def _gradient_norm_records(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> list[dict]:
    """Per-layer gradient norms of one batch (``archs.gradient_norms``; leaves ``.grad`` alone)."""
    from archs.inspect import gradient_norms

    return [asdict(layer) for layer in gradient_norms(model, inputs, targets).layers]


# ---------------------------------------------------------------------------------------------
# the loop


def train(model: nn.Module, data: TensorData, config: TrainConfig = TrainConfig(), *,
          on_metrics: MetricsSink | None = None, stop_event: threading.Event | None = None,
          validation: TensorData | None = None) -> TrainResult:
    """Train ``model`` in place on ``data``; return a :class:`TrainResult`.

    ``on_metrics`` receives plain dicts, each with a ``"kind"``:

    - ``start``: device, amp, channels_last, total_steps, steps_per_epoch, batch_size, augment,
      train_size, test_size, parameters.
    - ``step`` (every ``log_every`` steps): step, total_steps, epoch (fractional), loss and
      train_accuracy over the steps since the last record, lr, images_per_second, elapsed.
    - ``grad`` (every ``grad_every`` steps): step and ``layers``, a list of records with depth,
      name, type, stage, block and grad_norm (one column of a depth x step heatmap).
    - ``epoch`` (at each epoch's end): epoch, step, loss, train_accuracy (running, augmented),
      test_loss, test_accuracy, images_per_second, lr, elapsed.
    - ``eval`` (every ``eval_every`` steps and at the end when no epoch record covered it):
      step, epoch, test_loss, test_accuracy, elapsed.

    ``validation`` (:meth:`TensorData.hold_out`'s second part: its test split is the held-out images) is evaluated
    wherever the test set is, adding ``val_loss`` and ``val_accuracy`` to the epoch and eval records and the result.
    Setting ``stop_event`` ends the run within one block's compute with status ``"stopped"``.
    """
    return _Loop(model, data, config, on_metrics or (lambda record: None), stop_event, validation).run()


class _Loop:
    """One training run's state; :meth:`run` is the loop, each other method one part of it."""

    def __init__(self, model: nn.Module, data: TensorData, config: TrainConfig, sink: MetricsSink,
                 stop_event: threading.Event | None, validation: TensorData | None = None):
        if data.num_classes < 2:
            raise ConfigError("the data set needs at least two classes")
        self.start_time = time.perf_counter()  # a run's seconds include placing its data and the probe
        device = resolve_device(config.device)
        self.dist = context(device.type)  # one process alone, or one rank of a torchrun run
        self.device = self.dist.device(device)
        self.config, self.stop_event = config, stop_event
        self.sink = sink if self.dist.is_main else (lambda record: None)
        torch.manual_seed(config.seed)
        self.data = place_data(data, self.device)
        self.validation = place_data(validation, self.device) if validation is not None else None
        self.order_generator = make_generator(self.data.device, config.seed)  # where the data lives
        self.augment_generator = make_generator(self.device, config.seed + 1 + self.dist.rank)
        self.train_size = self.data.train_size
        self.batch, self.per_epoch, self.total = plan_steps(config, self.train_size)
        self.local_batch = self.dist.local_batch(self.batch)
        model = model.to(self.device)
        model.train()
        # layout and precision: measured for this network, device and batch (archs.training.tuning)
        self.runtime, self.tuning = choose(
            config, model, self.device, (self.local_batch, data.in_channels, data.input_size, data.input_size),
            data.num_classes, self.total, lambda params: make_optimizer(params, config),
            probe_allowed=not self.dist.enabled)
        self.module = model.to(memory_format=self.runtime.memory_format)
        self.model = self.dist.wrap(self.module, self.device)  # DistributedDataParallel on several processes
        if self.runtime.compile:
            self.model = torch.compile(self.model)
        self.optimizer = make_optimizer(self.module.parameters(), config)
        self.augment = data.augment if config.augment == "auto" else config.augment
        self.mean = torch.tensor(data.mean, device=self.device).view(1, -1, 1, 1)
        self.std = torch.tensor(data.std, device=self.device).view(1, -1, 1, 1)
        # a CPU has the loss at hand every step; a GPU would stall, and processes must agree: when logged
        # records per run are bounded however often they are asked for (archs.training.config.MAX_STEP_RECORDS)
        self.log_every = record_every(config.log_every, self.total, MAX_STEP_RECORDS)
        self.grad_every = record_every(config.grad_every, self.total, MAX_GRAD_RECORDS)
        self.check_every = 1 if self.device.type == "cpu" and not self.dist.enabled else self.log_every
        # a target accuracy is noticed at evaluations: four per epoch unless asked otherwise
        self.eval_every = record_every(config.eval_every or (max(1, self.per_epoch // 4) if config.target_accuracy
                                                             else 0), self.total, MAX_EVAL_RECORDS)
        self.eval_start = int(config.eval_from * self.total)
        self.step = 0
        self.status, self.message = "completed", ""
        self.lr = lr_at(config, 0, self.total)
        self.run_meter = Meter(self.device)      # every training step of the run
        self.window = Meter(self.device)         # the steps since the last "step" record
        self.last_step_record: dict | None = None
        self.last_eval: dict | None = None

    @property
    def going(self) -> bool:
        return self.status == "completed" and not self.message and self.step < self.total

    # ----- the loop
    def run(self) -> TrainResult:
        self.sink({"kind": "start", **self.runtime.describe(), "runtime": self.tuning, "total_steps": self.total,
                   "steps_per_epoch": self.per_epoch, "batch_size": self.batch, "augment": self.augment,
                   "train_size": self.train_size, "test_size": self.data.test_size,
                   "parameters": sum(p.numel() for p in self.module.parameters()),
                   "world_size": self.dist.world_size})
        self.runtime.synchronize()
        # several processes stop together at a record instead (see stop_requested)
        with stop_checks(self.module, None if self.dist.enabled else self.stop_event):
            try:
                for epoch in range(self.config.epochs):
                    if not self.going:
                        break
                    self.run_epoch(epoch)
            except StopRequested:  # in an evaluation or a gradient-norm pass (a step catches its own)
                self.optimizer.zero_grad(set_to_none=True)
                self.stop()
        if self.status == "completed" and (self.last_eval is None or self.last_eval["step"] != self.step):
            self.evaluate("eval", {"epoch": self.step / self.per_epoch})
        return self.result()

    def run_epoch(self, epoch: int) -> None:
        batches = self.data.train_batches(self.order_generator, self.batch, self.local_batch, self.dist.rank,
                                          self.per_epoch)
        meter = Meter(self.device)
        started = time.perf_counter()  # a step's time includes fetching and preparing its batch
        for index, (x, y) in enumerate(batches):
            if not self.going:
                return
            if not self.dist.enabled and self.stop_event is not None and self.stop_event.is_set():
                return self.stop()
            x, y = self.prepare(x, y)
            try:
                loss, correct = self.train_step(x, y)
            except StopRequested:
                self.optimizer.zero_grad(set_to_none=True)
                return self.stop()
            self.step += 1
            position = epoch + (index + 1) / self.per_epoch
            log_now = self.step % self.log_every == 0 or self.step == self.total
            if log_now or index == self.per_epoch - 1:
                self.runtime.synchronize()  # the step's time is only known once the device is done
            seconds = time.perf_counter() - started
            for m in (self.run_meter, self.window, meter):
                m.add(loss, correct, len(y), seconds)
            if self.step % self.check_every == 0 and self.diverged(loss):
                return self.record_window(position)
            if log_now:
                self.record_window(position)
                if self.dist.enabled and self.dist.any(self.stop_event is not None and self.stop_event.is_set()):
                    return self.stop()
            if self.grad_every and self.step % self.grad_every == 0 and self.dist.is_main:
                self.sink({"kind": "grad", "step": self.step, "layers": _gradient_norm_records(self.module, x, y)})
            if (self.eval_every and self.step % self.eval_every == 0 and self.step >= self.eval_start
                    and index != self.per_epoch - 1 and self.step != self.total):
                self.evaluate("eval", {"epoch": position})
            started = time.perf_counter()  # records and evaluations are not training time
        if meter.steps == self.per_epoch:
            self.evaluate("epoch", {"epoch": epoch + 1, **meter.summary(self.dist), "lr": self.lr})

    # ----- the parts
    def prepare(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A uint8 batch on the device, augmented and normalised."""
        if x.device != self.device:
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        x = augment_batch(x, self.augment, generator=self.augment_generator)
        return normalize_batch(x, self.mean, self.std, self.runtime.memory_format), y

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step; returns the batch's loss and number of correct predictions (on the device)."""
        self.lr = lr_at(self.config, self.step, self.total)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        with self.runtime.autocast():
            out = self.model(x)
            loss = F.cross_entropy(out.float(), y, label_smoothing=self.config.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach(), (out.detach().argmax(1) == y).sum()

    def diverged(self, loss: torch.Tensor) -> bool:
        """A NaN or infinite loss since the last record (on any process) ends the run as "diverged"."""
        broken = not math.isfinite(float(self.window.loss))
        if self.dist.any(broken):
            self.status, self.message = "diverged", f"the loss became {float(loss)} at step {self.step}"
            return True
        return False

    def record_window(self, position: float) -> None:
        self.last_step_record = {"kind": "step", "step": self.step, "total_steps": self.total, "epoch": position,
                                 **self.window.summary(self.dist), "lr": self.lr,
                                 "elapsed": time.perf_counter() - self.start_time}
        self.sink(self.last_step_record)
        self.window = Meter(self.device)

    def evaluate(self, kind: str, extra: dict) -> None:
        test_loss, test_accuracy = evaluate(self.module, self.data, self.runtime, batch_size=max(self.batch, 256),
                                            dist=self.dist)
        if self.validation is not None:
            extra = dict(extra)
            extra["val_loss"], extra["val_accuracy"] = evaluate(self.module, self.validation, self.runtime,
                                                                batch_size=max(self.batch, 256), dist=self.dist)
        self.last_eval = {"kind": kind, "step": self.step, **extra, "test_loss": test_loss,
                          "test_accuracy": test_accuracy, "elapsed": time.perf_counter() - self.start_time}
        self.sink(self.last_eval)
        target = self.config.target_accuracy
        if target is not None and test_accuracy >= target and self.status == "completed" and not self.message:
            self.message = f"reached the target test accuracy {target:.2%} at step {self.step}"

    def stop(self) -> None:
        self.status, self.message = "stopped", f"stopped at step {self.step}"

    def result(self) -> TrainResult:
        target = self.config.target_accuracy
        if target is not None and self.status == "completed" and not self.message:
            self.message = f"ended without reaching the target test accuracy {target:.2%}"
        last = self.last_step_record or self.last_eval or {}
        evaluated = self.last_eval if self.status != "diverged" else None
        return TrainResult(
            status=self.status, device=str(self.device), amp=self.runtime.describe()["amp"], steps=self.step,
            epochs=self.step / self.per_epoch, train_loss=last.get("loss"), train_accuracy=last.get("train_accuracy"),
            test_loss=evaluated and evaluated["test_loss"], test_accuracy=evaluated and evaluated["test_accuracy"],
            images_per_second=self.run_meter.summary(self.dist)["images_per_second"],
            seconds=time.perf_counter() - self.start_time, message=self.message, world_size=self.dist.world_size,
            val_loss=evaluated and evaluated.get("val_loss"), val_accuracy=evaluated and evaluated.get("val_accuracy"))
