"""Where a run trains and how: device, precision, memory layout, data placement.

:func:`resolve_runtime` turns the settings into a :class:`Runtime` by rule (bf16 only where the device
computes it natively: on an AVX2 CPU without it a 2048^2 bf16 matmul ran at 0.3 GFLOP/s against 180 in
float32; on an AMD EPYC with AVX-512 BF16, at 57 against 24 under the same load). A training run instead
measures its ``auto`` settings (:mod:`archs.training.tuning`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass

import torch

from archs.training.config import ConfigError, TrainConfig
from archs.training.data import DataSet, TensorData

__all__ = ["Runtime", "cpu_count", "cpu_has_native_bf16", "place_data", "resolve_device", "resolve_runtime",
           "make_generator"]


@dataclass(frozen=True)
class Runtime:
    """What ``auto`` resolved to on this machine."""

    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    tf32: bool = False
    compile: bool = False

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
                "channels_last": self.channels_last, "tf32": self.tf32, "compile": self.compile}


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


def native_bf16(device: torch.device) -> bool:
    """Whether the device computes bf16 in hardware (elsewhere bf16 autocast is emulated and slow)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_native_bf16()


def resolve_runtime(config: TrainConfig, device: torch.device | None = None) -> Runtime:
    """The settings' runtime without measuring anything: ``auto`` is bf16 where native, channels_last and
    TF32 on CUDA (:mod:`archs.training.tuning` measures instead, for a training run)."""
    device = device or resolve_device(config.device)
    cuda = device.type == "cuda"
    bf16 = {"bf16": True, "off": False}.get(config.amp, native_bf16(device))
    channels_last = {"on": True, "off": False}.get(config.channels_last, cuda)
    return Runtime(device, torch.bfloat16 if bf16 else None, channels_last, cuda and not bf16,
                   config.compile == "on")


def place_data(data: DataSet, device: torch.device) -> DataSet:
    """The data on the device when it fits comfortably; otherwise left on the CPU, in pinned memory on
    CUDA so that each batch's copy can overlap the computation (``non_blocking``). Streamed data stays where it
    is: its loader pins each batch and the loop moves it."""
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
