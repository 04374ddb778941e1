"""The Compare page: the current network next to a preset or its own plain twin."""

from archs import PRESETS, plain_twin
from app_helpers import metric, open_app, run


def compare_page(**query):
    return run(open_app(**query).switch_page("pages/compare.py"))


def test_compare_with_a_preset_per_stage():
    at = compare_page(preset="cifar-resnet20")
    assert metric(at, "Parameters (B)") == "11,689,512"            # resnet18 by default
    table = at.dataframe[0].value
    assert list(table["part"]) == ["stem", "stage1", "stage2", "stage3", "stage4", "head"]
    assert table.loc[4, "A"] == "—" and table.loc[4, "output B"] == "512×7×7"
    assert list(table["params A"])[:4] == [s.params for s in plain_twin(PRESETS["cifar-resnet20"]).plan()][:4]
    assert len(at.get("plotly_chart")) == 2


def test_compare_with_the_plain_twin():
    at = compare_page(preset="resnet18")
    run(at.selectbox(key="compare_with").select("(this network without skips)"))
    twin = plain_twin(PRESETS["resnet18"])
    assert metric(at, "Parameters (B)") == f"{twin.num_params():,}"
    table = at.dataframe[0].value
    assert table["same output"].all() and (table["Δ params"] <= 0).all()
    fewer = 11_689_512 - twin.num_params()
    # an ASCII minus, so Streamlit draws the delta as a decrease (a Unicode minus reads as an increase)
    assert next(m for m in at.metric if m.label == "Parameters (B)").delta == f"-{fewer:,} vs A"


def test_compare_same_network_shows_no_difference():
    at = compare_page(preset="cifar-resnet20")
    run(at.selectbox(key="compare_with").select("cifar-resnet20"))
    assert (at.dataframe[0].value["Δ params"] == 0).all()
    assert all(m.delta == "same as A" for m in at.metric)
