"""Gradients: how the loss gradient flows through the current network at initialisation, with and
without its residual skips, and how that changes with depth."""

from dataclasses import replace

import streamlit as st

import archs
from archs import SpecError, sources
from archs.sources import SourceError
from archs.studies.experiments import depth_sweep_results, submit_depth_sweep
from archs.training.limits import LimitError
from archs.training.store import RunError
from ui import charts, compute, draft, fmt, identity, jobs, runs, settings

DEPTHS = tuple(6 * n + 2 for n in range(1, 19))      # He et al.'s CIFAR nets: 8, 14, ..., 110
SWEEP = (8, 44)                                      # the depth range swept by default
BATCHES = (2, 4, 8, 16, 32, 64)
AUTO_SECONDS = 8.0                                   # measure without asking below this estimate

settings.init()  # idempotent; a server's very first request may open this page without dashboard.py
st.title("Gradients at initialisation")
st.markdown(
    "One forward and backward pass on a random batch with random labels, straight after initialisation "
    "(train mode, so BatchNorm uses batch statistics). For every conv and linear layer: the norm of the "
    "loss gradient with respect to its weights, from the input (left) to the output (right). The dotted "
    "line is the **plain twin**, the same layers from the same seed without residual skips.")

spec = draft.spec()
controls = st.columns([2, 2, 2, 2], vertical_alignment="bottom")
settings.declare("grad_batch", "gbatch", 16, settings.one_of(BATCHES, int))
batch = controls[0].select_slider("Batch size", BATCHES, key="grad_batch",
                                  help="Larger batches give smoother estimates and take longer.")
settings.declare("grad_seed", "gseed", 0, settings.int_in(0, 2**31 - 1))
seed = int(controls[1].number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, key="grad_seed",
                                    help="Same seed: same weights, inputs and labels."))
settings.declare("grad_norm", "gnorm", lambda current: current.norm == "batch", settings.flag)
use_norm = controls[2].toggle("BatchNorm", key="grad_norm",
                              help="Off: the same network with no normalisation anywhere.")
size_options = sorted({16, 32, 64, 96, 128, 224, spec.input_size})
# a link's size the slider does not offer is ignored with a warning that names it, not swapped in silence
settings.declare("grad_size", "gsize", lambda current: current.input_size, settings.one_of(size_options, int))
if st.session_state["grad_size"] not in size_options:  # this session's size, from a network opened before
    st.session_state["grad_size"] = spec.input_size
size = controls[3].select_slider("Input size", size_options, key="grad_size",
                                 help="The network's own input size by default; smaller is faster.")

try:
    measured = replace(spec, norm="batch" if use_norm else "none", input_size=size)
    measured.plan()
except SpecError as error:
    st.error(f"This network does not work at {size}×{size}: {fmt.plain(error)}. Pick another input size.")
    settings.end_page()

twin = archs.plain_twin(measured)
has_twin = twin != measured
seconds = compute.gradient_seconds(measured, batch) * (2 if has_twin else 1)
# measured by a worker (a quick job), never in this server: one job for both networks' gradients and activations
ask = None if seconds <= AUTO_SECONDS else (
    f"Measuring **{fmt.plain(measured.name, 60)}** at batch {batch} and {size}×{size} takes about {seconds:.0f} s "
    "on this machine. Lower the batch or input size, or measure anyway.")
found = jobs.measure(compute.inspect_job(measured, batch, seed), ask=ask, button="Measure anyway",
                     button_key="grad_measure", may_ask=jobs.may_start())
if found is None:
    settings.end_page()
profile, initial_health = found["network"]
curves = [(f"{measured.name} (with skips)" if has_twin else measured.name, profile)]
plain = found["twin"][0] if has_twin and found["twin"] else None
if plain is not None:
    curves.append(("plain twin", plain))


def describe(name: str, g: archs.GradientNorms) -> str:
    ratio = g.first_last_ratio()
    first = next(r for r in g.layers if r.type == "Conv2d") if any(r.type == "Conv2d" for r in g.layers) else None
    if first is None:
        return f"{name}: no conv layers."
    if ratio > 2:
        trend = "grows toward the input"
    elif ratio < 0.5:
        trend = "shrinks toward the input"
    else:
        trend = "stays within a factor of 2 from the last conv to the first"
    return f"**{fmt.plain(name, 60)}**: the first conv's gradient is **{ratio:.3g}×** the last conv's (it {trend})."


def describe_health(name: str, h: archs.ActivationHealth) -> str:
    dead = h.dead_fraction
    units = sum(b.relu_units for b in h.blocks)
    first, last = h.blocks[0].std, h.blocks[-1].std
    spread = f"output std {first:.3g} after the first block, {last:.3g} after the last"
    if dead is None:
        return f"**{fmt.plain(name, 80)}**: no ReLU; {spread}."
    return (f"**{fmt.plain(name, 80)}**: {sum(b.dead_units for b in h.blocks):,} of {units:,} ReLU channels dead "
            f"({100 * dead:.1f}%); {spread}.")


st.subheader("Weight gradient per layer", divider="gray")
st.plotly_chart(charts.gradient_lines(curves), key="grad_layers")
notes = [describe(name, g) for name, g in curves]
st.markdown("  \n".join(notes))
if not has_twin:
    st.caption("This network has no residual skips, so it has no separate plain twin to overlay.")
norm_word = "with BatchNorm" if use_norm else "without normalisation"
st.caption(
    f"Measured {norm_word}, batch {batch}, seed {seed}, input {size}×{size}; loss {profile.loss:.3g}. What "
    "to expect (He et al. 2016, and the sweep below): in deep plain nets the gradient grows toward the input "
    "with BatchNorm (explodes) and shrinks toward it without normalisation (vanishes); skips keep it near "
    "flat. A single random batch is noisy, and a shallow net shows little of either: read the numbers above.")

st.subheader("Gradient at each block's output", divider="gray")
st.markdown("The norm of ∂loss/∂(output of each block): how much signal reaches each point of the network "
            "on the way back.")
st.plotly_chart(charts.block_lines(curves), key="grad_blocks")

# ------------------------------------------------------------------------------------------ activation health
with st.container(key="health_section"):               # one box, for a screenshot
    st.subheader("Activation health per block", divider="gray")
    st.markdown("The same batch, forward only: the spread of each block's output (it grows or shrinks block after "
                "block where the signal explodes or vanishes on the way forward) and the share of its ReLU "
                "channels that are **dead**, zero for every image and position of the batch, so their filters get "
                "no gradient. Pick a stored run to see its trained weights beside the same network at "
                "initialisation.")
    trained_runs = {r["id"]: f"{r['label']} · {r['status']} · {r['id']}" for r in compute.runs()
                    if r["has_weights"]}
    settings.declare("health_run", "hrun", "", settings.optional(settings.RUN_ID, "a run id"))
    if st.session_state["health_run"] not in ("", *trained_runs):
        st.session_state["health_run"] = ""
    run_id = st.selectbox("Weights", ["", *trained_runs], key="health_run",
                          format_func=lambda i: trained_runs.get(
                              i, "At initialisation (this network and its plain twin)"),
                          help="A stored run is measured in eval mode: BatchNorm uses the statistics it learned.")
    health_curves = None
    if run_id:
        try:
            source = compute.run_source(run_id)
        except (SourceError, RunError, LimitError) as error:
            st.error(fmt.plain(error), icon=":material/error:")
        else:  # asks first: a link's hrun= never measures (nor spends the visitor's queue) on its own
            sources.mark_viewed([run_id])  # spared by ARCHS_MAX_RUNS_KEPT's pruning while it is shown here
            measured_run = jobs.measure(
                compute.run_health_job(run_id, batch, seed), button_key="health_measure",
                ask=f"Measure the activations of **{fmt.plain(source.label, 80)}** with its trained weights, on "
                    f"{batch} of its own test images, in a worker process.",
                may_ask=jobs.may_start())
            if measured_run is not None:
                trained, initial = measured_run
                health_curves = [(f"{source.label}, trained", trained),
                                 (f"{source.spec.name} at initialisation", initial)]
                st.caption(f"Both measured in eval mode on the same batch, in a worker process: {trained.inputs}.")
    else:
        health_curves = [(curves[0][0], initial_health)]
        if plain is not None:
            health_curves.append(("plain twin", found["twin"][1]))
    if health_curves:
        st.plotly_chart(charts.health_lines(health_curves), key="health_chart")
        st.markdown("  \n".join(describe_health(name, h) for name, h in health_curves))
        st.dataframe(compute.health_table(health_curves), hide_index=True, key="health_table")
        mode = "eval mode for the trained run, train mode at initialisation" if run_id else "train mode"
        st.caption(f"Batch {batch} of standard normal images, seed {seed}, {mode}. A unit is one channel of a "
                   "ReLU's output; networks without ReLU show no dead units.")

# ------------------------------------------------------------------------------------------ depth sweep
st.subheader("Depth sweep: residual vs plain", divider="gray")
st.markdown("He et al.'s CIFAR-10 networks (a 3×3 conv, three stages of basic blocks at 16/32/64 channels) at "
            "several depths, with and without skips: the first conv's gradient norm over the last conv's. "
            "1 means the gradient reaches the input undiminished and unamplified.")


def depth_range(text: str) -> tuple[int, int]:
    low, high = (int(part) for part in text.split("-"))
    if low > high or low not in DEPTHS or high not in DEPTHS:
        raise ValueError("expected two depths 6n+2 from 8 to 110, like 8-44")
    return low, high


settings.declare("sweep_range", "sweep", SWEEP, depth_range)
# value= only makes it a range slider: the session's value (a link's, or the last one) takes precedence
low, high = st.select_slider("Depths", DEPTHS, value=SWEEP, key="sweep_range",
                             help="Four depths evenly spread over this range are measured (6n+2 layers), each "
                                  "with and without skips, as runs of the executor: side by side on a cluster.")
inside = [d for d in DEPTHS if low <= d <= high]
picked = sorted({inside[round(i * (len(inside) - 1) / 3)] for i in range(4)}) if len(inside) > 1 else inside
sweep_key = (tuple(picked), batch, seed, use_norm)
st.caption(f"Depths {', '.join(map(str, picked))} · batch {batch} · seed {seed} · {norm_word}.")
me = identity.current()
if st.button("Run the sweep", key="sweep_run", icon=":material/play_arrow:", disabled=not me.may_act,
             help=None if me.may_act else identity.LOG_IN_TO_ACT):
    try:
        group = submit_depth_sweep(runs.executor(), picked, batch_size=batch, seed=seed,
                                   norm="batch" if use_norm else "none", owner=me.owner, owner_name=me.name)
        st.session_state["sweep"] = (sweep_key, group)
    except (LimitError, RunError) as error:
        st.error(f"No sweep started: {fmt.plain(error)}", icon=":material/error:")


def sweep_view(key: tuple, group: str, was_measuring: bool) -> None:
    """The sweep's progress while its measurements run (through the executor, like training runs), then
    its chart. Read from the run store, so it survives a page switch."""
    store = runs.executor().store
    results, done, total = depth_sweep_results(store, group)
    if was_measuring and done == total:
        st.rerun()  # finished: redraw without the timer
    stopped = jobs.cancelled(group)
    if done < total:
        if stopped:  # its driver marks the trials it never started as stopped at its next look
            text = f"Cancelling: {done} of {total} networks done; stopping the rest…"
        else:
            mine = {r["id"] for r in store.list_runs(group=group)}
            ahead = len([r for r in runs.executor().active() if r not in mine])
            text = f"Measured {done} of {total} networks" + (
                f" · waiting behind {ahead} other run{'s' if ahead != 1 else ''}" if ahead and not done else "")
        # the same progress and Cancel as every other measurement's (ui/jobs.py)
        if jobs.progress(done / max(total, 1), text, key="sweep_cancel") and not stopped:
            jobs.cancel_study(group, runs.executor())
            st.rerun()  # the whole page: the timer goes on until the driver has stopped the rest
        return
    if stopped:
        st.progress(len(results) / max(total, 1), text=f"Cancelled: {len(results)} of {total} networks measured; "
                                                        "the other measurements were stopped.")
    else:
        st.progress(1.0, text=f"Done: {total} networks measured.")
    if key != sweep_key:
        st.caption("These results are for earlier settings; run the sweep again to update them.")
    if not results:
        if not stopped:
            st.warning("The measurements failed; see the Runs page's command line (`python -m archs runs`).")
        return
    st.plotly_chart(charts.sweep_lines(results), key="sweep_chart")
    by = {(r["depth"], r["skip"]): r["ratio"] for r in results}
    depths = sorted({r["depth"] for r in results})
    st.markdown("  \n".join(
        f"depth {d}: residual **{by.get((d, True), float('nan')):.3g}**, "
        f"plain **{by.get((d, False), float('nan')):.3g}**"
        for d in depths))
    swept_norm = "with BatchNorm" if key[3] else "without normalisation"
    st.caption(f"Ratios {swept_norm} (batch {key[1]}, seed {key[2]}). Above 1: the gradient grows toward the "
               "input; below 1: it shrinks. Compare how far each line moves from 1 as depth grows.")


saved = st.session_state.get("sweep")
if saved:
    _, done_now, total_now = depth_sweep_results(runs.executor().store, saved[1])
    measuring = done_now < total_now
    st.fragment(run_every=runs.STATUS_SECONDS if measuring else None)(sweep_view)(*saved, measuring)
