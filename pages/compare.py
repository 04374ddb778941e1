"""Compare: the current network next to another, stage by stage."""

import pandas as pd
import streamlit as st

import archs
from archs import PRESETS
from archs.diff import diff_summaries
from ui import charts, compute, fmt, state

TWIN = "(this network without skips)"

state.init()  # idempotent; a server's very first request may open this page without dashboard.py
st.title("Compare two networks")
st.markdown("The network from **Build** (A) next to another one (B): totals, then parameters, mult-adds and "
            "output shape of each part, matched by position (stem with stem, stage 1 with stage 1, …).")

a = state.spec()
state.sticky("compare_with", "resnet18" if a != PRESETS["resnet18"] else "resnet34")
choice = st.selectbox("Compare with (B)", [TWIN, *PRESETS], key="compare_with")
b = archs.plain_twin(a) if choice == TWIN else PRESETS[choice]
sa, sb = compute.summary(a), compute.summary(b)
name_a, name_b = f"A: {a.name}", f"B: {b.name}" + (" without skips" if choice == TWIN else "")

st.markdown(f"**{fmt.plain(name_a)}** ({fmt.shape(sa.input_shape)} input) · **{fmt.plain(name_b)}** "
            f"({fmt.shape(sb.input_shape)} input)")
cols = st.columns(3)
for col, label, va, vb, show in (
        (cols[0], "Parameters", sa.total_params, sb.total_params, fmt.count),
        (cols[1], "Mult-adds / image", sa.mult_adds, sb.mult_adds, fmt.si),
        (cols[2], "Activations / image", sa.activation_bytes, sb.activation_bytes, fmt.nbytes)):
    delta = vb - va
    col.metric(f"{label} (B)", show(vb), delta=(f"{'+' if delta >= 0 else '-'}{show(abs(delta))} vs A"
                                               if delta else "same as A"),
               delta_color="inverse" if delta else "off", border=True, help=f"A: {show(va)}")

rows = diff_summaries(sa, sb)
table = pd.DataFrame({
    "part": [r.name for r in rows],
    "A": [r.label_a or "—" for r in rows],
    "B": [r.label_b or "—" for r in rows],
    "params A": [r.params_a for r in rows],
    "params B": [r.params_b for r in rows],
    "Δ params": [r.params_delta for r in rows],
    "mult-adds A": [r.mult_adds_a for r in rows],
    "mult-adds B": [r.mult_adds_b for r in rows],
    "output A": [fmt.shape(r.shape_a) for r in rows],
    "output B": [fmt.shape(r.shape_b) for r in rows],
    "same output": [r.same_shape for r in rows],
})
number = st.column_config.NumberColumn(format="localized")
st.dataframe(table, hide_index=True, key="compare_table", column_config={
    c: number for c in ("params A", "params B", "Δ params", "mult-adds A", "mult-adds B")})
names = [r.name for r in rows]
left, right = st.columns(2)
left.plotly_chart(charts.compare_bars(names, [r.params_a for r in rows], [r.params_b for r in rows], name_a,
                                      name_b, "Parameters per part"), key="compare_params")
right.plotly_chart(charts.compare_bars(names, [r.mult_adds_a for r in rows], [r.mult_adds_b for r in rows],
                                       name_a, name_b, "Mult-adds per image, per part"), key="compare_macs")
