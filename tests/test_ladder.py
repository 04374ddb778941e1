"""A claim's budget ladder (issue 19 §2): budgets parsed as an attacker would write them, one study per rung with
every other setting shared, the store's completed claim studies gathered into ladders (newest per budget, nothing
stopped, earlier-rule or malformed), the verdict and gap laid out against budget in one set of words, and the
command line's ``--budgets`` and ``study ladder``."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from test_study_families import dense_by_difference, residual_means, results

from archs.cli import main
from archs.studies.definition import StudyDefinition
from archs.studies.families import judge
from archs.studies.ladder import (
    MAX_RUNGS,
    Rung,
    claim_ladders,
    ladder,
    ladder_key,
    ladder_text,
    parse_budgets,
    rung_definitions,
)
from archs.studies.space import StudyError
from archs.training import RunStore


def test_budgets_are_steps_with_optional_seeds_shortest_first():
    assert parse_budgets("450x2, 50,150") == (Rung(50), Rung(150), Rung(450, 2))
    assert parse_budgets("60") == (Rung(60),)
    assert parse_budgets("20X3") == (Rung(20, 3),)
    assert [r.text for r in parse_budgets("5,7x2")] == ["5", "7x2"]


@pytest.mark.parametrize("text, problem", [
    ("", "give one or more numbers of steps"),
    ("   ", "give one or more numbers of steps"),
    ("150,150x2", "a number of steps is given twice"),
    ("0", "0 steps: each budget is 1 to 1,000,000 steps"),
    ("1000001", "each budget is 1 to 1,000,000 steps"),
    ("x2", "'x2' is not STEPS or STEPSxSEEDS"),
    ("50x", "'50x' is not STEPS or STEPSxSEEDS"),
    ("50x0", "50x0: seeds must be 1 to 20"),
    ("50x21", "50x21: seeds must be 1 to 20"),
    ("1e3", "'1e3' is not STEPS or STEPSxSEEDS"),
    ("-5", "'-5' is not STEPS or STEPSxSEEDS"),
    ("50;rm -rf /", "'50;rm -rf /' is not STEPS or STEPSxSEEDS"),
    ("\u0665\u0660", "is not STEPS or STEPSxSEEDS"),          # Arabic-Indic digits: int() would read them as 50
    ("50x2x3", "is not STEPS or STEPSxSEEDS"),
    (",".join(str(n) for n in range(1, MAX_RUNGS + 2)), f"at most {MAX_RUNGS} budgets, got {MAX_RUNGS + 1}"),
    ("1," * 150, "at most 200 characters"),
    (None, "give one or more numbers of steps"),
])
def test_bad_budgets_are_refused_naming_the_field(text, problem):
    with pytest.raises(StudyError) as caught:
        parse_budgets(text)
    assert caught.value.path == "budgets" and str(caught.value).startswith("budgets: ") and problem in str(caught.value)


def test_one_study_per_rung_with_every_other_setting_shared():
    data = {"name": "fashion-mnist", "root": "/data", "test_limit": None}
    rungs = rung_definitions("dense", parse_budgets("50,150,450x2"), seeds=3, data=data, parallel=2)
    assert [(d.steps, d.seeds) for d in rungs] == [(50, 3), (150, 3), (450, 2)]
    assert [d.name for d in rungs] == ["dense claim · 50 steps", "dense claim · 150 steps", "dense claim · 450 steps"]
    assert {d.objectives for d in rungs} == {("accuracy", "params")} and {d.parallel for d in rungs} == {2}
    assert {(d.amp, d.channels_last) for d in rungs} == {("off", "off")}
    assert len({ladder_key(d.to_dict()) for d in rungs}) == 1
    assert rung_definitions("inception", [Rung(10)], seeds=1, data=data)[0].objectives == ("accuracy", "mult_adds")
    # what does not put two studies on one ladder: another data set, test subset or precision; the folder does
    one = rungs[0].to_dict()
    assert ladder_key({**one, "data": {**data, "root": "/elsewhere"}}) == ladder_key(one)
    for other in ({**one, "data": {**data, "name": "mnist"}}, {**one, "data": {**data, "test_limit": 2000}},
                  {**one, "amp": "bf16"}, {**one, "claim": "inception"}, {**one, "train": {"lr": 0.1}}):
        assert ladder_key(other) != ladder_key(one)


def dense_verdict(steps, *differences, sd=0.002, seeds=3):
    rows = results("dense", dense_by_difference(*differences), sd=sd, seeds=seeds, steps=steps, batch_size=64,
                   train_size=60_000, data="fashion-mnist", converged=steps >= 450)
    return judge("dense", rows)


def test_a_claim_that_appears_with_training():
    rungs = [{"study_id": "s50", "steps": 50, "verdict": dense_verdict(50, 0.005, -0.005, 0.005, 0.0, sd=0.03)},
             {"study_id": "s450", "steps": 450, "verdict": dense_verdict(450, 0.03, 0.02, 0.02, 0.03)},
             {"study_id": "s150", "steps": 150, "verdict": dense_verdict(150, 0.01, 0.0, 0.01, 0.0, sd=0.03)}]
    lad = ladder(rungs)
    assert [r["steps"] for r in lad["rungs"]] == [50, 150, 450]
    assert [r["verdict"] for r in lad["rungs"]] == ["not decided", "not decided", "holds"]
    assert [r["study_id"] for r in lad["rungs"]] == ["s50", "s150", "s450"]
    last = lad["rungs"][-1]
    assert last["gaps"]["residual"]["difference"] == pytest.approx(0.025)
    assert last["gaps"]["residual"]["lower"] > 0 and last["gaps"]["residual"]["n"] == 3
    assert last["epochs"] == pytest.approx(450 * 64 / 60_000) and last["images"] == 450 * 64
    assert (last["converged"], last["ended"], last["runs"], last["seeds"], last["failed"]) == (30, 30, 30, 3, 0)
    assert lad["rungs"][0]["converged"] == 0
    assert lad["gap_names"] == {"residual": "dense minus residual at equal parameters (test accuracy, paired by seed, "
                                            "averaged over the compared sizes)"}
    assert lad["gap_labels"] == {"residual": "dense − residual"}
    text = lad["statement"]
    assert text == ladder_text(lad)
    assert text.startswith("Budget ladder of the dense claim, 3 budgets (50, 150, 450 steps per run), each judged "
                           "on its own by the claim's rule. Gaps are in points of test accuracy with the verdict's own "
                           "interval in brackets (Student t over seeds;")
    assert "At 450 steps (3 seeds, 30 runs, 0.48 epochs; 30 of 30 converged): the claim holds; gaps residual +2.5 " \
           "points [" in text
    assert "The claim appears with training: it is not decided at 50 to 150 steps; holds at 450 steps." in text
    assert "Gap dense minus residual at equal parameters" in text and ": +0.1 points at 50 steps, +2.5 at 450." in text
    assert "a decision somewhere by chance is more likely than 5 % (up to 14 % were the budgets independent" in text
    assert "Budgets with fewer seeds" not in text  # all three had 3
    two = ladder([*rungs[:2], {"steps": 450, "verdict": dense_verdict(450, 0.03, 0.02, 0.02, 0.03, seeds=2)}])
    assert [r["seeds"] for r in two["rungs"]] == [3, 3, 2]
    assert ("Budgets with fewer seeds (450 steps: 2) have wider intervals (Student t with n - 1 degrees of freedom, "
            "in standard errors: 12.7 at 2, 4.3 at 3 seeds), so a verdict that changes there may be the seeds', not "
            "the budget's.") in two["statement"]
    assert "the paper's claim is about converged nets" not in text  # the longest budget had converged
    import archs.studies.ladder as module
    from archs.studies.families.base import ALPHA

    assert module.ALPHA == ALPHA  # the ladder's chance figure is the claims' own level
    json.dumps(lad, allow_nan=False)


def test_a_claim_that_vanishes_and_one_that_stays():
    holds, below = dense_verdict(50, 0.03, 0.02, 0.02, 0.03), dense_verdict(150, -0.03, -0.02, -0.02, -0.03)
    text = ladder([{"steps": 50, "verdict": holds}, {"steps": 150, "verdict": below}])["statement"]
    assert "The claim vanishes with training: it holds at 50 steps; does not hold at 150 steps." in text
    assert "At the longest budget 0 of 30 runs had converged; the paper's claim is about converged nets" in text
    same = ladder([{"steps": 50, "verdict": holds}, {"steps": 150, "verdict": dense_verdict(150, 0.04, 0.03, 0.03,
                                                                                           0.04)}])
    assert "The verdict is the same at every budget: the claim holds." in same["statement"]
    one = ladder([{"steps": 50, "verdict": holds}])["statement"]
    assert "One budget is no ladder" in one and "by chance" not in one
    assert ladder([])["statement"].startswith("No completed claim study yet")


def test_the_residual_claim_s_ladder_names_its_two_gaps():
    rows = results("residual", residual_means(0.85, 0.80, 0.85, 0.87), sd=0.002, steps=60, batch_size=64,
                   train_size=60_000, data="fashion-mnist")
    lad = ladder([{"steps": 60, "verdict": judge("residual", rows)}])
    assert lad["gap_names"] == {"plain": "plain-56 minus plain-20 (test accuracy, paired by seed)",
                                "residual": "residual-56 minus residual-20 (test accuracy, paired by seed)"}
    assert lad["gap_labels"] == {"plain": "plain-56 − plain-20", "residual": "residual-56 − residual-20"}
    gaps = lad["rungs"][0]["gaps"]
    assert gaps["plain"]["difference"] == pytest.approx(-0.05) and gaps["residual"]["difference"] == pytest.approx(0.02)
    assert gaps["plain"]["upper"] < 0 < gaps["residual"]["lower"]


def record(study_id, steps, verdict, status="completed", data="fashion-mnist", root="/a", summary=None):
    definition = StudyDefinition(kind="claim", name="x", claim="dense", steps=steps,
                                 data={"name": data, "root": root, "test_limit": None}).to_dict()
    return {"id": study_id, "kind": "claim", "status": status, "definition": definition,
            "summary": {"verdict": verdict} if summary is None else summary}


def test_the_store_s_studies_as_ladders_newest_per_budget():
    v50, v150 = dense_verdict(50, 0.0, 0.0, 0.0, 0.0, sd=0.03), dense_verdict(150, 0.03, 0.02, 0.02, 0.03)
    old = {**v50, "rule_version": 1}
    malformed = {**v150, "primary": ["not", "a", "dict"]}
    records = [  # newest first, as store.studies.list gives them
        record("new50", 50, v50, root="/b"), record("old50", 50, v50), record("s150", 150, v150),
        record("stopped", 450, v150, status="stopped"), record("running", 600, v150, status="running"),
        record("earlier-rule", 900, old), record("malformed", 1200, malformed),
        record("no-summary", 1500, None, summary="garbage"), record("mnist", 50, v50, data="mnist"),
        record("against-text", 1800, {**v150, "against": "holds"}),
        {"id": "sweep", "kind": "sweep", "status": "completed", "definition": {}, "summary": {"verdict": v50}},
        {"id": "bad-def", "kind": "claim", "status": "completed", "definition": "text", "summary": {"verdict": v50}},
    ]
    ladders = claim_ladders(records)
    assert len(ladders) == 2
    fashion = ladders[ladder_key(records[0]["definition"])]
    assert [(r["study_id"], r["steps"]) for r in fashion] == [("new50", 50), ("s150", 150)]
    assert [r["study_id"] for r in ladders[ladder_key(records[8]["definition"])]] == ["mnist"]


def stored_claim(store, steps, verdict, owner="cli:someone"):
    definition = StudyDefinition(kind="claim", name=f"dense · {steps}", claim="dense", steps=steps,
                                 data={"name": "fashion-mnist"}).to_dict()
    study_id = store.studies.create(owner=owner, owner_name=None, kind="claim", name=definition["name"],
                                    definition=definition, executor="local")
    store.studies.update(study_id, status="completed", summary={"verdict": verdict})
    return study_id


def test_the_command_line_starts_a_ladder_and_lays_one_out(tmp_path, capsys):
    from archs.cli import build_parser
    from archs.studies.cli import _definitions

    args = build_parser().parse_args(["study", "claim", "dense", "--budgets", "20,60x2", "--seeds", "3"])
    definitions = _definitions(args)
    assert [(d.kind, d.claim, d.steps, d.seeds) for d in definitions] == [("claim", "dense", 20, 3),
                                                                          ("claim", "dense", 60, 2)]
    with pytest.raises(SystemExit):  # one budget or a ladder, not both
        build_parser().parse_args(["study", "claim", "dense", "--budgets", "20", "--steps", "5"])
    assert main(["study", "claim", "dense", "--budgets", "20,20", "--runs-dir", str(tmp_path / "r")]) == 2
    assert "error: budgets: a number of steps is given twice" in capsys.readouterr().err
    assert not (tmp_path / "r").exists() or not RunStore(tmp_path / "r").studies.list()  # nothing stored

    store = RunStore(tmp_path / "runs")
    first = stored_claim(store, 50, dense_verdict(50, 0.0, 0.0, 0.0, 0.0, sd=0.03))
    second = stored_claim(store, 150, dense_verdict(150, 0.03, 0.02, 0.02, 0.03))
    assert main(["study", "ladder", "dense", "--runs-dir", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Budget ladder of the dense claim, 2 budgets (50, 150 steps per run)")
    assert f"      50 steps · 3 seeds · not decided   · residual +0.0 pts · {first}" in out
    assert f"     150 steps · 3 seeds · holds         · residual +2.5 pts · {second}" in out
    assert main(["study", "ladder", "dense", "--json", "--runs-dir", str(tmp_path / "runs")]) == 0
    [lad] = json.loads(capsys.readouterr().out)["ladders"]
    assert [r["verdict"] for r in lad["rungs"]] == ["not decided", "holds"] and lad["claim"] == "dense"
    assert main(["study", "ladder", "inception", "--runs-dir", str(tmp_path / "runs")]) == 0
    assert "no completed inception claim study" in capsys.readouterr().out


def test_a_ladder_over_the_study_limit_says_which_budgets_started(tmp_path, monkeypatch, capsys):
    """Each rung is its own study: the ones started before a limit run on, and the message names them."""
    import archs.studies.driver as driver
    from archs.training.limits import LimitError

    started = []

    def start_study(executor, definition, *, owner, owner_name=None):
        if len(started) == 2:
            raise LimitError("you already have 2 studies running", "ARCHS_MAX_STUDIES_PER_OWNER")
        started.append((definition.steps, definition.seeds, owner))
        return f"study-{definition.steps}"

    monkeypatch.setattr(driver, "start_study", start_study)
    monkeypatch.setattr("archs.training.data.check_data", lambda data: None)
    code = main(["study", "claim", "residual", "--budgets", "20,60,180x2", "--detach", "--owner", "cli:me",
                 "--runs-dir", str(tmp_path / "runs")])
    assert code == 2 and started == [(20, 3, "cli:me"), (60, 3, "cli:me")]
    assert "error: 2 of 3 budgets started (study-20, study-60); the rest: you already have 2 studies running" in \
        capsys.readouterr().err
    started.clear()
    assert main(["study", "claim", "residual", "--budgets", "20,60", "--detach", "--json", "--owner", "cli:me",
                 "--runs-dir", str(tmp_path / "runs")]) == 0
    assert json.loads(capsys.readouterr().out) == {"study_ids": ["study-20", "study-60"]}


def test_ctrl_c_while_a_ladder_runs_stops_every_budget_still_to_come(tmp_path, monkeypatch, capsys):
    import archs.studies.cli as cli
    import archs.studies.driver as driver

    store = RunStore(tmp_path / "runs")
    ids = []

    def start_study(executor, definition, *, owner, owner_name=None):
        ids.append(store.studies.create(owner=owner, owner_name=None, kind="claim", name=definition.name,
                                        definition=definition.to_dict(), executor="local"))
        return ids[-1]

    def study_view(store_, study_id):
        stopped = store.studies.get(study_id)["stop_requested"]
        return {"study_id": study_id, "name": "n", "kind": "claim", "status": "stopped" if stopped else "running",
                "objectives": ["accuracy", "params"], "trials": [], "pareto": [], "summary": None, "error": None,
                "varied": []}

    def interrupt(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(driver, "start_study", start_study)
    monkeypatch.setattr(driver, "study_view", study_view)
    monkeypatch.setattr("archs.training.data.check_data", lambda data: None)
    monkeypatch.setattr(cli, "time", SimpleNamespace(sleep=interrupt))  # this module's sleep, not everyone's
    assert main(["study", "claim", "dense", "--budgets", "20,60,180", "--owner", "cli:me",
                 "--runs-dir", str(tmp_path / "runs")]) == 1  # stopped
    assert len(ids) == 3 and all(store.studies.get(i)["stop_requested"] for i in ids)
    assert "stopping the study and the ladder's 2 later budgets" in capsys.readouterr().err
