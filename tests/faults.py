"""Networks that misbehave on purpose, named by tests in a run request's ``model_factory`` so that a worker
process builds them (``"faults:nan_from_step_3"``). Worker processes find this module through the
PYTHONPATH that tests/conftest.py sets."""

from __future__ import annotations

import os
import signal

from torch import nn

import archs


class _Wrapped(nn.Module):
    def __init__(self, spec, at: int, action):
        super().__init__()
        self.inner, self.at, self.action, self.count = archs.build_model(spec), at, action, 0

    def forward(self, x):
        if self.training:
            self.count += 1
        out = self.inner(x)
        return self.action(out) if self.training and self.count >= self.at else out


def _raise(out):
    raise RuntimeError("boom: a bug inside the model at step 3")


def nan_from_step_3(spec) -> nn.Module:
    return _Wrapped(spec, 3, lambda out: out * float("nan"))


def raise_at_step_3(spec) -> nn.Module:
    return _Wrapped(spec, 3, _raise)


def segfault_at_step_3(spec) -> nn.Module:
    """The worker dies by SIGSEGV, as a crash in native code would end it."""
    return _Wrapped(spec, 3, lambda out: os.kill(os.getpid(), signal.SIGSEGV))


def slow(spec) -> nn.Module:
    """Each training step sleeps 50 ms, so a run lasts long enough to act on it mid-way."""
    import time

    def wait(out):
        time.sleep(0.05)
        return out

    return _Wrapped(spec, 1, wait)

