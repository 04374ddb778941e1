"""Where a run trains and how: device, bf16 autocast, memory layout, threads, data placement.

Speed choices, resolved per device by :func:`resolve_runtime`:

- bf16 autocast on CUDA (when supported) and on CPUs with native bf16 (AVX-512 BF16 or AMX).
  Elsewhere bf16 is emulated and far slower than float32 (measured on an AVX2 CPU: a 2048^2 bf16
  matmul ran at 0.3 GFLOP/s against 180 GFLOP/s in float32), so ``amp="auto"`` stays off there.
- channels_last on CUDA only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass

import torch

from archs.training.config import ConfigError, TrainConfig
from archs.training.data import TensorData

__all__ = ["Runtime", "cpu_count", "cpu_has_native_bf16", "place_data", "resolve_device", "resolve_runtime",
           "make_generator"]


@dataclass(frozen=True)
class Runtime:
    """What ``auto`` resolved to on this machine."""

    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self):
        """bf16 autocast where chosen; otherwise no context at all."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def describe(self) -> dict:
        return {"device": str(self.device), "amp": "bf16" if self.amp_dtype is not None else "off",
                "channels_last": self.channels_last}


def cpu_count() -> int:
    """Cores this process may use (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: cuda, then mps, then cpu. A named device that is missing raises ConfigError."""
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps is not None and mps.is_available())
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if has_mps else torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' is not available on this machine (no CUDA GPU or a CPU-only torch)",
                          "device")
    if name == "mps" and not has_mps:
        raise ConfigError("device: 'mps' is not available on this machine", "device")
    if name not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device: must be one of 'auto', 'cpu', 'cuda', 'mps', got {name!r}", "device")
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


def place_data(data: TensorData, device: torch.device) -> TensorData:
    """The data on the device when it fits comfortably; otherwise left on the CPU, in pinned memory on
    CUDA so that each batch's copy can overlap the computation (``non_blocking``)."""
    if device.type == "cpu" or not isinstance(data, TensorData):
        return data
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if data.nbytes > free // 4:
            return dataclasses.replace(data, train_x=data.train_x.pin_memory(), train_y=data.train_y.pin_memory())
    elif data.nbytes > 1 << 30:
        return data
    return data.to(device)


def make_generator(device: torch.device, seed: int) -> torch.Generator | None:
    try:
        return torch.Generator(device=device).manual_seed(seed)
    except RuntimeError:
        return None
