"""A block-level diagram of a network as a Graphviz DOT string: one box per stem, stage and head, stages
folded ("Residual x3 · 64 ch"), with parameters and output shape. Computed from the plan, so nothing
is built; any renderer of DOT text (``st.graphviz_chart``, ``dot -Tsvg``) draws it."""

from __future__ import annotations

from .spec import NetSpec, StagePlan

__all__ = ["spec_to_dot", "format_params"]

# fill colour per part type; unknown (newly registered) stage types get the last one
COLOURS = {"stem": "#e8eaf0", "residual": "#cfe2ff", "dense": "#d1f0d8", "inception": "#ffe5c2",
           "plain": "#e9dcff", "head": "#e8eaf0", "": "#f2f2f2"}


def format_params(count: int) -> str:
    """0.30 M, 12.5 k, 640 params: short enough for a diagram box."""
    if count >= 1e6:
        return f"{count / 1e6:.2f} M params"
    if count >= 1e3:
        return f"{count / 1e3:.1f} k params"
    return f"{count} params"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _skip_note(spec: NetSpec, plan: StagePlan) -> str:
    if plan.type_name != "residual" or not plan.name.startswith("stage"):
        return ""
    stage = spec.stages[int(plan.name[5:]) - 1]
    return " · skips" if getattr(stage, "skip", False) else " · no skips"


def spec_to_dot(spec: NetSpec, input_size: int | tuple[int, int] | None = None,
                plans: list[StagePlan] | None = None) -> str:
    """DOT text for ``spec`` (top to bottom: input, stem, stages, head, output).

    Raises SpecError, like :meth:`NetSpec.plan`, for a spec that does not fit the input size.
    """
    plans = plans if plans is not None else spec.plan(input_size)
    first = plans[0]
    lines = ["digraph network {", '  graph [rankdir=TB, nodesep=0.25, ranksep=0.3, bgcolor="transparent"];',
             '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11, color="#59607a", '
             'fontcolor="#1f2330"];', '  edge [color="#59607a", fontname="Helvetica", fontsize=9, '
             'fontcolor="#59607a"];']
    h, w = first.in_size
    lines.append(f'  input [label={_quote(f"Input · {first.in_channels}×{h}×{w}")}, shape=oval, '
                 f'fillcolor="#ffffff"];')
    previous = "input"
    for plan in plans:
        if plan.name == "stem" and not spec.stem:
            continue
        h, w = plan.out_size
        label = plan.label + _skip_note(spec, plan)
        text = f"{plan.name} · {label}\n{format_params(plan.params)} · out {plan.out_channels}×{h}×{w}"
        if plan.name == "head":
            text = f"{label}\n{format_params(plan.params)}"
        colour = COLOURS.get(plan.type_name, COLOURS[""])
        lines.append(f"  {plan.name} [label={_quote(text)}, fillcolor={_quote(colour)}];")
        lines.append(f"  {previous} -> {plan.name};")
        previous = plan.name
    lines.append(f'  output [label={_quote(f"{spec.num_classes} class scores")}, shape=oval, '
                 f'fillcolor="#ffffff"];')
    lines.append(f"  {previous} -> output;")
    lines.append("}")
    return "\n".join(lines)
