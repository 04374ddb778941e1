"""The Build page's receptive field and layer tabs, driven through AppTest. The measurements (measured cost, export,
gradients and activation health) run as quick jobs in workers: tests/test_measure_jobs.py."""

import json

import pytest
from app_helpers import open_app, run, texts
from run_fakes import install_for_app


@pytest.fixture(autouse=True)
def no_runs(monkeypatch):
    install_for_app(monkeypatch, [])


def build_tab(tab: str, **query):
    at = open_app(**query)
    at.session_state["build_tab"] = tab
    return run(at)


def figure(at, key):
    return json.loads(next(c for c in at.get("plotly_chart") if c.key == key).proto.spec)


def test_receptive_field_tab_per_part_against_the_input():
    at = build_tab("Receptive field", preset="resnet18")
    bars = figure(at, "rf_chart")["data"][0]
    assert bars["x"] == ["stem", "stage1", "stage2", "stage3", "stage4", "head"]
    assert bars["y"] == [11, 43, 99, 211, 435, 627]
    table = at.dataframe[0].value
    assert list(table["receptive field"]) == ["11", "43", "99", "211", "435", "627"]
    assert list(table["jump"])[:5] == ["4", "4", "8", "16", "32"] and table["jump"].iloc[-1] == "—"
    assert list(table["sees the whole input"]) == [False, False, False, False, True, True]
    assert ("From **stage4** on (orange), one unit sees at least the whole 224×224 input (435 pixels"
            in texts(at.markdown))
    assert at.query_params["tab"] == "Receptive field"


def test_where_the_field_covers_the_input_is_said():
    # seed004: 3x3 stem 3; stage 1, four 3x3 convs: 11; stage 2 strides: 13, then 25 (jump 2); stage 3: 29, 53
    at = build_tab("Receptive field", preset="seed004-resnet")
    assert "From **stage3** on (orange), one unit sees at least the whole 32×32 input (53 pixels" in texts(at.markdown)
    at = build_tab("Receptive field", preset="cifar-resnet20")     # stage 1 sees 15 pixels, stage 2 37
    assert "From **stage2** on" in texts(at.markdown)


def test_the_layer_table_has_every_modules_field():
    at = build_tab("Layers", preset="cifar-resnet20")
    at.session_state["layer_depth"] = 4
    table = run(at).dataframe[0].value.set_index("layer")
    assert table.loc["stem.0.layer1.conv", "receptive field"] == "3"
    assert table.loc["stage2.block1.branch.conv1", ["receptive field", "jump"]].tolist() == ["17", "2"]
    assert table.loc["stage2.block1.shortcut", ["receptive field", "jump"]].tolist() == ["15", "2"]
    assert table.loc["head", "receptive field"] == "109" and table.loc["head", "jump"] == ""
