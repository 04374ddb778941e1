"""Data sets as tensors: the offline digits, the real MNIST / Fashion-MNIST files, a CIFAR-10
written here, an image folder, and clear errors for missing, partial or unreadable data."""

from __future__ import annotations

import gzip
import pickle
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import archs

from archs.training.data import DataError, augment_batch, check_dataset, load_dataset

def copy_mnist(source: Path, dest: Path) -> Path:
    shutil.copytree(source / "MNIST", dest / "MNIST")
    return dest


def write_cifar(root: Path, per_batch: int = 4, seed: int = 0) -> Path:
    """A small data set in CIFAR-10's python format: five train batches, a test batch, the meta."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        batch = {"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 "labels": [int(v) for v in rng.integers(0, 10, per_batch)], "batch_label": name}
        (folder / name).write_bytes(pickle.dumps(batch))
    labels = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": labels}))
    return root


def test_digits_are_fitted_to_the_network():
    data = load_dataset("digits", input_size=16, in_channels=3)
    assert (len(data.train_y), len(data.test_y)) == (1437, 360)
    assert data.train_x.shape == (1437, 3, 16, 16) and data.train_x.dtype == torch.uint8
    assert data.classes == tuple(str(i) for i in range(10))
    assert torch.equal(data.train_x[:, 0], data.train_x[:, 2])  # grey copied to three channels
    native = load_dataset("digits")
    assert native.train_x.shape[1:] == (1, 8, 8) and int(native.train_x.max()) == 255


def test_bad_sizes_name_the_field(tmp_path):
    with pytest.raises(DataError, match="input_size"):
        load_dataset("digits", input_size=0)
    with pytest.raises(DataError, match="in_channels=2 does not fit CIFAR-10, which has 3 channels"):
        load_dataset("cifar10", root=write_cifar(tmp_path), in_channels=2)


def test_unknown_name_lists_the_choices():
    with pytest.raises(DataError, match="unknown data set 'svhn'.*digits, mnist, fashion-mnist, cifar10"):
        check_dataset("svhn")


def test_real_mnist_and_fashion_mnist(torchvision_root):
    mnist = load_dataset("mnist", root=torchvision_root, input_size=32)
    assert mnist.train_x.shape == (60000, 1, 32, 32) and mnist.test_x.shape == (10000, 1, 32, 32)
    assert torch.bincount(mnist.train_y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    fashion = load_dataset("fashion-mnist", root=torchvision_root, train_limit=500, test_limit=100)
    assert fashion.train_x.shape == (500, 1, 28, 28) and len(fashion.test_y) == 100
    assert fashion.classes[0] == "T-shirt/top"
    full = load_dataset("fashion-mnist", root=torchvision_root, cache=False)
    assert torch.bincount(full.train_y).tolist() == [6000] * 10


def test_missing_partial_and_corrupt_mnist(torchvision_root, tmp_path):
    with pytest.raises(DataError, match="MNIST not found: expected its files in .*MNIST/raw"):
        load_dataset("mnist", root=tmp_path / "empty")
    partial = copy_mnist(torchvision_root, tmp_path / "partial")
    for extracted in (partial / "MNIST" / "raw").glob("*-ubyte"):
        extracted.unlink()
    (partial / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="incomplete: missing t10k-labels-idx1-ubyte.gz"):
        check_dataset("mnist", partial)
    corrupt = copy_mnist(torchvision_root, tmp_path / "corrupt")
    for extracted in (corrupt / "MNIST" / "raw").glob("*-ubyte"):
        extracted.unlink()
    gz = corrupt / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:1000])
    with pytest.raises(DataError, match=r"corrupt \(checksum mismatch\) train-labels-idx1-ubyte.gz"):
        load_dataset("mnist", root=corrupt, cache=False)


def test_unreadable_mnist_file(torchvision_root, tmp_path):
    root = copy_mnist(torchvision_root, tmp_path / "bad")
    load_dataset("mnist", root=root, test_limit=10, cache=False)  # extracts the IDX files
    (root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").write_bytes(gzip.compress(b"not idx"))
    with pytest.raises(DataError, match="could not read MNIST in .*MNIST/raw"):
        load_dataset("mnist", root=root, cache=False)


def test_cifar_format_file(tmp_path):
    root = write_cifar(tmp_path)
    data = load_dataset("cifar10", root=root, in_channels=1, input_size=16)
    assert data.train_x.shape == (20, 1, 16, 16) and data.test_x.shape == (4, 1, 16, 16)
    assert data.classes[-1] == "truck"
    native = load_dataset("cifar10", root=root)
    raw = pickle.loads((root / "cifar-10-batches-py" / "data_batch_1").read_bytes())
    assert torch.equal(native.train_x[0], torch.from_numpy(raw["data"][0].reshape(3, 32, 32)))
    assert native.train_y[:4].tolist() == raw["labels"]


def test_cifar_missing_and_unreadable(tmp_path):
    root = write_cifar(tmp_path / "a")
    (root / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataError, match="CIFAR-10 in .* is incomplete: missing data_batch_3"):
        load_dataset("cifar10", root=root)
    root = write_cifar(tmp_path / "b")
    (root / "cifar-10-batches-py" / "test_batch").write_bytes(b"\x80garbage")
    with pytest.raises(DataError, match="could not read CIFAR-10"):
        load_dataset("cifar10", root=root)


def test_image_folder(tmp_path):
    from PIL import Image

    for cls, value in (("cat", 30), ("dog", 220)):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(5):
            Image.new("RGB", (20, 12), (value, value, value)).save(tmp_path / "imgs" / cls / f"{i}.png")
    data = load_dataset(str(tmp_path / "imgs"), input_size=8, in_channels=1)
    assert data.classes == ("cat", "dog")
    assert (len(data.train_y), len(data.test_y)) == (8, 2)
    assert data.train_x.shape[1:] == (1, 8, 8)
    assert set(data.train_x.unique().tolist()) == {30, 220}
    (tmp_path / "one" / "only").mkdir(parents=True)
    with pytest.raises(DataError, match="needs at least two class sub-folders, found 1"):
        load_dataset(str(tmp_path / "one"))


def test_augment_batch_crops_and_flips_each_image():
    generator = torch.Generator().manual_seed(0)
    x = torch.arange(6 * 2 * 5 * 5, dtype=torch.uint8).view(6, 2, 5, 5)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    out = augment_batch(x, "crop-flip", pad=2, generator=generator)
    assert out.shape == x.shape
    for i in range(6):
        windows = [padded[i, :, r:r + 5, c:c + 5] for r in range(5) for c in range(5)]
        assert any(torch.equal(out[i], w) or torch.equal(out[i], w.flip(2)) for w in windows)
    flipped = augment_batch(x, "flip", generator=generator)
    assert all(torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(2)) for i in range(6))
    assert augment_batch(x, "none") is x
    with pytest.raises(ValueError, match="augment must be one of"):
        augment_batch(x, "rotate")


def write_folder(root: Path, per_class: int = 12, size: int = 20) -> Path:
    """An ImageFolder of 3 classes whose images are told apart by brightness, with some noise."""
    from PIL import Image

    generator = torch.Generator().manual_seed(0)
    for c, cls in enumerate(("dark", "grey", "light")):
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            pixels = (40 + 80 * c + torch.randint(0, 30, (size, size, 3), generator=generator)).to(torch.uint8)
            Image.fromarray(pixels.numpy()).save(root / cls / f"{i}.png")
    return root


def test_a_folder_over_the_memory_budget_streams_the_same_images(tmp_path, monkeypatch):
    from archs.training.data import StreamingData

    monkeypatch.setenv("ARCHS_DATA_WORKERS", "2")
    folder = write_folder(tmp_path / "imgs")
    whole = load_dataset(str(folder), input_size=16, in_channels=3, cache=False)
    streamed = load_dataset(str(folder), input_size=16, in_channels=3, cache=False, memory_budget_bytes=10_000)
    assert isinstance(streamed, StreamingData) and streamed.summary()["streamed"] and streamed.workers == 2
    assert (streamed.train_size, streamed.test_size, streamed.classes) == (28, 8, ("dark", "grey", "light"))
    assert (whole.train_size, whole.test_size) == (28, 8)
    xs, ys = zip(*streamed.test_batches(batch=3))
    assert [len(y) for y in ys] == [3, 3, 2]
    assert torch.equal(torch.cat(xs), whole.test_x) and torch.equal(torch.cat(ys), whole.test_y)
    gen = torch.Generator().manual_seed(5)
    a = list(streamed.train_batches(gen, global_batch=8, local_batch=4, rank=1, steps=3))
    b = list(whole.train_batches(torch.Generator().manual_seed(5), global_batch=8, local_batch=4, rank=1, steps=3))
    assert len(a) == 3 and all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b))
    limited = load_dataset(str(folder), input_size=16, in_channels=3, cache=False, memory_budget_bytes=10_000,
                           train_limit=10)
    assert limited.train_size == 10


def test_a_run_trains_on_a_streamed_folder(tmp_path, monkeypatch):
    from archs.training import MemoryRecorder, RunRequest, TrainConfig, DataConfig, execute_request

    monkeypatch.setenv("ARCHS_DATA_WORKERS", "2")
    monkeypatch.setenv("ARCHS_DATA_MEMORY_BUDGET", "10K")
    folder = write_folder(tmp_path / "imgs", per_class=20)
    spec = archs.PRESETS["seed002-inception"]
    spec = replace(spec, in_channels=3, input_size=16)
    recorder = MemoryRecorder()
    status = execute_request(RunRequest(spec, TrainConfig(epochs=6, batch_size=8, lr=3e-3, grad_every=0,
                                                          augment="none", amp="off"),
                                        DataConfig(name=str(folder))), recorder)
    assert status["status"] == "completed", status.get("error")
    assert status["data"]["streamed"] and status["data"]["train"] == 48
    assert status["result"]["steps"] == 6 * (48 // 8)
    assert status["result"]["test_accuracy"] >= 0.75  # brightness tells the classes apart: it learns
