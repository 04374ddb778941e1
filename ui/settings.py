"""What a session keeps across pages and what its address bar holds: the network (read from the link on the
session's first run, written back on every run), and each page's settings, which the page declares next to
their widgets (``declare``); other widgets are only kept across pages (``sticky``).

A link's parameters wait in the session until the page that owns them declares them (on the first page, or
on a later visit), and stay in the address meanwhile, so that a copied address carries them on.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import urlencode

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

import archs
from archs import PRESETS, NetSpec, SpecError
from archs.spec import MAX_URL_CHARS

from . import draft, fmt, identity

_SHADOW = "_keep."          # + a widget key: its value, kept while no page draws the widget
_DECLARED = "_settings"     # {widget key: Setting} of every page setting declared so far in this session
_WAITING = "_link"          # {param: text} of the first link's parameters no page has declared yet
_OTHERS = ("spec", "preset", identity.PARAM)     # the query parameters that are not page settings
# A link's page settings: the longest is Compare's side (a=spec:<an encoded network>), and a page declares a few;
# a longer one, or more of them, is refused before a setting's parser sees it (bounded_query).
MAX_PARAM_CHARS = MAX_URL_CHARS + 100
MAX_PARAM_NAME_CHARS = 40
MAX_PARAMS = 40
MAX_NUMBER_CHARS = 20       # int_in: no setting's number has more digits (no int() of a long text)
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,120}")
STUDY_ID = re.compile(r"study-[A-Za-z0-9_.-]{1,120}")


@dataclass(frozen=True)
class Setting:
    """A page control mirrored in the address bar: widget key ``key`` <-> query parameter ``param``."""

    key: str
    param: str
    default: Any                        # a value, or a function of the current network
    parse: Callable[[str], Any]         # the URL's text -> a value; ValueError if it is not a valid one

    def default_for(self, current: NetSpec) -> Any:
        return self.default(current) if callable(self.default) else self.default


def _show(value: Any) -> str:
    """A setting's value as the URL shows it: 1/0 for a switch, 8-44 for a range."""
    if isinstance(value, bool):
        return "1" if value else "0"
    return "-".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


# ------------------------------------------------------------------------------------------ parsers
def flag(text: str) -> bool:
    if text in ("1", "true", "on"):
        return True
    if text in ("0", "false", "off"):
        return False
    raise ValueError("expected 1 or 0")


def int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if len(text) > MAX_NUMBER_CHARS:
            raise ValueError(f"expected {low} to {high}")
        value = int(text)
        if not low <= value <= high:
            raise ValueError(f"expected {low} to {high}")
        return value
    return parse


def one_of(options: Sequence, cast: Callable = str) -> Callable[[str], Any]:
    longest = max(len(str(option)) for option in options)

    def parse(text: str) -> Any:
        if len(text) > longest:         # no cast of a long text
            raise ValueError(f"expected one of {', '.join(map(str, options))}")
        value = cast(text)
        if value not in options:
            raise ValueError(f"expected one of {', '.join(map(str, options))}")
        return value
    return parse


def optional(pattern: re.Pattern, what: str) -> Callable[[str], str]:
    """An id matching ``pattern`` (RUN_ID, STUDY_ID) in full, or "" for none."""
    def parse(text: str) -> str:
        if text and not pattern.fullmatch(text):
            raise ValueError(f"expected {what}")
        return text
    return parse


# ------------------------------------------------------------------------------------------ session
def init() -> None:
    """On a session's first run: the network the URL names, else the default one (with a notice); the link's
    other parameters wait for the pages that declare them. Idempotent: every page calls it first."""
    _leave_old_multipage_mode()
    if draft.SPEC in st.session_state:
        return
    query, refused = bounded_query(st.query_params.to_dict())
    for name in set(st.query_params) - set(query) - {identity.PARAM}:
        del st.query_params[name]       # refused: not carried on in the address either
    spec, notice = spec_from_query(query)
    draft.load(spec)
    st.session_state[draft.NOTICE] = " ".join(filter(None, [refused, notice])) or None
    st.session_state[_WAITING] = {k: v for k, v in query.items() if k not in _OTHERS}
    st.session_state[_DECLARED] = {}
    st.session_state["start_from"] = draft.preset_name(spec)


def _leave_old_multipage_mode() -> None:
    """A server's very first request, when it opens a page's address (a reload of /train after a restart),
    finds a ``pages/`` folder before ``dashboard.py`` has called ``st.navigation``: Streamlit then runs
    the page alone, in its old multipage mode (lower-case page list, no sidebar note, no session key).
    Switch that mode off and run again: ``dashboard.py`` then runs and opens the same page."""
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def bounded_query(params: dict[str, str]) -> tuple[dict[str, str], str | None]:
    """A link's parameters without those longer than ``MAX_PARAM_CHARS`` or past the first ``MAX_PARAMS``, and a
    message naming what was left out (None if nothing was): no page setting's parser sees a longer text. The
    network's own (``spec=``, ``preset=``) and the session key are bounded where they are read, with their own
    messages (:func:`spec_from_query`, :mod:`ui.identity`)."""
    kept = {name: text for name, text in params.items() if name in _OTHERS}
    settings, refused = [item for item in params.items() if item[0] not in _OTHERS], []
    for name, text in settings[:MAX_PARAMS]:
        if len(name) > MAX_PARAM_NAME_CHARS or len(text) > MAX_PARAM_CHARS:
            refused.append(f"{fmt.plain(name, 40)} ({len(name) + len(text) + 1:,} characters, over the limit of "
                           f"{MAX_PARAM_CHARS:,})")
        else:
            kept[name] = text
    if len(settings) > MAX_PARAMS:
        refused.append(f"{len(settings) - MAX_PARAMS:,} parameters after the first {MAX_PARAMS}")
    return kept, ("Ignored from the link: " + "; ".join(refused) + ".") if refused else None


def spec_from_query(params: dict[str, str]) -> tuple[NetSpec, str | None]:
    """The network a URL's query names (``spec=`` encoded, or ``preset=``), or the default network and
    a message saying why the URL was not used. Never raises: URLs are untrusted input."""
    default = PRESETS[draft.DEFAULT_NETWORK]
    fallback = f"Showing the default network ({draft.DEFAULT_NETWORK}) instead."
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


# ------------------------------------------------------------------------------------------ widgets kept across pages
def sticky(key: str, default: Any) -> None:
    """Keep a widget's value across pages that do not draw it (Streamlit forgets those): call just
    before drawing the widget, and draw it without a ``value``/``index`` argument."""
    shadow = _SHADOW + key
    if key not in st.session_state:
        st.session_state[key] = st.session_state.get(shadow, default)
    st.session_state[shadow] = st.session_state[key]


def assign(values: dict[str, Any]) -> None:
    """Set widgets' values, also for a page this session shows later (a Compare side, a recipe's fields)."""
    for key, value in values.items():
        st.session_state[key] = value
        st.session_state[_SHADOW + key] = value


def declare(key: str, param: str, default: Any, parse: Callable[[str], Any]) -> Any:
    """A page setting, just before drawing its widget ``key`` (without a value argument): mirrored in the
    address as ``param`` from now on, unless at its default. Returns its value: from this session, else from
    the link the session was opened with (``parse``d, or ignored with a warning), else ``default``."""
    setting, declared = Setting(key, param, default, parse), st.session_state.setdefault(_DECLARED, {})
    if param in {*_OTHERS, *(s.param for s in declared.values() if s.key != key)}:
        raise ValueError(f"the query parameter {param!r} is taken")     # by the network, or another setting
    declared[key] = setting
    text = st.session_state.get(_WAITING, {}).pop(param, None)
    if text is not None:
        try:
            st.session_state[_SHADOW + key] = parse(text)
        except (ValueError, TypeError) as error:
            note = f"Ignored from the link: {param}={fmt.plain(text, 40)} ({fmt.plain(error, 120)})."
            st.warning(note, icon=":material/link_off:")         # here, now; at the top of later pages
            st.session_state[draft.NOTICE] = " ".join(filter(None, [st.session_state.get(draft.NOTICE), note]))
    sticky(key, setting.default_for(draft.spec()))
    return st.session_state[key]


# ------------------------------------------------------------------------------------------ a page's early end
class PageEnded(Exception):
    """Raised by :func:`end_page`; dashboard.py catches it around ``page.run()``."""


def end_page() -> NoReturn:
    """End this page's content here, as ``st.stop()`` would, but not the app's run: ``st.stop()`` would also skip
    what dashboard.py does after the page (the address bar's update, the sidebar's current network and its link)."""
    raise PageEnded


# ------------------------------------------------------------------------------------------ the address bar
def write_url() -> None:
    """Put the current network in the address bar (``?preset=name`` if it is one, else ``?spec=...``), every
    declared setting that differs from its default, and the link's parameters that no page has declared yet,
    so that a copied address shows what its sender saw. Also from inside a fragment that draws a setting."""
    current = st.session_state.get(draft.SPEC)
    if current is None:
        return
    name = draft.preset_name(current)
    wanted = {"preset": name} if name else {"spec": archs.encode_spec(current)}
    wanted.update(st.session_state.get(_WAITING, {}))
    declared = st.session_state.get(_DECLARED, {}).values()
    for setting in declared:
        # the shadow ``declare`` keeps: a widget not drawn on this page may read back half-restored
        value = st.session_state.get(_SHADOW + setting.key)
        if value is not None and value != setting.default_for(current):
            wanted[setting.param] = _show(value)
    params = st.query_params
    for key in ("spec", "preset", *(s.param for s in declared)):
        if key not in wanted and key in params:
            del params[key]
    for key, value in wanted.items():
        if params.get(key) != value:
            params[key] = value     # sent on every run: a page switch drops the query from the address bar


def share_link() -> str:
    """This page's address with only the network in its query: what to send someone else."""
    current = st.session_state.get(draft.SPEC)
    name = draft.preset_name(current) if current is not None else None
    query = {"preset": name} if name else {"spec": archs.encode_spec(current)} if current is not None else {}
    base = (st.context.url or "").split("?", 1)[0]
    return f"{base}?{urlencode(query)}"


def sidebar_note() -> None:
    """Under the page list: which network every page is looking at (it follows you across pages)."""
    current = st.session_state.get(draft.SPEC)
    if current is not None:
        st.sidebar.caption(f"Current network: **{fmt.plain(current.name, 60)}** · "
                           f"{current.num_params():,} parameters · input {current.in_channels}×"
                           f"{current.input_size}×{current.input_size}. It is the same on every page, and "
                           f"the address bar holds it. [Link to share it]({share_link()}).")


def show_notice() -> None:
    if st.session_state.get(draft.NOTICE):
        st.warning(st.session_state[draft.NOTICE], icon=":material/link_off:")
