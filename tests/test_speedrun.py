"""The speedruns reach their targets on the real data sets (how fast is benchmarks/bench_speedrun.py's
business, not a test's)."""

from __future__ import annotations

import json

import pytest

from archs import PRESETS
from archs.cli import main
from archs.training.speedrun import SPEEDRUNS


@pytest.mark.parametrize("name, target", [("mnist", 0.99), ("fashion-mnist", 0.91)])
def test_the_speedrun_reaches_its_target(name, target, torchvision_root, capsys):
    assert main(["speedrun", name, "--data-root", str(torchvision_root), "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["reached"] and figures["test_accuracy"] >= target == figures["target"]
    assert figures["preset"] == SPEEDRUNS[name].preset and figures["spec"] == PRESETS[figures["preset"]].to_dict()
    assert figures["recipe"] == "fast" and figures["settings"]["target_accuracy"] == target
    assert 0 < figures["steps"] <= figures["settings"]["max_steps"] and figures["seconds"] > 0
    assert figures["message"].startswith("reached the target test accuracy")


def test_a_speedrun_without_its_data_is_one_line(tmp_path, capsys):
    assert main(["speedrun", "mnist", "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: MNIST not found") and err.count("\n") == 1
