"""``python -m archs``: output formats, and bad input reported in one line with exit status 2."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from archs import PRESETS
from archs.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run(*args):
    return subprocess.run([sys.executable, "-m", "archs", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_presets_lists_names_with_counts(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "resnet50" in out and "25,557,032" in out and len(out.splitlines()) == len(PRESETS)


def test_summary_json(capsys):
    assert main(["summary", "seed004-resnet", "--input", "1,28,28", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total_params"] == data["trainable_params"] == 195_450
    assert data["stages"][-2]["output_shape"] == [1, 64, 7, 7]
    assert {"name", "output_shape", "params", "mult_adds"} <= set(data["stages"][0])
    assert data["layers"][0]["name"] == "stem" and data["mult_adds"] > 0


def test_summary_of_a_spec_file(tmp_path, capsys):
    path = tmp_path / "net.json"
    path.write_text(PRESETS["cifar-resnet20"].to_json())
    assert main(["summary", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total_params"] == 269_722


def test_grads_json(capsys):
    assert main(["gradients", "cifar-resnet20", "--batch", "4", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)["records"]
    assert len(records) == 20  # 19 convs and the linear layer
    assert set(records[0]) >= {"depth", "name", "type", "stage", "grad_norm"}
    assert records[0]["depth"] == 1 and records[-1]["type"] == "Linear"


@pytest.mark.parametrize("args,message", [
    (["summary", "no-such-net"], "error: unknown preset 'no-such-net'"),
    (["summary", "resnet18", "--input", "3,16,16"], "error: stage 4 (residual): a 1x1 feature map cannot be halved"),
    (["summary", "resnet18", "--input", "abc"], "error: --input: expected C,H,W"),
    (["grads", "cifar-resnet20", "--input", "3,32,20"], "error: --input: gradients are measured on square inputs"),
])
def test_bad_input_exits_2_with_one_line(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and len(err.strip().splitlines()) == 1


def test_bad_spec_file_in_a_real_process(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "archs.netspec/1", "stem": [], "stages": [{"type": "dense", "growth_rate": 0}], '
                   '"head": {}}')
    result = run("summary", str(bad), "--json")
    assert result.returncode == 2
    assert result.stderr.startswith("error: stages[0].")
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_train_through_the_local_executor_prints_the_same_json_plus_run_id(tmp_path, capsys):
    runs = str(tmp_path / "runs")
    argv = ["train", "--max-steps", "3", "--batch-size", "8", "--json", "--runs-dir", runs]
    assert main(argv) == 0
    here = json.loads(capsys.readouterr().out)
    assert main(argv + ["--executor", "local"]) == 0
    there = json.loads(capsys.readouterr().out)
    assert set(there) == set(here) | {"run_id"}
    assert (there["status"], there["steps"], there["network"], there["data"]) == ("completed", 3, "seed002-inception",
                                                                                  "digits")
    assert main(["runs", "--json", "--runs-dir", runs]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in listed["runs"]] == [there["run_id"]] and listed["queue"] == []
    row = listed["runs"][0]
    assert (row["status"], row["executor"], row["step"]) == ("completed", "local", 3)
    assert main(["runs", "--runs-dir", runs]) == 0
    table = capsys.readouterr().out
    assert there["run_id"] in table and "completed" in table and "3/3" in table
    assert main(["runs", "--runs-dir", runs, "--logs", there["run_id"]]) == 0  # the worker's own output
    assert f"run {there['run_id']} starts in process" in capsys.readouterr().out
    assert main(["runs", "--runs-dir", runs, "--logs", there["run_id"], "--owner", "cli:someone-else"]) == 2
    assert "only they can read the log of it" in capsys.readouterr().err
    assert main(["runs", "--runs-dir", runs, "--delete", there["run_id"]]) == 0
    assert main(["runs", "--json", "--runs-dir", runs]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["runs"] == []
    assert main(["runs", "--runs-dir", runs, "--stop", "no-such-run"]) == 2
    assert "no run 'no-such-run'" in capsys.readouterr().err


def test_summary_shows_receptive_fields(capsys):
    assert main(["summary", "resnet18", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [s["receptive_field"] for s in data["stages"]] == [[11, 11], [43, 43], [99, 99], [211, 211], [435, 435],
                                                             [627, 627]]
    assert next(r for r in data["layers"] if r["name"] == "stem.0.layer1.conv")["receptive_field"] == [7, 7]
    assert main(["summary", "cifar-resnet20"]) == 0
    first = capsys.readouterr().out.splitlines()
    assert first[0].split()[-1] == "field" and first[1].split()[-1] == "3"


def test_cost_json(capsys):
    assert main(["cost", "seed002-inception", "--batch", "2", "--repeats", "1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [p["name"] for p in data["parts"]] == ["stem", "stage1", "stage2", "stage3", "head"]
    assert data["batch_size"] == 2 and data["device"] == "cpu" and data["peak_bytes"] > 0
    assert main(["cost", "seed002-inception", "--device", "tpu"]) == 2
    assert capsys.readouterr().err.startswith("error: device 'tpu' is not available here")
