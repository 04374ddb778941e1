"""Train: the current network on a data set, with live curves and gradient norms.

Start hands a run request to the executor (a worker process, or a Ray cluster) and returns at once: the
run is queued behind any others and trains outside the web server. Everything shown here is read back
from the run store, so a reload, a page switch or a restart of the server neither stops a run nor loses it.
"""

from __future__ import annotations

import streamlit as st

from archs.training.config import ACTIVE_STATUSES, ConfigError, DataConfig, TrainConfig
from archs.training.data import DATASETS, DataError, dataset_info
from archs.training.datadir import downloads_allowed, folder_name, image_folders
from archs.training.device import resolve_device
from archs.training.limits import LimitError
from archs.training.recipes import RECIPES
from archs.training.request import RunRequest
from archs.training.store import RunError, grad_heatmap
from ui import draft, fmt, identity, runs, settings, train_charts
from ui.train_form import apply_recipe, config_controls, field_control

FOLDER = "folder"
RUN_KEY = "train_run"
MAIN_FIELDS = ("epochs", "batch_size", "max_steps", "optimizer", "lr", "target_accuracy", "device")
MORE_FIELDS = ("schedule", "warmup_steps", "warmup_fraction", "weight_decay", "decay_all", "momentum",
               "label_smoothing", "augment", "seed", "log_every", "grad_every", "eval_every", "eval_from", "amp",
               "channels_last", "compile")

settings.init()  # idempotent; the server's first request may open this page without dashboard.py
st.title("Train")
spec = draft.spec()
executor = runs.executor()
store = executor.store
me = identity.current()


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


def my_run_id() -> str | None:
    """The run to show: the one this session started last (if it still exists), else this owner's newest
    run (a reload is a new session), else none: other people's runs are on the Runs page."""
    wanted = st.session_state.get(RUN_KEY)
    if wanted:
        try:
            store.get(wanted)
            return wanted
        except RunError:
            st.session_state.pop(RUN_KEY, None)
    mine = store.list_runs(kind="train", owner=me.owner, limit=1) if me.may_act else []
    return mine[0]["id"] if mine else None


# ------------------------------------------------------------------------------------------ settings
st.markdown(f"Trains **{fmt.plain(spec.name, 60)}** ({spec.num_params():,} parameters, input "
            f"{spec.in_channels}×{spec.input_size}×{spec.input_size}: the network from the Build page). The data "
            "is resized and its channels fitted to that input; the number of classes follows the data.")

with st.container(border=True):
    st.subheader("Data", anchor=False)
    names = list(DATASETS) + [FOLDER]
    settings.sticky("train.data", "digits")
    data_cols = st.columns([2, 3, 1], vertical_alignment="bottom")
    source = data_cols[0].selectbox("Data set", names, key="train.data",
                                    format_func=lambda n: "Image folder…" if n == FOLDER else DATASETS[n].title)
    # Data is read only inside the server's data folder ($ARCHS_DATA_DIR): an image folder is picked among its
    # sub-folders and named relative to it ("folder:<relative>", resolved and confined again by the library
    # wherever it is read); torchvision data sets are read from the folder itself (no root). No typed path.
    root, download, data_name = None, False, ""
    if source == FOLDER:
        found = image_folders()
        settings.sticky("train.folder", found[0] if found else None)
        chosen = st.session_state.get("train.folder")
        # a choice no longer (or never) offered stays visible, so Start refuses it rather than using another
        stale = [chosen] if isinstance(chosen, str) and chosen and chosen not in found else []
        if found or stale:
            picked = data_cols[1].selectbox(
                "Image folder", found + stale, key="train.folder",
                format_func=lambda f: f if f in found else f"{f} (not offered)",
                help="An image folder in the server's data folder (ImageFolder layout: <folder>/<class>/*, split "
                     "80/20, or <folder>/train/<class>/* and <folder>/test/<class>/*).")
            data_name = folder_name(picked) if picked else ""
        else:
            data_cols[1].caption("No image folders in the server's data folder: the operator can add one there "
                                 "(ImageFolder layout: <folder>/<class>/*).")
    else:
        data_name = source
        if DATASETS[source].source == "torchvision":
            if downloads_allowed():
                settings.sticky("train.download", False)
                download = data_cols[2].checkbox("Download if missing", key="train.download",
                                                 help="Into the server's data folder; only where this machine "
                                                      "can reach the internet.")
                st.caption("Read from the server's data folder.")
            else:
                st.caption("Read from the server's data folder; the operator has not allowed downloads (they "
                           "turn them on by starting the server with ARCHS_ALLOW_DOWNLOAD=1, as `make run` on a "
                           "laptop does).")
    if data_name:
        st.caption(fmt.plain(dataset_info(data_name).description or dataset_info(data_name).title))

with st.container(border=True):
    st.subheader("Training", anchor=False)
    settings.sticky("train.recipe", "default")
    recipe = st.selectbox("Recipe", list(RECIPES), key="train.recipe", on_change=apply_recipe,
                          args=("train", "train.recipe"), help="Fills the settings below (they stay editable): "
                          + " ".join(f"**{r.name}**: {r.description}" for r in RECIPES.values()))
    values = config_controls(TrainConfig, MAIN_FIELDS, "train", columns=3, special={"device": device_control})
    with st.expander("More settings"):
        values.update(config_controls(TrainConfig, MORE_FIELDS, "train", columns=3))
    device_problem = device_ok(values["device"]) if executor.runs_here else None  # elsewhere, other devices
    if device_problem:
        st.warning(f"{fmt.plain(device_problem)}. Pick auto or cpu.", icon=":material/memory:")

cap = executor.limits.max_steps
if cap and values.get("max_steps") is None:
    st.caption(f"This server trains at most {cap:,} steps per run: a run without its own step limit stops there.")
buttons = st.columns([1, 5], vertical_alignment="center")
start = buttons[0].button("Start", key="train_start", type="primary", icon=":material/play_arrow:",
                          disabled=bool(device_problem) or not me.may_act, width="stretch",
                          help=None if me.may_act else identity.LOG_IN_TO_ACT)
buttons[1].caption(("" if me.may_act else f"**{identity.LOG_IN_TO_ACT}** ") + runs.limits_caption(executor)
                   + " Start queues your run behind any others; it never waits for this page.")

if start:
    try:
        if not data_name:
            raise DataError("name an image folder first")
        request = RunRequest(spec, TrainConfig(**values), DataConfig(name=data_name, root=root, download=download),
                             owner=me.owner, owner_name=me.name, recipe=recipe)
        st.session_state[RUN_KEY] = executor.submit(request)
        st.rerun()
    except (DataError, ConfigError, LimitError, RunError) as error:
        st.error(f"No run started: {fmt.plain(error)}", icon=":material/error:")


# ------------------------------------------------------------------------------------------ the run
def show_run(run_id: str, was_active: bool) -> None:
    try:
        run = store.get(run_id)
    except RunError:
        st.info("That run was deleted.")
        return
    info = run.row()
    queue = executor.queue()  # not the store's: a Ray executor's queue is Ray's
    info["queue_position"] = queue.index(run_id) + 1 if run_id in queue else None
    status_data = run.status()
    if info["test_accuracy"] is None:  # the latest evaluation while the run goes on
        info["test_accuracy"] = (status_data.get("progress") or {}).get("test_accuracy")
    status = info["status"]
    active = status in ACTIVE_STATUSES
    if active != was_active:  # started or ended since the page was drawn: redraw it all (buttons, timer)
        st.rerun()
    head = st.columns([5, 1], vertical_alignment="center")
    head[0].subheader(fmt.plain(info["label"], 80), anchor=False)
    if active and head[1].button("Stop", key="train_stop", icon=":material/stop:", width="stretch"):
        try:
            executor.stop(run_id, owner=me.owner)
            st.toast("Stopping…")
        except RunError as error:
            st.error(fmt.plain(error))
    total = info["total_steps"]
    step = info["step"] or 0
    if status == "diverged":
        st.error(f"**Diverged**: {fmt.plain(status_data.get('message') or 'the loss became NaN or infinite')}. "
                 "Its curves up to that point are below; try a lower learning rate.", icon=":material/warning:")
    elif status == "failed":
        st.error(f"**Failed**: {fmt.plain(info['error'])}", icon=":material/error:")
    elif status == "interrupted":
        st.warning(f"**Interrupted**: {fmt.plain(info['error'] or 'the run stopped without an end')}; its records "
                   "so far are kept.", icon=":material/power_off:")
    fraction = min(1.0, step / total) if total else (1.0 if status == "completed" else 0.0)
    where = runs.where_text(info)
    st.progress(fraction, text=f"{where} · step {step:,} of {total:,}" if total else where)
    st.caption(f"Queued at {runs.clock(info['queued_at'])} · started {runs.clock(info['started_at'])}"
               + (f" · ended {runs.clock(info['finished_at'])}" if info["finished_at"] else "")
               + f" · run {run_id}")
    cols = st.columns(5)
    cols[0].metric("Status", status)
    cols[1].metric("Train loss", fmt_number(info["train_loss"]))
    cols[2].metric("Test accuracy", fmt_pct(info["test_accuracy"]))
    cols[3].metric("Images/s", fmt_number(info["images_per_second"], "{:,.0f}"))
    cols[4].metric("Device", info["device"] or "–")
    if not active:
        show_charts(run_id, False)


def show_charts(run_id: str, live: bool, curves: bool = True, heatmap: bool = True) -> None:
    """The run's curves and gradient-norm heatmap (each can be left out: a live page redraws them in
    fragments of their own, at different rates)."""
    try:
        run = store.get(run_id)
    except RunError:
        return
    if live and run.status().get("status") not in ACTIVE_STATUSES:
        return  # the status fragment redraws the whole page, charts included
    records = run.chart_metrics()  # the points the charts draw, picked in SQL (a long run is never read whole)
    if curves:
        if any(r.get("kind") in ("step", "epoch", "eval") for r in records):
            label = run.settings().get("label") or run_id
            st.plotly_chart(train_charts.curves([(label, records)]), width="stretch", key="train_curves",
                            config=runs.LIVE_CHART if live else None)
        elif live:
            st.caption("Waiting for the first records…")
    matrix = grad_heatmap(records) if heatmap else {"steps": []}
    if matrix["steps"]:
        st.markdown("**Gradient norm per layer during training** (every "
                    f"{run.settings().get('train', {}).get('grad_every', '?')} steps; colour is log₁₀ of "
                    "‖∂loss/∂W‖). Rows fading to dark at the top mean the early layers barely learn.")
        st.plotly_chart(train_charts.grad_heatmap(matrix), width="stretch", key="train_heatmap",
                        config=runs.LIVE_CHART if live else None)


def fmt_number(value, pattern: str = "{:.4g}") -> str:
    return pattern.format(value) if isinstance(value, (int, float)) else "–"


def fmt_pct(value) -> str:
    return f"{value:.1%}" if isinstance(value, (int, float)) else "–"


run_id = my_run_id()
others = [r for r in executor.active() if r != run_id]
if others:
    st.caption(f"{len(others)} other run{'s are' if len(others) != 1 else ' is'} running or waiting: see **Runs**.")
if run_id is None:
    st.info("No runs of yours yet. Pick the data and settings above and press **Start**.",
            icon=":material/model_training:")
else:
    was_active = store.get(run_id).status()["status"] in ACTIVE_STATUSES
    st.fragment(run_every=runs.STATUS_SECONDS if was_active else None)(show_run)(run_id, was_active)
    if was_active:  # each chart in a fragment of its own: a plotly redraw is most of what a live page costs
        st.fragment(run_every=runs.CHART_SECONDS)(show_charts)(run_id, True, heatmap=False)
        st.fragment(run_every=runs.HEATMAP_SECONDS)(show_charts)(run_id, True, curves=False)

# ------------------------------------------------------------------------------------------ He et al.
from ui import degradation  # noqa: E402  (its own section, below the single run)

degradation.section(executor, me, data_name, root, download, values)
