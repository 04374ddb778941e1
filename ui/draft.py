"""The network being edited, kept in session state so that it survives page switches.

Two things are kept:

* ``spec``: the last *valid* NetSpec. Every page shows it; the URL carries it (``ui.settings``).
* the draft: the raw values of every control on the Build page, per part (network, stem parts, stages,
  head). Widgets are drawn from it and read back into it, so an invalid combination can sit in the
  form (with its error shown next to it) while ``spec`` keeps the last network that worked, and
  values survive pages on which their widgets are not drawn.

Loading a whole network (a preset, a file, a link) replaces both and bumps the draft's generation, so
every control is drawn afresh from the new values.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from archs import PRESETS, STAGE_TYPES, HeadSpec, NetSpec, PlainSpec, SpecError, spec_fields
from archs.fields import check_value
from archs.stages import BuildContext

from . import fmt

DEFAULT_NETWORK = "cifar-resnet20"
EMPTY = "(empty network)"
SPEC, DRAFT, NOTICE = "spec", "draft", "notice"
_uids = itertools.count(1)


@dataclass
class Part:
    """One stem part or stage as the form holds it: a type and the raw value of each field."""

    uid: int            # stable across moves, so a part's widgets follow it
    type_name: str
    values: dict[str, Any]

    def key(self, name: str) -> str:
        return f"f{self.uid}.{self.type_name}.{name}"

    @property
    def type_key(self) -> str:
        return f"type{self.uid}"


@dataclass
class Draft:
    gen: int
    net: dict[str, Any]
    stem: list[Part] = field(default_factory=list)
    stages: list[Part] = field(default_factory=list)
    head: dict[str, Any] = field(default_factory=dict)

    def net_key(self, name: str) -> str:
        return f"net{self.gen}.{name}"

    def head_key(self, name: str) -> str:
        return f"head{self.gen}.{name}"


@dataclass
class Checked:
    """The draft turned into a network, or the errors that stop it, by location: "net", "head",
    ("stem", i), ("stages", i)."""

    spec: NetSpec | None
    errors: dict[Any, str]
    labels: dict[Any, str]          # "Residual x2 · 64 ch · 0.15 M params" per part that is valid


def values_of(obj: Any) -> dict[str, Any]:
    return {info.name: getattr(obj, info.name) for info in spec_fields(obj)}


def _part(obj: Any) -> Part:
    return Part(next(_uids), obj.type_name, values_of(obj))


def draft_from_spec(spec: NetSpec, gen: int) -> Draft:
    return Draft(gen, values_of(spec), [_part(p) for p in spec.stem], [_part(s) for s in spec.stages],
                 values_of(spec.head))


def empty_spec() -> NetSpec:
    return NetSpec(name="empty")


# ------------------------------------------------------------------------------------------ the network
def spec() -> NetSpec:
    return st.session_state[SPEC]


def current() -> Draft:
    """The Build page's form values (see the module's docstring)."""
    return st.session_state[DRAFT]


def load(new: NetSpec) -> None:
    """Replace the whole network (preset, file, link): new spec, new draft, fresh widgets."""
    old = st.session_state.get(DRAFT)
    st.session_state[DRAFT] = draft_from_spec(new, old.gen + 1 if old else 0)
    st.session_state[SPEC] = new
    st.session_state[NOTICE] = None


def commit(new: NetSpec) -> None:
    if new != st.session_state[SPEC]:
        st.session_state[SPEC] = new
        st.session_state[NOTICE] = None


def preset_name(value: NetSpec) -> str | None:
    return next((name for name, preset in PRESETS.items() if preset == value), None)


# ------------------------------------------------------------------------------------------ draft <-> widgets
def _reseed(cls: type, old: dict[str, Any]) -> dict[str, Any]:
    """Values for a part whose type changed: keep the fields the new type shares (if still valid)."""
    values = {}
    for info in spec_fields(cls):
        value = old.get(info.name, info.default)
        try:
            check_value(info, value, info.name)  # the one validator of field metadata
        except SpecError:
            value = info.default
        values[info.name] = value
    return values


def absorb(d: Draft) -> None:
    """Read this run's widget values (already in session state) into the draft, before drawing."""
    ss = st.session_state
    for name in d.net:
        d.net[name] = ss.get(d.net_key(name), d.net[name])
    for name in d.head:
        d.head[name] = ss.get(d.head_key(name), d.head[name])
    for part in d.stages:
        new_type = ss.get(part.type_key, part.type_name)
        if new_type != part.type_name and new_type in STAGE_TYPES:
            part.values = _reseed(STAGE_TYPES[new_type], part.values)
            part.type_name = new_type
    for part in d.stem + d.stages:
        for name in part.values:
            part.values[name] = ss.get(part.key(name), part.values[name])


def location(path: str) -> Any:
    """Where a SpecError's path points in the form: ("stages", 2), ("stem", 0), "head" or "net"."""
    head, _, _ = path.partition(".")
    for section in ("stages", "stem"):
        if head.startswith(section + "["):
            return section, int(head[len(section) + 1:].split("]")[0])
    return "head" if head == "head" else "net"


def check(d: Draft) -> Checked:
    """Build every part, then the network, and check it at its input size; collect what fails."""
    errors: dict[Any, str] = {}
    labels: dict[Any, str] = {}

    def make(cls: type, values: dict, where: Any):
        try:
            return cls(**values)
        except (SpecError, TypeError, ValueError) as error:
            errors[where] = str(error)
            return None

    stem = [make(PlainSpec, p.values, ("stem", i)) for i, p in enumerate(d.stem)]
    stages = [make(STAGE_TYPES[p.type_name], p.values, ("stages", i)) for i, p in enumerate(d.stages)]
    head = make(HeadSpec, d.head, "head")
    _label_parts(d, stem, stages, labels)
    if errors:
        return Checked(None, errors, labels)
    try:
        candidate = NetSpec(stem=tuple(stem), stages=tuple(stages), head=head, **d.net)
        candidate.plan()
    except (SpecError, TypeError) as error:
        errors[location(getattr(error, "path", ""))] = str(error)
        return Checked(None, errors, labels)
    return Checked(candidate, errors, labels)


def _label_parts(d: Draft, stem: list, stages: list, labels: dict) -> None:
    """Label and parameter count of each valid part, carrying channels forward (no sizes needed)."""
    try:
        ctx = BuildContext(d.net["norm"], d.net["norm_eps"], d.net["activation"])
        channels = int(d.net["in_channels"])
    except (KeyError, TypeError, ValueError):
        return
    for section, parts in (("stem", stem), ("stages", stages)):
        for i, part in enumerate(parts):
            if part is None:
                return
            try:
                params = part.num_params(channels, ctx)
                labels[section, i] = f"{part.label(channels)} · {fmt.si(params)} params"
                channels = part.out_channels(channels)
            except (SpecError, ValueError, ZeroDivisionError):
                return


# ------------------------------------------------------------------------------------------ callbacks
def load_choice() -> None:
    """on_change of the "Start from" selectbox."""
    choice = st.session_state.get("start_from")
    if choice == EMPTY:
        load(empty_spec())
    elif choice in PRESETS:
        load(PRESETS[choice])


def part_op(section: str, uid: int, action: str) -> None:
    """Move a stem part or stage up or down, duplicate or remove it."""
    d = current()
    absorb(d)
    parts: list[Part] = getattr(d, section)
    i = next((j for j, p in enumerate(parts) if p.uid == uid), None)
    if i is None:
        return
    if action == "up" and i > 0:
        parts[i - 1], parts[i] = parts[i], parts[i - 1]
    elif action == "down" and i < len(parts) - 1:
        parts[i + 1], parts[i] = parts[i], parts[i + 1]
    elif action == "duplicate":
        parts.insert(i + 1, Part(next(_uids), parts[i].type_name, dict(parts[i].values)))
    elif action == "remove":
        del parts[i]


def add_part(section: str) -> None:
    d = current()
    absorb(d)
    type_name = st.session_state.get("add_type", "residual") if section == "stages" else "plain"
    cls = STAGE_TYPES[type_name]
    getattr(d, section).append(Part(next(_uids), type_name, {i.name: i.default for i in spec_fields(cls)}))


def read_upload(key: str) -> NetSpec | None:
    """The network in the file of the uploader ``key``, or None: then ``key + "_error"`` says why (escaped),
    unless no file is there. Never raises: the file is untrusted."""
    file = st.session_state.get(key)
    st.session_state[key + "_error"] = None
    if file is None:
        return None
    data = file.getvalue()
    try:
        if len(data) > 1_000_000:
            raise SpecError("the file is over 1 MB, not a spec")
        return NetSpec.from_json(data)
    except Exception as error:  # noqa: BLE001 - untrusted file: a SpecError says what is wrong, others their kind
        reason = fmt.plain(error) if isinstance(error, SpecError) else f"not a valid spec ({type(error).__name__})"
        st.session_state[key + "_error"] = f"{fmt.plain(file.name, 80)}: {reason}"
        return None


def upload() -> None:
    """on_change of the Build page's JSON uploader: load a valid spec; a bad file changes nothing and says why."""
    new = read_upload("upload")
    if new is not None:
        load(new)
        st.session_state["start_from"] = preset_name(new)
