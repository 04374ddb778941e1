"""Plotly figures for studies: test accuracy against a cost, one colour per network family, the seeds' spread as
error bars, the Pareto front drawn as a step line. Each takes the points of :mod:`archs.studies.results`."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from archs.studies.pareto import OBJECTIVES

from . import fmt
from .charts import BLUE, GREY, ORANGE, _layout

FAMILY_COLOURS = {"residual": BLUE, "dense": ORANGE, "inception": "#2a9d5c", "plain": GREY, None: "#7a4fd0"}
AXIS_LABELS = {"params": "parameters", "mult_adds": "mult-adds per image",
               "train_flops": "training FLOPs (3 × 2 × mult-adds × images seen)", "train_seconds": "training seconds"}


def escaped(figure: go.Figure) -> go.Figure:
    """An Optuna figure (``optuna.visualization``) with a study's values escaped for Plotly: a categorical value is
    any text a list gave (``name=<a href=...>``), and Optuna draws the parallel coordinates' tick labels as
    annotations and its hover from ``customdata``. Optuna's own hover templates are kept."""
    for annotation in figure.layout.annotations:
        if annotation.text:
            annotation.text = fmt.chart(annotation.text)
    for trace in figure.data:
        if getattr(trace, "customdata", None) is not None:
            trace.customdata = _escaped(trace.customdata)
    return figure


def _escaped(value):
    if hasattr(value, "tolist"):        # a NumPy array or number
        value = value.tolist()
    if isinstance(value, str):
        return fmt.chart(value)
    if isinstance(value, (list, tuple)):
        return [_escaped(item) for item in value]
    return value


def accuracy_vs_cost(points: Sequence[dict], x: str, height: int = 460) -> go.Figure:
    """Mean test accuracy (error bars: one standard deviation over the seeds, and the min-max range in the hover)
    against ``x`` on a log axis. Each point's ``customdata`` is its first run's id (what a selection opens)."""
    fig = go.Figure()
    drawn = [p for p in points if p.get(x) is not None and p.get("accuracy") is not None]
    for family in dict.fromkeys(p["family"] for p in drawn):
        mine = [p for p in drawn if p["family"] == family]
        fig.add_trace(go.Scatter(
            x=[p[x] for p in mine], y=[p["accuracy"] for p in mine], mode="markers", name=fmt.chart(family or "runs"),
            marker=dict(size=[13 if p["pareto"] else 9 for p in mine], color=FAMILY_COLOURS.get(family, GREY),
                        line=dict(width=[2 if p["pareto"] else 0 for p in mine], color="#222")),
            error_y=dict(type="data", array=[p["accuracy_sd"] or 0 for p in mine], visible=True, thickness=1.2),
            customdata=[p["run_ids"][0] for p in mine],
            text=[f"{fmt.chart(p['label'])}<br>{len(p['run_ids'])} run{'s' if len(p['run_ids']) != 1 else ''}"
                  + (f", accuracy {p['accuracy_min']:.1%}–{p['accuracy_max']:.1%}" if len(p["run_ids"]) > 1 else "")
                  + ("<br>on the Pareto front" if p["pareto"] else "") for p in mine],
            hovertemplate="%{text}<br>" + AXIS_LABELS[x] + " %{x:,.4g}<br>test accuracy %{y:.2%}<extra></extra>"))
    front = sorted((p for p in drawn if p["pareto"]), key=lambda p: p[x])
    if len(front) > 1:
        fig.add_trace(go.Scatter(x=[p[x] for p in front], y=[p["accuracy"] for p in front], mode="lines",
                                 line=dict(color="#222", width=1, dash="dot", shape="hv"), name="Pareto front",
                                 hoverinfo="skip"))
    fig.update_xaxes(type="log", title=AXIS_LABELS[x])
    fig.update_yaxes(title=OBJECTIVES["accuracy"].label, tickformat=".0%", rangemode="nonnegative")  # no -50%
    return _layout(fig, height)


def importance_bars(importances: dict[str, float], objective: str, height: int = 360) -> go.Figure:
    """A search's parameter importances (Optuna's fANOVA, as its driver stored them), largest at the top."""
    ranked = sorted(importances.items(), key=lambda item: item[1])
    fig = go.Figure(go.Bar(x=[v for _, v in ranked], y=[fmt.chart(name) for name, _ in ranked], orientation="h",
                           marker_color=BLUE, hovertemplate="%{y}: %{x:.2f}<extra></extra>"))
    fig.update_xaxes(title=f"importance for {fmt.chart(OBJECTIVES[objective].label)}", rangemode="tozero")
    fig.update_layout(title="Parameter importances")
    return _layout(fig, height)
