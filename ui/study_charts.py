"""Plotly figures for studies: test accuracy against a cost, one colour per network family, the seeds' spread as
error bars, the Pareto front drawn as a step line, each family's fitted log-linear line with its 95 % band; and the
compared networks' learning curves overlaid. Each takes the plain data of :mod:`archs.studies.results` and
:mod:`archs.studies.curves`."""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go

from archs.studies.curves import Fit
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


def _rgba(colour: str, alpha: float) -> str:
    colour = colour.lstrip("#")
    r, g, b = (int(colour[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def accuracy_vs_cost(points: Sequence[dict], x: str, height: int = 460,
                     fits: dict[str | None, Fit] | None = None) -> go.Figure:
    """Mean test accuracy (error bars: one standard deviation over the seeds, and the min-max range in the hover)
    against ``x`` on a log axis. Each point's ``customdata`` is its first run's id (what a selection opens).
    ``fits`` (:func:`archs.studies.curves.log_linear_fits` of the same points and ``x``): each family's fitted line
    with its 95 % band, drawn beneath the points."""
    fig = go.Figure()
    for family, fit in (fits or {}).items():
        colour = FAMILY_COLOURS.get(family, GREY)
        name = fmt.chart(family or "runs")
        fig.add_trace(go.Scatter(x=list(fit.xs) + list(fit.xs)[::-1], y=list(fit.high) + list(fit.low)[::-1],
                                 fill="toself", fillcolor=_rgba(colour, 0.15), line=dict(width=0), hoverinfo="skip",
                                 showlegend=False, legendgroup=f"fit {name}"))
        fig.add_trace(go.Scatter(
            x=list(fit.xs), y=list(fit.mean), mode="lines", line=dict(color=colour, width=1.5, dash="dash"),
            name=f"{name}: fit", legendgroup=f"fit {name}",
            hovertemplate=(f"{name} fit over {fit.n} settings: {fit.per_doubling():+.1%} per doubling of "
                           f"{AXIS_LABELS[x]}<br>" + AXIS_LABELS[x] + " %{x:,.4g}<br>fitted accuracy %{y:.2%} "
                           "(95% band shaded)<extra></extra>")))
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


def learning_curves(curves: Sequence[dict], value: str = "training loss", height: int = 420) -> go.Figure:
    """The compared networks' learning curves (:func:`archs.studies.curves.learning_curves`): the mean over seeds
    as a line, the range over seeds shaded, one colour per family (the label's first word), a dash per size."""
    fig = go.Figure()
    dashes = ("solid", "dot", "dash", "longdash", "dashdot", "longdashdot")
    seen: dict[str, int] = {}
    for curve in curves:
        label = str(curve["label"])
        family = label.split(" ")[0]
        colour = FAMILY_COLOURS.get(family, FAMILY_COLOURS[None])
        dash = dashes[seen.get(family, 0) % len(dashes)]
        seen[family] = seen.get(family, 0) + 1
        name = fmt.chart(label)
        if curve["runs"] > 1:
            fig.add_trace(go.Scatter(x=curve["steps"] + curve["steps"][::-1], y=curve["high"] + curve["low"][::-1],
                                     fill="toself", fillcolor=_rgba(colour, 0.12), line=dict(width=0),
                                     hoverinfo="skip", showlegend=False, legendgroup=name))
        fig.add_trace(go.Scatter(x=curve["steps"], y=curve["mean"], mode="lines", name=name, legendgroup=name,
                                 line=dict(color=colour, dash=dash, width=1.5),
                                 hovertemplate=f"{name} (mean of {curve['runs']} seed"
                                               f"{'s' if curve['runs'] != 1 else ''})<br>step %{{x}}<br>{value} "
                                               "%{y:.4g}<extra></extra>"))
    fig.update_xaxes(title="step")
    fig.update_yaxes(title=f"{value} (mean over seeds; shaded: their range)", type="log")
    return _layout(fig, height)


DECIDED = ("holds", "does not hold", "above", "below")  # a gap's own outcome: its interval excludes zero


def _decided_symbol(outcome: str | None) -> str:
    return "circle" if outcome in DECIDED else "circle-open"


LADDER_COLOURS = (BLUE, ORANGE, "#2a9d5c", GREY, "#7a4fd0")


def budget_ladder(lad: dict, height: int = 420) -> go.Figure:
    """A claim's budget ladder (:func:`archs.studies.ladder.ladder`): each gap (the claim's primary test's mean
    difference, in points of test accuracy) against steps per run on a log axis, its interval as error bars, the
    marker filled where that gap's own test decided (its interval clear of zero at the verdict's level), open where
    not; the claim's verdict at each budget written above it; a line at zero."""
    fig = go.Figure()
    rows = lad["rungs"]
    steps = [r["steps"] for r in rows]
    for i, (name, label) in enumerate(lad.get("gap_labels", {}).items()):
        colour = LADDER_COLOURS[i % len(LADDER_COLOURS)]
        points = [(r, r["gaps"].get(name) or {}) for r in rows]
        points = [(r, g) for r, g in points if g.get("difference") is not None]
        if not points:
            continue
        y = [100 * g["difference"] for _, g in points]
        plus = [100 * (g["upper"] - g["difference"]) if g.get("upper") is not None else 0 for _, g in points]
        minus = [100 * (g["difference"] - g["lower"]) if g.get("lower") is not None else 0 for _, g in points]
        fig.add_trace(go.Scatter(
            x=[r["steps"] for r, _ in points], y=y, mode="lines+markers", name=fmt.chart(label),
            line=dict(color=colour, width=1.5),
            marker=dict(size=11, color=colour, symbol=[_decided_symbol(r["against"].get(name)) for r, _ in points],
                        line=dict(color=colour, width=2)),
            error_y=dict(type="data", array=plus, arrayminus=minus, visible=True, color=colour, thickness=1),
            customdata=[[fmt.chart(r["verdict"]), r["seeds"], r["converged"], r["ended"],
                         fmt.chart(r["against"].get(name) or "-")] for r, _ in points],
            hovertemplate=f"{fmt.chart(lad['gap_names'][name])}<br>%{{x:,}} steps · gap %{{y:+.1f}} points "
                          "(%{customdata[4]})<br>the claim: %{customdata[0]}<br>%{customdata[1]} seeds · "
                          "%{customdata[2]} of %{customdata[3]} runs "
                          "converged<extra></extra>"))
    fig.add_hline(y=0, line=dict(color=GREY, width=1, dash="dot"))
    for r in rows:
        # an annotation on a log axis is placed in log10 units (points and ticks take the data's own)
        fig.add_annotation(x=math.log10(r["steps"]), y=1.02, yref="paper", showarrow=False,
                           text=fmt.chart(r["verdict"]), font=dict(size=11))
    fig.update_xaxes(title="steps per run (log)", type="log", tickvals=steps, ticktext=[f"{s:,}" for s in steps])
    fig.update_yaxes(title="gap, points of test accuracy", zeroline=False)
    fig.update_layout(title="Verdict and gap against budget (bars: the verdict's interval)", showlegend=True)
    _layout(fig, height)
    fig.update_layout(legend=dict(orientation="h", y=-0.3), margin=dict(t=70, b=70))  # words above, legend below
    return fig
