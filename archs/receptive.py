"""Receptive fields: for every module of a network, which window of input pixels one of its output units
sees (size), how far apart neighbouring units' windows are (jump, the effective stride) and where the
top-left unit's window is centred (start).

Computed from the network the spec builds, on the meta device (nothing is allocated and no number is
computed): a forward pass records the kernel, stride, padding and dilation of every convolution and
pooling op it meets, and merges the fields of every tensor that an op combines (the add of a residual
block, the concatenation of dense and Inception blocks). So skips, branches and any registered stage
type are covered without a line of per-stage code, and the result is the network that actually runs.

Arithmetic, per spatial axis, for an op with kernel k, stride s, padding p and dilation d applied to a
field (size r, jump j, start c); pixel centres of the input are at 0, 1, 2, …::

    k' = d(k - 1) + 1       r' = r + (k' - 1) j       j' = j s       c' = c + ((k' - 1) / 2 - p) j

Where paths merge, the output unit sees the union of its inputs' windows. A global pool, a flatten or a
linear layer sees the union of every position of its input map.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .builder import build_model
from .spec import NetSpec
from .stages.base import LayerNorm2d

__all__ = ["Field", "LayerField", "ReceptiveFields", "receptive_fields"]


@dataclass(frozen=True)
class Axis:
    """The field along one spatial axis."""

    size: float
    jump: float
    start: float

    def through(self, kernel: int, stride: int, padding: int, dilation: int = 1) -> Axis:
        span = dilation * (kernel - 1)
        return Axis(self.size + span * self.jump, self.jump * stride, self.start + (span / 2 - padding) * self.jump)

    @property
    def low(self) -> float:
        return self.start - (self.size - 1) / 2

    @property
    def high(self) -> float:
        return self.start + (self.size - 1) / 2

    def over(self, positions: int) -> Axis:
        """The union of ``positions`` neighbouring units' windows (a global pool over that many)."""
        last = replace(self, start=self.start + (positions - 1) * self.jump)
        return Axis.union([self, last], jump=self.jump * positions)

    @staticmethod
    def union(axes: Iterable[Axis], jump: float | None = None) -> Axis:
        axes = list(axes)
        low, high = min(a.low for a in axes), max(a.high for a in axes)
        return Axis(high - low + 1, jump if jump is not None else max(a.jump for a in axes), (low + high) / 2)


@dataclass(frozen=True)
class Field:
    """Receptive field of one unit, in input pixels, along height and width."""

    height: Axis
    width: Axis

    @property
    def size(self) -> tuple[int, int]:
        return _number(self.height.size), _number(self.width.size)

    @property
    def jump(self) -> tuple[int, int]:
        return _number(self.height.jump), _number(self.width.jump)

    @property
    def start(self) -> tuple[float, float]:
        return _number(self.height.start), _number(self.width.start)

    @staticmethod
    def pixel() -> Field:
        return Field(Axis(1, 1, 0), Axis(1, 1, 0))

    def through(self, kernel, stride, padding, dilation=1) -> Field:
        k, s, p, d = (_pair(v) for v in (kernel, stride, padding, dilation))
        return Field(self.height.through(k[0], s[0], p[0], d[0]), self.width.through(k[1], s[1], p[1], d[1]))

    def over(self, positions: tuple[int, int]) -> Field:
        return Field(self.height.over(positions[0]), self.width.over(positions[1]))

    @staticmethod
    def union(fields: Iterable[Field]) -> Field:
        fields = list(fields)
        return Field(Axis.union(f.height for f in fields), Axis.union(f.width for f in fields))


def _number(value: float):
    return int(value) if float(value).is_integer() else value


def _pair(value) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        return (int(value[0]), int(value[-1]))
    return int(value), int(value)


@dataclass(frozen=True)
class LayerField:
    """One module (named as in :func:`archs.summarize`'s rows) and the field of its output units."""

    name: str                       # "stage2.block1.branch.conv1"; top-level parts: "stem", "stage2", "head"
    type: str                       # class name
    stage: str                      # top-level part
    depth: int                      # 1 for top-level parts, as in the summary's rows
    size: tuple[int, int]           # field height, width in input pixels (may exceed the input: padding)
    jump: tuple[int, int]           # input pixels between neighbouring output units
    start: tuple[float, float]      # centre of the top-left unit's field (input pixel centres at 0, 1, …)
    output_size: tuple[int, ...]    # spatial size of the output map; () for a vector (after the head's pool)


@dataclass(frozen=True)
class ReceptiveFields:
    spec: NetSpec
    input_size: tuple[int, int]
    layers: tuple[LayerField, ...]

    @property
    def stages(self) -> tuple[LayerField, ...]:
        """The top-level parts (stem, stage1.., head), in order."""
        return tuple(r for r in self.layers if r.depth == 1)

    def get(self, name: str) -> LayerField:
        for record in self.layers:
            if record.name == name:
                return record
        raise KeyError(name)

    def covers_input(self, record: LayerField) -> bool:
        """Whether one unit of ``record`` sees the whole input image."""
        return all(s >= n for s, n in zip(record.size, self.input_size))

    def to_dict(self) -> dict:
        def row(r: LayerField) -> dict:
            return {"name": r.name, "type": r.type, "stage": r.stage, "depth": r.depth, "size": list(r.size),
                    "jump": list(r.jump), "start": list(r.start), "output_size": list(r.output_size)}
        return {"name": self.spec.name, "input_size": list(self.input_size),
                "stages": [row(r) for r in self.stages], "layers": [row(r) for r in self.layers]}


# --------------------------------------------------------------------------------------------- tracing
_SPATIAL = {  # op name -> parameter names after the input, in positional order, with defaults
    "conv2d": (("weight", None), ("bias", None), ("stride", 1), ("padding", 0), ("dilation", 1), ("groups", 1)),
    "max_pool2d": (("kernel_size", None), ("stride", None), ("padding", 0), ("dilation", 1)),
    "max_pool2d_with_indices": (("kernel_size", None), ("stride", None), ("padding", 0), ("dilation", 1)),
    "avg_pool2d": (("kernel_size", None), ("stride", None), ("padding", 0)),
}
_GLOBAL = {"adaptive_avg_pool2d", "adaptive_max_pool2d", "flatten", "linear"}


def _bind(names, args, kwargs) -> dict:
    values = {name: default for name, default in names}
    for (name, _), value in zip(names, args):
        values[name] = value
    values.update({k: v for k, v in kwargs.items() if k in values})
    return values


class _FieldTracker(TorchFunctionMode):
    """Gives every tensor made during a forward pass the receptive field of its units."""

    def __init__(self):
        super().__init__()
        self.fields: dict[int, Field] = {}
        self._alive: list[torch.Tensor] = []      # ids are only unique while the tensors live

    def field_of(self, tensor: torch.Tensor) -> Field | None:
        return self.fields.get(id(tensor))

    def set(self, tensor: torch.Tensor, field: Field) -> None:
        self.fields[id(tensor)] = field
        self._alive.append(tensor)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        first = next((t for t in _tensors(out)), None)
        if first is None:
            return out
        inputs = [(t, self.field_of(t)) for t in _tensors((args, kwargs))]
        inputs = [(t, f) for t, f in inputs if f is not None]
        if not inputs:
            return out
        field = self._propagate(getattr(func, "__name__", ""), args, kwargs, inputs, first)
        for tensor in _tensors(out):
            self.set(tensor, field)
        return out

    def _propagate(self, name: str, args, kwargs, inputs, out: torch.Tensor) -> Field:
        source, field = inputs[0]
        if name in _SPATIAL:
            p = _bind(_SPATIAL[name], args[1:], kwargs)
            if name == "conv2d":
                kernel = tuple(p["weight"].shape[-2:])
                padding = p["padding"]
                if isinstance(padding, str):    # "same" pads (k-1)/2 before, "valid" nothing
                    padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel, _pair(p["dilation"]))) \
                        if padding == "same" else 0
            else:
                kernel, padding = p["kernel_size"], p["padding"]
            stride = p["stride"] if p["stride"] not in (None, ()) else kernel
            return field.through(kernel, stride, padding, p.get("dilation", 1))
        if name in _GLOBAL or (source.dim() == 4 and out.dim() < 4):
            if source.dim() == 4 and (out.dim() < 4 or tuple(out.shape[-2:]) == (1, 1)):
                return Field.union(f.over(tuple(t.shape[-2:])) for t, f in inputs if t.dim() == 4)
            if name.startswith("adaptive") and out.dim() == 4:   # to a size above 1: windows of n // o
                (h, w), (oh, ow) = source.shape[-2:], out.shape[-2:]
                kernel = (h - (oh - 1) * (h // oh), w - (ow - 1) * (w // ow))
                return field.through(kernel, (h // oh, w // ow), 0)
            return Field.union(f for _, f in inputs)
        if name == "__getitem__" and source.dim() == 4:
            return _sliced(field, args[1] if len(args) > 1 else None)
        if name == "pad" and source.dim() == 4:
            pad = tuple(args[1]) + (0,) * 4 if len(args) > 1 else tuple(kwargs.get("pad", ())) + (0,) * 4
            left, top = pad[0], pad[2]
            return Field(replace(field.height, start=field.height.start - top * field.height.jump),
                         replace(field.width, start=field.width.start - left * field.width.jump))
        return Field.union(f for _, f in inputs)   # elementwise ops, add, cat, norms, activations


def _sliced(field: Field, index) -> Field:
    """``x[..., a::s, b::t]`` on an N x C x H x W map: a subsampled grid of the same units."""
    if not isinstance(index, tuple) or len(index) < 4 or Ellipsis in index:
        return field
    axes = []
    for axis, part in zip((field.height, field.width), index[2:4]):
        if isinstance(part, slice):
            first, step = part.start or 0, part.step or 1
            axes.append(Axis(axis.size, axis.jump * step, axis.start + first * axis.jump))
        else:
            axes.append(axis)
    return Field(*axes)


def _tensors(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


def _pass_through(x: torch.Tensor) -> torch.Tensor:
    return x


# shape-preserving, single-input modules: on the meta device their Python decompositions cost ~3 ms
# each only to return the input's shape; passing the input through gives the same field
_SAME_FIELD = (nn.BatchNorm2d, LayerNorm2d, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.ELU, nn.Tanh,
               nn.Dropout)


def receptive_fields(spec: NetSpec, input_size: Iterable[int] | int | None = None) -> ReceptiveFields:
    """Receptive field of every module of ``spec``'s network at an input size (default: the spec's).

    The same arguments again hit a cache. Raises SpecError, like :meth:`NetSpec.plan`, for a spec
    that does not fit the input size.
    """
    if input_size is None:
        size = (spec.input_size, spec.input_size)
    elif isinstance(input_size, int):
        size = (input_size, input_size)
    else:
        size = tuple(int(d) for d in input_size)[-2:]
    return _receptive_fields(spec, size)


@functools.lru_cache(maxsize=64)
def _receptive_fields(spec: NetSpec, size: tuple[int, int]) -> ReceptiveFields:
    spec.plan(size)
    with torch.device("meta"):
        model = build_model(spec, size, init_weights=False).eval()
    for module in model.modules():
        if isinstance(module, _SAME_FIELD):
            module.forward = _pass_through
    tracker = _FieldTracker()
    records: list[tuple[str, nn.Module, Field, torch.Tensor]] = []      # in the order modules finish
    names = {id(m): n for n, m in model.named_modules() if n}

    def on_output(module, _inputs, output):
        tensor = next(_tensors(output), None)
        field = tracker.field_of(tensor) if tensor is not None else None
        if field is not None:
            records.append((names[id(module)], module, field, tensor))

    handles = [m.register_forward_hook(on_output) for m in model.modules() if id(m) in names]
    x = torch.empty(1, spec.in_channels, *size, device="meta")
    tracker.set(x, Field.pixel())
    try:
        with torch.no_grad(), tracker:
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    # a container that is never called itself (the ModuleDict of an Inception module's branches) sees
    # what its children see together
    seen = {name: (field, tensor) for name, _, field, tensor in records}
    for name, module in reversed(list(model.named_modules())):
        children = [seen[f"{name}.{child}"] for child, _ in module.named_children() if f"{name}.{child}" in seen]
        if name and name not in seen and children:
            seen[name] = (Field.union(f for f, _ in children), children[-1][1])
    layers = []
    for name, module in model.named_modules():     # pre-order: the summary's row order
        if name in seen:
            field, tensor = seen[name]
            out_size = tuple(tensor.shape[-2:]) if tensor.dim() == 4 else ()
            layers.append(LayerField(name, type(module).__name__, name.split(".", 1)[0], name.count(".") + 1,
                                     field.size, field.jump, field.start, out_size))
    return ReceptiveFields(spec, size, tuple(layers))
