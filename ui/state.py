"""The network being edited: kept in session state (so it survives page switches) and mirrored in the URL.

Two things are kept:

* ``spec``: the last *valid* NetSpec. Every page shows it; the URL carries it.
* the draft: the raw values of every control on the Build page, per part (network, stem parts, stages,
  head). Widgets are drawn from it and read back into it, so an invalid combination can sit in the
  form (with its error shown next to it) while ``spec`` keeps the last network that worked, and
  values survive pages on which their widgets are not drawn.

Loading a whole network (a preset, a file, a link) replaces both and bumps the draft's generation, so
every control is drawn afresh from the new values.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

import archs
from archs import PRESETS, STAGE_TYPES, HeadSpec, NetSpec, PlainSpec, SpecError, spec_fields
from archs.stages import BuildContext

from . import fmt

DEFAULT_PRESET = "cifar-resnet20"
EMPTY = "(empty network)"
SPEC, DRAFT, NOTICE, UPLOAD_ERROR = "spec", "draft", "notice", "upload_error"
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


# ------------------------------------------------------------------------------------------ session
def init() -> None:
    """On a session's first run: the network the URL names, else the default one (with a notice), and the
    page settings the URL carries (see SETTINGS)."""
    _leave_old_multipage_mode()
    if SPEC in st.session_state:
        return
    query = st.query_params.to_dict()
    spec, notice = spec_from_query(query)
    load(spec)
    ignored = settings_from_query(query)
    if ignored:
        notice = " ".join(filter(None, [notice, f"Ignored from the link: {'; '.join(ignored)}."]))
    st.session_state[NOTICE] = notice
    name = preset_name(spec)
    st.session_state["start_from"] = name


def _leave_old_multipage_mode() -> None:
    """A server's very first request, when it opens a page's address (a reload of /train after a restart),
    finds a ``pages/`` folder before ``dashboard.py`` has called ``st.navigation``: Streamlit then runs
    the page alone, in its old multipage mode (lower-case page list, no sidebar note, no session key).
    Switch that mode off and run again: ``dashboard.py`` then runs and opens the same page."""
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def spec_from_query(params: dict[str, str]) -> tuple[NetSpec, str | None]:
    """The network a URL's query names (``spec=`` encoded, or ``preset=``), or the default network and
    a message saying why the URL was not used. Never raises: URLs are untrusted input."""
    default = PRESETS[DEFAULT_PRESET]
    fallback = f"Showing the default network ({DEFAULT_PRESET}) instead."
    text, name = params.get("spec"), params.get("preset")
    if text:
        try:
            return archs.decode_spec(text), None
        except SpecError as error:
            return default, f"The network in this link could not be read: {fmt.plain(error)}. {fallback}"
        except Exception as error:  # noqa: BLE001 - e.g. RecursionError from deeply nested JSON
            return default, (f"The network in this link could not be read ({type(error).__name__}). "
                             f"{fallback}")
    if name:
        if name in PRESETS:
            return PRESETS[name], None
        return default, f"There is no preset called “{fmt.plain(name, 60)}”. {fallback}"
    return default, None


def spec() -> NetSpec:
    return st.session_state[SPEC]


def draft() -> Draft:
    return st.session_state[DRAFT]


def load(new: NetSpec) -> None:
    """Replace the whole network (preset, file, link): new spec, new draft, fresh widgets."""
    old = st.session_state.get(DRAFT)
    st.session_state[DRAFT] = draft_from_spec(new, old.gen + 1 if old else 0)
    st.session_state[SPEC] = new
    st.session_state[NOTICE] = None


def open_elsewhere(settings: dict[str, Any]) -> None:
    """Set page settings (a Compare side, say) for the page this session switches to next."""
    for key, value in settings.items():
        st.session_state[key] = value
        st.session_state[_SHADOW + key] = value


def commit(new: NetSpec) -> None:
    if new != st.session_state[SPEC]:
        st.session_state[SPEC] = new
        st.session_state[NOTICE] = None


def preset_name(value: NetSpec) -> str | None:
    return next((name for name, preset in PRESETS.items() if preset == value), None)


_SHADOW = "_keep."


def sticky(key: str, default: Any) -> None:
    """Keep a widget's value across pages that do not draw it (Streamlit forgets those): call just
    before drawing the widget, and draw it without a ``value``/``index`` argument."""
    shadow = _SHADOW + key
    if key not in st.session_state:
        st.session_state[key] = st.session_state.get(shadow, default)
    st.session_state[shadow] = st.session_state[key]


# ------------------------------------------------------------------------------------------ settings in the URL
@dataclass(frozen=True)
class Setting:
    """A page control mirrored in the address bar: widget key ``key`` <-> query parameter ``param``."""

    key: str
    param: str
    default: Any                        # a value, or a function of the current network
    parse: Callable[[str], Any]         # the URL's text -> a value; ValueError if it is not a valid one
    show: Callable[[Any], str] = str

    def default_for(self, current: NetSpec) -> Any:
        return self.default(current) if callable(self.default) else self.default


def _flag(text: str) -> bool:
    if text in ("1", "true", "on"):
        return True
    if text in ("0", "false", "off"):
        return False
    raise ValueError("expected 1 or 0")


def _int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise ValueError(f"expected {low} to {high}")
        return value
    return parse


def _one_of(options: tuple, cast: Callable = str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = cast(text)
        if value not in options:
            raise ValueError(f"expected one of {', '.join(map(str, options))}")
        return value
    return parse


def _depth_range(text: str) -> tuple[int, int]:
    low, high = (int(part) for part in text.split("-"))
    if low > high or low not in SWEEP_DEPTHS or high not in SWEEP_DEPTHS:
        raise ValueError("expected two depths 6n+2 from 8 to 110, like 8-44")
    return low, high


RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,120}")
STUDY_ID = re.compile(r"study-[A-Za-z0-9_.-]{1,120}")
STUDY_AXES = ("params", "mult_adds", "train_flops", "train_seconds")


def _study_id(text: str) -> str:
    if not STUDY_ID.fullmatch(text):
        raise ValueError("expected a study id")
    return text


def parse_network_choice(text: str) -> str:
    """A Compare side: ``build``, ``twin``, ``preset:<name>``, ``run:<id>`` or ``spec:<encoded spec>``."""
    kind, _, rest = text.partition(":")
    if text in ("build", "twin") or (kind == "preset" and rest in PRESETS) or (
            kind == "run" and RUN_ID.fullmatch(rest)):
        return text
    if kind == "spec":
        archs.decode_spec(rest)     # SpecError (a ValueError) names what is wrong
        return text
    raise ValueError("expected build, twin, preset:NAME, run:ID or spec:ENCODED")


def _default_b(current: NetSpec) -> str:
    return "preset:resnet34" if current == PRESETS["resnet18"] else "preset:resnet18"


SWEEP_DEPTHS = tuple(6 * n + 2 for n in range(1, 19))      # He et al.'s CIFAR nets: 8, 14, ..., 110
GRAD_BATCHES = (2, 4, 8, 16, 32, 64)
BUILD_TABS = ("Per stage", "Diagram", "Layers", "Receptive field", "Measured cost", "Export")
SETTINGS = {s.key: s for s in (
    Setting("no_skips", "twin", False, _flag, lambda v: "1" if v else "0"),
    Setting("mem_batch", "batch", 32, _int_in(1, 4096)),
    Setting("build_tab", "tab", BUILD_TABS[0], _one_of(BUILD_TABS)),
    Setting("compare_a", "a", "build", parse_network_choice),
    Setting("compare_b", "b", _default_b, parse_network_choice),
    Setting("grad_batch", "gbatch", 16, _one_of(GRAD_BATCHES, int)),
    Setting("grad_seed", "gseed", 0, _int_in(0, 2**31 - 1)),
    Setting("grad_norm", "gnorm", lambda current: current.norm == "batch", _flag, lambda v: "1" if v else "0"),
    Setting("grad_size", "gsize", lambda current: current.input_size, _int_in(8, 1024)),
    Setting("sweep_range", "sweep", (8, 44), _depth_range, lambda v: f"{v[0]}-{v[1]}"),
    Setting("health_run", "hrun", "", lambda text: _run_id(text) if text else ""),
    Setting("studies_pick", "study", "", lambda text: _study_id(text) if text else ""),
    Setting("studies_x", "sx", "params", _one_of(STUDY_AXES)),
    Setting("studies_all_x", "ax", "params", _one_of(STUDY_AXES)),
)}


def _run_id(text: str) -> str:
    if not RUN_ID.fullmatch(text):
        raise ValueError("not a run id")
    return text


def settings_from_query(params: dict[str, str]) -> list[str]:
    """Take the page settings a link carries (into this session, before any page draws them); return a
    line for each parameter that is not a valid value. Never raises: URLs are untrusted input."""
    ignored = []
    for s in SETTINGS.values():
        text = params.get(s.param)
        if text is None:
            continue
        try:
            st.session_state[_SHADOW + s.key] = s.parse(text)
        except (ValueError, TypeError) as error:
            ignored.append(f"{s.param}={fmt.plain(text, 40)} ({fmt.plain(error, 120)})")
    return ignored


def setting(key: str) -> Any:
    """Just before drawing the widget ``key`` (without a value argument): its value from this session,
    else from the link the session was opened with, else its default. Kept across pages, as ``sticky``."""
    sticky(key, SETTINGS[key].default_for(spec()))
    return st.session_state[key]


# ------------------------------------------------------------------------------------------ URL
def write_url() -> None:
    """Put the current network in the address bar (``?preset=name`` if it is one, else ``?spec=...``) and
    every page setting that differs from its default, so that a copied address shows what its sender saw."""
    current = st.session_state.get(SPEC)
    if current is None:
        return
    name = preset_name(current)
    wanted = {"preset": name} if name else {"spec": archs.encode_spec(current)}
    for setting in SETTINGS.values():
        # the shadow ``setting`` keeps: a widget not drawn on this page may read back half-restored
        value = st.session_state.get(_SHADOW + setting.key)
        if value is not None and value != setting.default_for(current):
            wanted[setting.param] = setting.show(value)
    params = st.query_params
    for key in ("spec", "preset", *(s.param for s in SETTINGS.values())):
        if key not in wanted and key in params:
            del params[key]
    for key, value in wanted.items():
        if params.get(key) != value:
            params[key] = value     # sent on every run: a page switch drops the query from the address bar


def sidebar_note() -> None:
    """Under the page list: which network every page is looking at (it follows you across pages)."""
    current = st.session_state.get(SPEC)
    if current is not None:
        st.sidebar.caption(f"Current network: **{fmt.plain(current.name, 60)}** · "
                           f"{current.num_params():,} parameters · input {current.in_channels}×"
                           f"{current.input_size}×{current.input_size}. It is the same on every page, and "
                           f"the address bar holds it. [Link to share it]({share_link()}) (without your "
                           "session key, which the address also holds).")


def share_link() -> str:
    """This page's address with only the network in its query: what to send someone else."""
    from urllib.parse import urlencode

    current = st.session_state.get(SPEC)
    name = preset_name(current) if current is not None else None
    query = {"preset": name} if name else {"spec": archs.encode_spec(current)} if current is not None else {}
    base = (st.context.url or "").split("?", 1)[0]
    return f"{base}?{urlencode(query)}"


def show_notice() -> None:
    if st.session_state.get(NOTICE):
        st.warning(st.session_state[NOTICE], icon=":material/link_off:")


# ------------------------------------------------------------------------------------------ draft <-> widgets
def _reseed(cls: type, old: dict[str, Any]) -> dict[str, Any]:
    """Values for a part whose type changed: keep the fields the new type shares (if still valid)."""
    from archs.fields import check_value

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
    d = draft()
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
    d = draft()
    absorb(d)
    type_name = st.session_state.get("add_type", "residual") if section == "stages" else "plain"
    cls = STAGE_TYPES[type_name]
    getattr(d, section).append(Part(next(_uids), type_name, {i.name: i.default for i in spec_fields(cls)}))


def upload() -> None:
    """on_change of the JSON uploader: load a valid spec; a bad file changes nothing and says why."""
    file = st.session_state.get("upload")
    st.session_state[UPLOAD_ERROR] = None
    if file is None:
        return
    data = file.getvalue()
    if len(data) > 1_000_000:
        st.session_state[UPLOAD_ERROR] = f"{fmt.plain(file.name, 80)}: the file is over 1 MB, not a spec."
        return
    try:
        new = NetSpec.from_json(data)
    except SpecError as error:
        st.session_state[UPLOAD_ERROR] = f"{fmt.plain(file.name, 80)}: {fmt.plain(error)}"
        return
    except Exception as error:  # noqa: BLE001 - untrusted file
        st.session_state[UPLOAD_ERROR] = f"{fmt.plain(file.name, 80)}: not a valid spec ({type(error).__name__})"
        return
    load(new)
    st.session_state["start_from"] = preset_name(new)


def compare_upload(side: str) -> None:
    """on_change of a Compare side's uploader: a valid spec becomes that side's network; a bad file says why."""
    file = st.session_state.get(f"compare_{side}_upload")
    error_key = f"compare_{side}_error"
    st.session_state[error_key] = None
    if file is None:
        return
    data = file.getvalue()
    try:
        if len(data) > 1_000_000:
            raise SpecError("the file is over 1 MB, not a spec")
        new = NetSpec.from_json(data)
    except SpecError as error:
        st.session_state[error_key] = f"{fmt.plain(file.name, 80)}: {fmt.plain(error)}"
        return
    st.session_state[f"compare_{side}"] = "spec:" + archs.encode_spec(new)
