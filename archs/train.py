"""A short-run trainer: a built model, a :class:`~archs.data.TensorData`, a :class:`TrainConfig`.

The whole data set sits in tensors (on the device when it fits); each step indexes a batch,
augments it as one tensor and normalises it, so the hot loop runs no per-sample Python. Metrics go
to a callback as plain dicts (see :func:`train`), a ``threading.Event`` stops the run between
steps, and a NaN or infinite loss ends it as ``"diverged"`` with the metrics so far kept.

Speed choices, resolved per device by :func:`resolve_runtime`:

- bf16 autocast on CUDA (when supported) and on CPUs with native bf16 (AVX-512 BF16 or AMX).
  Elsewhere bf16 is emulated and far slower than float32 (measured on an AVX2 CPU: a 2048^2 bf16
  matmul ran at 0.3 GFLOP/s against 180 GFLOP/s in float32), so ``amp="auto"`` stays off there.
- channels_last on CUDA only: on the AVX2 CPU it made a small ResNet about 10x slower.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import asdict, dataclass, fields
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from archs.data import AUGMENTATIONS, TensorData, augment_batch, normalize_batch
from archs.fields import param, spec_fields

__all__ = [
    "ConfigError",
    "Runtime",
    "TrainConfig",
    "TrainResult",
    "evaluate",
    "resolve_device",
    "resolve_runtime",
    "train",
]

MetricsSink = Callable[[dict], None]

DEFAULT_PRESET = "seed002-inception"  # small (97k parameters, no BatchNorm): a few seconds on digits
DEFAULT_DATA = "digits"  # offline: bundled with scikit-learn


class ConfigError(ValueError):
    """A training setting is out of range; the message names the field."""


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run. Field metadata (``archs.fields.param``, as in the specs) carries
    help text, ranges and choices, so a UI draws the controls and ``__post_init__`` checks them.

    The defaults are the default run (``DEFAULT_PRESET`` on ``DEFAULT_DATA``): five epochs of Adam
    at batch 64 with a cosine schedule.
    """

    epochs: int = param(5, "Passes over the training set.", range=(1, 1000))
    max_steps: int | None = param(None, "Stop after this many optimizer steps (empty: no limit).",
                                  range=(1, None), kind="int", optional=True)
    batch_size: int = param(64, "Images per optimizer step.", range=(1, 65536))
    lr: float = param(1e-3, "Peak learning rate.", range=(0.0, 10.0))
    optimizer: str = param("adam", "Optimizer.", choices=("adam", "sgd"))
    weight_decay: float = param(0.0, "L2 weight decay.", range=(0.0, 1.0))
    momentum: float = param(0.9, "SGD momentum (ignored by Adam).", range=(0.0, 0.999))
    schedule: str = param("cosine", "Learning-rate schedule after warm-up.", choices=("constant", "cosine"))
    warmup_steps: int = param(0, "Linear learning-rate warm-up steps.", range=(0, None))
    device: str = param("auto", "Where to train (auto: cuda, then mps, then cpu).",
                        choices=("auto", "cpu", "cuda", "mps"))
    augment: str = param("auto", "Batch augmentation (auto: the data set's usual one).",
                         choices=("auto",) + AUGMENTATIONS)
    log_every: int = param(20, "Steps between metric records.", range=(1, None))
    grad_every: int = param(50, "Steps between gradient-norm records (0: never).", range=(0, None))
    eval_every: int = param(0, "Steps between test evaluations (0: once per epoch and at the end).",
                            range=(0, None))
    seed: int = param(0, "Random seed for initialisation, order and augmentation.", range=(0, None))
    amp: str = param("auto", "bf16 autocast (auto: where the device computes bf16 natively).",
                     choices=("auto", "bf16", "off"))
    channels_last: str = param("auto", "Channels-last memory format (auto: on CUDA only).",
                               choices=("auto", "on", "off"))

    def __post_init__(self) -> None:
        # the same metadata as the specs; messages in the CLI's "name must ...; got ..." style
        for info in spec_fields(self):
            value = getattr(self, info.name)
            if value is None and info.optional:
                continue
            if info.kind == "choice":
                if value not in info.choices:
                    raise ConfigError(f"{info.name} must be one of {', '.join(info.choices)}; got {value!r}")
                continue
            is_float = info.kind == "float"
            if isinstance(value, bool) or not isinstance(value, (int, float) if is_float else int):
                raise ConfigError(f"{info.name} must be {'a number' if is_float else 'an integer'}; got {value!r}")
            if not math.isfinite(value):
                raise ConfigError(f"{info.name} must be finite; got {value!r}")
            if info.minimum is not None and value < info.minimum:
                raise ConfigError(f"{info.name} must be at least {info.minimum}; got {value!r}")
            if info.maximum is not None and value > info.maximum:
                raise ConfigError(f"{info.name} must be at most {info.maximum}; got {value!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown training setting {unknown[0]!r}")
        return cls(**values)


@dataclass(frozen=True)
class Runtime:
    """What ``auto`` resolved to on this machine."""

    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool

    def describe(self) -> dict:
        return {
            "device": str(self.device),
            "amp": "bf16" if self.amp_dtype is not None else "off",
            "channels_last": self.channels_last,
        }


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

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# device and precision


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: cuda, then mps, then cpu. A named device that is missing raises ConfigError."""
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps is not None and mps.is_available())
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if has_mps else torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' is not available on this machine (no CUDA GPU or a CPU-only torch)")
    if name == "mps" and not has_mps:
        raise ConfigError("device 'mps' is not available on this machine")
    if name not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device must be one of auto, cpu, cuda, mps; got {name!r}")
    return torch.device(name)


def cpu_has_native_bf16() -> bool:
    """True where the CPU computes bf16 in hardware (AVX-512 BF16 or AMX); Linux only."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool({"avx512_bf16", "amx_bf16"} & flags)
    except OSError:
        pass
    return False


def resolve_runtime(config: TrainConfig) -> Runtime:
    device = resolve_device(config.device)
    if config.amp == "off":
        amp = None
    elif config.amp == "bf16":
        amp = torch.bfloat16
    elif device.type == "cuda":
        amp = torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    elif device.type == "cpu":
        amp = torch.bfloat16 if cpu_has_native_bf16() else None
    else:
        amp = None
    channels_last = config.channels_last == "on" or (config.channels_last == "auto" and device.type == "cuda")
    return Runtime(device, amp, channels_last)


def _place_data(data: TensorData, device: torch.device) -> TensorData:
    """The data on the device when it fits comfortably; otherwise left on the CPU."""
    if device.type == "cpu":
        return data
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if data.nbytes > free // 4:
            return data
    elif data.nbytes > 1 << 30:
        return data
    return data.to(device)


def _generator(device: torch.device, seed: int) -> torch.Generator | None:
    try:
        return torch.Generator(device=device).manual_seed(seed)
    except RuntimeError:
        return None


# ---------------------------------------------------------------------------------------------
# gradient norms


def _gradient_norm_records(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> list[dict]:
    """Per-layer gradient norms of one batch (``archs.gradient_norms``; leaves ``.grad`` alone)."""
    from archs.inspect import gradient_norms

    return [asdict(layer) for layer in gradient_norms(model, inputs, targets).layers]


# ---------------------------------------------------------------------------------------------
# evaluation and training


@torch.inference_mode()
def evaluate(
    model: nn.Module, data: TensorData, runtime: Runtime | None = None, batch_size: int = 512, split: str = "test"
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (0..1) of ``model`` on a split, in eval mode."""
    runtime = runtime or resolve_runtime(TrainConfig(device=str(next(model.parameters()).device.type)))
    xs, ys = (data.test_x, data.test_y) if split == "test" else (data.train_x, data.train_y)
    device = runtime.device
    mean = torch.tensor(data.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(data.std, device=device).view(1, -1, 1, 1)
    fmt = torch.channels_last if runtime.channels_last else torch.contiguous_format
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    try:
        for start in range(0, len(ys), batch_size):
            x = normalize_batch(xs[start : start + batch_size].to(device), mean, std, fmt)
            y = ys[start : start + batch_size].to(device)
            with torch.autocast(device.type, dtype=runtime.amp_dtype or torch.bfloat16,
                                enabled=runtime.amp_dtype is not None):
                out = model(x)
            loss_sum += F.cross_entropy(out.float(), y, reduction="sum")
            correct += (out.argmax(1) == y).sum()
    finally:
        model.train(was_training)
    n = max(len(ys), 1)
    return float(loss_sum) / n, int(correct) / n


def _lr_at(config: TrainConfig, step: int, total: int) -> float:
    """Learning rate for 0-based ``step`` of ``total``."""
    if config.warmup_steps and step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.schedule == "cosine":
        span = max(total - config.warmup_steps, 1)
        progress = min((step - config.warmup_steps) / span, 1.0)
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    return config.lr


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay, nesterov=config.momentum > 0)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def plan_steps(config: TrainConfig, train_size: int) -> tuple[int, int, int]:
    """(batch size, steps per epoch, total steps). Partial last batches are dropped
    (a batch of one breaks batch norm), unless the whole set is smaller than one batch."""
    batch = min(config.batch_size, train_size)
    per_epoch = max(train_size // batch, 1)
    total = per_epoch * config.epochs
    if config.max_steps:
        total = min(total, config.max_steps)
    return batch, per_epoch, total


def train(
    model: nn.Module,
    data: TensorData,
    config: TrainConfig = TrainConfig(),
    *,
    on_metrics: MetricsSink | None = None,
    stop_event: threading.Event | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``data``; return a :class:`TrainResult`.

    ``on_metrics`` receives plain dicts, each with a ``"kind"``:

    - ``start``: device, amp, channels_last, total_steps, steps_per_epoch, train_size, test_size.
    - ``step`` (every ``log_every`` steps): step, total_steps, epoch (fractional), loss and
      train_accuracy over the steps since the last record, lr, images_per_second, elapsed.
    - ``grad`` (every ``grad_every`` steps): step and ``layers``, a list of records with depth,
      name, type, stage, block and grad_norm (one column of a depth x step heatmap).
    - ``epoch`` (at each epoch's end): epoch, step, loss, train_accuracy (running, augmented),
      test_loss, test_accuracy, images_per_second, lr, elapsed.
    - ``eval`` (every ``eval_every`` steps and at the end when no epoch record covered it):
      step, test_loss, test_accuracy.

    Setting ``stop_event`` ends the run after the current step with status ``"stopped"``.
    """
    sink = on_metrics or (lambda record: None)
    runtime = resolve_runtime(config)
    device = runtime.device
    if data.num_classes < 2:
        raise ConfigError("the data set needs at least two classes")
    torch.manual_seed(config.seed)
    placed = _place_data(data, device)
    order_generator = _generator(placed.train_x.device, config.seed)  # where the data lives
    augment_generator = _generator(device, config.seed + 1)  # where batches are augmented
    fmt = torch.channels_last if runtime.channels_last else torch.contiguous_format
    model.to(device=device, memory_format=fmt)
    model.train()
    optimizer = make_optimizer(model, config)
    augment = data.augment if config.augment == "auto" else config.augment
    mean = torch.tensor(data.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(data.std, device=device).view(1, -1, 1, 1)
    train_size = len(placed.train_y)
    batch, per_epoch, total = plan_steps(config, train_size)
    check_every = 1 if device.type == "cpu" else config.log_every
    sink({"kind": "start", **runtime.describe(), "total_steps": total, "steps_per_epoch": per_epoch,
          "batch_size": batch, "augment": augment, "train_size": train_size, "test_size": len(placed.test_y),
          "parameters": sum(p.numel() for p in model.parameters())})

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    zero = lambda dtype=torch.float32: torch.zeros((), device=device, dtype=dtype)  # noqa: E731
    step = 0
    status = "completed"
    message = ""
    train_seconds = 0.0  # time in training steps only (not evaluation or gradient-norm passes)
    images = 0
    start_time = time.perf_counter()
    last_step_record: dict | None = None
    last_epoch_record: dict | None = None
    evaluated_at = -1
    lr = _lr_at(config, 0, total)

    def run_eval(kind: str, extra: dict) -> dict:
        nonlocal evaluated_at
        test_loss, test_acc = evaluate(model, placed, runtime, batch_size=max(batch, 256))
        evaluated_at = step
        record = {"kind": kind, "step": step, **extra, "test_loss": test_loss, "test_accuracy": test_acc,
                  "elapsed": time.perf_counter() - start_time}
        sink(record)
        return record

    sync()
    for epoch in range(config.epochs):
        if step >= total or status != "completed":
            break
        order = torch.randperm(train_size, device=placed.train_x.device, generator=order_generator)
        ep_loss, ep_correct, ep_n, ep_seconds, ep_steps = zero(), zero(torch.long), 0, 0.0, 0
        win_loss, win_correct, win_n, win_seconds = zero(), zero(torch.long), 0, 0.0
        for index in range(per_epoch):
            if step >= total:
                break
            if stop_event is not None and stop_event.is_set():
                status, message = "stopped", f"stopped at step {step}"
                break
            t0 = time.perf_counter()
            idx = order[index * batch : (index + 1) * batch]
            x, y = placed.train_x[idx], placed.train_y[idx]
            if x.device != device:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            x = normalize_batch(augment_batch(x, augment, generator=augment_generator), mean, std, fmt)
            lr = _lr_at(config, step, total)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with torch.autocast(device.type, dtype=runtime.amp_dtype or torch.bfloat16,
                                enabled=runtime.amp_dtype is not None):
                out = model(x)
                loss = F.cross_entropy(out.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            ep_steps += 1
            n = len(y)
            detached = loss.detach()
            correct = (out.detach().argmax(1) == y).sum()
            win_loss += detached * n
            win_correct += correct
            ep_loss += detached * n
            ep_correct += correct
            win_n += n
            ep_n += n
            if step % check_every == 0 and not math.isfinite(float(detached if check_every == 1 else win_loss)):
                status, message = "diverged", f"the loss became {float(detached)} at step {step}"
            log_now = step % config.log_every == 0 or status == "diverged" or step == total
            if log_now or index == per_epoch - 1:
                sync()
            dt = time.perf_counter() - t0
            train_seconds += dt
            win_seconds += dt
            ep_seconds += dt
            images += n
            if log_now:
                last_step_record = {
                    "kind": "step", "step": step, "total_steps": total, "epoch": epoch + (index + 1) / per_epoch,
                    "loss": float(win_loss) / win_n, "train_accuracy": int(win_correct) / win_n, "lr": lr,
                    "images_per_second": win_n / win_seconds if win_seconds > 0 else 0.0,
                    "elapsed": time.perf_counter() - start_time,
                }
                sink(last_step_record)
                win_loss, win_correct, win_n, win_seconds = zero(), zero(torch.long), 0, 0.0
            if status == "diverged":
                break
            if config.grad_every and step % config.grad_every == 0:
                sink({"kind": "grad", "step": step, "layers": _gradient_norm_records(model, x, y)})
            if config.eval_every and step % config.eval_every == 0 and index != per_epoch - 1 and step != total:
                run_eval("eval", {"epoch": epoch + (index + 1) / per_epoch})
        if status == "completed" and ep_steps == per_epoch:
            last_epoch_record = run_eval("epoch", {
                "epoch": epoch + 1, "loss": float(ep_loss) / ep_n, "train_accuracy": int(ep_correct) / ep_n,
                "images_per_second": ep_n / ep_seconds if ep_seconds > 0 else 0.0, "lr": lr,
            })
    test_loss = test_acc = None
    if status == "completed" and evaluated_at != step:
        record = run_eval("eval", {"epoch": step / per_epoch})
        test_loss, test_acc = record["test_loss"], record["test_accuracy"]
    elif last_epoch_record is not None:
        test_loss, test_acc = last_epoch_record["test_loss"], last_epoch_record["test_accuracy"]
    last = last_step_record or last_epoch_record or {}
    return TrainResult(
        status=status, device=str(device), amp="bf16" if runtime.amp_dtype is not None else "off",
        steps=step, epochs=step / per_epoch, train_loss=last.get("loss"),
        train_accuracy=last.get("train_accuracy"), test_loss=test_loss, test_accuracy=test_acc,
        images_per_second=images / train_seconds if train_seconds > 0 else 0.0,
        seconds=time.perf_counter() - start_time, message=message,
    )
