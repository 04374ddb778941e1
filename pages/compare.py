"""Compare: two networks side by side, stage by stage; each from the Build page, a preset, a spec file or a
stored run (whose training curves are then overlaid)."""

import pandas as pd
import streamlit as st

from archs import PRESETS, SpecError, decode_spec, encode_spec, sources
from archs.diff import diff_summaries
from archs.sources import SourceError
from ui import charts, compute, draft, fmt, settings, train_charts

settings.init()  # idempotent; a server's very first request may open this page without dashboard.py
st.title("Compare two networks")
st.markdown("Two networks side by side: totals, then parameters, mult-adds, output shape and receptive field of "
            "each part, matched by position (stem with stem, stage 1 with stage 1, …). Each side can be the "
            "network from **Build**, its plain twin, a preset, a spec file or a stored run; for runs, their "
            "training curves are overlaid below. The address bar keeps both choices.")

current = draft.spec()
runs = {r["id"]: f"{r['label']} · {r['status']} · {r['id']}" for r in compute.runs()}


def network_choice(text: str) -> str:
    """A side: ``build``, ``twin``, ``preset:<name>``, ``run:<id>`` or ``spec:<encoded spec>``."""
    kind, _, rest = text.partition(":")
    if text in ("build", "twin") or (kind == "preset" and rest in PRESETS) or (
            kind == "run" and settings.RUN_ID.fullmatch(rest)):
        return text
    if kind == "spec":
        decode_spec(rest)     # SpecError (a ValueError) names what is wrong
        return text
    raise ValueError("expected build, twin, preset:NAME, run:ID or spec:ENCODED")


DEFAULTS = {"a": "build", "b": lambda net: "preset:resnet34" if net == PRESETS["resnet18"] else "preset:resnet18"}


def use_file(side: str) -> None:
    """on_change of a side's uploader: a valid spec becomes that side's network; a bad file says why."""
    new = draft.read_upload(f"compare_{side}_upload")
    if new is not None:
        st.session_state[f"compare_{side}"] = "spec:" + encode_spec(new)


def picker(side: str, column) -> str:
    key = f"compare_{side}"
    choice = settings.declare(key, side, DEFAULTS[side], network_choice)
    options = ["build", "twin", *(f"preset:{name}" for name in PRESETS), *(f"run:{i}" for i in runs)]
    if choice not in options:
        options.append(choice)          # a spec file, or a run from a link that this store may not have
    with column:
        st.selectbox(f"Network {side.upper()}", options, key=key, format_func=lambda c: compute.choice_label(c, runs))
        st.file_uploader(f"Or load a spec file as {side.upper()}", type=["json"], key=f"{key}_upload",
                         on_change=use_file, args=(side,),
                         help="A JSON spec saved from Build or written by hand; checked before it is used.")
        if st.session_state.get(f"{key}_upload_error"):
            st.error(st.session_state[f"{key}_upload_error"])      # escaped in draft.read_upload
    return st.session_state[key]


choices = {side: picker(side, column) for side, column in zip("ab", st.columns(2, gap="large"))}
# the runs shown here are spared by ARCHS_MAX_RUNS_KEPT's pruning while the page is open (a write once a minute at most)
sources.mark_viewed(choice.partition(":")[2] for choice in choices.values() if choice.startswith("run:"))
chosen = {}
for side, choice in choices.items():
    try:
        chosen[side] = compute.chosen_network(choice, current)
    except (SpecError, SourceError) as error:
        st.error(f"Network {side.upper()} cannot be shown: {fmt.plain(error)}", icon=":material/error:")
if len(chosen) < 2:
    settings.end_page()
(a, label_a, run_a), (b, label_b, run_b) = chosen["a"], chosen["b"]
sa, sb = compute.summary(a), compute.summary(b)
name_a, name_b = f"A: {label_a}", f"B: {label_b}"

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
fields_a = {s.name: compute.field_text(s.size) for s in compute.receptive(a).stages}
fields_b = {s.name: compute.field_text(s.size) for s in compute.receptive(b).stages}
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
    "receptive field A": [fields_a.get(r.name, "—") if r.label_a else "—" for r in rows],
    "receptive field B": [fields_b.get(r.name, "—") if r.label_b else "—" for r in rows],
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

trained = [(name, run_id) for name, run_id in ((name_a, run_a), (name_b, run_b)) if run_id]
if trained:
    curves = st.container(key="curves_section")
    curves.subheader("Training curves", divider="gray")
    curves.plotly_chart(train_charts.curves([(name, compute.run_metrics(run_id)) for name, run_id in trained]),
                        key="compare_curves")
    curves.caption("Loss and accuracy of the stored run(s) against the optimizer step: training (solid) and test "
               "(dotted, at each evaluation).")

