"""The trainer: the default run's accuracy, metrics records, stop, divergence, settings checks, CLI."""

from __future__ import annotations

import argparse
import json
import threading
import time
from dataclasses import replace

import pytest
import torch
from torch import nn

import archs
from archs.training.cli import add_parsers
from archs.training.config import DEFAULT_DATA, DEFAULT_PRESET, ConfigError, TrainConfig
from archs.training.data import TensorData, load_dataset
from archs.training.loop import plan_steps, train


def tiny_data(n_train: int = 64, n_test: int = 32, size: int = 8) -> TensorData:
    generator = torch.Generator().manual_seed(0)
    train_y = torch.arange(n_train) % 2
    test_y = torch.arange(n_test) % 2
    make = lambda y: (y.view(-1, 1, 1, 1) * 200 + torch.randint(0, 50, (len(y), 1, size, size),  # noqa: E731
                                                                     generator=generator)).to(torch.uint8)
    return TensorData("tiny", make(train_y), train_y, make(test_y), test_y, ("a", "b"), (0.5,), (0.4,))


def tiny_model(size: int = 8) -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * size * size, 2))


class NanAfter(nn.Module):
    """A model whose output turns NaN from its ``calls``-th forward pass on."""

    def __init__(self, calls: int):
        super().__init__()
        self.inner = tiny_model()
        self.calls = calls
        self.count = 0

    def forward(self, x):
        self.count += 1
        out = self.inner(x)
        return out * float("nan") if self.count >= self.calls else out


def test_default_run_on_digits_reaches_90_percent():
    spec = archs.PRESETS[DEFAULT_PRESET]
    data = load_dataset(DEFAULT_DATA, input_size=spec.input_size, in_channels=spec.in_channels)
    model = archs.build_model(spec)
    result = train(model, data, TrainConfig(grad_every=0))
    assert result.status == "completed"
    assert result.steps == 5 * (1437 // 64)
    assert result.test_accuracy >= 0.90


def test_metric_records():
    records = []
    config = TrainConfig(epochs=2, batch_size=16, log_every=2, grad_every=3, eval_every=3, schedule="constant")
    result = train(tiny_model(), tiny_data(), config, on_metrics=records.append)
    assert result.status == "completed" and result.steps == 8 and result.epochs == 2.0
    kinds = [r["kind"] for r in records]
    assert kinds[0] == "start" and records[0]["total_steps"] == 8 and records[0]["device"] == "cpu"
    assert [r["step"] for r in records if r["kind"] == "step"] == [2, 4, 6, 8]
    assert [r["step"] for r in records if r["kind"] == "grad"] == [3, 6]
    assert [(r["epoch"], r["step"]) for r in records if r["kind"] == "epoch"] == [(1, 4), (2, 8)]
    assert [r["step"] for r in records if r["kind"] == "eval"] == [3, 6]
    grad = next(r for r in records if r["kind"] == "grad")
    assert [layer["name"] for layer in grad["layers"]] == ["0", "3"]
    assert all(layer["grad_norm"] > 0 for layer in grad["layers"])
    step = next(r for r in records if r["kind"] == "step")
    assert step["lr"] == 1e-3 and 0 <= step["train_accuracy"] <= 1 and step["images_per_second"] > 0
    assert result.test_accuracy == records[-1]["test_accuracy"]


def test_max_steps_and_partial_batches():
    assert plan_steps(TrainConfig(epochs=3, batch_size=10), 25) == (10, 2, 6)
    assert plan_steps(TrainConfig(epochs=3, batch_size=10, max_steps=4), 25) == (10, 2, 4)
    assert plan_steps(TrainConfig(batch_size=100), 25) == (25, 1, 5)
    result = train(tiny_model(), tiny_data(), TrainConfig(epochs=9, batch_size=16, max_steps=5, grad_every=0))
    assert (result.status, result.steps) == ("completed", 5)
    assert result.test_accuracy is not None


def test_stop_mid_epoch():
    stop = threading.Event()
    records = []

    def sink(record):
        records.append(record)
        if record["kind"] == "step" and record["step"] == 3:
            stop.set()

    config = TrainConfig(epochs=1, batch_size=4, log_every=1, grad_every=0)
    result = train(tiny_model(), tiny_data(), config, on_metrics=sink, stop_event=stop)
    assert (result.status, result.steps) == ("stopped", 3)
    assert result.message == "stopped at step 3"
    assert [r["step"] for r in records if r["kind"] == "step"] == [1, 2, 3]
    assert not any(r["kind"] == "epoch" for r in records)


def test_nan_loss_ends_as_diverged_and_keeps_metrics():
    records = []
    config = TrainConfig(epochs=1, batch_size=4, log_every=2, grad_every=0)
    result = train(NanAfter(calls=4), tiny_data(), config, on_metrics=records.append)
    assert (result.status, result.steps) == ("diverged", 4)
    assert result.message == "the loss became nan at step 4"
    steps = [r for r in records if r["kind"] == "step"]
    assert [r["step"] for r in steps] == [2, 4]
    assert steps[0]["loss"] > 0 and steps[1]["loss"] != steps[1]["loss"]  # the NaN window is recorded
    assert result.test_accuracy is None


@pytest.mark.parametrize("field, value, message", [
    ("batch_size", 0, "batch_size: must be >= 1, got 0"),
    ("optimizer", "rmsprop", "optimizer: must be one of 'adam', 'sgd', got 'rmsprop'"),
    ("lr", float("nan"), "lr: must be a finite number"),
    ("epochs", 1.5, "epochs: must be an integer, got 1.5"),
    ("device", "tpu", "device: must be one of 'auto', 'cpu', 'cuda', 'mps', got 'tpu'"),
])
def test_bad_settings_name_the_field(field, value, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as caught:
        TrainConfig(**{field: value})
    assert caught.value.path == field


def test_unknown_setting_and_round_trip():
    config = TrainConfig(lr=0.1, optimizer="sgd", max_steps=7)
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ConfigError, match="unknown training setting 'learning_rate'"):
        TrainConfig.from_dict({"learning_rate": 0.1})


def run_cli(argv, capsys):
    parser = argparse.ArgumentParser(prog="archs")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code = args.run(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_json(capsys):
    code, out, err = run_cli(["train", "--max-steps", "3", "--batch-size", "8", "--json"], capsys)
    assert code == 0
    result = json.loads(out)
    assert result["status"] == "completed" and result["steps"] == 3 and result["device"] == "cpu"
    assert result["network"] == DEFAULT_PRESET and result["data"] == "digits"
    assert 0 <= result["test_accuracy"] <= 1 and result["images_per_second"] > 0 and result["train_loss"] > 0


@pytest.mark.parametrize("argv, message", [
    (["train", "no-such-net"], "error: unknown preset 'no-such-net'"),
    (["train", "--data", "mnist", "--data-root", "/nonexistent"], "error: MNIST not found"),
    (["train", "--batch-size", "0"], "error: batch_size: must be >= 1"),
])
def test_cli_bad_input_is_one_line_exit_2(argv, message, capsys):
    code, out, err = run_cli(argv, capsys)
    assert code == 2 and out == ""
    assert err.startswith(message) and err.count("\n") == 1


class SlowBlock(nn.Module):
    """Counts its forward passes and takes 50 ms for each."""

    calls = 0

    def forward(self, x):
        SlowBlock.calls += 1
        time.sleep(0.05)
        return x


def test_a_stop_takes_effect_inside_a_step_at_the_next_block():
    """A step of 20 slow blocks: a stop set during the first step ends the run before the step is done."""
    SlowBlock.calls = 0
    model = nn.Sequential(nn.Sequential(*[SlowBlock() for _ in range(20)]), tiny_model())
    stop = threading.Event()
    timer = threading.Timer(0.2, stop.set)
    timer.start()
    config = TrainConfig(epochs=1, batch_size=4, grad_every=0, amp="off", channels_last="off")  # no probe
    result = train(model, tiny_data(), config, stop_event=stop)
    timer.join()
    assert (result.status, result.steps) == ("stopped", 0)
    assert result.message == "stopped at step 0"
    assert 1 <= SlowBlock.calls < 20  # the first forward pass was cut short
    assert all(p.grad is None for p in model.parameters())


def test_a_stop_during_an_evaluation_ends_the_run_as_stopped():
    stop = threading.Event()

    class StopOnEval(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = tiny_model()

        def forward(self, x):
            if not self.training:
                stop.set()  # as if the user pressed Stop while the test set was being evaluated
            return self.inner(x)

    config = TrainConfig(epochs=3, batch_size=16, grad_every=0)
    result = train(StopOnEval(), tiny_data(), config, stop_event=stop)
    assert (result.status, result.steps, result.message) == ("stopped", 4, "stopped at step 4")


def test_cli_recipe_then_flags(capsys):
    from archs.training.cli import train_config

    parser = argparse.ArgumentParser(prog="archs")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["train", "--recipe", "fast", "--lr", "0.05", "--decay-all", "yes",
                              "--target-accuracy", "0.98"])
    config = train_config(args, keep_records=False)
    assert (config.optimizer, config.schedule, config.batch_size, config.label_smoothing) == ("sgd", "onecycle",
                                                                                            128, 0.1)
    assert (config.lr, config.decay_all, config.target_accuracy, config.grad_every) == (0.05, True, 0.98, 0)
    assert train_config(parser.parse_args(["train"]), keep_records=True) == TrainConfig()
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--recipe", "slow"])
    assert "invalid choice: 'slow'" in capsys.readouterr().err


def test_a_target_accuracy_ends_the_run_early_as_completed():
    records = []
    config = TrainConfig(epochs=20, batch_size=16, lr=1e-2, target_accuracy=0.9, grad_every=0, amp="off",
                         channels_last="off")
    result = train(tiny_model(), tiny_data(), config, on_metrics=records.append)
    evals = [r for r in records if r["kind"] in ("eval", "epoch")]
    assert result.status == "completed" and result.test_accuracy >= 0.9 and result.steps < 20 * 4
    assert result.message == f"reached the target test accuracy 90.00% at step {result.steps}"
    assert evals[-1]["step"] == result.steps and all(r["test_accuracy"] < 0.9 for r in evals[:-1])
    never = train(tiny_model(), tiny_data(), replace(config, epochs=1, target_accuracy=1.0, lr=1e-6))
    assert never.status == "completed" and never.message == "ended without reaching the target test accuracy 100.00%"
