"""Plotly figures for the pages. Each takes plain data from ``archs`` and returns a figure.

Every text that reaches a figure from the data (a network's or a run's name, a part's or a layer's name) goes
through :func:`ui.fmt.chart` first: Plotly draws HTML in names, hover text, tick labels and annotations."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from archs import GradientNorms, PartCost, ReceptiveFields, Summary
from archs.health import ActivationHealth

from . import fmt

BLUE, ORANGE, GREY = "#2f6fdb", "#e8762d", "#8a90a6"


def _layout(fig: go.Figure, height: int) -> go.Figure:
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.15),
                      hoverlabel=dict(align="left"))
    return fig


def stage_bars(summary: Summary) -> go.Figure:
    """Parameters and mult-adds per stage, side by side, stages top to bottom in network order."""
    stages = list(summary.stages)
    names = fmt.chart_texts(s.name for s in stages)
    hover = [f"{fmt.chart(s.name)}: {fmt.chart(s.label)}<br>output {fmt.shape(s.output_shape[1:])}" for s in stages]
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
    layers, name = profile.layers, fmt.chart(name)
    return go.Scatter(
        x=[r.depth for r in layers], y=[r.grad_norm for r in layers], name=name, mode="lines+markers",
        line=dict(color=colour, dash=dash), marker=dict(size=5),
        customdata=[fmt.chart_texts((r.name, r.stage, r.type)) for r in layers],
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
        blocks, name = profile.blocks, fmt.chart(name)
        fig.add_trace(go.Scatter(
            x=[b.index for b in blocks], y=[b.grad_norm for b in blocks], name=name, mode="lines+markers",
            line=dict(color=colour, dash=dash), customdata=[fmt.chart_texts((b.name, b.stage)) for b in blocks],
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
    names = fmt.chart_texts(names)
    fig = go.Figure([go.Bar(x=names, y=list(a), name=fmt.chart(label_a), marker_color=BLUE),
                     go.Bar(x=names, y=list(b), name=fmt.chart(label_b), marker_color=ORANGE)])
    fig.update_layout(barmode="group", title=fmt.chart(title))
    return _layout(fig, 320)


def receptive_bars(rf: ReceptiveFields) -> go.Figure:
    """Receptive field of each part's output units against the input size (dashed line)."""
    stages = list(rf.stages)
    names = fmt.chart_texts(s.name for s in stages)
    size_h = rf.input_size[0]
    colours = [BLUE if s.size[0] < size_h else ORANGE for s in stages]
    hover = [f"{fmt.chart(s.name)} ({fmt.chart(s.type)})<br>one unit sees {s.size[0]}×{s.size[1]} input pixels"
             + (f"<br>units {s.jump[0]} px apart · output {fmt.shape(s.output_size)}" if s.output_size
                else "<br>after the pool: one vector") for s in stages]
    fig = go.Figure(go.Bar(x=names, y=[s.size[0] for s in stages], marker_color=colours, customdata=hover,
                           hovertemplate="%{customdata}<extra></extra>", text=[s.size[0] for s in stages],
                           textposition="outside", cliponaxis=False))
    fig.add_hline(y=size_h, line=dict(color=GREY, dash="dash"),
                  annotation_text=f"input {rf.input_size[0]}×{rf.input_size[1]}", annotation_position="top left")
    fig.update_yaxes(title="receptive field (input pixels)", rangemode="tozero")
    fig.update_xaxes(title="part (input → output)")
    fig.update_layout(showlegend=False)
    return _layout(fig, 340)


def cost_shares(parts: Sequence[PartCost]) -> go.Figure:
    """Each part's share of the mult-adds, of the measured inference time and of the training time."""
    names = fmt.chart_texts(p.name for p in parts)

    def shares(values):
        total = sum(values) or 1
        return [100 * v / total for v in values]

    fig = go.Figure()
    for label, values, colour in (("mult-adds (analytic)", [p.mult_adds for p in parts], GREY),
                                  ("inference forward (measured)", [p.forward_s for p in parts], BLUE),
                                  ("training fwd+bwd (measured)", [p.train_s for p in parts], ORANGE)):
        fig.add_trace(go.Bar(y=names, x=shares(values), name=label, orientation="h", marker_color=colour,
                             hovertemplate=f"%{{y}}: %{{x:.1f}}% of {label}<extra></extra>"))
    fig.update_layout(barmode="group")
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title="% of the whole network", ticksuffix="%")
    _layout(fig, 150 + 42 * len(parts))
    fig.update_layout(legend=dict(orientation="h", y=1.0, yanchor="bottom"), margin=dict(t=60))  # above the bars
    return fig


def cost_memory(parts: Sequence[PartCost]) -> go.Figure:
    """Memory each part's training forward keeps for the backward pass: measured against torchinfo's estimate."""
    names = fmt.chart_texts(p.name for p in parts)
    fig = go.Figure([
        go.Bar(x=names, y=[p.kept_bytes / 2**20 for p in parts], name="measured", marker_color=BLUE,
               hovertemplate="%{x}: %{y:.3g} MiB kept for backward (measured)<extra></extra>"),
        go.Bar(x=names, y=[p.estimate_bytes / 2**20 for p in parts], name="torchinfo estimate", marker_color=GREY,
               hovertemplate="%{x}: %{y:.3g} MiB (torchinfo: 2 × outputs of layers with weights)<extra></extra>")])
    fig.update_layout(barmode="group")
    fig.update_yaxes(title="MiB kept for the backward pass")
    return _layout(fig, 320)


def health_lines(curves: Sequence[tuple[str, ActivationHealth]]) -> go.Figure:
    """Per block: the spread of its output (log) and the share of its ReLU channels that are dead."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=("Output std per block (log)", "Dead ReLU channels per block"))
    for (name, health), colour, dash in zip(curves, (BLUE, ORANGE, GREY), (None, "dot", "dash")):
        blocks, name = health.blocks, fmt.chart(name)
        custom = [[fmt.chart(b.name), b.mean, b.dead_units, b.relu_units] for b in blocks]
        fig.add_trace(go.Scatter(
            x=[b.index for b in blocks], y=[b.std for b in blocks], name=name, mode="lines+markers",
            line=dict(color=colour, dash=dash), legendgroup=name, customdata=custom,
            hovertemplate=(f"<b>{name}</b><br>%{{customdata[0]}}<br>std %{{y:.3g}} · mean %{{customdata[1]:.3g}}"
                           "<extra></extra>")), 1, 1)
        fig.add_trace(go.Scatter(
            x=[b.index for b in blocks], y=[100 * b.dead_fraction if b.relu_units else None for b in blocks],
            name=name, mode="lines+markers", line=dict(color=colour, dash=dash), legendgroup=name,
            showlegend=False, customdata=custom,
            hovertemplate=(f"<b>{name}</b><br>%{{customdata[0]}}<br>%{{customdata[2]}} of %{{customdata[3]}} "
                           "ReLU channels dead (%{y:.1f}%)<extra></extra>")), 1, 2)
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_yaxes(ticksuffix="%", rangemode="tozero", row=1, col=2)
    fig.update_xaxes(title="block (input → output)")
    _layout(fig, 360)
    fig.update_layout(legend=dict(orientation="h", y=-0.3), margin=dict(b=70))  # below the axis titles
    return fig
