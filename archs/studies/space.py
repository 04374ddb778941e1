"""The fields a study varies, named by the paths :class:`archs.SpecError` uses, and how values are set.

Paths
-----
======================== ==============================================================================
``stages[2].growth_rate`` one field of one stage (the stage must have it: a residual stage has no
                          ``growth_rate``)
``stages[*].blocks``      that field of *every* stage that has it; stages of a type without the field are
                          skipped (``stages[*].channels`` leaves dense stages alone); an error if no stage
                          of the network has it
``stem[0].channels``      a field of a stem part (``stem[*].channels`` too)
``head.dropout``          a field of the head
``input_size``            a top-level :class:`~archs.NetSpec` field (``in_channels``, ``norm``, ``activation``,
                          ``init``, ``norm_eps``, ``num_classes``, ``name``)
``train.lr``              any :class:`~archs.training.config.TrainConfig` field (``train.batch_size``,
                          ``train.seed``, ...)
``width``                 a width multiplier: every stage's and stem part's channel widths (``channels``,
                          ``growth_rate``, an Inception stage's branch widths) times it, rounded (at least 1; a
                          0 branch stays off), so the network keeps its channel pyramid where
                          ``stages[*].channels`` flattens it; a width set by its own path wins over it
``train.recipe``          a recipe of :data:`archs.training.recipes.RECIPES` by name: applying it sets the
                          TrainConfig fields the recipe sets, before any other ``train.*`` value (an
                          explicit ``train.batch_size`` beside ``train.recipe`` wins, as a flag beside
                          ``--recipe`` does on the command line)
======================== ==============================================================================

Only fields that a spec or TrainConfig declares with :func:`archs.fields.param` can be named: a path is
matched against a strict grammar and then looked up among those declared fields, never with ``getattr``
on a name from the user (``__class__``, ``stages[0].check`` and ``head.out_size`` are refused).
Every problem raises :class:`StudyError` (a :class:`~archs.SpecError`, so a ``ValueError``) whose message
starts with the path, e.g. ``stages[99].blocks: the network has 3 stages (stages[0] to stages[2])``.

Values
------
:func:`parse_vary` reads the command line's ``FIELD=V1,V2,...`` (a list, each value parsed by the field's
kind), ``FIELD=LOW:HIGH`` (a range, for a search), ``FIELD=LOW:HIGH:SCALE`` (a range that says its scale:
``train.lr=1e-4:1e-1:log`` searched log-uniformly, ``:linear`` uniformly, ``stages[*].channels=8:64:8`` in steps
of 8, so 8, 16, ..., 64) and a bare ``FIELD`` (the range from the field's metadata, see :func:`domain`).
:func:`apply` sets an assignment ``{path: value}`` on a spec and a TrainConfig and validates the result exactly
as the project does everywhere (each changed part's own checks when it is made, then :meth:`archs.NetSpec.plan`
for the whole network), so an infeasible trial raises the project's own SpecError message. :func:`grid` expands
lists into assignments and :func:`trial_label` names one.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from archs.fields import FieldInfo, SpecError, check_value, spec_fields
from archs.spec import HeadSpec, NetSpec
from archs.stages import STAGE_TYPES, PlainSpec
from archs.training.config import ConfigError, TrainConfig
from archs.training.recipes import RECIPES, apply_recipe

__all__ = ["Domain", "FieldPath", "MAX_TRIALS", "StudyError", "Vary", "apply", "domain", "field_info", "grid",
           "listed", "parse_path", "parse_value", "parse_vary", "trial_label"]

MAX_PATH_CHARS = 200
MAX_VALUE_CHARS = 100    # one value of a number, bool or choice field (a string field: its own max_length)
MAX_VARY_CHARS = 20_000  # a whole FIELD=V1,V2,... (MAX_VALUES short values), refused before it is read
MAX_VALUES = 1000
MAX_TRIALS = 10_000
OPEN_INT_SPAN = 100      # an int range open at the top reaches at least this far above its low end
OPEN_FLOAT_SPAN = 1.0    # likewise for a float range
LOG_DECADES = 2          # a float range with a positive low end spanning this many decades is searched in log

WILDCARD = "*"
_NAME = r"[a-z][a-z0-9_]*"      # declared field names: no leading underscore, so no dunders
_PART = re.compile(rf"(?P<scope>stem|stages)\[(?P<index>[^\]]*)\]\.(?P<name>{_NAME})")
_DOTTED = re.compile(rf"(?P<scope>head|train)\.(?P<name>{_NAME})")
_TOP = re.compile(_NAME)
_INDEX = re.compile(r"\*|0|[1-9][0-9]{0,5}")
_EXAMPLES = ("e.g. stages[2].growth_rate, stages[*].blocks, stem[0].channels, head.dropout, input_size, width, "
             "train.lr")


def _recipe_info() -> FieldInfo:
    """The ``train.recipe`` field: its choices read :data:`RECIPES` when asked, so a recipe registered later counts."""
    return FieldInfo("recipe", "choice", None, "A named training recipe: sets the TrainConfig fields it names.",
                     choices=tuple(RECIPES))


WIDTH = "width"
WIDTH_INFO = FieldInfo(WIDTH, "float", 1.0, "A width multiplier: every stage's and stem part's channel widths times "
                       "it, keeping the network's channel pyramid.", 0.125, 8.0)
# the fields a width multiplier scales: each stage type's (and a stem part's) channel widths
WIDTH_FIELDS = frozenset({"channels", "growth_rate", "branch1x1", "branch3x3_reduce", "branch3x3", "branch5x5_reduce",
                          "branch5x5", "double3x3_reduce", "double3x3", "branch_pool_projection"})


class StudyError(SpecError):
    """A bad field path, value or assignment; the message starts with the path, which ``path`` holds."""


def _error(path: str, problem: str) -> StudyError:
    return StudyError(f"{path}: {problem}", path)


def _shown(text: Any) -> str:
    """A path as a message shows it: unquoted when plain, shortened when long, repr'd when odd."""
    text = str(text)[:61]       # what can be shown, before any look at it: the text may be 1 MB
    if not text.isprintable():
        text = repr(text)
    return text if len(text) <= 60 else text[:57] + "..."


# --------------------------------------------------------------------------------------------- paths
@dataclass(frozen=True)
class FieldPath:
    """One parsed path. ``scope`` is ``net`` (a top-level NetSpec field), ``stem``, ``stages``, ``head``,
    ``train`` or ``scale`` (the width multiplier ``width``); ``index`` is a stem/stage index, ``"*"`` for every
    one that has the field, else None."""

    scope: str
    name: str
    index: int | str | None = None

    @property
    def wildcard(self) -> bool:
        return self.index == WILDCARD

    @property
    def text(self) -> str:
        if self.scope in ("stem", "stages"):
            return f"{self.scope}[{self.index}].{self.name}"
        if self.scope in ("head", "train"):
            return f"{self.scope}.{self.name}"
        return self.name

    def __str__(self) -> str:
        return self.text


def _infos(cls: type) -> dict[str, FieldInfo]:
    return {info.name: info for info in spec_fields(cls)}


def _part_classes(scope: str) -> list[type]:
    return [PlainSpec] if scope == "stem" else list(STAGE_TYPES.values())


def _parts(spec: NetSpec, scope: str) -> tuple:
    return spec.stem if scope == "stem" else spec.stages


def parse_path(text: str | FieldPath, spec: NetSpec | None = None) -> FieldPath:
    """Parse a field path. Without ``spec`` the path must name a field some part of its kind declares;
    with ``spec`` it must name one of *that* network: the index in range, the stage of a type that has the
    field, and a wildcard matching at least one stage."""
    if isinstance(text, FieldPath):
        text = text.text
    if not isinstance(text, str):
        raise StudyError(f"field path: must be text, got {type(text).__name__}")
    text = text.strip()
    if not text:
        raise StudyError(f"field path: empty; name a field ({_EXAMPLES})")
    if len(text) > MAX_PATH_CHARS:
        raise _error(_shown(text), f"a field path is at most {MAX_PATH_CHARS} characters, got {len(text)}")
    if match := _PART.fullmatch(text):
        scope, index, name = match["scope"], match["index"], match["name"]
        if not _INDEX.fullmatch(index):
            raise _error(_shown(text), f"the index of {scope}[...] must be a whole number or *, got {_shown(index)!r}")
        path = FieldPath(scope, name, index if index == WILDCARD else int(index))
        _check_part_field(path, spec)
        return path
    if match := _DOTTED.fullmatch(text):
        scope, name = match["scope"], match["name"]
        path = FieldPath(scope, name)
        if scope == "head":
            if name not in _infos(HeadSpec):
                raise _error(text, f"unknown field of the head (its fields: {', '.join(_infos(HeadSpec))})")
        elif name != "recipe" and name not in _infos(TrainConfig):
            raise _error(text, f"unknown training setting (known: recipe, {', '.join(_infos(TrainConfig))})")
        return path
    if text == WIDTH:
        return FieldPath("scale", WIDTH)
    if _TOP.fullmatch(text):
        if text in ("stem", "stages"):
            raise _error(text, f"name a field of one part, e.g. {text}[0].channels or {text}[*].channels")
        if text in ("head", "train"):
            raise _error(text, f"name one of its fields, e.g. {'head.dropout' if text == 'head' else 'train.lr'}")
        if text not in _infos(NetSpec):
            raise _error(text, f"unknown field of the network (its fields: {', '.join(_infos(NetSpec))}; "
                               "stage fields are stages[i].name, training settings train.name)")
        return FieldPath("net", text)
    raise _error(_shown(text), f"not a field path ({_EXAMPLES})")


def _check_part_field(path: FieldPath, spec: NetSpec | None) -> None:
    what = "stem part" if path.scope == "stem" else "stage"
    if spec is None:
        classes = _part_classes(path.scope)
        if not any(path.name in _infos(cls) for cls in classes):
            raise _error(path.text, f"no {what} type has a field {path.name!r}")
        return
    parts = _parts(spec, path.scope)
    if path.wildcard:
        if not any(path.name in _infos(type(part)) for part in parts):
            kinds = ", ".join(part.type_name for part in parts) or "none"
            raise _error(path.text, f"no {what} of this network has a field {path.name!r} (its {path.scope}: {kinds})")
        return
    if path.index >= len(parts):
        has = (f"{path.scope}[0] to {path.scope}[{len(parts) - 1}]" if len(parts) > 1
               else f"{path.scope}[0]" if parts else "none")
        raise _error(path.text, f"the network has {len(parts)} {what}{'s' if len(parts) != 1 else ''} ({has})")
    part = parts[path.index]
    if path.name not in _infos(type(part)):
        raise _error(path.text, f"a {part.type_name} {what} has no field {path.name!r} "
                                f"(its fields: {', '.join(_infos(type(part)))})")


def _targets(spec: NetSpec, path: FieldPath) -> list[int]:
    """Indices of the stem parts or stages a (checked) path sets."""
    parts = _parts(spec, path.scope)
    if path.wildcard:
        return [i for i, part in enumerate(parts) if path.name in _infos(type(part))]
    return [path.index]


def field_info(path: str | FieldPath, spec: NetSpec | None = None) -> FieldInfo:
    """The field's metadata (kind, range, step, choices, help). A wildcard, or a stage path without
    ``spec``, may match several stage types: their ranges are intersected (``stages[*].layers`` over
    dense (1..128) and plain (1..64) stages is 1..64), and they must agree on the kind."""
    path = parse_path(path, spec)
    if path.scope == "scale":
        return WIDTH_INFO
    if path.scope == "net":
        return _infos(NetSpec)[path.name]
    if path.scope == "head":
        return _infos(HeadSpec)[path.name]
    if path.scope == "train":
        return _recipe_info() if path.name == "recipe" else _infos(TrainConfig)[path.name]
    if spec is not None:
        classes = [type(_parts(spec, path.scope)[i]) for i in _targets(spec, path)]
    else:
        classes = [cls for cls in _part_classes(path.scope) if path.name in _infos(cls)]
    infos = list({id(cls): _infos(cls)[path.name] for cls in classes}.values())
    first = infos[0]
    if len(infos) == 1:
        return first
    if len({(i.kind, i.optional) for i in infos}) > 1:
        raise _error(path.text, "the stage types it matches declare it differently; name one stage")
    lows = [i.minimum for i in infos if i.minimum is not None]
    highs = [i.maximum for i in infos if i.maximum is not None]
    choices = first.choices
    if choices is not None:
        choices = tuple(c for c in choices if all(c in i.choices for i in infos))
    return dataclasses.replace(first, minimum=max(lows) if lows else None, maximum=min(highs) if highs else None,
                               choices=choices)


# --------------------------------------------------------------------------------------------- values
_TRUE, _FALSE = ("yes", "true", "on", "1"), ("no", "false", "off", "0")
_DIGITS = frozenset("0123456789")


def _digits(text: str, i: int) -> int:
    """The index after the ASCII digits that start at ``i`` (``str.isdigit`` also takes "٣" and "²")."""
    while i < len(text) and text[i] in _DIGITS:
        i += 1
    return i


def _is_number(text: str, whole: bool) -> bool:
    """Whether ``text`` is ``[+-]digits`` (``whole``) or a decimal number ``[+-](d+[.d*]|.d+)[(e|E)[+-]d{1,3}]``:
    one pass over the text, where the regular expression this replaces backtracked (50,000 digits and an x
    took minutes)."""
    i = 1 if text[:1] in ("+", "-") else 0
    end = _digits(text, i)
    if whole:
        return i < end == len(text)
    if end < len(text) and text[end] == ".":
        end = _digits(text, end + 1)
    if end - i < 1 or text[i:end] == ".":
        return False
    if end < len(text) and text[end] in "eE":
        start = end + 2 if text[end + 1:end + 2] in ("+", "-") else end + 1
        end = _digits(text, start)
        if not 1 <= end - start <= 3:
            return False
    return end == len(text)


def parse_value(info: FieldInfo, text: str, path: str) -> Any:
    """One value from text by the field's kind: int, float (``1e-3`` too), bool (yes/no/true/false/on/off/
    1/0), a choice by its name, a string; ``none`` for an optional field. Checked against the field's range.
    Text longer than ``MAX_VALUE_CHARS`` (a string field: its own ``max_length``) is refused before it is read."""
    limit = max(info.max_length, MAX_VALUE_CHARS) if info.kind == "str" else MAX_VALUE_CHARS
    if not isinstance(text, str):
        raise _error(path, f"a value must be text, got {type(text).__name__}")
    if len(text) > limit:
        raise _error(path, f"a value is at most {limit:,} characters, got {len(text):,}")
    text = text.strip()
    if info.optional and text.lower() in ("none", "null"):
        return None
    if info.kind == "int":
        if not _is_number(text, whole=True) or len(text.lstrip("+-")) > 18:
            raise _error(path, f"must be an integer, got {_shown(text)!r}")
        value = int(text)
    elif info.kind == "float":
        if not _is_number(text, whole=False):
            raise _error(path, f"must be a number, got {_shown(text)!r}")
        value = float(text)
    elif info.kind == "bool":
        if text.lower() not in _TRUE + _FALSE:
            raise _error(path, f"must be yes or no, got {_shown(text)!r}")
        value = text.lower() in _TRUE
    elif info.kind == "choice":
        named = {str(c): c for c in info.choices}
        if text not in named:
            raise _error(path, f"must be one of {', '.join(named)}, got {_shown(text)!r}")
        value = named[text]
    else:
        value = text
    return _checked(info, value, path)


def _checked(info: FieldInfo, value: Any, path: str) -> Any:
    """``value`` checked against the field's metadata (the project's messages), an int made a float where
    the field is a float (JSON and Optuna may hand over 3 for 3.0)."""
    if info.kind == "float" and type(value) is int:
        value = float(value)
    try:
        check_value(info, value, path)
    except SpecError as error:
        raise StudyError(str(error), path) from None
    return value


@dataclass(frozen=True)
class Domain:
    """Where a search may take a field. ``kind`` is ``int``, ``float``, ``categorical`` or ``bool``; ``low``
    and ``high`` bound the numbers (inclusive), ``log`` a log-scale search, ``step`` the step (an int's; a
    float range's where given), ``choices`` the categorical (and bool) values; ``default`` is the field's
    current value."""

    path: str
    kind: str
    low: int | float | None = None
    high: int | float | None = None
    log: bool = False
    step: int | float | None = None
    choices: tuple | None = None
    default: Any = None

    def contains(self, value: Any) -> bool:
        if self.kind in ("categorical", "bool"):
            return any(type(c) is type(value) and c == value for c in self.choices)
        if type(value) not in ((int,) if self.kind == "int" else (int, float)):
            return False
        return self.low <= value <= self.high

    def suggest(self, trial: Any, name: str | None = None) -> Any:
        """A value from an Optuna ``trial`` (duck-typed: nothing here imports optuna)."""
        name = name or self.path
        if self.kind == "int":
            if self.log:
                return trial.suggest_int(name, self.low, self.high, log=True)
            return trial.suggest_int(name, self.low, self.high, step=self.step or 1)
        if self.kind == "float":
            if self.step is not None:
                return trial.suggest_float(name, self.low, self.high, step=self.step)
            return trial.suggest_float(name, self.low, self.high, log=self.log)
        return trial.suggest_categorical(name, list(self.choices))


def _current(path: FieldPath, spec: NetSpec, train: TrainConfig | None, info: FieldInfo) -> Any:
    if path.scope == "scale":
        return 1.0
    if path.scope == "net":
        return getattr(spec, info.name)
    if path.scope == "head":
        return getattr(spec.head, info.name)
    if path.scope == "train":
        return None if path.name == "recipe" else getattr(train or TrainConfig(), info.name)
    values = [getattr(_parts(spec, path.scope)[i], info.name) for i in _targets(spec, path)]
    if info.kind in ("int", "float"):
        numbers = [v for v in values if v is not None]
        return max(numbers) if numbers else None
    return values[0]


def domain(spec: NetSpec, path: str | FieldPath, train: TrainConfig | None = None, *,
           low: int | float | None = None, high: int | float | None = None, scale: str | None = None,
           step: int | float | None = None) -> Domain:
    """The search domain of a field of ``spec`` (training settings: of ``train``, default TrainConfig()).

    - ``low``/``high`` come from the field's metadata unless given (given ones are checked against it).
    - A range open at the top (TrainConfig's ``warmup_steps``, ``seed``, ``max_steps``, ...) is bounded
      at 4 x the field's current value, and at least ``OPEN_INT_SPAN`` (100) above the low end for an int,
      ``OPEN_FLOAT_SPAN`` (1.0) for a float: ``train.warmup_steps`` (0 by default) searches 0..100,
      ``train.log_every`` (20) 1..101. Give ``LOW:HIGH`` for anything else. A range open at the bottom
      would start at 0 (none of the project's fields has one).
    - ``log`` is suggested for a float range whose low end is positive and which spans at least
      ``LOG_DECADES`` (2) decades: ``train.lr=1e-4:1e-1`` is searched in log space; bare ``train.lr`` is
      its metadata's 0..10, linear (a low end of 0 cannot be log-scaled), so give a range for it.
    - ``scale`` says it instead: ``"log"`` (log-uniform; the low end must be above 0) or ``"linear"``; ``step``
      a step (ints: a multiple of the field's own step; the range a whole number of steps; not with log).
    - Choices are categorical; a bool field is ``bool`` with choices (False, True). ``train.recipe``'s
      choices are the recipe names. A free-text field (``name``) has no domain: give it a list.
    """
    path = parse_path(path, spec)
    info = field_info(path, spec)
    current = _current(path, spec, train, info)
    if info.kind == "str":
        raise _error(path.text, "is free text: give its values as a list (FIELD=A,B), not a range")
    if info.kind in ("choice", "bool"):
        if low is not None or high is not None:
            raise _error(path.text, "a range needs a number field; give a list of values (FIELD=A,B)")
        choices = (False, True) if info.kind == "bool" else tuple(info.choices)
        return Domain(path.text, "bool" if info.kind == "bool" else "categorical", choices=choices, default=current)
    lo = _checked(info, low, path.text) if low is not None else info.minimum
    hi = _checked(info, high, path.text) if high is not None else info.maximum
    base = current if current is not None else info.default
    if lo is None:
        lo = 0 if base is None or base >= 0 else 4 * base
    if hi is None:
        span = OPEN_INT_SPAN if info.kind == "int" else OPEN_FLOAT_SPAN
        hi = max(4 * base if base is not None else lo, lo + span)
    if info.kind == "int":
        lo, hi = int(lo), int(hi)
    else:
        lo, hi = float(lo), float(hi)
    if lo > hi:
        raise _error(path.text, f"the range's low end {lo:g} is above its high end {hi:g}")
    if scale not in (None, "log", "linear"):
        raise _error(path.text, f"a range's scale is log, linear or a step, got {_shown(scale)!r}")
    if scale == "log":
        if lo <= 0:
            raise _error(path.text, f"a log range needs a low end above 0, got {lo:g}")
        log = True
    else:
        log = scale is None and info.kind == "float" and lo > 0 and hi / lo >= 10 ** LOG_DECADES and step is None
    own = int(info.step or 1) if info.kind == "int" else None
    if step is not None:
        if log:
            raise _error(path.text, "a range has a step or a log scale, not both")
        step = _checked_step(info, step, lo, hi, own, path.text)
    return Domain(path.text, info.kind, lo, hi, log=log, step=step if step is not None else own, default=current)


def _checked_step(info: FieldInfo, step: Any, lo: int | float, hi: int | float, own: int | None, path: str
                  ) -> int | float:
    """A range's given step: of the field's kind, above 0, a multiple of an int field's own step, and the range a
    whole number of steps (``8:64:8`` is 8, 16, ..., 64; ``8:60:8`` is refused rather than cut short)."""
    whole = info.kind == "int"
    if isinstance(step, bool) or not isinstance(step, (int, float)) or (whole and not isinstance(step, int)) \
            or not math.isfinite(step) or step <= 0:
        raise _error(path, f"a range's step must be a {'whole ' if whole else ''}number above 0, got {_shown(step)!r}")
    if whole and own and step % own:
        raise _error(path, f"a range's step must be a multiple of the field's step {own}, got {step}")
    count = (hi - lo) / step
    if abs(count - round(count)) > 1e-9 * max(1.0, abs(count)):
        ends = [lo + n * step for n in (math.floor(count), math.ceil(count)) if lo + n * step > lo]
        raise _error(path, f"the range {lo:g}:{hi:g} is not a whole number of steps of {step:g} (e.g. "
                           f"{' or '.join(f'{lo:g}:{end:g}:{step:g}' for end in ends)})")
    return int(step) if whole else float(step)


@dataclass(frozen=True)
class Vary:
    """One ``--vary`` argument: ``values`` for a list, ``low``/``high`` for a range (with its ``scale``, ``log`` or
    ``linear``, or its ``step`` where given), neither for a bare field."""

    path: str
    values: tuple | None = None
    low: int | float | None = None
    high: int | float | None = None
    scale: str | None = None
    step: int | float | None = None

    @property
    def is_list(self) -> bool:
        return self.values is not None

    def domain(self, spec: NetSpec, train: TrainConfig | None = None) -> Domain:
        """The search domain: this range, or the metadata's for a bare field (a list has no domain)."""
        if self.values is not None:
            raise _error(self.path, "is a list of values: a search needs a range (FIELD=LOW:HIGH) or a bare FIELD")
        return domain(spec, self.path, train, low=self.low, high=self.high, scale=self.scale, step=self.step)

    def to_dict(self) -> dict:
        """As a stored study definition holds it: ``{"path", "values"}`` or ``{"path", "low", "high"}`` with
        ``scale`` and ``step`` where given."""
        if self.values is not None:
            return {"path": self.path, "values": list(self.values)}
        out = {"path": self.path, "low": self.low, "high": self.high}
        if self.scale is not None:
            out["scale"] = self.scale
        if self.step is not None:
            out["step"] = self.step
        return out


def parse_vary(text: str, spec: NetSpec | None = None) -> Vary:
    """``FIELD=V1,V2,...`` (a list: each value parsed and range-checked by the field's kind, no repeats),
    ``FIELD=LOW:HIGH`` (a range of a number field, both ends included), ``FIELD=LOW:HIGH:SCALE`` (``log``,
    ``linear`` or a step of the field's kind: ``train.lr=1e-4:1e-1:log``, ``stages[*].channels=8:64:8``) or a
    bare ``FIELD``. With ``spec``
    the path must name a field of that network (see :func:`parse_path`)."""
    if not isinstance(text, str):
        raise StudyError(f"vary: must be text, got {type(text).__name__}")
    if len(text) > MAX_VARY_CHARS:
        head = text[:MAX_PATH_CHARS].partition("=")[0]
        raise _error(_shown(head.strip()) or "vary", f"FIELD=VALUES is at most {MAX_VARY_CHARS:,} characters, "
                                                     f"got {len(text):,}")
    head, sep, rest = text.partition("=")
    path = parse_path(head, spec)
    if not sep:
        return Vary(path.text)
    info = field_info(path, spec)
    rest = rest.strip()
    if not rest:
        raise _error(path.text, "no values after '=' (FIELD=V1,V2 or FIELD=LOW:HIGH)")
    if ":" in rest and info.kind in ("int", "float"):
        if rest.count(":") > 2:
            raise _error(path.text, f"a range is LOW:HIGH or LOW:HIGH:SCALE (log, linear or a step), "
                                    f"got {_shown(rest)!r}")
        low_text, _, tail = rest.partition(":")
        high_text, _, scale_text = tail.partition(":")
        low, high = parse_value(info, low_text, path.text), parse_value(info, high_text, path.text)
        if low is None or high is None:
            raise _error(path.text, "a range needs two numbers")
        if low > high:
            raise _error(path.text, f"the range's low end {low:g} is above its high end {high:g}")
        scale = step = None
        if ":" in tail:
            word = scale_text.strip().lower()
            if word in ("log", "linear"):
                scale = word
            else:
                if len(scale_text) > MAX_VALUE_CHARS or not _is_number(word, whole=False):
                    raise _error(path.text, f"a range's scale is log, linear or a step (a number), "
                                            f"got {_shown(scale_text.strip())!r}")
                step = int(word) if info.kind == "int" and _is_number(word, whole=True) else float(word)
                step = _checked_step(info, step, low, high, int(info.step or 1) if info.kind == "int" else None,
                                     path.text)
            if scale == "log" and low <= 0:
                raise _error(path.text, f"a log range needs a low end above 0, got {low:g}")
        return Vary(path.text, low=low, high=high, scale=scale, step=step)
    if ":" in rest and info.kind in ("choice", "bool"):
        raise _error(path.text, "a range needs a number field; give a list of values (FIELD=A,B)")
    items = rest.split(",")
    if len(items) > MAX_VALUES:
        raise _error(path.text, f"at most {MAX_VALUES} values, got {len(items)}")
    values = []
    for item in items:
        if not item.strip():
            raise _error(path.text, f"an empty value in {_shown(rest)!r}")
        value = parse_value(info, item, path.text)
        if any(type(value) is type(v) and value == v for v in values):
            raise _error(path.text, f"the value {_shown(item.strip())!r} is given twice")
        values.append(value)
    return Vary(path.text, values=tuple(values))


def listed(path: str | FieldPath, values: Sequence, spec: NetSpec | None = None) -> Vary:
    """A list of values given as data (a stored study definition's JSON, not text): at most ``MAX_VALUES``, each
    checked against the field's kind and range (as :func:`parse_vary` checks text), none given twice."""
    path = parse_path(path, spec)
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise _error(path.text, "values must be a non-empty list")
    if len(values) > MAX_VALUES:
        raise _error(path.text, f"at most {MAX_VALUES} values, got {len(values)}")
    info, checked = field_info(path, spec), []
    for value in values:
        value = _checked(info, value, path.text)
        if any(type(value) is type(v) and value == v for v in checked):
            raise _error(path.text, f"the value {_shown(value)!r} is given twice")
        checked.append(value)
    return Vary(path.text, values=tuple(checked))


# --------------------------------------------------------------------------------------------- applying
def apply(spec: NetSpec, train: TrainConfig | None, assignment: Mapping[str | FieldPath, Any]
          ) -> tuple[NetSpec, TrainConfig]:
    """A new (spec, train config) with the assignment's values set, fully validated.

    Every changed stage, stem part and the head is remade once with all its new values together (so
    ``stages[0].branch3x3=0`` with ``stages[0].branch3x3_reduce=0`` is one valid change, not an invalid
    step), which runs its own checks; then :meth:`NetSpec.plan` checks the whole network, the same checks
    :meth:`NetSpec.from_dict` runs (feature maps that vanish, channels that do not fit, the parameter
    limit). Wildcards set every stage that has the field; a path with an index wins over a wildcard for
    that stage, whatever the order. ``width`` scales every channel width first; a width's own path wins over it.
    ``train.recipe`` is applied first, then the other ``train.*`` values.

    Everything raises a :class:`~archs.SpecError` with the project's own message, named by the path: a bad
    path or a value outside its field's range or type a StudyError (``stages[2].growth_rate: must be >= 1,
    got 0``, ``train.batch_size: must be >= 1, got 0``), a rule of a remade part (``stages[0].branch3x3_reduce:
    must be 0 when branch3x3 is 0 ...``) or of the whole network the project's SpecError (``stage 3
    (residual): a 1x1 feature map cannot be halved (input 28x28)``), a TrainConfig rule a ConfigError. A
    study records the trial as infeasible with ``str(error)``. (A wildcard's value is checked against the
    range every matched stage type allows.)
    """
    train = TrainConfig() if train is None else train
    if not isinstance(spec, NetSpec):
        raise StudyError(f"spec: must be a NetSpec, got {type(spec).__name__}")
    if not isinstance(assignment, Mapping):
        raise StudyError(f"assignment: must be a mapping of field paths to values, got {type(assignment).__name__}")
    parsed: dict[str, tuple[FieldPath, Any]] = {}
    for key, value in assignment.items():
        path = parse_path(key, spec)
        if path.text in parsed:
            raise _error(path.text, "is set twice")
        parsed[path.text] = (path, _checked(field_info(path, spec), value, path.text))

    net: dict[str, Any] = {}
    head: dict[str, Any] = {}
    parts: dict[str, dict[int, dict[str, Any]]] = {"stem": {}, "stages": {}}
    settings: dict[str, Any] = {}
    recipe = None
    if WIDTH in parsed:  # scaled first, so that a width set by its own path (wildcard or indexed) wins
        _scale_widths(spec, parsed[WIDTH][1], parts)
    # wildcards first, so that an indexed path overrides them
    for path, value in sorted(parsed.values(), key=lambda item: not item[0].wildcard):
        if path.scope == "scale":
            continue
        if path.scope == "net":
            net[path.name] = value
        elif path.scope == "head":
            head[path.name] = value
        elif path.scope == "train":
            if path.name == "recipe":
                recipe = value
            else:
                settings[path.name] = value
        else:
            for i in _targets(spec, path):
                parts[path.scope].setdefault(i, {})[path.name] = value

    changes: dict[str, Any] = dict(net)
    for scope, updates in parts.items():
        if updates:
            changes[scope] = tuple(_remade(part, updates.get(i), f"{scope}[{i}]")
                                   for i, part in enumerate(_parts(spec, scope)))
    if head:
        changes["head"] = _remade(spec.head, head, "head")
    new_spec = dataclasses.replace(spec, **changes) if changes else spec  # top-level checks name the field
    new_spec.plan()

    try:
        new_train = apply_recipe(recipe, train) if recipe is not None else train
        new_train = dataclasses.replace(new_train, **settings) if settings else new_train
    except SpecError as error:  # ConfigError naming the bare field: name it as the study does
        raise ConfigError(f"train.{error}", f"train.{error.path}") from None
    return new_spec, new_train


def _scale_widths(spec: NetSpec, width: float, parts: dict[str, dict[int, dict[str, Any]]]) -> None:
    """Every stem part's and stage's channel widths (:data:`WIDTH_FIELDS`) times ``width``, rounded to the nearest
    whole number, at least 1 (a 0, an Inception branch that is off, stays 0): the channel pyramid kept."""
    for scope in ("stem", "stages"):
        for i, part in enumerate(_parts(spec, scope)):
            for name in WIDTH_FIELDS & set(_infos(type(part))):
                value = getattr(part, name)
                if isinstance(value, int) and value > 0:
                    parts[scope].setdefault(i, {})[name] = max(1, round(value * width))


def _remade(part: Any, updates: dict[str, Any] | None, prefix: str) -> Any:
    if not updates:
        return part
    try:
        return dataclasses.replace(part, **updates)
    except SpecError as error:
        raise error.under(prefix) from None


# --------------------------------------------------------------------------------------------- grids
def grid(vary: Sequence[Vary | tuple[str, Iterable[Any]]], seeds: int | Sequence[int] = 1) -> list[dict[str, Any]]:
    """Every combination of the listed values, once per seed, as assignments ``{path: value, ...,
    "train.seed": seed}``. ``seeds`` is a count (seeds 0..n-1) or the seeds themselves.

    The order is stable: seed by seed (every configuration with the first seed comes first, so a study
    cut short has tried each configuration once), and within a seed ``itertools.product`` order of the
    lists as given (the last field varies fastest). Paths are written canonically; a path given twice, a
    range instead of a list, ``train.seed`` among the fields, or more than ``MAX_TRIALS`` assignments
    raise StudyError.
    """
    if isinstance(seeds, bool) or not isinstance(seeds, (int, Sequence)):
        raise StudyError(f"seeds: must be a count or a list of seeds, got {type(seeds).__name__}")
    if isinstance(seeds, int):
        if seeds < 1:
            raise StudyError(f"seeds: must be at least 1, got {seeds}", "seeds")
        seed_list = list(range(seeds))
    else:
        seed_list = list(seeds)
        if not seed_list:
            raise StudyError("seeds: give at least one seed", "seeds")
        for seed in seed_list:
            if type(seed) is not int or seed < 0:
                raise StudyError(f"seeds: must be whole numbers >= 0, got {seed!r}", "seeds")
        if len(set(seed_list)) != len(seed_list):
            raise StudyError("seeds: a seed is given twice", "seeds")
    paths, lists = [], []
    for item in vary:
        if isinstance(item, Vary):
            if item.values is None:
                raise _error(item.path, "is a range: a grid needs a list of values (FIELD=V1,V2)")
            path_text, values = item.path, item.values
        else:
            path_text, values = item
        text = parse_path(path_text).text
        if text in paths:
            raise _error(text, "is varied twice")
        if text == "train.seed":
            raise _error(text, "give seeds as the number of seeds, not as a field to vary")
        values = list(values)
        if not values:
            raise _error(text, "has no values")
        paths.append(text)
        lists.append(values)
    total = math.prod(len(v) for v in lists) * len(seed_list)
    if total > MAX_TRIALS:
        raise StudyError(f"grid: {total:,} trials, over the limit of {MAX_TRIALS:,}", "grid")
    return [{**dict(zip(paths, combo)), "train.seed": seed}
            for seed in seed_list for combo in itertools.product(*lists)]


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def trial_label(assignment: Mapping[str | FieldPath, Any], max_chars: int = 120) -> str:
    """A short readable name: ``growth_rate=12 lr=0.001 seed=1``. Each field goes by its own name, or by
    its whole path where two fields share a name (``stages[0].channels=16 stages[1].channels=32``);
    floats in ``%g``; bools yes/no. An empty assignment is ``base``; longer than ``max_chars`` ends in ``…``."""
    keys = [k.text if isinstance(k, FieldPath) else str(k).strip() for k in assignment]
    names = [key.rsplit(".", 1)[-1] for key in keys]
    parts = [f"{name if names.count(name) == 1 else key}={_fmt(value)}"
             for key, name, value in zip(keys, names, assignment.values())]
    label = " ".join(parts) or "base"
    return label if len(label) <= max_chars else label[:max_chars - 1] + "…"
