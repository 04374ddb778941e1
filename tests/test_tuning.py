"""The layout and precision probe: candidates per device and settings, skipped for short runs, cached, and
without side effects on the run's model or random state."""

from __future__ import annotations

import torch
from test_train import tiny_data

import archs
from archs.training import tuning
from archs.training.config import TrainConfig
from archs.training.loop import make_optimizer, train
from archs.training.tuning import Choice, candidates, choose

CPU = torch.device("cpu")


def test_candidates_follow_the_settings_and_the_device(monkeypatch):
    monkeypatch.setattr(tuning, "native_bf16", lambda device: True)
    assert candidates(TrainConfig(), CPU) == [Choice(False, False), Choice(False, True), Choice(True, False),
                                              Choice(True, True)]
    assert candidates(TrainConfig(channels_last="on"), CPU) == [Choice(True, False), Choice(True, True)]
    assert candidates(TrainConfig(amp="off", channels_last="off"), CPU) == [Choice(False, False)]
    monkeypatch.setattr(tuning, "native_bf16", lambda device: False)  # emulated bf16 is never a candidate
    assert candidates(TrainConfig(), CPU) == [Choice(False, False), Choice(True, False)]
    assert candidates(TrainConfig(amp="bf16"), CPU) == [Choice(False, True), Choice(True, True)]


def small_net():
    spec = archs.PRESETS["cifar-resnet20"]
    from dataclasses import replace

    return archs.build_model(replace(spec, in_channels=1, input_size=8, num_classes=2,
                                     stages=tuple(replace(s, blocks=1) for s in spec.stages[:2])))


def test_a_probe_measures_every_candidate_then_its_choice_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHS_CACHE_DIR", str(tmp_path))
    config = TrainConfig(batch_size=16)
    model = small_net()
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.random.get_rng_state()
    runtime, report = choose(config, model, CPU, (16, 1, 8, 8), 2, 100_000, lambda p: make_optimizer(p, config))
    assert report["how"] == "probe"
    assert set(report["images_per_second"]) == set(report["candidates"]) == {c.name for c in candidates(config, CPU)}
    best = max(report["images_per_second"], key=report["images_per_second"].get)
    assert report["chosen"] == best and 0 < report["probe_seconds"] < 30
    assert runtime.channels_last == ("channels_last" in best) and (runtime.amp_dtype is not None) == ("bf16" in best)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in weights.items())  # the run's model is untouched
    assert torch.equal(torch.random.get_rng_state(), rng)  # and so is its random state
    again, report2 = choose(config, model, CPU, (16, 1, 8, 8), 2, 100_000, lambda p: make_optimizer(p, config))
    assert report2["how"] == "cached probe" and report2["chosen"] == best and again == runtime
    other_batch = choose(config, model, CPU, (32, 1, 8, 8), 2, 100_000, lambda p: make_optimizer(p, config))[1]
    assert other_batch["how"] == "probe"  # a decision is per batch size


def test_a_short_run_skips_the_probe(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHS_CACHE_DIR", str(tmp_path))
    config = TrainConfig(batch_size=16)
    runtime, report = choose(config, small_net(), CPU, (16, 1, 8, 8), 2, 3, lambda p: make_optimizer(p, config))
    assert report["how"] == "default (run too short to probe)" and "too short" in report["skipped"]
    assert runtime.channels_last is False  # the rule on a CPU: contiguous
    forced = choose(TrainConfig(amp="off", channels_last="on"), small_net(), CPU, (16, 1, 8, 8), 2, 100_000,
                    lambda p: make_optimizer(p, config))
    assert forced[1]["how"] == "settings" and forced[0].channels_last and forced[0].amp_dtype is None


def test_the_run_records_what_was_chosen_and_how():
    records = []
    train(torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(256, 2)),
          tiny_data(), TrainConfig(epochs=1, batch_size=16, grad_every=0), on_metrics=records.append)
    start = records[0]
    assert start["kind"] == "start" and start["runtime"]["chosen"] in start["runtime"]["candidates"]
    assert start["runtime"]["how"] in ("probe", "cached probe", "default (run too short to probe)")
