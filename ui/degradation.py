"""The degradation experiment of He et al. (2016, Fig. 1) as one section of the Train page: one click queues
the four CIFAR nets (plain and residual, 20 and 56 layers) through :mod:`archs.studies.experiments` on one fixed
step budget; their curves are then plotted together with the library's verdicts.

The runs are ordinary runs of the run store in one group, so they survive reloads and show on the Runs page.
"""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from archs.studies.experiments import (
    DEGRADATION_PRESETS,
    DegradationSettings,
    degradation_summary,
    latest_degradation,
    submit_degradation,
)
from archs.training.config import ACTIVE_STATUSES, ConfigError
from archs.training.data import DataError
from archs.training.limits import LimitError
from archs.training.store import RunError

from . import fmt, runs, settings, train_charts

NETS = DEGRADATION_PRESETS
DEFAULTS = DegradationSettings()
BUDGETS = tuple(sorted({50, 100, DEFAULTS.steps, 300, 600, 1200, 2400}))
# (optimizer, learning rate, weight decay) by label; the first is the library's measured default
RECIPES = {
    f"Adam, lr {DEFAULTS.lr:g} (both effects within 5 CPU-minutes here)": (DEFAULTS.optimizer, DEFAULTS.lr,
                                                                              DEFAULTS.weight_decay),
    "SGD, lr 0.1, momentum 0.9, weight decay 1e-4 (He et al.)": ("sgd", 0.1, 1e-4),
}


def latest_group(store, owner: str | None = None) -> tuple[str | None, list[dict]]:
    """The newest experiment of ``owner`` (or of anyone, if they have none) and its runs."""
    newest = latest_degradation(store, owner)
    return (newest, store.list_runs(group=newest)) if newest else (None, [])


def section(executor, me, data_name: str, root, download: bool, values: dict) -> None:
    st.divider()
    st.header("Deeper is worse without skips: He et al., Fig. 1", anchor=False)
    st.markdown(
        "He et al. (2016) trained plain 20- and 56-layer CIFAR networks and saw the **deeper one reach a higher "
        "training error**: not overfitting, but an optimisation problem. With residual skips the 56-layer net "
        "trains at least as well as the 20-layer one. One click queues the four nets (`" + "`, `".join(NETS)
        + "`) on the data chosen above, adapted to it (its size, channels and classes), with the batch size "
        "and seed set above and the same number of steps each. They are queued like any run (side by side on a "
        "cluster, one after another on one CPU). "
        f"On Fashion-MNIST, {DEFAULTS.steps} steps of Adam took about 5 CPU-minutes for all four on 2 cores and "
        "showed both effects; He et al.'s SGD showed the plain gap but, this early, left resnet-56 above "
        "resnet-20.")
    cols = st.columns([2, 2, 3], vertical_alignment="bottom")
    settings.sticky("deg.steps", DEFAULTS.steps)
    steps = cols[0].select_slider("Steps per net", BUDGETS, key="deg.steps",
                                  help="A fixed budget of optimizer steps for each of the four nets.")
    settings.sticky("deg.recipe", next(iter(RECIPES)))
    recipe = cols[1].selectbox("Optimizer", list(RECIPES), key="deg.recipe",
                               help="He et al. used SGD at 0.1 (0.01 for the first steps of their deepest nets).")
    go = cols[2].button("Run the experiment", key="deg_start", icon=":material/science:",
                        disabled=not data_name or not me.may_act)
    if go:
        try:
            optimizer, lr, weight_decay = RECIPES[recipe]
            experiment = DegradationSettings(data=data_name, root=root, steps=int(steps), lr=lr, optimizer=optimizer,
                                             weight_decay=weight_decay, batch_size=int(values["batch_size"]),
                                             seed=int(values["seed"]))
            data = replace(experiment.data_config(), download=download)
            submit_degradation(executor, experiment, data_config=data, owner=me.owner, owner_name=me.name)
            st.toast("Started: a study of the four nets (on the Studies page too).")
            st.rerun()
        except (DataError, ConfigError, LimitError, RunError) as error:
            st.error(f"The experiment did not start: {fmt.plain(error)}", icon=":material/error:")

    group, rows = latest_group(executor.store, me.as_owner)  # None: anyone's newest
    if group is None:
        return
    active = executor.store.studies.get(group)["status"] == "running"

    def draw(was_active: bool) -> None:
        now = executor.store.list_runs(group=group)  # this group: a newer one of someone else's waits for a rerun
        summary = degradation_summary(executor.store, group)
        if (executor.store.studies.get(group)["status"] == "running") != was_active:
            st.rerun()
        order = {name: n for n, name in enumerate(NETS)}
        now = sorted(now, key=lambda r: order.get(r["network"], 99))
        done = sum(r["status"] not in ACTIVE_STATUSES for r in now)
        total = len(executor.store.studies.trials(group))
        st.caption(f"Latest experiment ({fmt.plain(group)}): {done} of {total} runs finished · " + " · ".join(
            f"{fmt.plain(r['label'])}: {r['status']}" for r in now))
        curves = [(r["label"], executor.store.get(r["id"]).chart_metrics(("step", "epoch", "eval"))) for r in now]
        if any(records for _, records in curves):
            st.plotly_chart(train_charts.curves(curves, height=420), width="stretch", key="deg_curves",
                            config=runs.LIVE_CHART if was_active else None)
            st.markdown(verdict(summary))
            st.caption(
                "What to look for: on the **training loss**, plain-56 above plain-20 is the degradation He et al. "
                "reported; resnet-56 at or below resnet-20 is what the skips fix. The verdicts compare the mean "
                "training loss over the last quarter of each run. On a short budget and a small data set the gap "
                "can be small, noisy, or absent, and test accuracy says little about it: these are single seeds, "
                "not the paper's 64k iterations on CIFAR-10. Runs that diverged show an ✕ where the loss broke.")

    st.fragment(run_every=runs.CHART_SECONDS if active else None)(draw)(active)  # its chart is most of a redraw


def verdict(summary: dict) -> str:
    """The library's two verdicts in words (or why there is none yet)."""
    loss = summary["final_train_loss"]

    def show(name: str) -> str:
        value = loss.get(name)
        return f"{value:.3f}" if isinstance(value, (int, float)) else "–"

    if not summary["done"]:
        prefix = "So far (runs still going): "
    else:
        prefix = "Final: "
    plain, resnet = summary["plain_degrades"], summary["resnet_not_worse"]
    words = []
    if plain is not None:
        words.append(f"plain-56 ({show('cifar-plain56')}) is {'**worse**' if plain else '**not worse**'} than "
                     f"plain-20 ({show('cifar-plain20')})")
    if resnet is not None:
        words.append(f"resnet-56 ({show('cifar-resnet56')}) is {'**not worse**' if resnet else '**worse**'} than "
                     f"resnet-20 ({show('cifar-resnet20')})")
    if not words:
        return prefix + "not enough records yet to compare."
    return prefix + "; ".join(words) + " (mean training loss, last quarter of each run)."
