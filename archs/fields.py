"""Field metadata and validation shared by every spec class.

Each spec field carries its range, step, choices and help text as dataclass metadata, so a UI can
generate a control for any stage type without knowing it, and validation can name the bad field.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["SpecError", "FieldInfo", "param", "spec_fields", "check_fields", "join_path"]


class SpecError(ValueError):
    """An invalid network description. ``path`` names the field at fault, e.g. ``stages[2].growth_rate``."""

    def __init__(self, message: str, path: str = ""):
        super().__init__(message)
        self.path = path

    @property
    def stage_index(self) -> int | None:
        """Index into ``NetSpec.stages`` of the stage at fault, if the error lies in one."""
        match = re.match(r"stages\[(\d+)\]", self.path)
        return int(match.group(1)) if match else None

    def under(self, prefix: str) -> SpecError:
        """The same error seen from the enclosing spec (``growth_rate`` -> ``stages[2].growth_rate``)."""
        path = join_path(prefix, self.path)
        message = str(self)
        if self.path and message.startswith(self.path + ":"):
            message = path + message[len(self.path):]
        elif not self.path:
            message = f"{prefix}: {message}"
        return SpecError(message, path)


def join_path(prefix: str, path: str) -> str:
    if not prefix:
        return path
    if not path:
        return prefix
    return prefix + path if path.startswith("[") else f"{prefix}.{path}"


def field_error(path: str, problem: str) -> SpecError:
    return SpecError(f"{path}: {problem}", path)


@dataclass(frozen=True)
class FieldInfo:
    """What a UI needs to draw one control: ``kind`` is int, float, bool or choice."""

    name: str
    kind: str
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    choices: tuple | None = None
    optional: bool = False      # None is allowed (e.g. "no limit")
    max_length: int = 100       # for strings: names are short, paths may be long
    added: bool = False         # a field added after specs were stored: JSON without it reads as the default

    @property
    def label(self) -> str:
        return self.name.replace("_", " ").capitalize()


def param(default: Any, help: str, *, range: tuple | None = None, step: float | None = None,
          choices: tuple | None = None, kind: str | None = None, optional: bool = False,
          max_length: int = 100, added: bool = False) -> Any:
    """A spec field with the metadata a generic form and the validator read. ``kind`` is inferred
    from the default unless given (needed when the default is None); ``optional`` allows None; either
    end of ``range`` may be None (open); ``max_length`` bounds a string; ``added`` marks a field added
    after specs were stored and shared: a JSON object without it takes the default (every other field must
    be present)."""
    if kind is not None:
        pass
    elif choices is not None:
        kind = "choice"
    elif isinstance(default, bool):
        kind = "bool"
    elif isinstance(default, int):
        kind = "int"
    elif isinstance(default, float):
        kind = "float"
    else:
        kind = "str"
    metadata = {"kind": kind, "help": help, "range": range, "step": step, "choices": choices,
                "optional": optional, "max_length": max_length, "added": added}
    return dataclasses.field(default=default, metadata=metadata)


def spec_fields(spec: Any) -> list[FieldInfo]:
    """The scalar fields of a spec class or instance, in declaration order, with their metadata."""
    infos = []
    for f in dataclasses.fields(spec):
        meta = f.metadata
        if "kind" not in meta:
            continue  # nested specs (stem, stages, head) are not controls
        lo, hi = meta["range"] or (None, None)
        infos.append(FieldInfo(f.name, meta["kind"], f.default, meta["help"], lo, hi, meta["step"],
                               meta["choices"], meta.get("optional", False), meta.get("max_length", 100),
                               meta.get("added", False)))
    return infos


def describe(value: Any) -> str:
    """A value as an error message shows it, in JSON's words for JSON's containers: 'an object', 'a list',
    'null', true/false; strings quoted and long values shortened, so a hostile spec cannot flood a message."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    text = repr(value[:61]) if isinstance(value, str) else str(value)   # not repr() of all of a 1 MB string
    return text if len(text) <= 60 else text[:57] + "..."



def check_value(info: FieldInfo, value: Any, path: str) -> None:
    """Raise SpecError naming ``path`` if ``value`` has the wrong type or lies out of range."""
    if value is None and info.optional:
        return
    if info.kind == "choice":
        if value not in info.choices or type(value) is bool:
            allowed = ", ".join(describe(c) for c in info.choices)
            raise field_error(path, f"must be one of {allowed}, got {describe(value)}")
        return
    if info.kind == "bool":
        if type(value) is not bool:
            raise field_error(path, f"must be true or false, got {describe(value)}")
        return
    if info.kind == "str":
        if not isinstance(value, str):
            raise field_error(path, f"must be a string, got {describe(value)}")
        if len(value) > info.max_length:
            raise field_error(path, f"must be at most {info.max_length} characters, got {len(value)}")
        return
    if info.kind == "int" and type(value) is not int:
        raise field_error(path, f"must be an integer, got {describe(value)}")
    if info.kind == "float":
        if type(value) not in (int, float):
            raise field_error(path, f"must be a number, got {describe(value)}")
        if not math.isfinite(value):
            raise field_error(path, f"must be a finite number, got {value}")
    if info.minimum is not None and value < info.minimum:
        raise field_error(path, f"must be >= {info.minimum}, got {describe(value)}")
    if info.maximum is not None and value > info.maximum:
        raise field_error(path, f"must be <= {info.maximum}, got {describe(value)}")


def check_fields(spec: Any, path: str = "") -> None:
    """Check every scalar field of ``spec`` against its metadata."""
    for info in spec_fields(spec):
        check_value(info, getattr(spec, info.name), join_path(path, info.name))


def fields_from_dict(cls: type, data: Any, path: str, nested: dict[str, Any] | None = None) -> dict:
    """Validate a JSON object for ``cls``: an object, no unknown or missing keys, right scalar types.

    ``nested`` maps the names of non-scalar fields to already-parsed values.
    """
    if not isinstance(data, dict):
        raise SpecError(f"{path or 'spec'}: must be a JSON object, got {describe(data)}", path)
    nested = nested or {}
    infos = {info.name: info for info in spec_fields(cls)}
    known = set(infos) | set(nested)
    for key in data:
        if key not in known and key not in ("type", "format"):
            raise field_error(join_path(path, str(key)), "unknown field")
    values = {}
    for name, info in infos.items():
        if name not in data:
            if info.added:
                continue
            raise field_error(join_path(path, name), "missing field")
        value = _json_float(info.kind, data[name], join_path(path, name))
        check_value(info, value, join_path(path, name))
        values[name] = value
    values.update(nested)
    return values


def settings_from_dict(cls: type, values: Any, what: str, error: type[SpecError] = SpecError) -> Any:
    """A settings dataclass (not a spec: fields left out take their defaults) from a JSON object.

    An unknown key raises ``error`` naming it (``unknown training setting 'learning_rate'``); the
    values are then checked by the class itself, against the same metadata as the specs."""
    if not isinstance(values, dict):
        raise error(f"{what} settings: must be a JSON object, got {type(values).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(str(key) for key in values if key not in names)
    if unknown:
        raise error(f"unknown {what} setting {unknown[0]!r}", unknown[0])
    kinds = {info.name: info.kind for info in spec_fields(cls)}
    values = {k: _json_float(kinds.get(k), v, k, error) for k, v in values.items()}
    return cls(**values)


def _json_float(kind: str | None, value: Any, path: str, error: type[SpecError] = SpecError) -> Any:
    """JSON writes 3.0 as 3: an int where a float belongs becomes one (one too large for a float is an error
    naming the field, not an OverflowError)."""
    if kind != "float" or type(value) is not int:
        return value
    try:
        return float(value)
    except OverflowError:
        raise error(f"{path}: must be a finite number, got {describe(value)}", path) from None
