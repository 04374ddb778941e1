"""Runs: every training run in the run store, their curves side by side, delete and download."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from archs.runs import ACTIVE_STATUSES, RunError, get_job_manager
from ui import fmt, state, train_charts

CONFIRM = "runs_confirm_delete"

state.init()  # idempotent; the server's first request may open this page without dashboard.py
st.title("Runs")
manager = get_job_manager()
store = manager.store
rows = store.list_runs()
if not rows:
    st.info(f"No runs in `{fmt.plain(store.root)}` yet. Start one on the **Train** page.",
            icon=":material/model_training:")
    st.stop()


def _started(value) -> str:
    return dt.datetime.fromtimestamp(value).strftime("%Y-%m-%d %H:%M") if isinstance(value, (int, float)) else ""


table = pd.DataFrame({
    "Run": [r["label"] for r in rows],
    "Network": [r["network"] for r in rows],
    "Data": [r["data"] for r in rows],
    "Status": [r["status"] for r in rows],
    "Steps": [r["step"] for r in rows],
    "Final loss": [r["train_loss"] for r in rows],
    "Test accuracy": [r["test_accuracy"] for r in rows],
    "Images/s": [r["images_per_second"] for r in rows],
    "Started": [_started(r["created"]) for r in rows],
    "Id": [r["id"] for r in rows],
})
st.dataframe(table, hide_index=True, width="stretch", column_config={
    "Final loss": st.column_config.NumberColumn(format="%.4f"),
    "Test accuracy": st.column_config.NumberColumn(format="percent"),
    "Images/s": st.column_config.NumberColumn(format="%.0f"),
})
st.caption("**interrupted**: the server stopped while the run was going; its records up to then are kept.")

labels = {r["id"]: f"{r['label']} · {r['status']} · {r['id']}" for r in rows}
ids = list(labels)

st.subheader("Curves", anchor=False)
state.sticky("runs_overlay", ids[:1])
st.session_state["runs_overlay"] = [i for i in st.session_state["runs_overlay"] if i in labels]
chosen = st.multiselect("Runs to overlay", ids, key="runs_overlay", format_func=labels.get)
if chosen:
    curves = [(store.get(i).info()["label"] + f" ({i[-6:]})", store.get(i).metrics()) for i in chosen]
    st.plotly_chart(train_charts.curves(curves, height=420), width="stretch", key="runs_curves")

st.subheader("One run", anchor=False)
state.sticky("runs_pick", ids[0])
if st.session_state["runs_pick"] not in labels:
    st.session_state["runs_pick"] = ids[0]
picked = st.selectbox("Run", ids, key="runs_pick", format_func=labels.get)
run = store.get(picked)
info = run.info()
if info["error"]:
    st.error(fmt.plain(info["error"]), icon=":material/error:")
cols = st.columns([1, 1, 1, 2], vertical_alignment="center")
spec_text = run.spec_json()
if spec_text is not None:
    cols[0].download_button("Spec (JSON)", spec_text, file_name=f"{picked}.spec.json", mime="application/json",
                            key="runs_dl_spec", icon=":material/download:", width="stretch")
if run.has_weights():
    weights = run.path / "weights.pt"  # read only when clicked: a ResNet-50's weights are ~100 MB
    cols[1].download_button("Weights (.pt)", weights.read_bytes, file_name=f"{picked}.pt",
                            mime="application/octet-stream", key="runs_dl_weights", icon=":material/download:",
                            width="stretch")
else:
    cols[1].caption("No weights saved (only completed and stopped runs have them).")
active = info["status"] in ACTIVE_STATUSES
if cols[2].button("Delete…", key="runs_delete", icon=":material/delete:", width="stretch"):
    st.session_state[CONFIRM] = picked
if st.session_state.get(CONFIRM) == picked:
    with st.container(border=True):
        st.warning(f"Delete **{fmt.plain(info['label'])}** ({picked}) and its weights and records for good?"
                   + (" It is still running: it will be stopped first." if active else ""),
                   icon=":material/delete_forever:")
        yes, no = st.columns(2)
        if yes.button("Yes, delete it", key="runs_delete_yes", type="primary", width="stretch"):
            st.session_state.pop(CONFIRM, None)
            try:
                manager.delete(picked)
                st.toast(f"Deleted {picked}.")
            except RunError as error:
                st.error(fmt.plain(error))
            else:
                st.rerun()
        if no.button("Cancel", key="runs_delete_no", width="stretch"):
            st.session_state.pop(CONFIRM, None)
            st.rerun()
