"""The Studies page in AppTest: start a sweep from the page, follow it to its chart and trials, keep the study and
the chart's axis in the address, and refuse bad values with a message that names the field."""

from __future__ import annotations

import json
import time

import pytest
from app_helpers import open_app, run, texts
from test_app_train import stop_all

from archs.training import RunStore


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHS_RUNS_DIR", str(tmp_path / "runs"))
    yield tmp_path / "runs"
    stop_all(tmp_path / "runs")


def studies_page(**query):
    at = open_app(preset="seed002-inception", session="studies-apptest-session-01", **query)
    return run(at.switch_page("pages/studies.py"))


def fill_sweep(at, values: str):
    at.selectbox(key="sweep_path0").select("stages[*].branch1x1")
    run(at)
    at.text_input(key="sweep_values0").input(values)
    at.selectbox(key="sweep_data").select("digits")
    at.number_input(key="sweep_steps").set_value(4)
    at.number_input(key="sweep_batch").set_value(16)
    return run(at)


def test_an_empty_store_offers_to_start_one(runs_dir):
    at = studies_page()
    assert "No studies yet" in texts(at.info)
    assert at.button(key="study_claim_start") and at.button(key="study_sweep_start")
    assert "No finished training run" in texts(at.caption)


def test_a_bad_value_is_refused_naming_the_field_and_nothing_starts(runs_dir):
    at = fill_sweep(studies_page(), "4,-3")
    run(at.button(key="study_sweep_start").click())
    assert "No study started: stages[*].branch1x1" in texts(at.error)
    assert RunStore(runs_dir).studies.list() == []


def test_a_sweep_from_the_page_to_its_chart_with_the_study_and_axis_in_the_address(runs_dir):
    at = fill_sweep(studies_page(), "4,8")
    run(at.button(key="study_sweep_start").click())
    store = RunStore(runs_dir)
    [study] = store.studies.list()
    assert study["kind"] == "sweep" and study["owner"].startswith("session:")
    assert at.query_params["study"] == study["id"]
    deadline = time.monotonic() + 300
    while store.studies.get(study["id"])["status"] == "running":
        assert time.monotonic() < deadline, "the sweep did not finish"
        time.sleep(0.5)
    run(at)
    assert "completed · 2 of 2 trials ended" in at.get("progress")[0].proto.text
    table = at.dataframe[0].value
    assert list(table["stages[*].branch1x1"]) == ["4", "8"] and list(table["status"]) == ["completed"] * 2
    assert list(table["parameters"]) == [88_994, 91_762]
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # the study's and every stored run's
    run(at.segmented_control(key="studies_x").set_value("mult_adds"))
    assert at.query_params["sx"] == "mult_adds"
    again = studies_page(study=study["id"], sx="train_seconds")  # a link opens the same study and axis
    assert again.session_state["studies_pick"] == study["id"] and again.session_state["studies_x"] == "train_seconds"


def test_opening_someone_else_s_interrupted_study_does_not_start_its_driver_and_the_owner_deletes_all_of_it(runs_dir):
    from test_studies import dead_driver

    from archs.studies.driver import driver_running
    from ui.identity import browser_identity

    store = RunStore(runs_dir)
    me = browser_identity("studies-apptest-session-01").owner
    definition = {"kind": "sweep", "name": "interrupted", "spec": None, "vary": [], "trials": 0}
    study_id = store.studies.create(owner="session:someone-else", owner_name=None, kind="sweep",
                                    name="someone else's", definition=definition, executor="local",
                                    trials=[{"params": {"train.lr": 0.1}}])
    store.studies.update(study_id, driver=dead_driver())  # a server restart took its driver
    at = studies_page(study=study_id)
    assert store.studies.get(study_id)["status"] == "interrupted" and not driver_running(store, study_id)
    assert "carries on when its owner (or an administrator) opens it" in texts(at.warning)
    assert at.button(key="study_delete").disabled
    mine = store.studies.create(owner=me, owner_name=None, kind="sweep", name="mine", definition=definition,
                                executor="local", trials=[{"params": {"train.lr": 0.1}}])
    store.studies.update(mine, status="stopped")
    for suffix in ("lock", "log"):
        (runs_dir / f".{mine}.{suffix}").write_text("")
    at = studies_page(study=mine)
    run(at.button(key="study_delete").click())
    assert [s["id"] for s in store.studies.list()] == [study_id]
    assert not (runs_dir / f".{mine}.lock").exists() and not (runs_dir / f".{mine}.log").exists()



def test_every_stored_run_s_chart_builds_no_network_and_takes_mult_adds_as_the_runs_recorded_them(runs_dir,
                                                                                                  monkeypatch):
    """The chart of every stored run (up to 500, each maybe a network of its own) builds none of them in the web
    server: parameters from each spec's plan, mult-adds as a study's driver recorded them (a made-up figure here,
    so a count made by building would show), and a run with none recorded is not drawn against mult-adds or
    training FLOPs, which a caption says."""
    from test_runs import request

    import archs
    import archs.builder
    import archs.inspect
    from ui.identity import browser_identity

    store = RunStore(runs_dir)
    done = {"test_accuracy": 0.8, "steps": 4, "images_per_second": 100.0}
    alone = store.create(request(label="a run of its own"))  # seed002-inception, batch 16
    alone.write_status(status="completed", result=done)
    me = browser_identity("studies-apptest-session-01").owner
    definition = {"kind": "sweep", "name": "recorded", "spec": None, "vary": [], "trials": 0}
    study_id = store.studies.create(owner=me, owner_name=None, kind="sweep", name="recorded", definition=definition,
                                    executor="local", trials=[{"params": {"train.lr": 0.1}}])
    trial = store.create(request(label="a trial", group=study_id, spec=archs.PRESETS["cifar-resnet20"]))
    trial.write_status(status="completed", result={**done, "test_accuracy": 0.9})
    store.studies.update_trial(study_id, 0, status="completed", run_id=trial.id,
                               objectives={"params": 269_722, "mult_adds": 123_456})
    store.studies.update(study_id, status="completed")
    at = open_app(preset="seed002-inception", session="studies-apptest-session-01")  # the Build page builds its own

    def no_build(*args, **kwargs):
        raise AssertionError("a network was built in the web server")

    monkeypatch.setattr(archs.builder, "build_model", no_build)
    monkeypatch.setattr(archs.inspect, "build_model", no_build)

    def drawn() -> dict[str, float]:
        [figure] = [json.loads(c.proto.spec) for c in at.get("plotly_chart") if c.key == "study_all_chart"]
        return {run_id: x for trace in figure["data"] for run_id, x in zip(trace.get("customdata", ()), trace["x"])}

    at = run(at.switch_page("pages/studies.py"))
    assert drawn() == {alone.id: 97_298, trial.id: 269_722}
    assert "Not drawn" not in texts(at.caption)
    run(at.segmented_control(key="studies_all_x").set_value("mult_adds"))
    assert drawn() == {trial.id: 123_456}
    assert "Not drawn: 1 of the 2 points, whose runs have no mult-adds recorded" in texts(at.caption)
    run(at.segmented_control(key="studies_all_x").set_value("train_flops"))
    assert drawn() == {trial.id: 6 * 123_456 * 4 * 16}  # 3 x 2 x mult-adds x images seen (steps x batch)

def test_a_claim_s_page_fits_a_line_per_family_and_overlays_its_learning_curves(runs_dir):
    """A claim study as its driver leaves it (trials with objectives and runs with step records), without training:
    the chart has each family's fitted line and band, the caption reads the cost ratio off them, and the learning
    curves' toggle draws one line per compared network, the mean over its seeds."""
    import math

    from test_runs import request

    from ui.identity import browser_identity

    store = RunStore(runs_dir)
    me = browser_identity("studies-apptest-session-01").owner
    definition = {"kind": "claim", "name": "dense", "claim": "dense", "spec": None, "vary": [], "trials": 0}
    nets = [("residual", i, p) for i, p in enumerate((3e4, 1e5, 3e5))] + \
           [("dense", i, p) for i, p in enumerate((1e4, 3e4, 1e5))]
    trials = [{"params": {"family": f, "size": size, "train.seed": seed}} for f, size, _ in nets for seed in (0, 1)]
    study_id = store.studies.create(owner=me, owner_name=None, kind="claim", name="dense", definition=definition,
                                    executor="local", trials=trials)
    for number, trial in enumerate(trials):
        family, size, params = nets[number // 2]
        seed = trial["params"]["train.seed"]
        stored = store.create(request(label=f"{family} {size} · seed {seed}"))
        stored.append_metrics([{"kind": "step", "step": s, "loss": (1 + seed) / s} for s in (10, 20, 30)])
        # dense reaches residual's accuracy with a third of its parameters: its line is residual's, moved left
        accuracy = 0.1 + 0.05 * math.log(params) + (0.05 * math.log(3) if family == "dense" else 0) + 0.001 * seed
        store.studies.update_trial(study_id, number, status="completed", run_id=stored.id,
                                   objectives={"accuracy": accuracy, "params": params, "mult_adds": params * 10})
    store.studies.update(study_id, status="completed")
    at = studies_page(study=study_id)
    [figure] = [c for c in at.get("plotly_chart") if '"dense: fit"' in c.proto.spec]
    assert '"residual: fit"' in figure.proto.spec and '"toself"' in figure.proto.spec
    caption = texts(at.caption)
    assert "dense needs 0.33× the parameters of residual" in caption and "not a test" in caption
    assert "(Student's t, n − 2 degrees of freedom)" in caption
    assert not [c for c in at.get("plotly_chart") if "mean over seeds" in c.proto.spec]  # drawn when asked
    run(at.toggle(key=f"study_curves_{study_id}").set_value(True))
    [curves] = [c for c in at.get("plotly_chart") if "mean over seeds" in c.proto.spec]
    names = [trace.get("name") for trace in json.loads(curves.proto.spec)["data"]]
    assert [n for n in names if n] == ["residual 0", "residual 1", "residual 2", "dense 0", "dense 1", "dense 2"]
    means = [t["y"] for t in json.loads(curves.proto.spec)["data"] if t.get("name") == "dense 0"][0]
    assert means == pytest.approx([0.15, 0.075, 0.05])  # (1/s + 2/s) / 2 at steps 10, 20, 30


def test_a_claim_study_shows_its_budget_ladder_and_a_bad_ladder_starts_nothing(runs_dir):
    """Two completed rungs of the dense claim (verdicts as the driver stores them): the study's page draws the verdict
    and gap against budget and says the ladder in the library's words; a rung on other data is another ladder. A
    ladder typed wrong in the claim tab is refused naming the field, and no study is stored."""
    import math

    from test_ladder import dense_verdict, stored_claim

    from archs.studies.ladder import claim_ladders, ladder

    store = RunStore(runs_dir)
    stored_claim(store, 50, dense_verdict(50, 0.0, 0.0, 0.0, 0.0, sd=0.03))
    study_id = stored_claim(store, 150, dense_verdict(150, 0.03, 0.02, 0.02, 0.03))
    at = studies_page(study=study_id)
    [figure] = [c for c in at.get("plotly_chart") if "Verdict and gap against budget" in c.proto.spec]
    traces = json.loads(figure.proto.spec)["data"]
    assert [t["x"] for t in traces] == [[50, 150]] and traces[0]["marker"]["symbol"] == ["circle-open", "circle"]
    assert traces[0]["y"] == pytest.approx([0.0, 2.5], abs=1e-9)
    assert traces[0]["name"] == "dense − residual"  # open: that gap not decided; filled: decided
    layout = json.loads(figure.proto.spec)["layout"]
    # the verdicts above the points: on a log axis an annotation's x is in log10 units, a point's in steps
    assert [(round(a["x"], 6), a["text"]) for a in layout["annotations"]] == [(round(math.log10(50), 6), "not decided"),
                                                                              (round(math.log10(150), 6), "holds")]
    assert layout["xaxis"]["type"] == "log" and layout["xaxis"]["tickvals"] == [50, 150]
    [statement] = [texts([c]) for c in at.caption if texts([c]).startswith("Budget ladder of the dense claim")]
    assert statement == ladder(next(iter(claim_ladders(store.studies.list()).values())))["statement"]
    assert "The claim appears with training: it is not decided at 50 steps; holds at 150 steps." in statement

    at.text_input(key="study_claim_budgets").input("150,150")
    run(at.button(key="study_claim_start").click())
    assert "No study started: budgets: a number of steps is given twice" in texts(at.error)
    assert len(store.studies.list()) == 2
