"""Measured cost of a network on a device: time and training memory per part (stem, each stage, head),
beside the analytic mult-adds and torchinfo's activation estimate, so the two can be compared.

One measurement (:func:`measure_cost`) builds the network, runs one inference pass and one training
step as warm-up (not counted; first runs allocate and pick kernels), then ``repeats`` of each, timed:

* **inference forward**: eval mode, no autograd;
* **training step**: train mode, forward, cross-entropy loss, backward and an optimizer step.

Each part's share of a pass comes from hooks on the top-level modules, so the parts add up to the whole
pass: a part's forward runs from its forward-pre-hook to the next part's, its backward from its
backward-pre-hook to the next one's (the stem's to the end of ``backward()``). On CUDA the hooks record
CUDA events, elsewhere ``time.perf_counter``. Reported times are medians over the repeats.

Memory comes from one more training step. On CUDA: the caching allocator's counters
(``torch.cuda.memory_allocated`` and ``max_memory_allocated``). Elsewhere: PyTorch's ``MemTracker``
(``torch.distributed._tools.mem_tracker``), which sees every tensor storage created or freed during the
step (parameters, gradients, optimizer state, activations, temporaries) and keeps their running total
and its peak. It counts tensors, not the allocator's padding or a library's private scratch space, so
the process grows a little more than it says. Per part: the memory its training forward leaves
allocated for the backward pass (what torchinfo estimates as twice the outputs of its layers with weights).
"""

from __future__ import annotations

import statistics
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import torch
import torch.nn.functional as F
from torch import nn

from .builder import build_model
from .inspect import parse_input_size, summarize
from .presets import load_spec
from .spec import NetSpec

__all__ = ["PartCost", "CostReport", "measure_cost", "cached_cost", "available_devices", "warm_up"]

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class PartCost:
    """One top-level part of the network (stem, a stage, the head), for the whole batch."""

    name: str
    label: str
    mult_adds: int              # analytic (torchinfo), for the batch
    forward_s: float            # inference forward: eval mode, no autograd (median)
    train_forward_s: float      # forward within a training step: train mode, autograd recording (median)
    backward_s: float           # backward within a training step (median)
    kept_bytes: int             # measured: memory its training forward leaves allocated (kept for backward)
    estimate_bytes: int         # torchinfo's estimate of the same: 2 x the float32 outputs of its weighted layers

    @property
    def train_s(self) -> float:
        """Forward + backward within a training step."""
        return self.train_forward_s + self.backward_s

    @property
    def mult_adds_per_s(self) -> float:
        """Achieved inference throughput: low where a part is bound by memory traffic, not arithmetic."""
        return self.mult_adds / self.forward_s if self.forward_s > 0 else 0.0


@dataclass(frozen=True)
class CostReport:
    spec: NetSpec
    device: str
    batch_size: int
    input_shape: tuple[int, int, int]
    repeats: int
    parts: tuple[PartCost, ...]
    forward_s: float                # whole inference forward (median)
    train_step_s: float             # whole training step: forward, loss, backward, optimizer step (median)
    optimizer_s: float              # the optimizer step alone (median)
    peak_bytes: int                 # measured peak memory of one training step
    memory: dict[str, int]          # at the peak: parameters, gradients, optimizer state, activations, …
    memory_method: str
    estimate_bytes: int             # torchinfo: parameters + activations (x2) + input, plus gradients and Adam state
    mult_adds: int                  # analytic, for the batch

    def to_dict(self) -> dict:
        return {
            "name": self.spec.name, "device": self.device, "batch_size": self.batch_size,
            "input_shape": list(self.input_shape), "repeats": self.repeats, "forward_s": self.forward_s,
            "train_step_s": self.train_step_s, "optimizer_s": self.optimizer_s, "peak_bytes": self.peak_bytes,
            "memory": dict(self.memory), "memory_method": self.memory_method,
            "estimate_bytes": self.estimate_bytes, "mult_adds": self.mult_adds,
            "parts": [{"name": p.name, "label": p.label, "mult_adds": p.mult_adds, "forward_s": p.forward_s,
                       "train_forward_s": p.train_forward_s, "backward_s": p.backward_s, "train_s": p.train_s,
                       "kept_bytes": p.kept_bytes, "estimate_bytes": p.estimate_bytes} for p in self.parts],
        }

    @classmethod
    def from_dict(cls, values: dict, spec: NetSpec) -> CostReport:
        """Back from :meth:`to_dict` (a measurement made in a worker and stored as its result), for ``spec``."""
        names = [f.name for f in fields(PartCost)]
        parts = tuple(PartCost(**{k: p[k] for k in names}) for p in values["parts"])
        return cls(spec, str(values["device"]), int(values["batch_size"]), tuple(values["input_shape"]),
                   int(values["repeats"]), parts, float(values["forward_s"]), float(values["train_step_s"]),
                   float(values["optimizer_s"]), int(values["peak_bytes"]),
                   {str(k): int(v) for k, v in values["memory"].items()}, str(values["memory_method"]),
                   int(values["estimate_bytes"]), int(values["mult_adds"]))


def available_devices() -> list[str]:
    """Devices this machine can measure on: always "cpu", then "cuda" and "mps" where present."""
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


# --------------------------------------------------------------------------------------------- clocks
class _Clock:
    """Time stamps taken from hooks: CUDA events on a GPU (no synchronisation inside the pass), the
    performance counter elsewhere (CPU work is synchronous; MPS is synchronised before reading)."""

    def __init__(self, device: torch.device):
        self.device = device

    def mark(self):
        if self.device.type == "cuda":
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elif self.device.type == "mps":
            torch.mps.synchronize()

    def seconds(self, start, end) -> float:
        if self.device.type == "cuda":
            return start.elapsed_time(end) / 1000.0
        return end - start


class _PartHooks:
    """Forward- and backward-pre-hooks on the top-level parts; each call appends (part index, stamp)."""

    def __init__(self, parts: list[nn.Module], clock: _Clock, on_forward: Callable[[int], None] | None = None):
        self.clock, self.forward, self.backward = clock, [], []
        self.handles = []
        for i, part in enumerate(parts):
            self.handles.append(part.register_forward_pre_hook(self._on_forward(i, on_forward)))
            self.handles.append(part.register_full_backward_pre_hook(self._on_backward(i)))

    def _on_forward(self, i: int, extra):
        def hook(_module, _inputs):
            self.forward.append((i, self.clock.mark()))
            if extra is not None:
                extra(i)
        return hook

    def _on_backward(self, i: int):
        def hook(_module, _grad_output):
            self.backward.append((i, self.clock.mark()))
        return hook

    def clear(self) -> None:
        self.forward, self.backward = [], []

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def _spans(stamps: list, end, count: int, clock: _Clock) -> list[float]:
    """Durations per part from consecutive stamps (each part ends where the next one starts)."""
    out = [0.0] * count
    for (i, start), (_, stop) in zip(stamps, stamps[1:] + [(None, end)]):
        out[i] += clock.seconds(start, stop)
    return out


# --------------------------------------------------------------------------------------------- memory
class _CudaMemory:
    method = "CUDA caching allocator: torch.cuda.memory_allocated / max_memory_allocated"

    def __init__(self, device: torch.device):
        self.device = device

    def __enter__(self):
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc):
        torch.cuda.synchronize(self.device)

    def current(self) -> int:
        return torch.cuda.memory_allocated(self.device)

    def peak(self) -> tuple[int, dict[str, int]]:
        return torch.cuda.max_memory_allocated(self.device), {}


class _TrackedMemory:
    """PyTorch's MemTracker: every tensor storage created or freed in its context, by category."""

    method = ("tensor storages counted by PyTorch's MemTracker (torch.distributed._tools.mem_tracker): "
              "every tensor created or freed during the step, not the allocator's own overhead")

    def __init__(self, device: torch.device, *tracked):
        from torch.distributed._tools.mem_tracker import MemTracker

        self.device = device
        self.tracker = MemTracker()
        self.tracker.track_external(*tracked)

    def __enter__(self):
        self.tracker.__enter__()
        return self

    def __exit__(self, *exc):
        self.tracker.__exit__(*exc)

    def _total(self, kind: str) -> tuple[int, dict]:
        snapshot = self.tracker.get_tracker_snapshot(kind)
        by_device = next((v for d, v in snapshot.items() if torch.device(d).type == self.device.type), {})
        return int(by_device.get("Total", 0)), by_device

    def current(self) -> int:
        return self._total("current")[0]

    def peak(self) -> tuple[int, dict[str, int]]:
        total, parts = self._total("peak")
        names = {"Parameter": "parameters", "Buffer": "buffers", "Gradient": "gradients", "Activation": "activations",
                 "Temp": "temporaries", "Optstate": "optimizer state", "Other": "inputs and other"}
        breakdown = {names.get(getattr(k, "value", str(k)), str(k)): int(v) for k, v in parts.items()
                     if k != "Total" and int(v) > 0}
        return total, breakdown


# --------------------------------------------------------------------------------------------- measuring
_CACHE: dict[tuple, CostReport] = {}
_CACHE_LOCK = threading.Lock()


def measure_cost(spec: NetSpec, batch_size: int = 32, device: str = "cpu", repeats: int = 5,
                 input_size=None, optimizer: str = "adam", seed: int = 0,
                 progress: Progress | None = None) -> CostReport:
    """Measure ``spec`` on ``device`` at ``batch_size``: times per part (median of ``repeats`` after one
    warm-up) and the training memory of one step. Cached per spec, input, batch, device, repeats and
    optimizer: the same arguments again return the same report without running anything.

    ``progress(fraction, message)`` is called as the measurement goes.
    """
    if device not in available_devices():
        raise ValueError(f"device {device!r} is not available here (available: {', '.join(available_devices())})")
    if repeats < 1 or batch_size < 1:
        raise ValueError("repeats and batch_size must be at least 1")
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    shape = parse_input_size(spec, input_size)
    key = (spec, shape, int(batch_size), device, int(repeats), optimizer, seed)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
    report = _measure(spec, shape, int(batch_size), torch.device(device), int(repeats), optimizer, seed,
                      progress or (lambda fraction, message: None))
    with _CACHE_LOCK:
        if len(_CACHE) >= 32:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = report
    return report


def warm_up() -> None:
    """One tiny measurement, not kept (cifar-resnet20 at 8x8, batch 1, one repeat): a fresh process's first one pays
    one-off costs (PyTorch's MemTracker compiles its hooks; autograd and the CPU kernels are set up), which a spare
    worker (:mod:`archs.training.worker`) pays while it waits for a page's measurement."""
    spec = replace(load_spec("cifar-resnet20"), name="warm-up", input_size=8)
    _measure(spec, (spec.in_channels, 8, 8), 1, torch.device("cpu"), 1, "adam", 0, lambda fraction, message: None)


def cached_cost(spec: NetSpec, batch_size: int = 32, device: str = "cpu", repeats: int = 5, input_size=None,
                optimizer: str = "adam", seed: int = 0) -> CostReport | None:
    """The report :func:`measure_cost` would return without measuring, or None if it has not run yet."""
    key = (spec, parse_input_size(spec, input_size), int(batch_size), device, int(repeats), optimizer, seed)
    with _CACHE_LOCK:
        return _CACHE.get(key)


def _measure(spec: NetSpec, shape: tuple[int, int, int], batch: int, device: torch.device, repeats: int,
             optimizer: str, seed: int, progress: Progress) -> CostReport:
    if shape[0] != spec.in_channels:
        spec = replace(spec, in_channels=shape[0])
    plans = spec.plan(shape[1:])
    summary = summarize(spec, shape, batch_size=1)
    torch.manual_seed(seed)
    model = build_model(spec, shape[1:]).to(device)
    parts = list(model.children())
    names = list(model._modules)
    generator = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(batch, *shape, generator=generator).to(device)
    y = torch.randint(0, spec.num_classes, (batch,), generator=generator).to(device)
    opt = (torch.optim.Adam(model.parameters(), lr=1e-4) if optimizer == "adam"
           else torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9))
    clock = _Clock(device)
    hooks = _PartHooks(parts, clock)

    def inference() -> tuple[float, list[float]]:
        model.eval()
        hooks.clear()
        with torch.no_grad():
            start = clock.mark()
            model(x)
            end = clock.mark()
        clock.sync()
        return clock.seconds(start, end), _spans(hooks.forward, end, len(parts), clock)

    def training() -> tuple[float, float, list[float], list[float]]:
        model.train()
        hooks.clear()
        start = clock.mark()
        loss = F.cross_entropy(model(x), y)
        forward_end = clock.mark()
        with warnings.catch_warnings():      # the stem's input needs no gradient: see _spans' end argument
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            loss.backward()
        backward_end = clock.mark()
        opt.step()
        end = clock.mark()
        opt.zero_grad(set_to_none=True)
        clock.sync()
        return (clock.seconds(start, end), clock.seconds(backward_end, end),
                _spans(hooks.forward, forward_end, len(parts), clock),
                _spans(hooks.backward, backward_end, len(parts), clock))

    total_steps = 2 * (1 + repeats) + 1
    done = 0

    def tick(message: str) -> None:
        nonlocal done
        done += 1
        progress(min(done / total_steps, 1.0), message)

    try:
        inference()
        tick("warm-up: inference")
        training()
        tick("warm-up: training step")
        fwd, fwd_parts, step, opt_s, train_fwd, train_bwd = [], [], [], [], [], []
        for r in range(repeats):
            total, per_part = inference()
            fwd.append(total)
            fwd_parts.append(per_part)
            tick(f"inference {r + 1}/{repeats}: {total * 1e3:.1f} ms")
            total, optimizer_s, forward, backward = training()
            step.append(total)
            opt_s.append(optimizer_s)
            train_fwd.append(forward)
            train_bwd.append(backward)
            tick(f"training step {r + 1}/{repeats}: {total * 1e3:.1f} ms")
        peak, breakdown, kept = _memory(model, parts, opt, x, y, device)
        tick("training memory measured")
    finally:
        hooks.remove()

    def median_part(runs: list[list[float]], i: int) -> float:
        return statistics.median(run[i] for run in runs)

    estimates = _part_estimates(summary, batch)
    part_costs = []
    totals = {s.name: s for s in summary.stages}
    for i, name in enumerate(names):
        label = next((p.label for p in plans if p.name == name), name)
        part_costs.append(PartCost(
            name, label, totals[name].mult_adds * batch if name in totals else 0, median_part(fwd_parts, i),
            median_part(train_fwd, i), median_part(train_bwd, i), kept[i], estimates.get(name, 0)))
    param_bytes = summary.param_bytes
    state = 2 if optimizer == "adam" else 1
    estimate = (summary.activation_bytes * batch + param_bytes * (2 + state)
                + batch * shape[0] * shape[1] * shape[2] * 4)
    memory_method = _CudaMemory.method if device.type == "cuda" else _TrackedMemory.method
    return CostReport(spec, str(device), batch, shape, repeats, tuple(part_costs), statistics.median(fwd),
                      statistics.median(step), statistics.median(opt_s), peak, breakdown, memory_method, estimate,
                      summary.mult_adds * batch)


def _part_estimates(summary, batch: int) -> dict[str, int]:
    """torchinfo's activation estimate split by part: 2 x the float32 outputs of its leaf layers with weights."""
    out: dict[str, int] = {}
    for row in summary.rows:
        if row.is_leaf and row.params > 0:
            numel = 1
            for d in row.output_shape[1:]:
                numel *= d
            out[row.stage] = out.get(row.stage, 0) + 2 * 4 * numel * batch
    return out


def _memory(model: nn.Module, parts: list[nn.Module], opt: torch.optim.Optimizer, x: torch.Tensor,
            y: torch.Tensor, device: torch.device) -> tuple[int, dict[str, int], list[int]]:
    """One more training step, measured: its peak, the breakdown at the peak (where the method gives
    one), and per part the memory its forward leaves allocated."""
    model.train()
    meter = _CudaMemory(device) if device.type == "cuda" else _TrackedMemory(device, model, opt, x, y)
    marks: list[tuple[int, int]] = []
    hooks = _PartHooks(parts, _Clock(torch.device("cpu")), on_forward=lambda i: marks.append((i, meter.current())))
    try:
        with meter:
            loss = F.cross_entropy(model(x), y)
            after_forward = meter.current()
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Full backward hook is firing")
                loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        peak, breakdown = meter.peak()
    finally:
        hooks.remove()
    kept = [0] * len(parts)
    for (i, start), (_, stop) in zip(marks, marks[1:] + [(None, after_forward)]):
        kept[i] += stop - start
    if device.type == "cuda":
        params = sum(p.numel() * p.element_size() for p in model.parameters())
        state = sum(t.numel() * t.element_size() for s in opt.state.values() for t in s.values()
                    if isinstance(t, torch.Tensor))
        breakdown = {"parameters": params, "gradients": params, "optimizer state": state,
                     "activations and temporaries": max(peak - 2 * params - state, 0)}
    return int(peak), breakdown, kept


# --------------------------------------------------------------------------------------------- command line
def add_parser(sub) -> None:
    """``python -m archs cost SPEC --batch N --device cpu`` (registered by archs.cli)."""
    p = sub.add_parser("cost", help="measured time and training memory per part, beside mult-adds")
    p.add_argument("spec", help="a preset name or a JSON spec file")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--device", default="cpu", help=f"one of: {', '.join(available_devices())}")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=_cmd_cost)


def _cmd_cost(args) -> int:
    import json
    import sys


    if args.repeats < 1:
        print("error: --repeats: must be >= 1", file=sys.stderr)
        return 2
    try:
        report = measure_cost(load_spec(args.spec), args.batch, args.device, args.repeats)
    except ValueError as error:      # SpecError included
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_dict()))
        return 0
    print(f"{report.spec.name} on {report.device}, batch {report.batch_size}, median of {report.repeats}")
    print(f"{'part':<10} {'mult-adds':>15} {'forward ms':>11} {'fwd+bwd ms':>11} {'kept MiB':>9} {'est. MiB':>9}")
    for p in report.parts:
        print(f"{p.name:<10} {p.mult_adds:>15,} {p.forward_s * 1e3:>11.2f} {p.train_s * 1e3:>11.2f} "
              f"{p.kept_bytes / 2**20:>9.2f} {p.estimate_bytes / 2**20:>9.2f}")
    print(f"\ninference {report.forward_s * 1e3:.2f} ms; training step {report.train_step_s * 1e3:.2f} ms; peak "
          f"training memory {report.peak_bytes / 2**20:.1f} MiB (estimate {report.estimate_bytes / 2**20:.1f} MiB)")
    return 0
