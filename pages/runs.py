"""Runs: every run in the run store (everyone's), a page of them at a time; their curves side by side; stop,
delete and download.

Everyone sees every run; only the one who started a run (or an administrator) can stop or delete it (see
``ui/identity.py``). The table reads one page of rows from the store's database, so it stays quick with
thousands of runs.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from archs.training.config import ACTIVE_STATUSES
from archs.training.store import RunError
from archs.training.stored import metrics_csv_of
from ui import fmt, identity, runs, settings, train_charts

CONFIRM = "runs_confirm_delete"
PAGE_SIZE = 100
STATUSES = ("queued", "running", "completed", "stopped", "diverged", "failed", "interrupted")

settings.init()  # idempotent; the server's first request may open this page without dashboard.py
st.title("Runs")
executor = runs.executor()
store = executor.store
me = identity.current()
if not me.may_act:
    st.info(identity.LOG_IN_TO_ACT, icon=":material/login:")
st.caption(runs.limits_caption(executor) + f" Run store: {fmt.code(store.db_path)}.")
try:
    problems = store.health()
except RunError as error:
    problems = [str(error)]
for problem in problems:
    st.error(f"**The run store has a problem**: {fmt.plain(problem)}. Runs may not start or record until it is "
             "fixed; nothing stored so far is lost.", icon=":material/database:")

filters = st.columns([2, 2, 3, 1], vertical_alignment="bottom")
settings.sticky("runs_whose", "everyone")
whose = filters[0].segmented_control("Whose", ["everyone", "mine"], key="runs_whose",
                                     format_func={"everyone": "Everyone's", "mine": "Mine"}.get)
settings.sticky("runs_status", None)
status = filters[1].selectbox("Status", STATUSES, key="runs_status", index=None, placeholder="any status")
settings.sticky("runs_search", "")
search = filters[2].text_input("Search", key="runs_search", placeholder="label, network or id", max_chars=100)
query = {"kind": "train", "owner": (me.as_owner or "") if whose == "mine" else None, "status": status,
         "search": search.strip() or None}
try:
    total = store.count_runs(**query)
except RunError as error:
    st.error(fmt.plain(error), icon=":material/error:")
    settings.end_page()
pages = max(1, -(-total // PAGE_SIZE))
settings.sticky("runs_page", 1)
if not 1 <= st.session_state["runs_page"] <= pages:
    st.session_state["runs_page"] = 1
page = filters[3].number_input("Page", min_value=1, max_value=pages, key="runs_page")
rows = store.list_runs(**query, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
if not rows:
    filtered = whose == "mine" or status or search.strip()
    st.info("No runs match these filters." if filtered else
            f"No runs in {fmt.code(store.root)} yet. Start one on the **Train** page.",
            icon=":material/model_training:")
    settings.end_page()
first = (page - 1) * PAGE_SIZE + 1
st.caption(f"Runs {first:,}–{first + len(rows) - 1:,} of {total:,}, newest first.")

table = pd.DataFrame({
    "Run": [r["label"] for r in rows],
    "Owner": [identity.describe(r["owner"], r["owner_name"]) for r in rows],
    "Network": [r["network"] for r in rows],
    "Data": [r["data"] for r in rows],
    "Status": [r["status"] for r in rows],
    "Where": [runs.where_text(r) for r in rows],
    "Steps": [r["step"] for r in rows],
    "Final loss": [r["train_loss"] for r in rows],
    "Test accuracy": [r["test_accuracy"] for r in rows],
    "Images/s": [r["images_per_second"] for r in rows],
    "Queued": [runs.clock(r["queued_at"] or r["created"]) for r in rows],
    "Started": [runs.clock(r["started_at"]) for r in rows],
    "Id": [r["id"] for r in rows],
})
st.dataframe(table, hide_index=True, width="stretch", column_config={
    "Final loss": st.column_config.NumberColumn(format="%.4f"),
    "Test accuracy": st.column_config.NumberColumn(format="percent"),
    "Images/s": st.column_config.NumberColumn(format="%.0f"),
})
st.caption("**failed**: the run raised an error, or its worker process died (killed, out of memory); "
           "**interrupted**: whatever relayed the run's records went away. Records up to then are kept. Every run "
           f"also writes TensorBoard event files into its folder: {fmt.code(f'tensorboard --logdir {store.root}')}.")

by_id = {r["id"]: r for r in rows}
labels = {i: f"{r['label']} · {r['status']} · {identity.describe(r['owner'], r['owner_name'])} · {i}"
          for i, r in by_id.items()}
ids = list(labels)

st.subheader("Curves", anchor=False)
settings.sticky("runs_overlay", ids[:1])
st.session_state["runs_overlay"] = [i for i in st.session_state["runs_overlay"] if i in labels]
chosen = st.multiselect("Runs to overlay", ids, key="runs_overlay", format_func=labels.get,
                        help="Any of the runs listed above (change the filters or the page for others).")
if chosen:
    # only the points the chart draws: a few hundred per run, picked in SQL (never a long run's records whole)
    curves = [(by_id[i]["label"] + f" ({i[-6:]})", store.get(i).chart_metrics(("step", "epoch", "eval")))
              for i in chosen]
    st.plotly_chart(train_charts.curves(curves, height=420), width="stretch", key="runs_curves")

st.subheader("One run", anchor=False)
settings.sticky("runs_pick", ids[0])
if st.session_state["runs_pick"] not in labels:
    st.session_state["runs_pick"] = ids[0]
picked = st.selectbox("Run", ids, key="runs_pick", format_func=labels.get)
run = store.get(picked)
info = by_id[picked]
mine = me.may_act and executor.may_act(run, me.owner)
admin = me.may_act and executor.limits.is_admin(me.owner)
try:  # what someone looks at is spared by ARCHS_MAX_RUNS_KEPT's pruning for a while (a write once a minute at most)
    store.mark_viewed([picked, *chosen])
except RunError:
    pass
if info["error"]:
    st.error(fmt.plain(info["error"]), icon=":material/error:")
cols = st.columns([1, 1, 1, 1, 1, 1], vertical_alignment="center")
spec_text = run.spec_json()
if spec_text is not None:
    cols[0].download_button("Spec (JSON)", spec_text, file_name=f"{picked}.spec.json", mime="application/json",
                            key="runs_dl_spec", icon=":material/download:", width="stretch")
cols[4].download_button("Metrics (CSV)", lambda: metrics_csv_of(run), file_name=f"{picked}.metrics.csv",
                        mime="text/csv", key="runs_dl_csv", icon=":material/download:", width="stretch",
                        help="Every step, epoch and evaluation record, one row each.")
if run.has_weights():  # a regular file of the run's own: a link planted there is neither listed nor read
    # read only when clicked (a ResNet-50's weights are ~100 MB), and then without following a link
    cols[1].download_button("Weights (.pt)", run.weights_bytes, file_name=f"{picked}.pt",
                            mime="application/octet-stream", key="runs_dl_weights", icon=":material/download:",
                            width="stretch")
else:
    cols[1].caption("No weights saved (only completed and stopped runs have them).")
active = info["status"] in ACTIVE_STATUSES
not_yours = (None if mine else f"Started by {identity.describe(info['owner'], info['owner_name'])}: only they can"
             if me.may_act else "Log in first: only its owner can")
if active and cols[2].button("Stop", key="runs_stop", icon=":material/stop:", width="stretch", disabled=not mine,
                             help=not_yours and f"{not_yours} stop it."):
    try:
        executor.stop(picked, owner=me.owner)
        st.toast(f"Stopping {picked}…")
    except RunError as error:
        st.error(fmt.plain(error))
if cols[3].button("Delete…", key="runs_delete", icon=":material/delete:", width="stretch", disabled=not mine,
                  help=not_yours and f"{not_yours} delete it."):
    st.session_state[CONFIRM] = picked
if st.session_state.get(CONFIRM) == picked and mine:
    with st.container(border=True):
        st.warning(f"Delete **{fmt.plain(info['label'])}** ({picked}) and its weights and records for good?"
                   + (" It is still active: it will be stopped first." if active else ""),
                   icon=":material/delete_forever:")
        yes, no = st.columns(2)
        if yes.button("Yes, delete it", key="runs_delete_yes", type="primary", width="stretch"):
            st.session_state.pop(CONFIRM, None)
            try:
                executor.delete(picked, owner=me.owner)
                st.toast(f"Deleted {picked}.")
            except RunError as error:
                st.error(fmt.plain(error))
            else:
                st.rerun()
        if no.button("Cancel", key="runs_delete_no", width="stretch"):
            st.session_state.pop(CONFIRM, None)
            st.rerun()
if admin:  # an administrator's pin: pruning (ARCHS_MAX_RUNS_KEPT) never deletes a pinned run
    pinned = run.pinned()
    if cols[5].button("Unpin" if pinned else "Pin", key="runs_pin", icon=":material/keep:", width="stretch",
                      help="Pinned runs are never pruned to keep the store under ARCHS_MAX_RUNS_KEPT."):
        try:
            store.pin(picked, not pinned, admin=True)
            st.toast(f"{'Unpinned' if pinned else 'Pinned'} {picked}.")
        except RunError as error:
            st.error(fmt.plain(error))
        else:
            st.rerun()
with st.expander("Log", icon=":material/terminal:"):
    if mine:  # a log can name the server's folders: its owner's and the administrators' only
        st.code(executor.logs(picked, owner=me.owner) or "Nothing logged yet.", language=None)
        st.caption("The last 200 lines the run's worker wrote: its start and end, warnings, a crash's last words.")
    else:
        st.caption(f"{not_yours} read its log: a log can name this server's folders.")
