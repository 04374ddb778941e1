"""Controls for a settings dataclass whose fields carry ``help``/``min``/``max``/``choices`` metadata
(``archs.train.TrainConfig``): one generic control per field, so the page writes no per-field code."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

import streamlit as st

from . import state


def _label(name: str) -> str:
    return {"lr": "Learning rate"}.get(name, name.replace("_", " ").capitalize())


def field_control(f: dataclasses.Field, key: str, where: Any = st,
                  format_choice: Callable[[Any], str] | None = None) -> Any:
    """Draw the control for one field (its value kept across pages under ``key``); return its value."""
    meta = f.metadata
    state.sticky(key, f.default)
    common = dict(label=_label(f.name), help=meta.get("help"), key=key)
    if "choices" in meta:
        return where.selectbox(options=list(meta["choices"]), format_func=format_choice or str, **common)
    if f.type in ("float", float):
        return where.number_input(min_value=float(meta.get("min", 0.0)), max_value=float(meta["max"])
                                  if "max" in meta else None, step=1e-4, format="%g", **common)
    optional = f.default is None or "None" in str(f.type)
    return where.number_input(min_value=int(meta["min"]) if "min" in meta else None,
                              max_value=int(meta["max"]) if "max" in meta else None, step=1,
                              placeholder="no limit" if optional else None, **common)


def config_controls(cls: type, names: Iterable[str], prefix: str, columns: int = 3,
                    special: dict[str, Callable[[dataclasses.Field, str, Any], Any]] | None = None) -> dict[str, Any]:
    """Controls for the named fields of ``cls`` in ``columns`` columns; returns {field: value}."""
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    names = [n for n in names if n in by_name]
    cols = st.columns(columns)
    out = {}
    for n, name in enumerate(names):
        draw = (special or {}).get(name, field_control)
        out[name] = draw(by_name[name], f"{prefix}.{name}", cols[n % columns])
    return out
