"""The Build page's inspection tabs beyond the summary: receptive field per part, measured time and training
memory per part, and export. Each lays out what ``archs`` computes (through the caches of ``compute``)."""

from __future__ import annotations

import streamlit as st

import archs
from archs import NetSpec, sources
from archs.export import FORMATS
from archs.sources import SourceError
from archs.training.store import RunError

from . import charts, compute, fmt, jobs, settings

REPEATS = (3, 5, 10)


# ------------------------------------------------------------------------------------------ receptive field
def receptive_field(spec: NetSpec) -> None:
    rf = compute.receptive(spec)
    st.caption("How much of the image one output unit of each part can see (its **receptive field**, in input "
               "pixels), how far apart neighbouring units' windows are (**jump**) and where the top-left unit's "
               "window is centred (pixel centres at 0, 1, …). Computed from the network's convs and pools, "
               "through every skip and branch; the layer table lists it for every module.")
    st.plotly_chart(charts.receptive_bars(rf), key="rf_chart", config={"displayModeBar": False})
    covering = next((s for s in rf.stages if rf.covers_input(s) and s.output_size), None)
    h, w = rf.input_size
    if covering is not None:
        st.markdown(f"From **{covering.name}** on (orange), one unit sees at least the whole {h}×{w} input "
                    f"({compute.field_text(covering.size)} pixels, padding included).")
    else:
        last = [s for s in rf.stages if s.output_size][-1]
        st.markdown(f"No unit before the head sees the whole {h}×{w} input: the last feature map's units see "
                    f"{compute.field_text(last.size)} pixels each. Only the head's pooling combines them.")
    st.dataframe(compute.field_table(spec), hide_index=True, key="rf_table")


# ------------------------------------------------------------------------------------------ measured cost
def measured_cost(spec: NetSpec, batch: int) -> None:
    st.caption("Time and training memory **measured** on this machine, per part, next to what the summary "
               "computes (mult-adds) and estimates (torchinfo's activation memory). Inference: eval mode without "
               "autograd. Training step: forward, loss, backward, Adam step. Times are medians of the repeats after "
               "a warm-up run.")
    devices = archs.available_devices()
    cols = st.columns([2, 2, 3], vertical_alignment="bottom")
    settings.sticky("cost_device", devices[-1])
    if st.session_state["cost_device"] not in devices:
        st.session_state["cost_device"] = devices[0]
    device = cols[0].selectbox("Device", devices, key="cost_device",
                               help="Where to measure: this machine's CPU, or its GPU where there is one.")
    settings.sticky("cost_repeats", 5)
    repeats = cols[1].selectbox("Repeats", REPEATS, key="cost_repeats", help="Timed runs after the warm-up.")
    cols[2].caption(f"Batch {batch} (set above), input {fmt.shape(compute.summary(spec).input_shape)}.")
    seconds = compute.cost_seconds(spec, batch, repeats)
    report = jobs.measure(
        compute.cost_job(spec, batch, device, repeats), button_key="cost_measure", may_ask=jobs.may_start(),
        ask=f"Measuring **{fmt.plain(spec.name, 60)}** at batch {batch} on {device} takes about "
            f"{fmt.duration(seconds)} here, in a worker process. Results are kept for this network, batch and device.")
    if report is None:
        return
    st.caption(f"Measured: {report.repeats} repeats on {report.device}, in a worker process.")
    show_cost(report)


def show_cost(report: archs.CostReport) -> None:
    cols = st.columns(3)
    cols[0].metric("Inference", fmt.seconds(report.forward_s), border=True,
                   help=f"The whole batch of {report.batch_size}, eval mode, no autograd; median of "
                        f"{report.repeats}. {fmt.si(report.mult_adds / report.forward_s)} mult-adds/s.")
    cols[1].metric("Training step", fmt.seconds(report.train_step_s), border=True,
                   help=f"Forward, loss, backward and Adam step ({fmt.seconds(report.optimizer_s)} of it) for "
                        f"the batch of {report.batch_size}; median of {report.repeats}.")
    ratio = report.peak_bytes / report.estimate_bytes if report.estimate_bytes else 0
    cols[2].metric("Peak memory", fmt.nbytes(report.peak_bytes), border=True,
                   delta=f"{ratio:.2f}× estimate", delta_color="off", delta_arrow="off",
                   help=f"Measured over one training step. The estimate, {fmt.nbytes(report.estimate_bytes)}, adds "
                        "torchinfo's activation memory, the parameters, their gradients, Adam's two moments and the "
                        "input.")
    st.plotly_chart(charts.cost_shares(report.parts), key="cost_shares", config={"displayModeBar": False})
    total = sum(p.mult_adds for p in report.parts) or 1
    sizable = [p for p in report.parts if p.mult_adds >= 0.05 * total and p.forward_s > 0] or list(report.parts)
    slow, fast = min(sizable, key=lambda p: p.mult_adds_per_s), max(sizable, key=lambda p: p.mult_adds_per_s)
    st.caption("Where a part's share of the time is larger than its share of the mult-adds, something other than "
               "arithmetic slows it (memory traffic, norms, concatenations, small kernels). Of the parts with at "
               f"least 5% of the mult-adds, **{slow.name}** runs {fmt.si(slow.mult_adds_per_s)} mult-adds/s and "
               f"**{fast.name}** {fmt.si(fast.mult_adds_per_s)}.")
    st.dataframe(compute.cost_table(report), hide_index=True, key="cost_table", column_config={
        "mult-adds": st.column_config.NumberColumn(format="localized"),
        **{c: st.column_config.NumberColumn(format="%.1f") for c in
           ("% mult-adds", "% forward", "% fwd+bwd", "G mult-adds/s")},
        **{c: st.column_config.NumberColumn(format="%.2f") for c in
           ("forward ms", "fwd+bwd ms", "kept MiB", "estimated MiB")}})
    st.plotly_chart(charts.cost_memory(report.parts), key="cost_memory", config={"displayModeBar": False})
    shown = {name: value for name, value in report.memory.items() if value >= 1024}
    if shown:
        st.caption("At the peak: " + ", ".join(f"{name} {fmt.nbytes(value)}" for name, value in shown.items()) + ".")
    st.caption(f"Memory measured from {report.memory_method}. **kept**: what a part's training forward leaves "
               "allocated for the backward pass; torchinfo estimates it as twice the outputs of its layers with "
               "weights (it counts no norm or activation outputs, and counts each output twice).")


# ------------------------------------------------------------------------------------------ export
def export(spec: NetSpec) -> None:
    st.caption("Take the network elsewhere. Every format comes with the spec as JSON, so `archs` can rebuild it; "
               "the same from a terminal: `python -m archs export SPEC_OR_RUN --format … --out DIR`.")
    runs = [r for r in compute.runs() if r.get("has_weights")]
    labels = {r["id"]: f"{r['label']} · {r['status']} · {r['id']}" for r in runs}
    cols = st.columns([3, 2], vertical_alignment="bottom")
    settings.sticky("export_source", "")
    if st.session_state["export_source"] not in ("", *labels):
        st.session_state["export_source"] = ""
    run_id = cols[0].selectbox(
        "Weights", ["", *labels], key="export_source",
        format_func=lambda i: labels.get(i, "This network, initialised (seed 0)"),
        help="A stored run exports its own network with its trained weights.") or None
    # shown here, so ARCHS_MAX_RUNS_KEPT's pruning spares it; and its file looked at (the list read only the store's
    # record): one removed or replaced by a link since is not exported
    sources.mark_viewed([run_id])
    if run_id and not sources.run_has_weights(run_id):
        st.error(f"Run {fmt.plain(run_id)} has no saved weights any more: pick another.", icon=":material/error:")
        return
    settings.sticky("export_format", "code")
    fmt_name = cols[1].selectbox("Format", list(FORMATS), key="export_format", help=FORMATS["code"].help)
    st.caption(FORMATS[fmt_name].help)          # each format's own sentence, from its @register_format
    try:
        source = compute.run_source(run_id) if run_id else None
    except SourceError as error:
        st.error(fmt.plain(error))
        return
    exported = source.spec if source else spec
    if source is not None:
        st.caption(f"Run **{fmt.plain(source.label)}**: {fmt.plain(exported.name, 60)}, "
                   f"{exported.num_params():,} parameters, trained weights.")
    wanted = (exported, fmt_name, run_id)
    if st.session_state.get("export_ready") != wanted:
        ask = st.empty()
        if not ask.button("Prepare the files", key="export_prepare", icon=":material/package_2:",
                          disabled=not jobs.may_start()):
            return
        ask.empty()
        st.session_state["export_ready"] = wanted
    made = jobs.measure(compute.export_job(exported, fmt_name, run_id))
    if made is None:
        return
    job_id, files = made
    for i, (name, size) in enumerate(files):
        try:
            data = compute.export_file(job_id, name)
        except (OSError, RunError) as error:  # the job's folder was deleted or tampered with: export again
            jobs.forget_one(compute.export_job(exported, fmt_name, run_id))
            st.error(f"{fmt.plain(name)} cannot be read: {fmt.plain(error)}", icon=":material/error:")
            return
        st.download_button(f"{name} · {fmt.nbytes(size)}", data, file_name=name, key=f"export_file{i}",
                           icon=":material/download:", on_click="ignore", type="primary" if i == 0 else "secondary")
