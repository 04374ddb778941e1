"""Train: the current network on a data set, in the background, with live curves and gradient norms.

Runs execute in the process-wide ``archs.runs.JobManager`` and are written to the run store, so a reload
or a page switch neither stops a run nor loses it: this page finds the active (or latest) run on disk.
"""

from __future__ import annotations

import os

import streamlit as st

from archs.data import DATASETS, DataError, dataset_info
from archs.runs import ACTIVE_STATUSES, DataConfig, RunError, get_job_manager, grad_heatmap
from archs.train import ConfigError, TrainConfig, resolve_device
from ui import fmt, state, train_charts
from ui.train_form import config_controls, field_control

REFRESH_SECONDS = 1.0
FOLDER = "folder"
RUN_KEY = "train_run"
MAIN_FIELDS = ("epochs", "batch_size", "max_steps", "optimizer", "lr", "device")
MORE_FIELDS = ("schedule", "warmup_steps", "weight_decay", "momentum", "augment", "seed",
               "log_every", "grad_every", "eval_every", "amp", "channels_last")

state.init()  # idempotent; the server's first request may open this page without dashboard.py
st.title("Train")
spec = state.spec()
manager = get_job_manager()
store = manager.store


def device_ok(name: str) -> str | None:
    """None when the device can be used here, else why not."""
    try:
        resolve_device(name)
    except ConfigError as error:
        return str(error)
    return None


def device_control(info, key, where):
    return field_control(info, key, where,
                         format_choice=lambda d: d if device_ok(d) is None else f"{d} (not available here)")


def find_run_id() -> str | None:
    """The run to show: the one this session started (if it still exists), else an active run, else the
    latest one on disk. So a reload (new session) or another tab still finds a running job."""
    wanted = st.session_state.get(RUN_KEY)
    if wanted:
        try:
            store.get(wanted)
            return wanted
        except RunError:
            st.session_state.pop(RUN_KEY, None)
    active = manager.active()
    if active:
        return active[0]
    runs = store.runs()
    return runs[0].id if runs else None


# ------------------------------------------------------------------------------------------ settings
st.markdown(f"Trains **{fmt.plain(spec.name, 60)}** ({spec.num_params():,} parameters, input "
            f"{spec.in_channels}×{spec.input_size}×{spec.input_size}: the network from the Build page). The data "
            "is resized and its channels fitted to that input; the number of classes follows the data.")

with st.container(border=True):
    st.subheader("Data", anchor=False)
    names = list(DATASETS) + [FOLDER]
    state.sticky("train.data", "digits")
    data_cols = st.columns([2, 3, 1], vertical_alignment="bottom")
    source = data_cols[0].selectbox("Data set", names, key="train.data",
                                    format_func=lambda n: "Image folder…" if n == FOLDER else DATASETS[n].title)
    root, download = None, False
    if source == FOLDER:
        state.sticky("train.folder", "")
        path = data_cols[1].text_input("Image folder", key="train.folder", placeholder="/path/to/images",
                                       help="ImageFolder layout: <path>/<class>/* (split 80/20), or "
                                            "<path>/train/<class>/* and <path>/test/<class>/*.")
        data_name = path.strip()
    else:
        data_name = source
        if DATASETS[source].source == "torchvision":
            state.sticky("train.root", os.environ.get("ARCHS_DATA_DIR", "data"))
            root = data_cols[1].text_input("Data folder", key="train.root",
                                           help="Folder holding the data set in torchvision's layout.").strip() or None
            state.sticky("train.download", False)
            download = data_cols[2].checkbox("Download if missing", key="train.download",
                                             help="Only where this machine can reach the internet.")
    if data_name:
        st.caption(fmt.plain(dataset_info(data_name).description or dataset_info(data_name).title))

with st.container(border=True):
    st.subheader("Training", anchor=False)
    values = config_controls(TrainConfig, MAIN_FIELDS, "train", columns=3, special={"device": device_control})
    with st.expander("More settings"):
        values.update(config_controls(TrainConfig, MORE_FIELDS, "train", columns=3))
    device_problem = device_ok(values["device"])
    if device_problem:
        st.warning(f"{fmt.plain(device_problem)}. Pick auto or cpu.", icon=":material/memory:")

run_id = find_run_id()
run = store.get(run_id) if run_id else None
busy = bool(manager.active())

buttons = st.columns([1, 1, 4], vertical_alignment="center")
start = buttons[0].button("Start", key="train_start", type="primary", icon=":material/play_arrow:",
                          disabled=busy or bool(device_problem), width="stretch")
if busy:
    buttons[2].caption("A run is in progress; start another when it ends (or stop it).")

if start:
    try:
        if not data_name:
            raise DataError("name an image folder first")
        config = TrainConfig(**{k: v for k, v in values.items()})
        data = DataConfig(name=data_name, root=root, download=download)
        st.session_state[RUN_KEY] = manager.submit(spec, config, data)
        st.rerun()
    except (DataError, ConfigError) as error:
        st.error(f"No run started: {fmt.plain(error)}", icon=":material/error:")


# ------------------------------------------------------------------------------------------ the run
def show_run(run_id: str, was_active: bool) -> None:
    try:
        run = store.get(run_id)
    except RunError:
        st.info("That run was deleted.")
        return
    info = run.info()
    if info["test_accuracy"] is None:  # the latest evaluation while the run goes on
        info["test_accuracy"] = (run.status().get("progress") or {}).get("test_accuracy")
    status = info["status"]
    active = status in ACTIVE_STATUSES
    if active != was_active:  # started or ended since the page was drawn: redraw it all (buttons, timer)
        st.rerun()
    st.subheader(fmt.plain(info["label"], 80), anchor=False)
    if active and st.button("Stop", key="train_stop", icon=":material/stop:"):
        manager.stop(run_id)
        st.toast("Stopping after the current step…")
    total = info["total_steps"]
    step = info["step"] or 0
    if status == "diverged":
        st.error(f"**Diverged**: {fmt.plain(run.status().get('message') or 'the loss became NaN or infinite')}. "
                 "Its curves up to that point are below; try a lower learning rate.", icon=":material/warning:")
    elif status == "failed":
        st.error(f"**Failed**: {fmt.plain(info['error'])}", icon=":material/error:")
    elif status == "interrupted":
        st.warning("**Interrupted**: the server stopped while this run was going; its records so far are kept.",
                   icon=":material/power_off:")
    fraction = min(1.0, step / total) if total else (1.0 if status == "completed" else 0.0)
    st.progress(fraction, text=f"{status} · step {step:,} of {total:,}" if total else status)
    cols = st.columns(5)
    cols[0].metric("Status", status)
    cols[1].metric("Train loss", fmt_number(info["train_loss"]))
    cols[2].metric("Test accuracy", fmt_pct(info["test_accuracy"]))
    cols[3].metric("Images/s", fmt_number(info["images_per_second"], "{:,.0f}"))
    cols[4].metric("Device", info["device"] or "–")
    records = run.metrics()
    if any(r.get("kind") in ("step", "epoch", "eval") for r in records):
        st.plotly_chart(train_charts.curves([(info["label"], records)]), width="stretch", key="train_curves")
    elif active:
        st.caption("Waiting for the first records…")
    matrix = grad_heatmap(records)
    if matrix["steps"]:
        st.markdown("**Gradient norm per layer during training** (every "
                    f"{run.settings().get('train', {}).get('grad_every', '?')} steps; colour is log₁₀ of "
                    "‖∂loss/∂W‖). Rows fading to dark at the top mean the early layers barely learn.")
        st.plotly_chart(train_charts.grad_heatmap(matrix), width="stretch", key="train_heatmap")


def fmt_number(value, pattern: str = "{:.4g}") -> str:
    return pattern.format(value) if isinstance(value, (int, float)) else "–"


def fmt_pct(value) -> str:
    return f"{value:.1%}" if isinstance(value, (int, float)) else "–"


if run is None:
    st.info("No runs yet. Pick the data and settings above and press **Start**.", icon=":material/model_training:")
else:
    was_active = run.status()["status"] in ACTIVE_STATUSES
    st.fragment(run_every=REFRESH_SECONDS if was_active else None)(show_run)(run.id, was_active)

# ------------------------------------------------------------------------------------------ He et al.
from ui import degradation  # noqa: E402  (its own section, below the single run)

degradation.section(manager, data_name, root, download, values, busy)
