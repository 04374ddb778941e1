"""The degradation experiment of He et al. (2016, Fig. 1) as one section of the Train page: queue the four
CIFAR nets (plain and residual, 20 and 56 layers) on one fixed step budget, then plot their curves together.

The runs are ordinary runs of the run store in one group, so they survive reloads and show on the Runs page.
"""

from __future__ import annotations

import time

import streamlit as st

from archs import PRESETS
from archs.data import DataError
from archs.runs import ACTIVE_STATUSES, DataConfig
from archs.train import ConfigError, TrainConfig

from . import fmt, state, train_charts

NETS = ("cifar-plain20", "cifar-plain56", "cifar-resnet20", "cifar-resnet56")
GROUP_PREFIX = "degradation"
BUDGETS = (100, 200, 400, 800, 1600, 3200)


def _submit(manager, data: DataConfig, config: TrainConfig) -> list[str]:
    """Queue the four runs, through ``archs.experiments`` when it offers a submit function."""
    try:
        from archs import experiments  # helper A's library function, when present
    except ImportError:
        experiments = None
    submit = getattr(experiments, "submit_degradation", None)
    if submit is not None:
        return list(submit(manager, data_config=data, train_config=config))
    group = f"{GROUP_PREFIX}-{time.strftime('%Y%m%d-%H%M%S')}"
    return [manager.submit(PRESETS[name], config, data, label=name, group=group) for name in NETS]


def latest_group(store) -> tuple[str | None, list[dict]]:
    groups = [r for r in store.list_runs() if str(r.get("group") or "").startswith(GROUP_PREFIX)]
    if not groups:
        return None, []
    newest = max(groups, key=lambda r: r.get("created") or 0)["group"]
    return newest, [r for r in groups if r["group"] == newest]


def section(manager, data_name: str, root, download: bool, values: dict, busy: bool) -> None:
    st.divider()
    st.header("Deeper is worse without skips: He et al., Fig. 1", anchor=False)
    st.markdown(
        "He et al. (2016) trained plain 20- and 56-layer CIFAR networks and saw the **deeper one reach a higher "
        "training error**: not overfitting, but an optimisation problem. With residual skips the 56-layer net "
        "trains at least as well as the 20-layer one. One click queues the four nets (`" + "`, `".join(NETS)
        + "`) on the data chosen above, adapted to it (its size, channels and classes), with the same seed, "
        "SGD with momentum as in the paper, and the same number of steps each. They run one after another.")
    cols = st.columns([2, 2, 3], vertical_alignment="bottom")
    state.sticky("deg.steps", 400)
    steps = cols[0].select_slider("Steps per net", BUDGETS, key="deg.steps",
                                  help="A fixed budget of optimizer steps for each of the four nets.")
    state.sticky("deg.lr", 0.1)
    lr = cols[1].select_slider("Learning rate", [0.01, 0.02, 0.05, 0.1], key="deg.lr",
                               help="He et al. used 0.1 (0.01 for the first steps of their deepest nets).")
    go = cols[2].button("Run the experiment", key="deg_start", icon=":material/science:", disabled=busy or not data_name)
    if go:
        try:
            config = TrainConfig(epochs=1000, max_steps=int(steps), batch_size=int(values["batch_size"]),
                                 optimizer="sgd", lr=float(lr), momentum=0.9, weight_decay=1e-4,
                                 warmup_steps=min(50, int(steps) // 10), device=values["device"],
                                 log_every=max(1, int(steps) // 50), grad_every=max(1, int(steps) // 20),
                                 seed=int(values["seed"]))
            ids = _submit(manager, DataConfig(name=data_name, root=root, download=download), config)
            st.toast(f"Queued {len(ids)} runs.")
            st.rerun()
        except (DataError, ConfigError) as error:
            st.error(f"The experiment did not start: {fmt.plain(error)}", icon=":material/error:")

    group, rows = latest_group(manager.store)
    if not rows:
        return
    active = any(r["status"] in ACTIVE_STATUSES for r in rows)

    def draw(was_active: bool) -> None:
        _, now = latest_group(manager.store)
        if any(r["status"] in ACTIVE_STATUSES for r in now) != was_active:
            st.rerun()
        order = {name: n for n, name in enumerate(NETS)}
        now = sorted(now, key=lambda r: order.get(r["network"], 99))
        done = sum(r["status"] not in ACTIVE_STATUSES for r in now)
        st.caption(f"Latest experiment ({fmt.plain(group)}): {done} of {len(now)} runs finished · " + " · ".join(
            f"{fmt.plain(r['label'])}: {r['status']}" for r in now))
        curves = [(r["label"], manager.store.get(r["id"]).metrics()) for r in now]
        if any(records for _, records in curves):
            st.plotly_chart(train_charts.curves(curves, height=420), width="stretch", key="deg_curves")
            st.caption(
                "What to look for: on the **training loss**, plain-56 above plain-20 is the degradation He et al. "
                "reported; resnet-56 at or below resnet-20 is what the skips fix. On a short budget and a small data "
                "set (the default digits are 8×8 images scaled up) the gap can be small, noisy, or absent, and test "
                "accuracy says little about it: these are single seeds, not the paper's 64k iterations on CIFAR-10. "
                "Runs that diverged show an ✕ where the loss broke.")

    st.fragment(run_every=1.0 if active else None)(draw)(active)
