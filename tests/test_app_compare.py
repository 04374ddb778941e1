"""The Compare page: each side from the Build page, its plain twin, a preset, a spec file or a stored run."""

from dataclasses import replace

import pytest
from app_helpers import metric, open_app, run, texts
from run_fakes import FakeRun, curve, install_for_app

import archs
from archs import PRESETS, plain_twin


@pytest.fixture(autouse=True)
def no_runs(monkeypatch):
    install_for_app(monkeypatch, [])


def compare_page(**query):
    return run(open_app(**query).switch_page("pages/compare.py"))


def test_compare_with_a_preset_per_stage():
    at = compare_page(preset="cifar-resnet20")
    assert metric(at, "Parameters (B)") == "11,689,512"            # resnet18 by default
    table = at.dataframe[0].value
    assert list(table["part"]) == ["stem", "stage1", "stage2", "stage3", "stage4", "head"]
    assert table.loc[4, "A"] == "—" and table.loc[4, "output B"] == "512×7×7"
    assert list(table["params A"])[:4] == [s.params for s in plain_twin(PRESETS["cifar-resnet20"]).plan()][:4]
    # receptive fields side by side: He et al.'s 3x3 convs against ResNet-18's 7x7/2 stem and pool
    assert list(table["receptive field A"]) == ["3", "15", "37", "81", "—", "109"]
    assert list(table["receptive field B"]) == ["11", "43", "99", "211", "435", "627"]
    assert len(at.get("plotly_chart")) == 2
    assert "b" not in at.query_params                              # the default choice stays out of the link


def test_compare_with_the_plain_twin():
    at = compare_page(preset="resnet18")
    run(at.selectbox(key="compare_b").select("twin"))
    twin = plain_twin(PRESETS["resnet18"])
    assert metric(at, "Parameters (B)") == f"{twin.num_params():,}"
    table = at.dataframe[0].value
    assert table["same output"].all() and (table["Δ params"] <= 0).all()
    fewer = 11_689_512 - twin.num_params()
    # an ASCII minus, so Streamlit draws the delta as a decrease (a Unicode minus reads as an increase)
    assert next(m for m in at.metric if m.label == "Parameters (B)").delta == f"-{fewer:,} vs A"
    assert at.query_params["b"] == "twin"


def test_compare_same_network_shows_no_difference():
    at = compare_page(preset="cifar-resnet20")
    run(at.selectbox(key="compare_b").select("preset:cifar-resnet20"))
    assert (at.dataframe[0].value["Δ params"] == 0).all()
    assert all(m.delta == "same as A" for m in at.metric)


def test_a_from_a_preset_and_b_from_an_uploaded_file():
    at = compare_page(preset="cifar-resnet20")
    run(at.selectbox(key="compare_a").select("preset:seed004-resnet"))
    mine = replace(PRESETS["cifar-resnet56"], name="mine")
    run(at.file_uploader(key="compare_b_upload").upload("mine.json", mine.to_json().encode(), "application/json"))
    assert metric(at, "Parameters (B)") == f"{mine.num_params():,}"
    assert "A: seed004-resnet" in texts(at.markdown) and "B: mine (file)" in texts(at.markdown)
    assert at.session_state["spec"] == PRESETS["cifar-resnet20"]            # Build's network is untouched
    assert at.query_params["a"] == "preset:seed004-resnet"
    assert at.query_params["b"] == "spec:" + archs.encode_spec(mine)        # the link carries the file's network
    other = compare_page(**dict(at.query_params))
    assert metric(other, "Parameters (B)") == f"{mine.num_params():,}" and not other.warning


@pytest.mark.parametrize("content, says", [
    (b"{not json", "not valid JSON"),
    (PRESETS["resnet18"].to_json().replace('"blocks": 2', '"blocks": [2]', 1).encode(), "must be an integer, got a list"),
])
def test_a_bad_file_says_why_and_changes_nothing(content, says):
    at = compare_page(preset="cifar-resnet20")
    before = metric(at, "Parameters (B)")
    run(at.file_uploader(key="compare_b_upload").upload("bad.json", content, "application/json"))
    assert says in texts(at.error) and "bad.json" in texts(at.error)
    assert metric(at, "Parameters (B)") == before


def test_a_stored_run_brings_its_curves(monkeypatch):
    spec = PRESETS["seed004-resnet"]
    store = install_for_app(monkeypatch, [
        FakeRun("20260101-a-111111", spec, metrics=curve(4), label="first try"),
        FakeRun("20260101-b-222222", PRESETS["seed002-inception"], metrics=curve(6, 1.5), label="second try")])
    at = compare_page(preset="cifar-resnet20")
    run(at.selectbox(key="compare_b").select("run:20260101-a-111111"))
    assert metric(at, "Parameters (B)") == f"{spec.num_params():,}"
    assert len(at.get("plotly_chart")) == 3 and "B: first try (111111)" in texts(at.markdown)
    run(at.selectbox(key="compare_a").select("run:20260101-b-222222"))
    curves = at.get("plotly_chart")[2]
    names = {trace["name"] for trace in __import__("json").loads(curves.proto.spec)["data"]}
    assert names == {"A: second try (222222) · train", "A: second try (222222) · test",
                     "B: first try (111111) · train", "B: first try (111111) · test"}
    assert at.query_params["a"] == "run:20260101-b-222222"
    assert set(store.viewed) == {"20260101-a-111111", "20260101-b-222222"}  # shown: spared by pruning meanwhile


def test_a_link_to_a_run_this_store_does_not_have():
    at = compare_page(preset="cifar-resnet20", b="run:20990101-gone-000000")
    assert "Network B cannot be shown" in texts(at.error) and "20990101-gone-000000" in texts(at.error)


@pytest.mark.parametrize("value", ["preset:nope", "spec:garbage", "x" * 50, "run:../etc"])
def test_a_bad_choice_in_a_link_is_ignored_with_a_notice(value):
    at = compare_page(preset="cifar-resnet20", b=value)
    assert "Ignored from the link: b=" in texts(at.warning)
    assert metric(at, "Parameters (B)") == "11,689,512"                  # the default B
