"""One generic form for any spec class: a control per field, chosen from the field's metadata (kind,
range, step, choices, help). No page writes slider code for a particular stage type."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import streamlit as st

from archs import FieldInfo, spec_fields

SLIDER_MAX_SPAN = 256       # wider integer ranges (channels up to 2048) get a number box instead


def field_widget(info: FieldInfo, value: Any, key: str, where: Any = st) -> Any:
    """Draw the control for one field, showing ``value``; return what the control holds."""
    common = dict(label=info.label, help=info.help, key=key)
    if info.kind == "bool":
        return where.checkbox(value=bool(value), **common)
    if info.kind == "choice":
        options = list(info.choices)
        return where.selectbox(options=options, index=options.index(value) if value in options else 0,
                               **common)
    if info.kind == "str":
        return where.text_input(value=str(value), max_chars=info.max_length, **common)
    if info.kind == "int":
        lo, hi, step = int(info.minimum), int(info.maximum), int(info.step or 1)
        if hi - lo <= SLIDER_MAX_SPAN:
            return where.slider(min_value=lo, max_value=hi, value=int(value), step=step, **common)
        return where.number_input(min_value=lo, max_value=hi, value=int(value), step=step, **common)
    if info.kind == "float":
        lo, hi = float(info.minimum), float(info.maximum)
        if info.step:
            return where.slider(min_value=lo, max_value=hi, value=float(value), step=float(info.step), **common)
        return where.number_input(min_value=lo, max_value=hi, value=float(value), step=lo, format="%.1e",
                                  **common)
    raise ValueError(f"{info.name}: no control for fields of kind {info.kind!r}")


def spec_form(cls_or_obj: Any, values: dict[str, Any], key: Callable[[str], str], columns: int = 2,
              only: Iterable[str] | None = None) -> dict[str, Any]:
    """Controls for every field of a spec class (or those named in ``only``), laid out in columns."""
    infos = [i for i in spec_fields(cls_or_obj) if only is None or i.name in set(only)]
    cols = st.columns(columns)
    out = {}
    for n, info in enumerate(infos):
        out[info.name] = field_widget(info, values.get(info.name, info.default), key(info.name),
                                      cols[n % columns])
    return out
