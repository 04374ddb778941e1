"""A network's size budget, checked from its spec alone: nothing is built and nothing is allocated.

:func:`footprint` counts what :func:`archs.build_model` would make (stages, blocks, modules, parameters) and
the activations of one image, by the same arithmetic the stage types use for their sizes; :func:`estimate`
turns that into the memory of one pass at a batch size; :func:`check` compares both with the server's
budget and raises :class:`BudgetError` (a :class:`~archs.SpecError`) naming the budget's setting and the value.
:meth:`archs.NetSpec.plan` checks the counts (and the memory of one image) wherever a network comes in:
a link, an upload, the Build and Compare pages, a study trial, a run. A caller that runs a network at a
batch (a run, a measurement) checks :func:`check` at that batch before it starts.

=========================  ===============================================================  ==========
variable                   what it bounds                                                   default
=========================  ===============================================================  ==========
ARCHS_MAX_STAGES           stem parts and stages of a network                               64
ARCHS_MAX_BLOCKS           blocks: residual blocks, dense layers, Inception modules and     1,000
                           plain conv layers, stem included
ARCHS_MAX_MODULES          torch modules of the built network, containers included          6,000
ARCHS_MAX_PARAMS           parameters of a network                                          200 M
ARCHS_MAX_MEMORY_MB        estimated memory of one training step (or measurement) at the    32,768
                           asked batch and input size (:func:`estimate`; MB = 2**20 bytes)  (32 GB)
=========================  ===============================================================  ==========

The defaults let every preset and every network of d2l.ai's chapter 8 and of He et al.'s two papers through at
batch 64: ResNet-1202 on CIFAR-10 (601 blocks, 4,816 modules, 9.9 GB to train at batch 64), the pre-activation
ResNet-1001 (334 blocks, 4,019 modules, 17 GB), ResNet-152 at 224x224 (20 GB), ResNet-200 (28 GB);
DenseNet-121, the largest preset, needs 12 GB at batch 64 and 23 GB at the "fast" recipe's 128. They refuse a
link of 100 residual stages of 200 blocks (100 stages, 20,000 blocks, 160,109 modules), the Measured cost of
ResNet-50 at batch 256 (36 GB) and training cifar-resnet20 on MNIST at input 1024 (162 GB at batch 64). A
value that is not a positive integer is ignored (the default applies).

Memory (:func:`estimate`), float32 throughout, with ``A`` the elements of one image's activations (every
layer's output, the adds and concatenations between them, and the input), ``P`` the parameters, ``B`` the batch:

* ``"train"`` (a training step with Adam): ``4 * (4 * P + TRAIN_ACTIVATION_FACTOR * A * B)`` bytes:
  weights, gradients and Adam's two moments, and the activations the forward pass keeps for the backward pass
  with the gradients and temporaries the backward pass adds at its peak.
* ``"backward"`` (one forward and backward pass, no optimizer: gradients at initialisation):
  ``4 * (2 * P + TRAIN_ACTIVATION_FACTOR * A * B)``.
* ``"forward"`` (eval mode, no autograd): ``4 * (P + 3 * L * B + I * B)`` with ``L`` the largest single output
  and ``I`` the input: only a layer's input, its output and a temporary are alive at once.

``TRAIN_ACTIVATION_FACTOR`` is 1.0, an upper bound: PyTorch's measured peak of a training step (``MemTracker``
on the CPU, :func:`archs.measure_cost`), less the parameters' share, was 0.56 (cifar-resnet20, batch 16), 0.66
(a DenseNet, batch 16), 0.87 (speedrun-mnist, batch 64) and 0.90 (seed002-inception, batch 32) of ``4 * A * B``;
ReLU and BatchNorm outputs that no later layer saves are freed during the forward pass. The counts are exact:
``tests/test_budget.py`` checks modules against ``model.modules()`` and layer outputs against torchinfo's rows
for every preset, and the estimate against the measured peak within a band.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from .fields import SpecError

if TYPE_CHECKING:
    from .spec import NetSpec

__all__ = ["Budget", "BudgetError", "Footprint", "MODES", "TRAIN_ACTIVATION_FACTOR", "check", "check_counts",
           "check_memory", "check_stage_count", "estimate", "footprint"]

Size = tuple[int, int]
BYTES = 4                       # float32
TRAIN_ACTIVATION_FACTOR = 1.0   # an upper bound of the measured peak (see above)
MODES = ("train", "backward", "forward")


class BudgetError(SpecError):
    """A network over one of the server's size budgets. ``limit`` names the setting (the environment variable)."""

    def __init__(self, message: str, path: str, limit: str):
        super().__init__(message, path)
        self.limit = limit


@dataclass(frozen=True)
class Budget:
    """The server's size budget for one network (``from_env`` reads the settings in the module's table)."""

    max_stages: int = 64
    max_blocks: int = 1_000
    max_modules: int = 6_000
    max_params: int = 200_000_000
    max_memory_mb: int = 32_768

    ENV: ClassVar[tuple[tuple[str, str], ...]] = (
        ("max_stages", "ARCHS_MAX_STAGES"), ("max_blocks", "ARCHS_MAX_BLOCKS"),
        ("max_modules", "ARCHS_MAX_MODULES"), ("max_params", "ARCHS_MAX_PARAMS"),
        ("max_memory_mb", "ARCHS_MAX_MEMORY_MB"))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Budget:
        env = os.environ if env is None else env
        values = {}
        for name, var in cls.ENV:
            text = env.get(var)
            if text:
                try:
                    value = int(float(text))  # ARCHS_MAX_PARAMS has always taken "50e6"
                except (ValueError, OverflowError):
                    continue
                if value > 0:
                    values[name] = value
        return cls(**values)

    @property
    def max_memory_bytes(self) -> int:
        return self.max_memory_mb * 2**20


@dataclass(frozen=True)
class Footprint:
    """What a spec makes, counted from the spec: the network's parts and one image's activations (elements)."""

    stages: int                 # stem parts and stages
    blocks: int                 # residual blocks, dense layers, Inception modules, plain conv layers
    modules: int                # torch modules, containers included (``len(list(model.modules()))``)
    params: int
    input_shape: tuple[int, int, int]
    layer_elements: int         # the outputs of every leaf module (torchinfo's rows), one image
    weighted_elements: int      # the outputs of leaf modules with weights (torchinfo's estimate is 2 x 4 bytes x this)
    saved_elements: int         # layer outputs, the adds and concatenations between modules, and the input
    largest_elements: int       # the largest single output

    def memory_bytes(self, batch_size: int = 1, mode: str = "train") -> int:
        """Estimated memory of one pass at ``batch_size`` (see the module's docstring for each mode)."""
        p, b = self.params, int(batch_size)
        if mode == "train":
            return int(BYTES * (4 * p + TRAIN_ACTIVATION_FACTOR * self.saved_elements * b))
        if mode == "backward":
            return int(BYTES * (2 * p + TRAIN_ACTIVATION_FACTOR * self.saved_elements * b))
        if mode == "forward":
            c, h, w = self.input_shape
            return BYTES * (p + (3 * self.largest_elements + c * h * w) * b)
        raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")

    def to_dict(self, batch_size: int = 1) -> dict:
        return {"stages": self.stages, "blocks": self.blocks, "modules": self.modules, "params": self.params,
                "input_shape": list(self.input_shape), "batch_size": batch_size,
                "activation_bytes": BYTES * self.saved_elements * batch_size,
                **{f"{mode}_bytes": self.memory_bytes(batch_size, mode) for mode in MODES}}


# ------------------------------------------------------------------------------------------ counting
class _Tally:
    """Running counts while walking the network part by part."""

    __slots__ = ("blocks", "modules", "layer", "weighted", "extra", "largest")

    def __init__(self) -> None:
        self.blocks = self.modules = self.layer = self.weighted = self.extra = self.largest = 0

    def out(self, elements: int, times: int = 1, weighted: int = 0) -> None:
        """``times`` leaf modules, each with an output of ``elements``, ``weighted`` of them with weights."""
        self.modules += times
        self.layer += times * elements
        self.weighted += weighted * elements
        if times and elements > self.largest:
            self.largest = elements

    def join(self, elements: int) -> None:
        """A tensor made between modules (a residual add, a concatenation)."""
        self.extra += elements
        self.largest = max(self.largest, elements)

    def scaled(self, other: _Tally, times: int) -> None:
        """Add ``times`` copies of ``other`` (identical blocks)."""
        for name in ("blocks", "modules", "layer", "weighted", "extra"):
            setattr(self, name, getattr(self, name) + times * getattr(other, name))
        if times:
            self.largest = max(self.largest, other.largest)


def _conv(size: Size, kernel: int, stride: int, padding: int) -> Size:
    """Output size of a conv whose shape :meth:`NetSpec.plan` has already checked."""
    return (size[0] + 2 * padding - kernel) // stride + 1, (size[1] + 2 * padding - kernel) // stride + 1


def _area(size: Size) -> int:
    return size[0] * size[1]


def _plain(part: Any, c: int, size: Size, ctx: Any, t: _Tally) -> None:
    norm = int(part.norm and ctx.has_norm)
    late = part.activation and part.activation_after_pool and part.pool != "none"
    t.modules += 1                                                    # the PlainStage
    for i in range(part.layers):
        size = _conv(size, part.kernel_size, part.stride if i == 0 else 1, part.padding)
        act = int(part.activation and not (i == part.layers - 1 and late))
        t.modules += 1                                                # conv (+norm)(+act) Sequential
        t.out(part.channels * _area(size), 1 + norm + act, weighted=1 + norm)
    t.blocks += part.layers
    if part.pool != "none":
        size = part.pooled_size(size)
        t.out(part.channels * _area(size))
    if late:
        t.out(part.channels * _area(size))


def _residual_block(part: Any, c_in: int, stride: int, size: Size, ctx: Any, t: _Tally) -> None:
    norm, pre = int(ctx.has_norm), part.preactivation
    width, c_out = part.channels, part.out_channels(c_in)
    if part.block == "basic":
        convs = [(c_in, width, 3, stride), (width, c_out, 3, 1)]
    else:
        convs = [(c_in, width, 1, 1), (width, width, 3, stride), (width, c_out, 1, 1)]
    t.blocks += 1
    t.modules += 2                                                    # the block and its branch
    if pre:
        t.modules += 1                                                # the pre-activation Sequential
        t.out(c_in * _area(size), 1 + norm, weighted=norm)
    s = size
    for i, (ci, co, k, st) in enumerate(convs):
        if pre and i > 0:
            t.out(ci * _area(s), 1 + norm, weighted=norm)
        s = _conv(s, k, st, k // 2)
        if pre:
            t.out(co * _area(s), weighted=1)
        else:
            act = int(i < len(convs) - 1 or part.activation_before_add)
            t.out(co * _area(s), 1 + norm + act, weighted=1 + norm)
    out = c_out * _area(s)
    if part.skip and (stride != 1 or c_in != c_out):
        if part.shortcut == "zero_pad":
            t.out(out)
        elif part.shortcut == "conv1x1_bias":
            t.out(out, weighted=1)
        else:
            t.modules += 1
            t.out(out, 1 + norm, weighted=1 + norm)
    if part.skip:
        t.join(out)
    if not pre:
        t.out(out)                                                    # the activation after the add


def _residual(part: Any, c: int, size: Size, ctx: Any, t: _Tally) -> None:
    t.modules += 1                                                    # the ResidualStage
    _residual_block(part, c, part.stride, size, ctx, t)
    if part.blocks > 1:
        rest = _Tally()
        _residual_block(part, part.out_channels(c), 1, part.out_size(size), ctx, rest)
        t.scaled(rest, part.blocks - 1)


def _dense(part: Any, c: int, size: Size, ctx: Any, t: _Tally) -> None:
    norm, area, k = int(ctx.has_norm), _area(size), part.growth_rate
    t.modules += 1                                                    # the DenseStage
    for _ in range(part.layers):
        t.modules += 2                                                # the DenseLayer and its Sequential
        inner = c
        if part.bottleneck:
            inner = part.bn_size * k
            t.out(c * area, 1 + norm, weighted=norm)                  # norm, act
            t.out(inner * area, weighted=1)                           # 1x1 conv
        t.out(inner * area, 1 + norm, weighted=norm)
        t.out(k * area, 1 + int(part.dropout > 0), weighted=1)        # 3x3 conv (+dropout)
        c += k
        t.join(c * area)                                              # the concatenation
    t.blocks += part.layers
    if part.transition:
        out = part.out_channels(c - part.layers * k)
        t.modules += 1
        t.out(c * area, 1 + norm, weighted=norm)
        t.out(out * area, weighted=1)
        t.out(out * _area(part.out_size(size)))                       # the 2x2 average pool


def _inception_module(part: Any, c: int, size: Size, ctx: Any, t: _Tally) -> None:
    norm, act, area = int(part.branch_norm and ctx.has_norm), int(part.branch_activation), _area(size)
    t.blocks += 1
    t.modules += 2                                                    # the module and its ModuleDict
    for name, chain in part.branch_chains(c):
        t.modules += 1                                                # the branch's Sequential
        if name == "pool":
            t.out(c * area)
        for _, co, _ in chain:
            t.modules += 1
            t.out(co * area, 1 + norm + act, weighted=1 + norm)
    t.join(part.out_channels(c) * area)                               # the concatenation


def _inception(part: Any, c: int, size: Size, ctx: Any, t: _Tally) -> None:
    t.modules += 1                                                    # the InceptionStage
    _inception_module(part, c, size, ctx, t)
    out = part.out_channels(c)
    if part.modules > 1:
        rest = _Tally()
        _inception_module(part, out, size, ctx, rest)
        t.scaled(rest, part.modules - 1)
    if part.pool != "none":
        t.out(out * _area(part.pooled_size(size)))


def _other(part: Any, c: int, size: Size, ctx: Any, t: _Tally) -> None:
    """A stage type of the operator's own (``ARCHS_WORKER_SETUP``) without a ``footprint`` method: counted as one
    block of one module whose output is kept four times over."""
    t.blocks += 1
    t.out(4 * part.out_channels(c) * _area(part.out_size(size)), weighted=1)


#: stage type name -> counter(part, in_channels, in_size, BuildContext, tally); a stage type of one's own may
#: instead define ``footprint(in_channels, in_size, ctx, tally)``
COUNTERS: dict[str, Callable[[Any, int, Size, Any, _Tally], None]] = {
    "plain": _plain, "residual": _residual, "dense": _dense, "inception": _inception}


def _head(spec: NetSpec, c: int, size: Size, t: _Tally) -> None:
    head, norm = spec.head, int(spec.context.has_norm)
    t.modules += 1                                                    # the Head
    if head.norm_activation:
        t.out(c * _area(size), 1 + norm, weighted=norm)
    pooled = c * _area(head.out_size(size))
    t.out(pooled, (head.pool != "flatten") + 1 + (head.dropout > 0))  # pool, flatten, dropout
    if head.norm_after_pool and norm:
        t.out(pooled, weighted=1)                                     # the norm after the pool
    t.out(spec.num_classes, weighted=1)                               # the classifier


def footprint(spec: NetSpec, input_size: tuple[int, int] | int | None = None, params: int | None = None) -> Footprint:
    """Counts and one image's activations of the network ``spec`` describes, at ``input_size`` (H, W; default the
    spec's), from the spec alone. Assumes the shapes fit (``spec.plan`` raises SpecError where they do not);
    ``params`` saves recounting them where the caller has (``spec.plan``). The same arguments again hit a cache
    (a page plans its network several times a run)."""
    if params is None:
        params = spec.num_params(input_size)
    return _footprint(spec, spec._input(input_size), params)


@functools.lru_cache(maxsize=256)
def _footprint(spec: NetSpec, size: Size, params: int) -> Footprint:
    h, w = size
    ctx, c, t = spec.context, spec.in_channels, _Tally()
    t.modules += 1                                                    # the Network
    if spec.stem:
        t.modules += 1                                                # the Stem
    else:
        t.out(c * _area(size))                                        # an empty Stem: a leaf passing the input on
    for _, _, part in spec.parts():
        own = getattr(part, "footprint", None)
        if own is not None:
            own(c, size, ctx, t)
        else:
            COUNTERS.get(part.type_name, _other)(part, c, size, ctx, t)
        c, size = part.out_channels(c), part.out_size(size)
    _head(spec, c, size, t)
    return Footprint(len(spec.stem) + len(spec.stages), t.blocks, t.modules, params, (spec.in_channels, h, w),
                     t.layer, t.weighted, t.layer + t.extra + spec.in_channels * h * w, t.largest)


# ------------------------------------------------------------------------------------------ checking
def _mb(n: int) -> str:
    if n >= 10 * 2**30:
        return f"{n / 2**30:,.0f} GB"
    if n >= 2**30:
        return f"{n / 2**30:.1f} GB"
    return f"{n / 2**20:,.0f} MB"


_WORK = {"train": "to train", "backward": "for a forward and backward pass", "forward": "for a forward pass"}


def check_stage_count(stages: int, budget: Budget | None = None) -> None:
    """Raise BudgetError if a network of ``stages`` stem parts and stages is over the budget: the first check,
    made before a spec's parts are made from a link or a file, so that a list of a million stages costs nothing."""
    budget = budget if budget is not None else Budget.from_env()
    if stages > budget.max_stages:
        raise BudgetError(f"network: {stages:,} stages, over this server's budget of {budget.max_stages:,} stages "
                          f"(ARCHS_MAX_STAGES={budget.max_stages})", "stages", "ARCHS_MAX_STAGES")


def check_counts(fp: Footprint, budget: Budget | None = None) -> None:
    """Raise BudgetError if ``fp`` (a network's footprint) has more stages, blocks or modules than the budget."""
    budget = budget if budget is not None else Budget.from_env()
    check_stage_count(fp.stages, budget)
    for what, have, limit, var in (("blocks", fp.blocks, budget.max_blocks, "ARCHS_MAX_BLOCKS"),
                                   ("modules", fp.modules, budget.max_modules, "ARCHS_MAX_MODULES")):
        if have > limit:
            raise BudgetError(f"network: {have:,} {what}, over this server's budget of {limit:,} {what} "
                              f"({var}={limit})", "stages", var)
    if fp.params > budget.max_params:
        raise BudgetError(f"network: {fp.params:,} parameters, over the limit of {budget.max_params:,} "
                          f"(ARCHS_MAX_PARAMS={budget.max_params})", "stages", "ARCHS_MAX_PARAMS")


def check(spec: NetSpec, batch_size: int = 1, input_size: tuple[int, int] | int | None = None, mode: str = "train",
          budget: Budget | None = None) -> Footprint:
    """The footprint of ``spec``, checked against the server's budget (``Budget.from_env()`` unless given):
    stages, blocks, modules and parameters, and the memory of one ``mode`` pass (``"train"``, ``"backward"``,
    ``"forward"``) at ``batch_size`` and ``input_size``. Raises SpecError where the shapes do not fit and
    BudgetError (a SpecError naming the setting and the value) where the network is over a budget. Takes
    about 0.1 ms for ResNet-50 and builds nothing."""
    budget = budget if budget is not None else Budget.from_env()
    plans = spec.plan(input_size, max_params=10**18, check_budget=False)
    fp = footprint(spec, input_size, params=sum(p.params for p in plans))
    check_counts(fp, budget)
    check_memory(spec, fp, batch_size, mode, budget)
    return fp


def check_memory(spec: NetSpec, fp: Footprint, batch_size: int = 1, mode: str = "train",
                 budget: Budget | None = None, doing: str | None = None) -> None:
    """Raise BudgetError if one ``mode`` pass of ``fp`` (the footprint of ``spec``) at ``batch_size`` is over the
    memory budget; ``doing`` says what the pass is for, in the message (default: "to train", ...)."""
    budget = budget if budget is not None else Budget.from_env()
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise SpecError(f"batch_size: must be a positive integer, got {batch_size!r}", "batch_size")
    need = fp.memory_bytes(batch_size, mode)
    if need > budget.max_memory_bytes:
        _, h, w = fp.input_shape
        fix = "lower the batch size or the input size" if batch_size > 1 else "make the network or its input smaller"
        path = "batch_size" if batch_size > 1 else "input_size"
        raise BudgetError(f"{path}: {spec.name} at batch {batch_size:,} and input {h}x{w} needs about {_mb(need)} "
                          f"{doing or _WORK[mode]} (estimated from its layers), over this server's budget of "
                          f"{_mb(budget.max_memory_bytes)} (ARCHS_MAX_MEMORY_MB={budget.max_memory_mb}): {fix}",
                          path, "ARCHS_MAX_MEMORY_MB")


def estimate(spec: NetSpec, batch_size: int = 1, input_size: tuple[int, int] | int | None = None,
             mode: str = "train") -> int:
    """Estimated bytes of one ``mode`` pass of ``spec`` at ``batch_size`` (no budget applied; SpecError where the
    shapes do not fit)."""
    plans = spec.plan(input_size, max_params=10**18, check_budget=False)
    return footprint(spec, input_size, params=sum(p.params for p in plans)).memory_bytes(batch_size, mode)
