"""Memory layout and precision (and, on CUDA, TF32 and ``torch.compile``) chosen by measuring, not by rule.

Which combination trains a network fastest depends on the network, the batch size and the machine:
on one 2-core AMD EPYC with native bf16, channels_last with bf16 autocast ran a small ResNet 1.5-2x faster
than contiguous float32, while for a small Inception net at batch 32 channels_last in float32 won. So
``auto`` settings are decided per (network, device, batch size) by a short timed probe of the candidates
(:func:`choose`):

- memory layout: contiguous, channels_last;
- precision: float32, and bf16 autocast only where the device computes bf16 natively (CUDA with bf16
  support; CPUs with AVX-512 BF16 or AMX: elsewhere bf16 is emulated and far slower);
- on CUDA also TF32 for float32 matmuls and convolutions, and ``torch.compile`` of the fastest eager choice
  when its measured saving over the run's steps pays back its compile time.

The probe runs a copy of the model on random input of the run's shape (the run's weights and random
state are untouched), times a few optimizer steps of each candidate after a warm-up step, in alternated
rounds, and costs about ``PROBE_SECONDS`` (more rounds when steps are quick). It is skipped when the run is
too short for any choice to save the probe's cost, and its decision is cached on disk
(``$ARCHS_CACHE_DIR``, default ``~/.cache/archs``) per network structure, input shape, optimizer, device,
threads and torch version. What was chosen, and the probe's figures, go into the run's ``start`` record.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from archs.training.config import TrainConfig
from archs.training.device import Runtime, cpu_has_native_bf16, native_bf16, resolve_runtime

__all__ = ["Choice", "PROBE_SECONDS", "cache_dir", "candidates", "choose", "default_choice", "probe"]

PROBE_SECONDS = 4.0          # the most a probe may take, all candidates together
MIN_RUN_TO_PROBE = 10.0      # a run must be at least this many times the probe's cost to be worth probing


@dataclass(frozen=True)
class Choice:
    channels_last: bool = False
    bf16: bool = False
    tf32: bool = False
    compile: bool = False

    @property
    def name(self) -> str:
        parts = ["channels_last" if self.channels_last else "contiguous", "bf16" if self.bf16 else "fp32"]
        if self.tf32:
            parts.append("tf32")
        if self.compile:
            parts.append("compiled")
        return " ".join(parts)

    def runtime(self, device: torch.device) -> Runtime:
        return Runtime(device, torch.bfloat16 if self.bf16 else None, self.channels_last, self.tf32, self.compile)


def default_choice(config: TrainConfig, device: torch.device) -> Choice:
    """What the settings mean without a probe (:func:`archs.training.device.resolve_runtime`)."""
    runtime = resolve_runtime(config, device)
    return Choice(runtime.channels_last, runtime.amp_dtype is not None, runtime.tf32, runtime.compile)


def candidates(config: TrainConfig, device: torch.device) -> list[Choice]:
    """Every combination the settings leave open on this device (eager; compile is decided afterwards)."""
    layouts = {"on": [True], "off": [False]}.get(config.channels_last, [False, True])
    precisions = {"bf16": [True], "off": [False]}.get(config.amp, [False] + ([True] if native_bf16(device) else []))
    choices = []
    for layout in layouts:
        for bf16 in precisions:
            choices.append(Choice(layout, bf16))
            if device.type == "cuda" and not bf16:
                choices.append(Choice(layout, bf16, tf32=True))
    return choices


def _apply_backend(choice: Choice) -> None:
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = choice.tf32
        torch.backends.cudnn.allow_tf32 = choice.tf32


class _Candidate:
    """One choice ready to step: its own copy of the model and optimizer, and the input in its layout."""

    def __init__(self, model: nn.Module, optimizer_factory: Callable, choice: Choice, x: torch.Tensor,
                 y: torch.Tensor, device: torch.device):
        self.choice = choice
        fmt = torch.channels_last if choice.channels_last else torch.contiguous_format
        self.model = model.to(memory_format=fmt)
        self.step_model = torch.compile(self.model) if choice.compile else self.model
        self.optimizer = optimizer_factory(self.model.parameters())
        self.x, self.y = x.to(memory_format=fmt), y
        self.runtime = choice.runtime(device)

    def step(self) -> float:
        """Seconds of one optimizer step."""
        _apply_backend(self.choice)
        started = time.perf_counter()
        with self.runtime.autocast():
            loss = F.cross_entropy(self.step_model(self.x).float(), self.y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.runtime.synchronize()
        return time.perf_counter() - started


def _timed_steps(model: nn.Module, optimizer_factory: Callable, choice: Choice, x: torch.Tensor, y: torch.Tensor,
                 steps: int, device: torch.device) -> tuple[float, float]:
    """(seconds of the first step, median seconds of the next ``steps``) for one candidate."""
    candidate = _Candidate(model, optimizer_factory, choice, x, y, device)
    times = [candidate.step() for _ in range(steps + 1)]
    return times[0], statistics.median(times[1:]) if steps else times[0]


def probe(model: nn.Module, optimizer_factory: Callable, choices: list[Choice], input_shape: tuple[int, ...],
          num_classes: int, device: torch.device, step_seconds: float, budget: float = PROBE_SECONDS
          ) -> dict[Choice, float]:
    """Seconds per optimizer step of each choice, on copies of ``model`` with random input: a warm-up step
    each, then rounds in which every candidate takes one timed step (alternated, so a noisy moment of a
    shared machine hurts all alike), 2 to 8 rounds as ``budget`` allows at about ``step_seconds`` a step;
    the median per candidate. The caller's random state is left as it was."""
    rng = torch.random.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if device.type == "cuda" else None
    started = time.perf_counter()
    try:
        x, y = _sample(input_shape, num_classes, device)
        ready = [_Candidate(copy.deepcopy(model), optimizer_factory, c, x, y, device) for c in choices]
        for candidate in ready:
            candidate.step()  # warm-up: kernels chosen, buffers allocated
        rounds = int(max(2, min(8, budget / max(len(choices), 1) / max(step_seconds, 1e-4) - 1)))
        times: dict[Choice, list[float]] = {c: [] for c in choices}
        for done in range(rounds):
            if done >= 2 and time.perf_counter() - started > budget:
                break  # slower than estimated: what is timed so far decides
            for candidate in ready:
                times[candidate.choice].append(candidate.step())
        return {c: statistics.median(t) for c, t in times.items()}
    finally:
        torch.random.set_rng_state(rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
        _apply_backend(Choice())


def cache_dir() -> Path:
    return Path(os.environ.get("ARCHS_CACHE_DIR") or Path.home() / ".cache" / "archs")


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as handle:
            model = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "cpu")
    except OSError:
        model = "cpu"
    return f"{model} ({torch.get_num_threads()} threads, bf16 {'native' if cpu_has_native_bf16() else 'emulated'})"


def _key(model: nn.Module, input_shape: tuple[int, ...], config: TrainConfig, device: torch.device,
         choices: list[Choice], total_steps: int) -> str:
    # whether to compile depends on the setting and, when it is auto on CUDA, on how long the run is
    compile_for = total_steps if _decides_compile(config, device) else None
    text = json.dumps([repr(model), [list(p.shape) for p in model.parameters()], list(input_shape), config.optimizer,
                       _device_name(device), torch.__version__, [c.name for c in choices], config.compile,
                       compile_for])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _decides_compile(config: TrainConfig, device: torch.device) -> bool:
    return device.type == "cuda" and config.compile == "auto"


def _read_cache() -> dict:
    try:
        return json.loads((cache_dir() / "runtime-choices.json").read_text())
    except (OSError, ValueError):
        return {}


def _write_cache(key: str, entry: dict) -> None:
    path = cache_dir() / "runtime-choices.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        cache = _read_cache()
        cache[key] = entry
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache, indent=1))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: the decision is simply not remembered


def choose(config: TrainConfig, model: nn.Module, device: torch.device, input_shape: tuple[int, ...],
           num_classes: int, total_steps: int, optimizer_factory: Callable, *, probe_allowed: bool = True
           ) -> tuple[Runtime, dict]:
    """The runtime for this run and a report of how it was chosen (for the run's records)."""
    choices = candidates(config, device)
    fallback = default_choice(config, device)
    report: dict = {"candidates": [c.name for c in choices]}
    if len(choices) == 1 and not _decides_compile(config, device):
        return _finish(fallback, device, report, "settings")
    if not probe_allowed:
        return _finish(fallback, device, report, "default (no probe in a distributed run)")
    key = _key(model, input_shape, config, device, choices, total_steps)
    cached = _read_cache().get(key)
    if cached is not None:
        report["images_per_second"] = cached["images_per_second"]
        return _finish(Choice(**cached["choice"]), device, report, "cached probe")
    started = time.perf_counter()
    _, step = _timed_steps(copy.deepcopy(model), optimizer_factory, fallback, *_sample(input_shape, num_classes,
                                                                                       device), 1, device)
    estimated_probe = min(PROBE_SECONDS, 3 * step * len(choices))
    if total_steps * step < MIN_RUN_TO_PROBE * estimated_probe:
        report["skipped"] = (f"the run (about {total_steps * step:.1f} s) is too short to pay back a probe "
                             f"(about {estimated_probe:.1f} s)")
        return _finish(fallback, device, report, "default (run too short to probe)")
    shape = input_shape
    if 3 * step * len(choices) > PROBE_SECONDS and input_shape[0] > 4:
        # steps too slow for a warm-up and two timed steps of each candidate within the budget: probe a smaller
        # batch (the ratios between layouts and precisions carry over closely; the report says which was timed)
        batch = max(4, int(input_shape[0] * PROBE_SECONDS / (3 * step * len(choices))))
        shape = (batch, *input_shape[1:])
        step *= batch / input_shape[0]
        report["probe_batch"] = batch
    timings = probe(model, optimizer_factory, choices, shape, num_classes, device, step)
    best = min(timings, key=timings.get)
    report["images_per_second"] = {c.name: shape[0] / t for c, t in timings.items()}
    if _decides_compile(config, device):  # timed at the probe's batch, the saving scaled to the run's
        best = _maybe_compile(best, model, optimizer_factory, shape, num_classes, device,
                              total_steps * input_shape[0] / shape[0], timings[best], report)
    report["probe_seconds"] = time.perf_counter() - started
    _write_cache(key, {"choice": asdict(best), "images_per_second": report["images_per_second"],
                       "when": time.time()})
    return _finish(best, device, report, "probe")


def _maybe_compile(best: Choice, model, optimizer_factory, input_shape, num_classes, device, total_steps: float,
                   eager_seconds: float, report: dict) -> Choice:
    """Compile the fastest eager choice if its saving over the run pays back the compile time
    (``eager_seconds`` timed at ``input_shape``; ``total_steps`` in steps of that batch)."""
    compiled = Choice(best.channels_last, best.bf16, best.tf32, True)
    x, y = _sample(input_shape, num_classes, device)
    try:
        first, steady = _timed_steps(copy.deepcopy(model), optimizer_factory, compiled, x, y, 3, device)
    except Exception as error:  # noqa: BLE001 - a model the compiler cannot handle stays eager
        report["compile"] = f"not used: {type(error).__name__}"
        return best
    saving = (eager_seconds - steady) * total_steps
    report["compile"] = {"compile_seconds": first - steady, "step_seconds": steady, "eager_step_seconds": eager_seconds,
                         "saving_seconds": saving}
    report["images_per_second"][compiled.name] = input_shape[0] / steady
    return compiled if saving > first - steady else best


def _sample(input_shape, num_classes, device):
    generator = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(input_shape, generator=generator).to(device)
    return x, torch.randint(0, num_classes, (input_shape[0],), generator=generator).to(device)


def _finish(choice: Choice, device: torch.device, report: dict, how: str) -> tuple[Runtime, dict]:
    _apply_backend(choice)
    report.update(chosen=choice.name, how=how)
    return choice.runtime(device), report
