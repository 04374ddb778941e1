"""The Build page's receptive field, measured cost and export tabs, and the Gradients page's activation
health, driven through AppTest."""

import json

import pytest
from app_helpers import metric, open_app, run, texts
from run_fakes import FakeRun, install_for_app, trained_like

from archs import PRESETS


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


def test_measured_cost_asks_then_measures_with_progress_then_remembers():
    at = build_tab("Measured cost", preset="seed002-inception", batch="4")
    assert "takes about" in texts(at.info) and at.button(key="cost_measure")
    assert not at.get("plotly_chart")
    run(at.selectbox(key="cost_repeats").select(3))
    run(at.button(key="cost_measure").click())
    bar = at.get("progress")[0]
    assert bar.proto.value == 100 and bar.proto.text == "Measured: 3 repeats on cpu."
    assert metric(at, "Inference").endswith("ms") and metric(at, "Peak memory").endswith("iB")
    assert not at.info and "cost_measure" not in [b.key for b in at.button]      # the question is gone
    table = at.dataframe[0].value
    assert list(table["part"]) == ["stem", "stage1", "stage2", "stage3", "head"]
    assert table["% mult-adds"].sum() == pytest.approx(100) and table["% forward"].sum() == pytest.approx(100)
    assert (table["forward ms"] > 0).all() and (table["kept MiB"] >= 0).all()
    assert {c.key for c in at.get("plotly_chart")} == {"cost_shares", "cost_memory"}
    assert "MemTracker" in texts(at.caption)
    # the same network, batch and device again: shown at once, nothing to click
    again = build_tab("Measured cost", preset="seed002-inception", batch="4")
    again.session_state["cost_repeats"] = 3
    run(again)
    assert not again.get("progress") and metric(again, "Training step")
    # another batch is another measurement
    run(again.number_input(key="mem_batch").set_value(8))
    assert again.button(key="cost_measure")


def test_export_prepares_downloads():
    at = build_tab("Export", preset="cifar-resnet20")
    assert at.selectbox(key="export_format").value == "code"
    assert "needs only torch" in texts(at.caption)
    run(at.button(key="export_prepare").click())
    labels = [b.label for b in at.get("download_button")][1:]              # after Build's own JSON download
    assert [label.split(" · ")[0] for label in labels] == ["cifar_resnet20.py", "cifar_resnet20.pt",
                                                          "cifar_resnet20.json"]
    run(at.selectbox(key="export_format").select("safetensors"))
    assert at.button(key="export_prepare")                                 # a new format is prepared on request
    run(at.button(key="export_prepare").click())
    assert [b.label.split(" · ")[0] for b in at.get("download_button")][1:] == ["cifar_resnet20.safetensors",
                                                                                "cifar_resnet20.json"]


def test_export_a_stored_runs_trained_weights(monkeypatch):
    spec = PRESETS["seed002-inception"]
    install_for_app(monkeypatch, [FakeRun("20260101-x-abcdef", spec, trained_like(spec), label="digits run"),
                                  FakeRun("20260101-y-000000", spec, None, label="no weights")])
    at = build_tab("Export", preset="cifar-resnet20")
    options = at.selectbox(key="export_source").options
    assert len(options) == 2 and "digits run" in options[1]             # runs without weights are not offered
    run(at.selectbox(key="export_source").select("20260101-x-abcdef"))
    assert "Run **digits run (abcdef)**: seed002-inception" in texts(at.caption, raw=True).replace("\\", "")
    run(at.selectbox(key="export_format").select("pt"))
    run(at.button(key="export_prepare").click())
    assert [b.label.split(" · ")[0] for b in at.get("download_button")][1:] == ["seed002_inception.pt",
                                                                                "seed002_inception.json"]


def test_activation_health_with_the_plain_twin_then_a_stored_run(monkeypatch, tmp_path):
    """The stored run is a real one (its activations are measured by a worker process, never in the server)."""
    from run_fakes import real_run, use_real_store

    monkeypatch.undo()  # not the fake store of the other tests here
    use_real_store(monkeypatch, tmp_path / "runs")
    spec = PRESETS["cifar-resnet20"]
    run_id = real_run(tmp_path / "runs", spec, trained_like(spec), "trained net")
    at = open_app(preset="cifar-resnet20")
    at.session_state["grad_batch"] = 4
    run(at.switch_page("pages/gradients.py"))
    names = [trace["name"] for trace in figure(at, "health_chart")["data"]]
    assert names[::2] == ["cifar-resnet20 (with skips)", "plain twin"]
    table = at.dataframe[0].value
    assert table["block"].iloc[0] == "stem.0" and len(table) == 10
    assert list(table.columns) == ["block", *(f"{what} · {name}" for name in ("cifar-resnet20 (with skips)",
                                                                               "plain twin")
                                             for what in ("mean", "std", "dead"))]
    assert table["dead · plain twin"].iloc[1].endswith("/32")        # stage1.block1: two ReLUs of 16 channels
    assert "ReLU channels dead" in texts(at.markdown)
    run(at.selectbox(key="health_run").select(run_id))
    names = [trace["name"] for trace in figure(at, "health_chart")["data"]]
    assert names[::2] == [f"trained net ({run_id[-6:]}), trained", "cifar-resnet20 at initialisation"]
    assert "eval mode for the trained run" in texts(at.caption)
    assert at.query_params["hrun"] == run_id
    assert "in a worker process" in texts(at.caption)
