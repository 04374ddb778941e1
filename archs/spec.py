"""``NetSpec``: a whole network as plain, hashable data, with JSON and URL round trips.

A network is a stem (plain conv stages), a list of stages of any registered type, and a head. Its
checks run in two places: field types, ranges and per-stage rules when a spec is made (so an invalid
spec cannot exist), and the rules that need the whole network (feature map sizes for an input size,
the parameter limit) in :meth:`NetSpec.plan`, which every builder and inspector calls first.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from dataclasses import dataclass, field, replace
from typing import Any

from . import budget as _budget
from .fields import SpecError, check_fields, describe, field_error, fields_from_dict, join_path, param
from .stages import STAGE_TYPES, BuildContext, PlainSpec, ShapeProblem, StageSpec
from .stages.base import ACTIVATIONS, NORMS, reduce_size

__all__ = ["NetSpec", "HeadSpec", "StagePlan", "DEFAULT_MAX_PARAMS", "encode_spec", "decode_spec"]

FORMAT = "archs.netspec/1"
DEFAULT_MAX_PARAMS = _budget.Budget.from_env().max_params  # ARCHS_MAX_PARAMS when the process started


@dataclass(frozen=True)
class HeadSpec:
    """Pooling, optional final norm + activation (DenseNet), optional dropout, then a linear classifier."""

    pool: str = param("global_avg", "Global average pool, a fixed-size average pool, or flatten the map.",
                      choices=("global_avg", "avg", "flatten"))
    pool_kernel: int = param(2, "Window (and stride) of the fixed-size average pool.", range=(1, 16), step=1)
    norm_activation: bool = param(False, "Norm and activation before the pool (DenseNet's final norm).")
    norm_after_pool: bool = param(False, "Norm (no activation) after the pool (ConvNeXt's final norm).", added=True)
    dropout: float = param(0.0, "Dropout before the classifier.", range=(0.0, 0.9), step=0.05)

    def __post_init__(self) -> None:
        check_fields(self)

    def out_size(self, size: tuple[int, int]) -> tuple[int, int]:
        if self.pool == "global_avg":
            return 1, 1
        if self.pool == "avg":
            return reduce_size(size, self.pool_kernel, self.pool_kernel, 0)
        return size

    def num_params(self, channels: int, size: tuple[int, int], num_classes: int, ctx: BuildContext) -> int:
        h, w = self.out_size(size)
        norm = 2 * channels * ((self.norm_activation or self.norm_after_pool) and ctx.has_norm)
        norm += 2 * channels * (self.norm_activation and self.norm_after_pool and ctx.has_norm)
        return norm + channels * h * w * num_classes + num_classes


@dataclass(frozen=True)
class StagePlan:
    """One top-level part of a network as the spec predicts it, before anything is built."""

    name: str            # "stem", "stage3", "head"
    type_name: str       # "plain", "residual", ..., "stem", "head"
    label: str           # "Residual x3 · 64 ch"
    in_channels: int
    out_channels: int
    in_size: tuple[int, int]
    out_size: tuple[int, int]
    params: int


def _stage_from_dict(data: Any, path: str) -> StageSpec:
    if not isinstance(data, dict):
        raise SpecError(f"{path}: must be a JSON object, got {describe(data)}", path)
    type_name = data.get("type")
    known = ", ".join(sorted(STAGE_TYPES))
    if not isinstance(type_name, str):
        raise field_error(join_path(path, "type"), f"must be a stage type name ({known}), got {describe(type_name)}")
    if type_name not in STAGE_TYPES:
        raise field_error(join_path(path, "type"), f"unknown stage type {describe(type_name)} (known: {known})")
    cls = STAGE_TYPES[type_name]
    values = fields_from_dict(cls, data, path)
    try:
        return cls(**values)
    except SpecError as error:
        raise error.under(path) from None


def _spec_to_dict(spec: Any) -> dict:
    out = {"type": spec.type_name} if isinstance(spec, StageSpec) else {}
    for f in spec.__dataclass_fields__.values():
        if f.metadata.get("kind"):
            out[f.name] = getattr(spec, f.name)
    return out


@dataclass(frozen=True)
class NetSpec:
    """A whole network. Frozen and hashable, so it serves as a cache key."""

    name: str = param("custom", "A label for this network.")
    in_channels: int = param(3, "Channels of the input image.", range=(1, 64), step=1)
    num_classes: int = param(10, "Number of output classes.", range=(1, 100000), step=1)
    input_size: int = param(32, "Height and width of the default input.", range=(8, 1024), step=1)
    norm: str = param("batch", "Normalisation after convs: BatchNorm, LayerNorm over the channels (ConvNeXt's), "
                      "or none anywhere.", choices=(*NORMS, "none"))
    norm_eps: float = param(1e-5, "The norm's epsilon.", range=(1e-6, 0.1))
    activation: str = param("relu", "Activation function used throughout.", choices=tuple(ACTIVATIONS))
    init: str = param("default", "Weight initialisation: PyTorch's default, Kaiming normal (fan-out, "
                      "torchvision's ResNet), Xavier uniform, or truncated normal with std 0.01 (GoogLeNet).",
                      choices=("default", "kaiming_normal", "xavier_uniform", "trunc_normal"))
    stem: tuple[PlainSpec, ...] = field(default=())
    stages: tuple[StageSpec, ...] = field(default=())
    head: HeadSpec = field(default_factory=HeadSpec)

    def __post_init__(self) -> None:
        check_fields(self)
        for attr, allowed in (("stem", (PlainSpec,)), ("stages", tuple(STAGE_TYPES.values()))):
            value = getattr(self, attr)
            if not isinstance(value, (tuple, list)):
                raise field_error(attr, f"must be a list of stages, got {type(value).__name__}")
            object.__setattr__(self, attr, tuple(value))
            for i, part in enumerate(value):
                if not isinstance(part, allowed):
                    raise field_error(f"{attr}[{i}]", f"must be a {' or '.join(c.__name__ for c in allowed)}, "
                                                      f"got {type(part).__name__}")
        if not isinstance(self.head, HeadSpec):
            raise field_error("head", f"must be a HeadSpec, got {type(self.head).__name__}")

    # ----------------------------------------------------------------- whole-network checks
    @property
    def context(self) -> BuildContext:
        return BuildContext(self.norm, self.norm_eps, self.activation)

    def parts(self) -> list[tuple[str, str, StageSpec]]:
        """(module name, field path, spec) of every stem part and stage, in order."""
        stem = [("stem", f"stem[{i}]", part) for i, part in enumerate(self.stem)]
        stages = [(f"stage{i + 1}", f"stages[{i}]", stage) for i, stage in enumerate(self.stages)]
        return stem + stages

    def plan(self, input_size: tuple[int, int] | int | None = None,
             max_params: int | None = None, check_budget: bool = True) -> list[StagePlan]:
        """Channels, sizes and parameters of the stem, every stage and the head, computed without
        building anything. Raises SpecError where a stage would shrink the map to nothing, where the
        channels do not fit a stage, or where the network exceeds ``max_params`` (default: the server's
        ``ARCHS_MAX_PARAMS``). With ``check_budget``, also the rest of the server's size budget
        (:mod:`archs.budget`: stages, blocks, modules, and the memory to train on one image at this input
        size), raising :class:`archs.budget.BudgetError`.
        """
        size = self._input(input_size)
        budget = _budget.Budget.from_env() if check_budget or max_params is None else None
        limit = budget.max_params if max_params is None else max_params
        if check_budget:
            _budget.check_stage_count(len(self.stem) + len(self.stages), budget)
        ctx, channels, plans = self.context, self.in_channels, []
        stem_in, stem_params, running = (channels, size), 0, 0
        for name, path, part in self.parts():
            where = f"stem part {path[5:-1]}" if name == "stem" else f"stage {name[5:]}"
            try:
                part.check_input(channels)
                out_size = part.out_size(size)
            except SpecError as error:
                raise error.under(path) from None
            except ShapeProblem as problem:
                raise SpecError(f"{where} ({part.type_name}): {problem} (input {_fmt(self._input(input_size))})",
                                path) from None
            params, out_channels = part.num_params(channels, ctx), part.out_channels(channels)
            if name == "stem":
                stem_params += params
                if path == f"stem[{len(self.stem) - 1}]":
                    plans.append(StagePlan("stem", "stem", _stem_label(self.stem), stem_in[0], out_channels,
                                           stem_in[1], out_size, stem_params))
            else:
                plans.append(StagePlan(name, part.type_name, part.label(channels), channels, out_channels,
                                       size, out_size, params))
            channels, size, running = out_channels, out_size, running + params
            if running > limit:
                raise self._too_big(running, limit, plans, at_least=True, named=max_params is None)
        try:
            head_size = self.head.out_size(size)
        except ShapeProblem as problem:
            raise SpecError(f"head: {problem} (input {_fmt(self._input(input_size))})", "head") from None
        head_params = self.head.num_params(channels, size, self.num_classes, ctx)
        plans.append(StagePlan("head", "head", f"Head · {self.head.pool} → {self.num_classes}", channels,
                               self.num_classes, size, head_size, head_params))
        if running + head_params > limit:
            raise self._too_big(running + head_params, limit, plans, at_least=False, named=max_params is None)
        if check_budget:
            footprint = _budget.footprint(self, input_size, params=running + head_params)
            _budget.check_counts(footprint, replace(budget, max_params=limit))
            _budget.check_memory(self, footprint, 1, "train", budget)
        return plans

    @staticmethod
    def _too_big(total: int, limit: int, plans: list[StagePlan], at_least: bool, named: bool) -> SpecError:
        biggest = max(plans, key=lambda p: p.params, default=None)
        where = f" (largest part so far: {biggest.name} with {biggest.params:,})" if biggest else ""
        setting = f" (ARCHS_MAX_PARAMS={limit})" if named else ""
        return _budget.BudgetError(f"network: {'at least ' if at_least else ''}{total:,} parameters, over the limit "
                                   f"of {limit:,}{setting}{where}", "stages", "ARCHS_MAX_PARAMS")

    def num_params(self, input_size: tuple[int, int] | int | None = None) -> int:
        """Exact parameter count, computed without building the network (and without a budget)."""
        return sum(p.params for p in self.plan(input_size, max_params=10**18, check_budget=False))

    def _input(self, input_size: Any) -> tuple[int, int]:
        return _as_size(input_size if input_size is not None else self.input_size)

    # ----------------------------------------------------------------- variations
    def without_skips(self) -> NetSpec:
        return replace(self, stages=tuple(stage.without_skips() for stage in self.stages))

    # ----------------------------------------------------------------- serialisation
    def to_dict(self) -> dict:
        out: dict[str, Any] = {"format": FORMAT}
        out.update(_spec_to_dict(self))
        out["stem"] = [_spec_to_dict(part) for part in self.stem]
        out["stages"] = [_spec_to_dict(stage) for stage in self.stages]
        out["head"] = _spec_to_dict(self.head)
        return out

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Any, *, check_budget: bool = True) -> NetSpec:
        """Make and fully check a spec from plain data. ``check_budget=False`` is for a network this server
        already admitted (a stored run's): an operator who lowers a budget later still sees the runs made
        under the old one."""
        if not isinstance(data, dict):
            raise SpecError(f"spec: must be a JSON object, got {describe(data)}")
        if "format" in data and data["format"] != FORMAT:
            raise field_error("format", f"must be {FORMAT!r}, got {describe(data['format'])}")
        for key in ("stem", "stages", "head"):
            if key not in data:
                raise field_error(key, "missing field")
        for key in ("stem", "stages"):
            if not isinstance(data[key], list):
                raise field_error(key, f"must be a list, got {describe(data[key])}")
        if check_budget:
            _budget.check_stage_count(len(data["stem"]) + len(data["stages"]))  # before making any of them
        stem = tuple(_stage_from_dict(part, f"stem[{i}]") for i, part in enumerate(data["stem"]))
        for i, part in enumerate(stem):
            if not isinstance(part, PlainSpec):
                raise field_error(f"stem[{i}].type", f"the stem takes plain stages only, got {part.type_name!r}")
        stages = tuple(_stage_from_dict(stage, f"stages[{i}]") for i, stage in enumerate(data["stages"]))
        head = HeadSpec(**fields_from_dict(HeadSpec, data["head"], "head"))
        values = fields_from_dict(cls, data, "", nested={"stem": stem, "stages": stages, "head": head})
        spec = cls(**values)
        spec.plan() if check_budget else spec.plan(max_params=10**18, check_budget=False)
        return spec

    @classmethod
    def from_json(cls, text: str | bytes, *, check_budget: bool = True) -> NetSpec:
        """Parse and fully check a JSON spec; every problem raises SpecError naming the field."""
        if not isinstance(text, (str, bytes, bytearray)):
            raise SpecError(f"spec: must be JSON text, got {type(text).__name__}")
        if len(text) > MAX_JSON_CHARS:              # before the JSON parser reads it
            raise SpecError(f"spec: {len(text):,} characters of JSON, over the limit of {MAX_JSON_CHARS:,}")
        try:
            data = json.loads(text)
        except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, an integer of over 4300 digits
            raise SpecError(f"spec: not valid JSON ({str(error)[:200]})") from None
        except RecursionError:
            raise SpecError("spec: JSON nested too deeply") from None
        return cls.from_dict(data, check_budget=check_budget)


def _as_size(size: tuple[int, int] | int) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size[-2:]
    return int(h), int(w)


def _fmt(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def _stem_label(stem: tuple[PlainSpec, ...]) -> str:
    return " → ".join(part.label(0) for part in stem)


MAX_URL_CHARS = 16_000
MAX_JSON_CHARS = 1_000_000  # a spec's JSON (an upload, a stored spec.json): the largest preset's is under 7,000


def encode_spec(spec: NetSpec) -> str:
    """A compact, URL-safe text for a spec (compressed JSON in base64url)."""
    raw = json.dumps(spec.to_dict(), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode().rstrip("=")


def decode_spec(text: str) -> NetSpec:
    """Inverse of :func:`encode_spec`; anything malformed raises SpecError."""
    if not isinstance(text, str) or not text or len(text) > MAX_URL_CHARS:
        raise SpecError("url: the spec parameter is empty or too long")
    try:
        packed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        stream = zlib.decompressobj()
        raw = stream.decompress(packed, 1_000_000)
        if not stream.eof:  # cut short (its checksum missing), or over 1 MB of JSON
            raise ValueError("incomplete")
    except (binascii.Error, ValueError, zlib.error):
        raise SpecError("url: the spec parameter is not a valid encoded spec") from None
    return NetSpec.from_json(raw)
