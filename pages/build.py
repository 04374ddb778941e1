"""Build: assemble a network from stages with sliders and see its size, cost and shape live."""

import streamlit as st

import archs
from archs import PRESETS, STAGE_TYPES, HeadSpec, NetSpec
from archs.budget import BudgetError
from archs.budget import check as check_budget
from archs.diagram import spec_to_dot
from ui import charts, compute, draft, fmt, form, inspect_views, settings

TABS = ["Per stage", "Diagram", "Layers", "Receptive field", "Measured cost", "Export"]

settings.init()  # idempotent; a server's very first request may open this page without dashboard.py
st.title("Build a network")
st.markdown(
    "Put a CNN together from stages (" + ", ".join(f"**{t.title}**" for t in STAGE_TYPES.values())
    + ") and watch what it costs. Start from a preset (or an empty network) on the left, then move any slider, "
    "or add, move or remove stages: the totals, per-stage bars, diagram and layer table on the right follow at "
    "once, and further tabs show each part's receptive field, its time and memory measured on this machine, and "
    "export it as code, ONNX or weights. "
    "**Gradients** shows how the gradient flows through this network at initialisation; **Compare** puts "
    "it next to another one.")

d = draft.current()
draft.absorb(d)
checked = draft.check(d)
if checked.spec is not None:
    draft.commit(checked.spec)
spec = draft.spec()
left, right = st.columns([5, 7], gap="large")


# ------------------------------------------------------------------------------------------ editor
def part_controls(section: str, part: draft.Part, index: int, count: int) -> None:
    """Move up/down, duplicate, remove: small buttons on one row."""
    cols = st.columns(4)
    for col, (action, label, icon, disabled) in zip(cols, (
            ("up", "Move up", ":material/arrow_upward:", index == 0),
            ("down", "Move down", ":material/arrow_downward:", index == count - 1),
            ("duplicate", "Duplicate", ":material/content_copy:", False),
            ("remove", "Remove", ":material/delete:", False))):
        col.button("", icon=icon, help=label, key=f"op.{part.uid}.{action}", disabled=disabled, width="stretch",
                   on_click=draft.part_op, args=(section, part.uid, action))


def part_editor(section: str, part: draft.Part, index: int, count: int, title: str) -> None:
    where = (section, index)
    error = checked.errors.get(where)
    label = checked.labels.get(where, STAGE_TYPES[part.type_name].title)
    # keyed, so the expander stays open while its label follows the sliders
    with st.expander(f"{title} · {label}", expanded=error is not None, key=f"open.{part.uid}",
                     icon=":material/error:" if error else None):
        if error:
            st.error(fmt.plain(error))
        if section == "stages":
            types = list(STAGE_TYPES)
            settings.sticky(part.type_key, part.type_name)
            st.selectbox("Stage type", types, key=part.type_key, format_func=lambda t: STAGE_TYPES[t].title,
                         help="Changing the type keeps the settings both types share.")
        part_controls(section, part, index, count)
        form.spec_form(STAGE_TYPES[part.type_name], part.values, part.key)


# ------------------------------------------------------------------------------------------ results
def layers_tab(shown: NetSpec, summary) -> None:
    table = compute.layer_table(shown)
    stages = list(dict.fromkeys(table["stage"]))
    filters = st.columns([4, 3, 2], vertical_alignment="bottom")
    settings.sticky("layer_stages", [])
    picked = filters[0].multiselect("Stages", stages, key="layer_stages", placeholder="All stages")
    deepest = int(table["depth"].max()) if len(table) else 1
    settings.sticky("layer_depth", min(3, deepest))
    if st.session_state["layer_depth"] > deepest:
        st.session_state["layer_depth"] = deepest
    depth = (filters[1].slider("Deepest level", 1, deepest, key="layer_depth",
                               help="1: stages only; higher: blocks, then layers.")
             if deepest > 1 else 1)
    settings.sticky("layer_leaves", False)
    leaves = filters[2].checkbox("Leaves only", key="layer_leaves")
    view = table[table["depth"] <= depth]
    if picked:
        view = view[view["stage"].isin(picked)]
    if leaves:
        view = view[view["leaf"]]
    st.caption(f"{len(view)} of {len(table)} modules (torchinfo, one {fmt.shape(summary.input_shape)} image). "
               "Receptive field: input pixels one output unit sees; jump: pixels between neighbouring units.")
    st.dataframe(view, hide_index=True, key="layer_table", column_config={
        "params": st.column_config.NumberColumn(format="localized"),
        "mult-adds": st.column_config.NumberColumn(format="localized")})


with right:
    if checked.errors:
        st.warning("These settings do not make a valid network yet (the error is shown next to the part at "
                   "fault). Below is the last valid network.", icon=":material/warning:")
    top = st.columns([3, 2], vertical_alignment="bottom")
    settings.declare("no_skips", "twin", False, settings.flag)
    no_skips = top[0].toggle("Without skips (plain twin)", key="no_skips",
                             help="The same network with every residual skip (and its shortcut conv) removed: "
                                  "the plain network He et al. compare ResNets with.")
    settings.declare("mem_batch", "batch", 32, settings.int_in(1, 4096))
    batch = top[1].number_input("Batch size for memory", min_value=1, max_value=4096, key="mem_batch",
                                help="Activation memory and mult-adds grow linearly with the batch.")
    shown = archs.plain_twin(spec) if no_skips else spec
    if no_skips and shown == spec:
        st.info("This network has no residual skips: its plain twin is itself.")
    summary = compute.summary(shown)
    try:  # the server's memory budget at this batch (archs.budget): what Measured cost and a run would refuse
        check_budget(shown, int(batch))
    except BudgetError as error:
        st.warning(fmt.plain(error), icon=":material/memory:")

    cols = [c for _ in range(2) for c in st.columns(2)]      # 2 x 2: full counts need the width
    cols[0].metric("Parameters", fmt.count(summary.total_params), border=True,
                   help=f"{fmt.count(summary.trainable_params)} trainable; {fmt.nbytes(summary.param_bytes)} "
                        "as float32.")
    cols[1].metric("Trainable", fmt.count(summary.trainable_params), border=True)
    cols[2].metric("Mult-adds / image", fmt.si(summary.mult_adds), border=True,
                   help=f"{fmt.count(summary.mult_adds)} multiply-adds for one "
                        f"{fmt.shape(summary.input_shape)} image; {fmt.si(summary.mult_adds * batch)} for the batch.")
    cols[3].metric(f"Activations, batch {batch}", fmt.nbytes(summary.activation_bytes * batch), border=True,
                   help="Memory of every layer's output, for the forward and backward pass, as torchinfo "
                        f"estimates it (float32): {fmt.nbytes(summary.activation_bytes)} per image.")
    st.caption(f"**{fmt.plain(shown.name, 60)}** · input {fmt.shape(summary.input_shape)} · "
               f"{len(shown.stages)} stages · {fmt.si(summary.mult_adds * batch)} mult-adds for a batch of "
               f"{batch}.")

    # only the open tab runs (on_change="rerun"): a slider move never waits for a tab nobody looks at
    settings.declare("build_tab", "tab", TABS[0], settings.one_of(TABS))
    tabs = dict(zip(TABS, st.tabs(TABS, key="build_tab", on_change="rerun")))
    if tabs["Per stage"].open:
        with tabs["Per stage"]:
            st.plotly_chart(charts.stage_bars(summary), key="stage_bars", config={"displayModeBar": False})
            st.dataframe(compute.stage_table(shown), hide_index=True, key="stage_table", column_config={
                "params": st.column_config.NumberColumn(format="localized"),
                "mult-adds": st.column_config.NumberColumn(format="localized")})
    if tabs["Diagram"].open:
        with tabs["Diagram"]:
            st.caption("One box per part, stages folded: type, blocks, output channels, parameters, output shape.")
            st.graphviz_chart(spec_to_dot(shown))
    if tabs["Layers"].open:
        with tabs["Layers"]:
            layers_tab(shown, summary)
    if tabs["Receptive field"].open:
        with tabs["Receptive field"]:
            inspect_views.receptive_field(shown)
    if tabs["Measured cost"].open:
        with tabs["Measured cost"]:
            inspect_views.measured_cost(shown, int(batch))
    if tabs["Export"].open:
        with tabs["Export"]:
            inspect_views.export(shown)


# the editor, drawn after the results so a fresh session's numbers reach the browser first (the columns keep
# their places): a page's first metric waited for the whole form of 50-odd widgets before
with left:
    settings.sticky("start_from", None)
    st.selectbox("Start from", [draft.EMPTY, *PRESETS], key="start_from", placeholder="Choose a preset…",
                 on_change=draft.load_choice,
                 help="Loads a whole network: torchvision's ResNets, DenseNet-121 and GoogLeNet, the d2l.ai "
                      "book's nets, He et al.'s CIFAR-10 ResNets and their plain twins, or nothing at all.")
    upload_error = st.session_state.get("upload_error")
    with st.expander("Save or load as JSON", icon=":material/save:", expanded=bool(upload_error)):
        st.caption("The address bar always holds this network, so copying it is enough to share it. "
                   "Or keep it as a file:")
        st.download_button("Download spec (JSON)", spec.to_json(), file_name=f"{spec.name or 'network'}.json",
                           mime="application/json", icon=":material/download:", key="download",
                           on_click="ignore")
        st.file_uploader("Load a spec (JSON)", type=["json"], key="upload", on_change=draft.upload,
                         help="A file saved here or written by hand; it is checked before anything changes.")
        if upload_error:
            st.error(upload_error)  # escaped in draft.read_upload

    st.subheader("Network", divider="gray")
    if checked.errors.get("net"):
        st.error(fmt.plain(checked.errors["net"]))
    main_fields = ("in_channels", "input_size", "num_classes", "norm", "activation")
    form.spec_form(NetSpec, d.net, d.net_key, only=main_fields)
    with st.expander("Name, initialisation, norm epsilon"):
        form.spec_form(NetSpec, d.net, d.net_key, only=("name", "init", "norm_eps"))

    st.subheader("Stem", divider="gray")
    if not d.stem:
        st.caption("No stem: the first stage reads the input directly.")
    for i, part in enumerate(d.stem):
        part_editor("stem", part, i, len(d.stem), f"Stem {i + 1}")
    st.button("Add a stem conv", icon=":material/add:", key="add_stem", on_click=draft.add_part, args=("stem",))

    st.subheader("Stages", divider="gray")
    if not d.stages:
        st.caption("No stages yet: add one below.")
    for i, part in enumerate(d.stages):
        part_editor("stages", part, i, len(d.stages), f"Stage {i + 1}")
    add_type, add_button = st.columns([3, 2], vertical_alignment="bottom")
    settings.sticky("add_type", "residual")
    add_type.selectbox("New stage type", list(STAGE_TYPES), key="add_type",
                       format_func=lambda t: STAGE_TYPES[t].title)
    add_button.button("Add stage", icon=":material/add:", key="add_stage", on_click=draft.add_part,
                      args=("stages",), width="stretch")

    st.subheader("Head", divider="gray")
    if checked.errors.get("head"):
        st.error(fmt.plain(checked.errors["head"]))
    form.spec_form(HeadSpec, d.head, d.head_key)
