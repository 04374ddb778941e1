"""A validation split held out of the training set (issue 19 §3): stratified, seeded, disjoint from what is trained
on; a run with one evaluates it beside the test set; a search is always selected and pruned on it, and evaluates
often enough, after a warm-up, for its pruner to act."""

from __future__ import annotations

import pytest
import torch

import archs
from archs.studies.definition import PRUNE_EVALUATIONS, SEARCH_VAL_SPLIT, StudyDefinition, selection_metric
from archs.training import DataConfig, RunRequest, RunStore, TrainConfig
from archs.training.data import load_dataset
from archs.training.request import execute_request
from archs.training.stored import RunRecorder

SPEC = archs.PRESETS["seed002-inception"]


def test_the_held_out_images_are_a_stratified_seeded_fraction_disjoint_from_training():
    data = load_dataset("digits", input_size=8, in_channels=1)
    rest, validation = data.hold_out(0.2)
    assert rest.train_size + validation.test_size == data.train_size
    assert validation.train_size == 0 and validation.test_x.shape[1:] == data.train_x.shape[1:]
    counts = torch.bincount(data.train_y, minlength=10)
    held = torch.bincount(validation.test_y, minlength=10)
    assert torch.equal(held, torch.round(counts * 0.2).long())  # each class's fifth: stratified
    # disjoint: every training image is either trained on or held out, never both
    pairs = {(bytes(x.numpy()), int(y)) for x, y in zip(rest.train_x, rest.train_y)}
    assert not any((bytes(x.numpy()), int(y)) in pairs for x, y in zip(validation.test_x, validation.test_y))
    again, validation2 = data.hold_out(0.2)
    assert torch.equal(validation.test_x, validation2.test_x) and torch.equal(again.train_y, rest.train_y)
    other = data.hold_out(0.2, seed=1)[1]
    assert not torch.equal(other.test_x, validation.test_x)
    assert torch.equal(rest.test_x, data.test_x)  # the test set is untouched
    with pytest.raises(ValueError, match="val_split"):
        data.hold_out(0.0)


def test_val_split_is_a_checked_field_that_old_stored_settings_do_without():
    assert DataConfig.from_dict({"name": "digits", "root": None, "download": False, "train_limit": None,
                                 "test_limit": None}).val_split == 0.0
    with pytest.raises(archs.SpecError, match="val_split"):
        DataConfig(val_split=0.9)


def test_a_run_with_a_validation_split_evaluates_it_beside_the_test_set(tmp_path):
    request = RunRequest(SPEC, TrainConfig(epochs=1, batch_size=16, max_steps=8, log_every=4, grad_every=0,
                                           eval_every=4, amp="off", channels_last="off", compile="off"),
                         DataConfig(name="digits", train_limit=200, test_limit=64, val_split=0.25), owner="session:me")
    run = RunStore(tmp_path / "runs").create(request)
    status = execute_request(request, RunRecorder(run))
    assert status["status"] == "completed", status.get("error")
    result = status["result"]
    assert 0.0 <= result["val_accuracy"] <= 1.0 and result["val_loss"] > 0
    assert 0.0 <= result["test_accuracy"] <= 1.0
    [start] = run.metrics("start")
    kept = load_dataset("digits", input_size=8, in_channels=1, train_limit=200, test_limit=64).hold_out(0.25)[0]
    assert start["train_size"] == kept.train_size == 151 and start["test_size"] == 64  # a quarter of each class
    evals = run.metrics("eval") + run.metrics("epoch")
    assert evals and all("val_accuracy" in r and "test_accuracy" in r for r in evals)
    plain = execute_request(request := RunRequest(SPEC, request.train, DataConfig(name="digits", train_limit=200,
                                                                                  test_limit=64), owner="session:me"),
                            RunRecorder(RunStore(tmp_path / "runs").create(request)))
    assert plain["result"]["val_accuracy"] is None


def test_a_search_selects_on_validation_and_evaluates_for_its_pruner_every_other_study_on_test():
    train = TrainConfig(max_steps=80, batch_size=16).to_dict()
    search = StudyDefinition(kind="search", name="s", spec=SPEC.to_dict(), train=train,
                             data=DataConfig(name="digits").to_dict(), trials=4,
                             vary=({"path": "train.lr", "low": 1e-3, "high": 1e-1},), objectives=("accuracy",))
    _, trained, data = search.base()
    assert data.val_split == SEARCH_VAL_SPLIT and search.selection_metric == "val_accuracy"
    assert trained.eval_every == 80 // PRUNE_EVALUATIONS
    own = StudyDefinition(**{**search.__dict__, "data": DataConfig(name="digits", val_split=0.3).to_dict(),
                             "train": {**train, "eval_every": 5}})
    _, trained, data = own.base()
    assert data.val_split == 0.3 and trained.eval_every == 5  # asked for: kept
    sweep = StudyDefinition(kind="sweep", name="w", spec=SPEC.to_dict(), train=train,
                            data=DataConfig(name="digits").to_dict(),
                            vary=({"path": "train.lr", "values": [1e-3, 1e-2]},))
    _, trained, data = sweep.base()
    assert data.val_split == 0.0 and trained.eval_every == 0 and sweep.selection_metric == "test_accuracy"
    assert selection_metric("claim") == "test_accuracy"


def test_the_search_s_pruner_waits_out_a_quarter_of_each_run():
    from archs.studies.driver import StudyDriver

    definition = StudyDefinition(kind="search", name="s", spec=SPEC.to_dict(),
                                 train=TrainConfig(max_steps=80).to_dict(), data=DataConfig(name="digits").to_dict(),
                                 trials=4, vary=({"path": "train.lr", "low": 1e-3, "high": 1e-1},),
                                 objectives=("accuracy",))
    pruner = StudyDriver._pruner(type("D", (), {"definition": definition})(), 1)
    assert pruner._n_warmup_steps == 20 and pruner._n_startup_trials == 2
