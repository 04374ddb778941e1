"""The Build page, driven through AppTest: presets, every kind of control, stage operations, invalid input."""

from dataclasses import replace

import pytest
from app_helpers import metric, network_query, open_app, run, stage_key, stem_key, texts

import archs
from archs import PRESETS
from ui import draft


def shown_params(at) -> int:
    return int(metric(at, "Parameters").replace(",", ""))


def layer_table(at):
    assert at.session_state["build_tab"] == "Layers"        # only the open tab is drawn
    return at.dataframe[0].value


def open_tab(at, name: str):
    at.session_state["build_tab"] = name
    return run(at)


def current(at) -> archs.NetSpec:
    return at.session_state["spec"]


def test_first_screen_explains_the_tool_and_shows_the_default_network():
    at = open_app()
    assert at.title[0].value == "Build a network"
    intro = texts(at.markdown)
    assert "Start from a preset" in intro and "Gradients" in intro
    assert current(at) == PRESETS[draft.DEFAULT_NETWORK]
    assert metric(at, "Parameters") == "269,722"
    assert network_query(at) == {"preset": draft.DEFAULT_NETWORK}
    assert not at.warning


@pytest.mark.parametrize("name", list(PRESETS))
def test_selecting_a_preset_shows_its_exact_parameter_count(name):
    at = open_app()
    at.selectbox(key="start_from").select(name)
    run(at)
    spec = PRESETS[name]
    assert current(at) == spec
    assert shown_params(at) == spec.num_params()
    assert network_query(at) == {"preset": name}
    if name == "resnet50":
        assert metric(at, "Parameters") == "25,557,032"


def test_an_integer_slider_changes_the_network():
    at = open_app()
    at.slider(key=stage_key(at, 0, "blocks")).set_value(5)
    run(at)
    stages = list(PRESETS["cifar-resnet20"].stages)
    stages[0] = replace(stages[0], blocks=5)
    expected = replace(PRESETS["cifar-resnet20"], stages=tuple(stages))
    assert current(at) == expected
    assert shown_params(at) == expected.num_params()
    assert "spec" in at.query_params and "preset" not in at.query_params


def test_number_box_selectbox_checkbox_float_slider_text_and_network_controls():
    at = open_app()
    at.number_input(key=stage_key(at, 2, "channels")).set_value(80)
    at.selectbox(key=stage_key(at, 2, "block")).select("bottleneck")
    at.checkbox(key=stage_key(at, 0, "conv_bias")).check()
    d = at.session_state["draft"]
    at.slider(key=d.head_key("dropout")).set_value(0.5)
    at.text_input(key=d.net_key("name")).input("mine")
    at.slider(key=d.net_key("in_channels")).set_value(1)
    at.number_input(key=d.net_key("num_classes")).set_value(100)
    at.selectbox(key=d.net_key("activation")).select("gelu")
    run(at)
    base = PRESETS["cifar-resnet20"]
    s = list(base.stages)
    s[0] = replace(s[0], conv_bias=True)
    s[2] = replace(s[2], channels=80, block="bottleneck")
    expected = replace(base, name="mine", in_channels=1, num_classes=100, activation="gelu", stages=tuple(s),
                       head=replace(base.head, dropout=0.5))
    assert current(at) == expected
    assert shown_params(at) == expected.num_params()


def test_add_duplicate_move_and_remove_stages():
    at = open_app()
    at.selectbox(key="add_type").select("plain")
    at.button(key="add_stage").click()
    run(at)
    spec = current(at)
    assert [s.type_name for s in spec.stages] == ["residual"] * 3 + ["plain"]
    assert shown_params(at) == spec.num_params()

    plain_uid = at.session_state["draft"].stages[3].uid
    run(at.button(key=f"op.{plain_uid}.up").click())
    assert [s.type_name for s in current(at).stages] == ["residual", "residual", "plain", "residual"]

    run(at.button(key=f"op.{plain_uid}.duplicate").click())
    assert [s.type_name for s in current(at).stages] == ["residual", "residual", "plain", "plain", "residual"]
    assert shown_params(at) == current(at).num_params()

    for uid in [p.uid for p in at.session_state["draft"].stages if p.type_name == "plain"]:
        run(at.button(key=f"op.{uid}.remove").click())
    assert current(at) == PRESETS["cifar-resnet20"]
    assert network_query(at) == {"preset": "cifar-resnet20"}


def test_changing_a_stage_type_keeps_the_shared_fields():
    at = open_app()
    part = at.session_state["draft"].stages[1]
    at.selectbox(key=part.type_key).select("plain")
    run(at)
    stage = current(at).stages[1]
    assert stage.type_name == "plain" and stage.channels == 32 and stage.stride == 2
    assert at.slider(key=part.key("kernel_size")).value == 3


def test_empty_network_then_a_stage():
    at = open_app()
    run(at.selectbox(key="start_from").select(draft.EMPTY))
    assert current(at).stages == () and current(at).stem == ()
    assert metric(at, "Parameters") == "40"
    run(at.button(key="add_stage").click())
    assert len(current(at).stages) == 1 and shown_params(at) == current(at).num_params()


def test_invalid_combination_shows_the_error_at_the_stage_and_keeps_the_last_network():
    at = open_app()
    at.slider(key=stage_key(at, 1, "blocks")).set_value(4)
    run(at)
    valid = current(at)
    # a residual stage cannot combine pre-activation with an activation before the add
    at.checkbox(key=stage_key(at, 2, "preactivation")).check()
    at.checkbox(key=stage_key(at, 2, "activation_before_add")).check()
    run(at)
    assert current(at) == valid
    assert shown_params(at) == valid.num_params()
    errors = texts(at.error)
    assert "activation_before_add" in errors and "cannot be combined with preactivation" in errors
    assert any("Stage 3" in e.label for e in at.expander if "activation" in texts(e.error))
    assert "last valid network" in texts(at.warning)
    at.checkbox(key=stage_key(at, 2, "activation_before_add")).uncheck()
    run(at)
    assert not at.error and current(at).stages[2].preactivation


def test_a_map_shrunk_to_nothing_is_reported_at_the_part_at_fault():
    at = open_app()
    d = at.session_state["draft"]
    at.number_input(key=d.net_key("input_size")).set_value(8)
    at.slider(key=stem_key(at, 0, "kernel_size")).set_value(11)
    at.slider(key=stem_key(at, 0, "padding")).set_value(0)
    run(at)
    assert current(at) == PRESETS["cifar-resnet20"]
    assert "smaller than a 11x11 window" in texts(at.expander[[e.label.startswith("Stem 1") for e in at.expander]
                                                             .index(True)].error)


def test_without_skips_shows_the_plain_twin():
    at = open_app(preset="resnet18")
    run(at.toggle(key="no_skips").set_value(True))
    twin = archs.plain_twin(PRESETS["resnet18"])
    assert shown_params(at) == twin.num_params() < PRESETS["resnet18"].num_params()
    assert current(at) == PRESETS["resnet18"]            # the edited network itself is unchanged
    run(at.selectbox(key="start_from").select("cifar-plain20"))
    assert "no residual skips" in texts(at.info)


def test_memory_batch_and_layer_filters():
    at = open_app()
    one = metric(at, "Activations, batch 32")
    run(at.number_input(key="mem_batch").set_value(64))
    assert metric(at, "Activations, batch 64") != one
    open_tab(at, "Layers")
    run(at.multiselect(key="layer_stages").select("stage2"))
    table = layer_table(at)
    assert set(table["stage"]) == {"stage2"} and table["depth"].max() <= 3
    run(at.slider(key="layer_depth").set_value(1))
    assert list(layer_table(at)["layer"]) == ["stage2"]
    run(at.checkbox(key="layer_leaves").check())
    assert layer_table(at).empty


def test_the_network_survives_a_trip_to_another_page():
    at = open_app()
    key = stage_key(at, 0, "blocks")
    run(at.slider(key=key).set_value(4))
    edited = current(at)
    run(at.switch_page("pages/compare.py"))
    run(at.switch_page("pages/build.py"))
    assert current(at) == edited and at.slider(key=key).value == 4
    assert shown_params(at) == edited.num_params()
