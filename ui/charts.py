"""Plotly figures for the pages. Each takes plain data from ``archs`` and returns a figure."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from archs import GradientNorms, Summary

from . import fmt

BLUE, ORANGE, GREY = "#2f6fdb", "#e8762d", "#8a90a6"


def _layout(fig: go.Figure, height: int) -> go.Figure:
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.15),
                      hoverlabel=dict(align="left"))
    return fig


def stage_bars(summary: Summary) -> go.Figure:
    """Parameters and mult-adds per stage, side by side, stages top to bottom in network order."""
    stages = list(summary.stages)
    names = [s.name for s in stages]
    hover = [f"{s.name}: {s.label}<br>output {fmt.shape(s.output_shape[1:])}" for s in stages]
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=("Parameters", "Mult-adds per image"))
    fig.add_trace(go.Bar(y=names, x=[s.params for s in stages], orientation="h", marker_color=BLUE,
                         customdata=hover, hovertemplate="%{customdata}<br>%{x:,} params<extra></extra>",
                         text=[fmt.si(s.params) for s in stages], textposition="auto"), 1, 1)
    fig.add_trace(go.Bar(y=names, x=[s.mult_adds for s in stages], orientation="h", marker_color=ORANGE,
                         customdata=hover, hovertemplate="%{customdata}<br>%{x:,} mult-adds<extra></extra>",
                         text=[fmt.si(s.mult_adds) for s in stages], textposition="auto"), 1, 2)
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(showlegend=False)
    return _layout(fig, 120 + 28 * len(stages))


def _gradient_trace(profile: GradientNorms, name: str, colour: str, dash: str | None = None) -> go.Scatter:
    layers = profile.layers
    return go.Scatter(
        x=[r.depth for r in layers], y=[r.grad_norm for r in layers], name=name, mode="lines+markers",
        line=dict(color=colour, dash=dash), marker=dict(size=5),
        customdata=[[r.name, r.stage, r.type] for r in layers],
        hovertemplate=(f"<b>{name}</b><br>layer %{{customdata[0]}} (%{{customdata[2]}})<br>"
                       "stage %{customdata[1]} · depth %{x}<br>‖∇W‖ = %{y:.3g}<extra></extra>"))


def gradient_lines(curves: Sequence[tuple[str, GradientNorms]]) -> go.Figure:
    """Weight-gradient norm of every conv and linear layer against its depth, log scale."""
    fig = go.Figure()
    for (name, profile), colour, dash in zip(curves, (BLUE, ORANGE, GREY), (None, "dot", "dash")):
        fig.add_trace(_gradient_trace(profile, name, colour, dash))
    fig.update_yaxes(type="log", title="‖∂loss/∂W‖ (log)")
    fig.update_xaxes(title="depth (conv and linear layers, input → output)")
    return _layout(fig, 380)


def block_lines(curves: Sequence[tuple[str, GradientNorms]]) -> go.Figure:
    """Norm of the loss gradient with respect to each block's output, log scale."""
    fig = go.Figure()
    for (name, profile), colour, dash in zip(curves, (BLUE, ORANGE, GREY), (None, "dot", "dash")):
        blocks = profile.blocks
        fig.add_trace(go.Scatter(
            x=[b.index for b in blocks], y=[b.grad_norm for b in blocks], name=name, mode="lines+markers",
            line=dict(color=colour, dash=dash), customdata=[[b.name, b.stage] for b in blocks],
            hovertemplate=(f"<b>{name}</b><br>block %{{customdata[0]}}<br>stage %{{customdata[1]}}"
                           "<br>‖∂loss/∂output‖ = %{y:.3g}<extra></extra>")))
    fig.update_yaxes(type="log", title="‖∂loss/∂block output‖ (log)")
    fig.update_xaxes(title="block (input → output)")
    return _layout(fig, 340)


def sweep_lines(results: Sequence[dict]) -> go.Figure:
    """First-conv / last-conv gradient ratio against depth, residual vs plain, log scale."""
    fig = go.Figure()
    for skip, name, colour, dash in ((True, "residual", BLUE, None), (False, "plain", ORANGE, "dot")):
        rows = sorted((r for r in results if r["skip"] == skip), key=lambda r: r["depth"])
        fig.add_trace(go.Scatter(
            x=[r["depth"] for r in rows], y=[r["ratio"] for r in rows], name=name, mode="lines+markers",
            line=dict(color=colour, dash=dash),
            hovertemplate=f"<b>{name}</b><br>depth %{{x}}<br>first / last = %{{y:.3g}}<extra></extra>"))
    fig.add_hline(y=1, line=dict(color=GREY, width=1, dash="dash"))
    fig.update_yaxes(type="log", title="first-layer / last-layer gradient norm (log)")
    fig.update_xaxes(title="depth (layers)")
    return _layout(fig, 340)


def compare_bars(names: Sequence[str], a: Sequence[float], b: Sequence[float], label_a: str, label_b: str,
                 title: str) -> go.Figure:
    fig = go.Figure([go.Bar(x=list(names), y=list(a), name=label_a, marker_color=BLUE),
                     go.Bar(x=list(names), y=list(b), name=label_b, marker_color=ORANGE)])
    fig.update_layout(barmode="group", title=title)
    return _layout(fig, 320)
