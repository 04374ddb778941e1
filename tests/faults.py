"""Networks that misbehave on purpose.

In this process a test passes one as Python code: ``execute_request(request, recorder, model_factory=faults.slow)``.
A request is data and never names code, so for runs in worker processes (local workers, Ray tasks) this module is
the operator's setup module instead: tests/conftest.py sets ``ARCHS_WORKER_SETUP=faults`` (and the PYTHONPATH to
find it), every worker imports it before its run, and it makes a network misbehave when the test named it so:
``fault-slow``, ``fault-raise``, ``fault-segfault`` or ``fault-nan`` (optionally followed by ``-anything``).
A server started with ``FAULTS_IDLE_SECONDS`` in its environment makes every run of its workers idle instead (a browser
test whose runs only need to be there, owned and active, while the pages are checked).
"""

from __future__ import annotations

import os
import signal
import time

from torch import nn

import archs
import archs.training.request as request_module


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

    def wait(out):
        time.sleep(0.05)
        return out

    return _Wrapped(spec, 1, wait)


def deaf_at_step_2(spec) -> nn.Module:
    """From step 2 the worker ignores its stop flag and SIGTERM: one forward pass that never ends (a hung kernel)."""

    def hang(out):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("fault-deaf: ignoring the stop flag and SIGTERM from now on", flush=True)  # the run's worker.log
        while True:
            time.sleep(1)

    return _Wrapped(spec, 2, hang)


def hog_at_step_2(spec) -> nn.Module:
    """At step 2 the network asks for 64 GiB at once (never touched: without a cap the OS may well grant it)."""
    import torch

    def hog(out):
        big = torch.empty(64 << 30, dtype=torch.uint8)
        return out + float(big[0] * 0)

    return _Wrapped(spec, 2, hog)


class _Idle(nn.Module):
    """Each training step computes on one image of its batch (the rest copy its output) and then sleeps
    ``seconds``: a run that stays active for as long as a test needs it at almost no CPU. Evaluation is the
    network's own."""

    def __init__(self, spec, seconds: float):
        super().__init__()
        self.inner, self.seconds = archs.build_model(spec), seconds

    def forward(self, x):
        if not self.training:
            return self.inner(x)
        out = self.inner(x[:1]).expand(x.shape[0], -1)
        time.sleep(self.seconds)
        return out


FAULTS = {"fault-slow": slow, "fault-raise": raise_at_step_3, "fault-segfault": segfault_at_step_3,
          "fault-nan": nan_from_step_3, "fault-deaf": deaf_at_step_2, "fault-hog": hog_at_step_2}
_build = request_module.build_network


def _build_network(spec):
    idle = os.environ.get("FAULTS_IDLE_SECONDS")  # set by a test for its server: every run idles (see _Idle)
    if idle:
        return _Idle(spec, float(idle))
    for prefix, factory in FAULTS.items():
        if spec.name == prefix or spec.name.startswith(prefix + "-"):
            return factory(spec)
    return _build(spec)


request_module.build_network = _build_network
