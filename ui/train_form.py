"""Controls for ``archs.training.TrainConfig``, drawn from the same field metadata as the Build page's
form (``archs.spec_fields``): settings are typed numbers rather than sliders (a learning rate spans
decades, most limits are open-ended), and an optional field left empty means "no limit"."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import streamlit as st

from archs import FieldInfo, spec_fields

from . import settings


def _label(info: FieldInfo) -> str:
    return {"lr": "Learning rate"}.get(info.name, info.label)


def field_control(info: FieldInfo, key: str, where: Any = st,
                  format_choice: Callable[[Any], str] | None = None) -> Any:
    """Draw the control for one field (its value kept across pages under ``key``); return its value."""
    settings.sticky(key, info.default)
    common = dict(label=_label(info), help=info.help, key=key)
    if info.kind == "choice":
        return where.selectbox(options=list(info.choices), format_func=format_choice or str, **common)
    if info.kind == "bool":
        return where.checkbox(**common)
    if info.kind == "float":
        return where.number_input(min_value=float(info.minimum or 0.0), max_value=info.maximum, step=1e-4,
                                  format="%g", **common)
    return where.number_input(min_value=info.minimum, max_value=info.maximum, step=1,
                              placeholder="no limit" if info.optional else None, **common)


def apply_recipe(prefix: str, recipe_key: str) -> None:
    """on_change of a recipe selectbox: the recipe's values into the fields' widgets (still editable)."""
    from archs.training.recipes import RECIPES

    recipe = RECIPES.get(st.session_state.get(recipe_key))
    if recipe is None:
        return
    settings.assign({f"{prefix}.{name}": value for name, value in recipe.settings.items()})


def config_controls(cls: type, names: Iterable[str], prefix: str, columns: int = 3,
                    special: dict[str, Callable[[FieldInfo, str, Any], Any]] | None = None) -> dict[str, Any]:
    """Controls for the named fields of ``cls`` in ``columns`` columns; returns {field: value}."""
    by_name = {info.name: info for info in spec_fields(cls)}
    names = [n for n in names if n in by_name]
    cols = st.columns(columns)
    out = {}
    for n, name in enumerate(names):
        draw = (special or {}).get(name, field_control)
        out[name] = draw(by_name[name], f"{prefix}.{name}", cols[n % columns])
    return out
