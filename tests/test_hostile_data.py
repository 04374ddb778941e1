"""Data as an attacker would bring it (issue 13): CIFAR-10 batch files whose pickles run commands, and a
dashboard user who tries to read, probe or train on folders outside the server's data folder
(``ARCHS_DATA_DIR``) through the Train page or a stored request.

Every test here failed before the fix: the batches were read with ``pickle.load`` (the marker files were
created), the page took any server path as typed text and always offered "Download if missing", and
the library looked for torchvision data sets beside the data folder too.
"""

from __future__ import annotations

import builtins
import os
import pickle
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from app_helpers import assert_clean, open_app, run, stop_all, texts

import archs
from archs.training import DataConfig, MemoryRecorder, RunRequest, RunStore, TrainConfig, execute_request
from archs.training.data import DataError, check_data, check_dataset, load_dataset
from archs.training.executors import get_executor

CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]


class Call:
    """Unpickles as ``func(*args)``: what a hostile data file carries."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def attacks(marker: Path) -> dict[str, object]:
    return {
        "os.system": Call(os.system, f"touch {marker}"),
        "builtins.eval": Call(builtins.eval, f"open({str(marker)!r}, 'w').close()"),
        "subprocess": Call(subprocess.check_call, ["touch", str(marker)]),
    }


def write_cifar(root: Path, protocol: int, hostile: dict[str, object] | None = None) -> Path:
    """A small CIFAR-10 in its python layout; ``hostile`` replaces some files' contents (by file name)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in CIFAR_FILES[:-1]:
        batch = {"data": rng.integers(0, 256, (3, 3072), dtype=np.uint8), "labels": [1, 2, 3], "batch_label": name}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    meta = {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    for name, obj in (hostile or {}).items():
        (folder / name).write_bytes(pickle.dumps(obj, protocol=protocol))
    return root


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("attack", ["os.system", "builtins.eval", "subprocess"])
@pytest.mark.parametrize("where", ["data_batch_1", "test_batch", "batches.meta"])
def test_a_cifar_file_whose_pickle_runs_a_command_is_refused(tmp_path, attack, protocol, where):
    marker = tmp_path / "MARKER"
    payload = attacks(marker)[attack]
    if where == "test_batch":  # hidden inside an otherwise well-formed batch
        payload = {"data": np.zeros((3, 3072), np.uint8), "labels": payload}
    elif where == "batches.meta":
        payload = {"label_names": payload}
    root = write_cifar(tmp_path / "data", protocol, {where: payload})
    with pytest.raises(DataError) as error:
        load_dataset("cifar10", root=root, cache=False)
    assert not marker.exists(), "the data file ran a command"
    message = str(error.value)
    assert re.search(re.escape(where) + r": it refers to [\w.]+, which a data file may not", message), message
    assert re.search(r"(os|posix|builtins|subprocess)\.(system|eval|check_call)", message), message


def test_a_hostile_cifar_file_fails_the_run_in_the_worker_without_running(tmp_path, monkeypatch):
    """The same file in the server's data folder, named by a dashboard request (no root): the run fails."""
    marker = tmp_path / "MARKER"
    data_dir = write_cifar(tmp_path / "data", 2, {"data_batch_3": attacks(marker)["os.system"]})
    monkeypatch.setenv("ARCHS_DATA_DIR", str(data_dir))
    spec = archs.PRESETS["seed002-inception"]
    status = execute_request(RunRequest(spec, TrainConfig(max_steps=1), DataConfig(name="cifar10")), MemoryRecorder())
    assert status["status"] == "failed" and "data_batch_3: it refers to posix.system" in status["error"]
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------- folders
def write_images(folder: Path, classes=("cat", "dog"), per_class: int = 3) -> Path:
    from PIL import Image

    for c, name in enumerate(classes):
        (folder / name).mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (10, 10), (60 + 100 * c, 60, 60)).save(folder / name / f"{i}.png")
    return folder


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """The server's data folder (imgs, sets/birds with train/test, MNIST's raw files, a link leading out)
    beside a secret image folder outside it."""
    data = tmp_path / "data"
    write_images(data / "imgs")
    write_images(data / "sets" / "birds" / "train", ("finch", "robin"))
    write_images(data / "sets" / "birds" / "test", ("finch", "robin"), per_class=1)
    (data / "MNIST" / "raw").mkdir(parents=True)
    write_images(tmp_path / "secret")
    (data / "escape").symlink_to(tmp_path / "secret")
    monkeypatch.setenv("ARCHS_DATA_DIR", str(data))
    monkeypatch.delenv("ARCHS_ALLOW_DOWNLOAD", raising=False)
    return data


def outside_names(tmp_path: Path) -> list[str]:
    """Names of folders outside the data folder: ``..``, absolute, through a link, existing or not."""
    return ["../secret", "../no-such-folder", str(tmp_path / "secret"), str(tmp_path / "no-such-folder"),
            "escape", "escape/cat/..", "imgs/../../secret", "sets/../../secret"]


def test_a_relative_folder_that_escapes_the_data_dir_is_refused_alike_whether_or_not_it_exists(data_dir,
                                                                                              tmp_path):
    messages = set()
    for name in outside_names(tmp_path):
        config = DataConfig(name=f"folder:{name}")  # as a stored request may hold it
        with pytest.raises(DataError) as checked:
            check_data(config)
        with pytest.raises(DataError) as loaded:
            load_dataset(config.name, cache=False)
        for error in (checked.value, loaded.value):
            assert "not inside the data folder" in str(error), (name, str(error))
            assert str(tmp_path) not in str(error) and "secret" not in str(error) and "no-such" not in str(error)
            messages.add(str(error))
    assert len(messages) == 1, messages  # nothing tells an existing outside folder from a missing one


def test_links_inside_an_image_folder_that_lead_out_are_refused(data_dir, tmp_path):
    mixed = data_dir / "mixed"
    write_images(mixed, ("cat",))
    (mixed / "dog").symlink_to(tmp_path / "secret" / "dog")  # a class folder that is a link out
    with pytest.raises(DataError, match="leads? outside the data folder") as error:
        check_dataset("folder:mixed")
    assert str(tmp_path / "secret") not in str(error.value)
    files = data_dir / "files"
    write_images(files, ("cat", "dog"))
    (files / "dog" / "9.png").symlink_to(tmp_path / "secret" / "dog" / "0.png")  # one image that is a link out
    with pytest.raises(DataError, match="leads? outside the data folder") as error:
        load_dataset("folder:files", cache=False)
    assert str(tmp_path / "secret") not in str(error.value)


def test_a_run_request_with_an_escaping_folder_fails_in_the_worker(data_dir, tmp_path):
    spec = archs.PRESETS["seed002-inception"]
    status = execute_request(RunRequest(spec, TrainConfig(max_steps=1), DataConfig(name="folder:../secret")),
                             MemoryRecorder())
    assert status["status"] == "failed" and "not inside the data folder" in status["error"]
    assert str(tmp_path) not in status["error"]


@pytest.mark.parametrize("name", ["cifar10", "mnist"])
def test_torchvision_data_sets_are_not_looked_for_beside_the_data_dir(tmp_path, monkeypatch, name):
    """The dashboard names no root: only the data folder itself is read, not its parents."""
    write_cifar(tmp_path, 2)
    (tmp_path / "MNIST" / "raw").mkdir(parents=True)
    for plain in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                  "t10k-labels-idx1-ubyte"):
        (tmp_path / "MNIST" / "raw" / plain).write_bytes(b"")
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("ARCHS_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(DataError, match="not found"):
        check_data(DataConfig(name=name))


# ---------------------------------------------------------------------------------------------- the page
SESSION = "a-hostile-session-key-01"


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHS_RUNS_DIR", str(tmp_path / "runs"))
    yield tmp_path / "runs"
    executor = get_executor("local", tmp_path / "runs")
    for run_id in executor.active():
        executor.stop(run_id, owner=executor.store.get(run_id).owner)  # as the page's user, who started it
    assert executor.wait(timeout=60)


def open_train(**state):
    base = archs.PRESETS["cifar-resnet20"]
    from dataclasses import replace

    spec = replace(base, name="tiny-resnet", input_size=8, in_channels=3,
                   stages=tuple(replace(s, blocks=1) for s in base.stages[:2]))
    at = open_app(spec=archs.encode_spec(spec), session=SESSION)
    at.switch_page("pages/train.py")
    for key, value in state.items():
        at.session_state[key] = value
    return run(at)


def page_text(at) -> str:
    return "\n".join(texts(getattr(at, kind)) for kind in ("error", "warning", "info", "caption", "markdown",
                                                             "text", "exception"))


def test_the_train_page_offers_only_image_folders_inside_the_data_dir(data_dir, runs_dir, tmp_path):
    at = open_train()
    run(at.selectbox(key="train.data").select("folder"))
    assert at.selectbox(key="train.folder").options == ["imgs", "sets/birds"]  # not escape, MNIST or secret
    assert not [w for w in at.text_input if w.key in ("train.folder", "train.root")], "no typed server path"
    assert str(tmp_path) not in page_text(at)
    run(at.button(key="train_start").click())
    [made] = RunStore(runs_dir).runs()
    data = made.settings()["data"]
    assert data["name"] == "folder:imgs" and data["root"] is None  # named inside the data dir, no server path
    assert str(data_dir) not in str(made.settings())


@pytest.mark.parametrize("which", range(8))
def test_a_forged_folder_choice_is_refused_without_naming_the_outside_path(data_dir, runs_dir, tmp_path, which):
    """A client may send any value for a widget: a path outside is refused, and the message is the same
    whether that path exists or not."""
    name = outside_names(tmp_path)[which]
    at = open_train(**{"train.data": "folder", "train.folder": name})
    run(at.button(key="train_start").click())
    assert_clean(at)
    message = texts(at.error)
    assert "No run started" in message and "not inside the data folder" in message, message
    assert str(tmp_path) not in message and "secret" not in message and "no-such" not in message
    assert RunStore(runs_dir).runs() == []


def test_no_download_control_unless_the_operator_allows_it(data_dir, runs_dir, monkeypatch):
    at = open_train(**{"train.data": "mnist"})
    assert not [c for c in at.checkbox if c.key == "train.download" or "ownload" in c.label]
    assert "the operator has not allowed downloads" in texts(at.caption)
    assert "ARCHS_ALLOW_DOWNLOAD=1" in texts(at.caption)  # and says how they turn them on
    at.session_state["train.download"] = True  # a forged value without the control: nothing is fetched
    run(at.button(key="train_start").click())
    assert "No run started" in texts(at.error) and RunStore(runs_dir).runs() == []
    monkeypatch.setenv("ARCHS_ALLOW_DOWNLOAD", "yes")
    at = open_train(**{"train.data": "mnist"})
    assert [c for c in at.checkbox if c.key == "train.download"]


def test_make_run_allows_downloads_on_a_laptop_and_make_serve_does_not():
    """A laptop's one user is the operator (issue 20 §4); a shared server stays off unless its operator says."""
    def last_line(target: str, **env: str) -> str:
        return subprocess.run(["make", "--no-print-directory", "-n", target], cwd=Path(__file__).resolve().parents[1],
                              capture_output=True, text=True,
                              check=True, env={**os.environ, **env}).stdout.strip().splitlines()[-1]

    run_line = last_line("run")
    assert run_line.startswith("ARCHS_ALLOW_DOWNLOAD=${ARCHS_ALLOW_DOWNLOAD-1} ") and "streamlit run" in run_line
    out = subprocess.run(["bash", "-c", run_line.split(" ", 1)[0] + "; echo $ARCHS_ALLOW_DOWNLOAD"],
                         capture_output=True, text=True, env={k: v for k, v in os.environ.items()
                                                              if k != "ARCHS_ALLOW_DOWNLOAD"}).stdout.strip()
    assert out == "1"                                                   # on by default
    out = subprocess.run(["bash", "-c", run_line.split(" ", 1)[0] + "; echo $ARCHS_ALLOW_DOWNLOAD"],
                         capture_output=True, text=True, env={**os.environ, "ARCHS_ALLOW_DOWNLOAD": "0"}).stdout.strip()
    assert out == "0"                                                   # the laptop's user may still say no
    assert "ARCHS_ALLOW_DOWNLOAD" not in last_line("serve")


def test_the_degradation_experiment_reads_the_chosen_folder_inside_the_data_dir(data_dir, runs_dir):
    at = open_train(**{"train.data": "folder", "train.folder": "sets/birds"})
    run(at.button(key="deg_start").click())
    store = RunStore(runs_dir)
    [study] = store.studies.list()  # the four nets are a study's trials; its driver submits them a few at a time
    assert len(store.studies.trials(study["id"])) == 4
    data = study["definition"]["data"]
    assert (data["name"], data["root"], data["download"]) == ("folder:sets/birds", None, False)
    rows = store.runs()
    assert rows, "no trial was handed to the executor"
    assert {(r.settings()["data"]["name"], r.settings()["data"]["root"], r.settings()["data"]["download"])
            for r in rows} == {("folder:sets/birds", None, False)}
    stop_all(runs_dir)
