"""Plotly figures for training runs. Each takes the plain metric records of ``archs.training`` (or the
matrix of :func:`archs.training.store.grad_heatmap`) and returns a figure; nothing here trains or builds."""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import fmt
from .charts import BLUE, GREY, ORANGE, _layout

PALETTE = [BLUE, ORANGE, "#2a9d5c", "#c23b5a", "#7a4fd0", "#1f9bb5", "#b58a1f", GREY]


def _finite(values: Sequence) -> list:
    """Non-finite numbers (a diverged loss) become gaps: JSON and plotly cannot draw NaN or inf."""
    return [v if isinstance(v, (int, float)) and math.isfinite(v) else None for v in values]


def _series(records: Sequence[dict], kinds: tuple[str, ...], key: str) -> tuple[list, list]:
    rows = [r for r in records if r.get("kind") in kinds and key in r and r.get("step") is not None]
    return [r["step"] for r in rows], _finite([r[key] for r in rows])


def curves(runs: Sequence[tuple[str, Sequence[dict]]], height: int = 360) -> go.Figure:
    """Loss (left) and accuracy (right) against optimizer step for one or more runs.

    Solid lines: training loss / accuracy over the steps since the previous record. Markers joined by a
    dotted line: test set, at each evaluation. A run that diverged gets an ✕ where its loss broke.
    """
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08, subplot_titles=("Loss", "Accuracy"))
    for n, (name, records) in enumerate(runs):
        colour, name = PALETTE[n % len(PALETTE)], fmt.chart(name)      # a run's label: Plotly draws HTML
        group = f"run{n}"
        for col, key, test_key in ((1, "loss", "test_loss"), (2, "train_accuracy", "test_accuracy")):
            x, y = _series(records, ("step",), key)
            fig.add_trace(go.Scatter(x=x, y=y, name=f"{name} · train", mode="lines", line=dict(color=colour),
                                     legendgroup=group, showlegend=col == 1,
                                     hovertemplate=f"{name}<br>step %{{x}}<br>train {key.split('_')[-1]} "
                                                   "%{y:.4g}<extra></extra>"), 1, col)
            x, y = _series(records, ("epoch", "eval"), test_key)
            if x:
                fig.add_trace(go.Scatter(x=x, y=y, name=f"{name} · test", mode="lines+markers",
                                         line=dict(color=colour, dash="dot"), marker=dict(size=7),
                                         legendgroup=group, showlegend=col == 1,
                                         hovertemplate=f"{name}<br>step %{{x}}<br>{test_key.replace('_', ' ')} "
                                                       "%{y:.4g}<extra></extra>"), 1, col)
        broken = [r["step"] for r in records if r.get("kind") == "step"
                  and not (isinstance(r.get("loss"), (int, float)) and math.isfinite(r["loss"]))]
        if broken:
            fig.add_vline(x=broken[0], line=dict(color="#c23b5a", dash="dash"), row=1, col=1)
            fig.add_annotation(x=broken[0], y=1, yref="y domain", text=f"diverged ({name})", showarrow=False,
                               font=dict(color="#c23b5a"), xanchor="right", row=1, col=1)
    fig.update_xaxes(title="step")
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%", row=1, col=2)
    _layout(fig, height)
    fig.update_layout(legend=dict(orientation="h", y=-0.3), margin=dict(b=70))  # below the axis titles
    return fig


def grad_heatmap(matrix: dict, height: int | None = None) -> go.Figure:
    """Depth x step heatmap of weight-gradient norms (log colour), input layer at the top."""
    layers, steps = matrix["layers"], matrix["steps"]
    z = []
    for row in matrix["values"]:
        z.append([math.log10(v) if isinstance(v, (int, float)) and v > 0 and math.isfinite(v) else None
                  for v in row])
    raw = [[f"{v:.3g}" if isinstance(v, (int, float)) else "–" for v in row] for row in matrix["values"]]
    fig = go.Figure(go.Heatmap(
        x=steps, y=list(range(len(layers))), z=z,
        customdata=[[[name, r] for r in row] for name, row in zip(fmt.chart_texts(layers), raw)],
        colorscale="Viridis", colorbar=dict(title="log₁₀ ‖∇W‖"),
        hovertemplate="layer %{customdata[0]}<br>step %{x}<br>‖∇W‖ = %{customdata[1]}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title="depth (input → output)",
                     tickvals=list(range(len(layers))), ticktext=fmt.chart_texts(layers) if len(layers) <= 30 else None,
                     showticklabels=len(layers) <= 30)
    fig.update_xaxes(title="step")
    return _layout(fig, height or max(260, min(700, 80 + 14 * len(layers))))
