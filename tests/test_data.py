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
from archs.training.data import DATASETS, DataError, augment_batch, check_data, check_dataset, load_dataset
from archs.training.data.base import DataSet, DatasetInfo, Raw


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


def test_the_digits_are_read_and_split_as_scikit_learn_reads_and_splits_them():
    """A worker reads the digits without importing scikit-learn (3 s of CPU): the same images, labels and split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from archs.training.data.digits import load, stratified_split

    bunch = load_digits()
    train, test = train_test_split(range(len(bunch.target)), test_size=0.2, random_state=0, stratify=bunch.target)
    ours = stratified_split(bunch.target, 0.2, seed=0)
    assert [list(ours[0]), list(ours[1])] == [list(train), list(test)]
    images = torch.from_numpy(bunch.images).float().mul(255.0 / 16.0).round().to(torch.uint8).unsqueeze(1)
    raw = load(Path("."), False)
    assert torch.equal(raw.train_x, images[train]) and torch.equal(raw.test_x, images[test])
    assert raw.train_y.tolist() == bunch.target[train].tolist() and raw.test_y.tolist() == bunch.target[test].tolist()
    labels = np.repeat(np.arange(3), [5, 7, 9])  # another population: still sklearn's split
    for seed in (0, 1, 7):
        expected = train_test_split(range(21), test_size=0.3, random_state=seed, stratify=labels)
        assert [list(part) for part in stratified_split(labels, 0.3, seed)] == [list(part) for part in expected]


def test_bad_sizes_name_the_field(tmp_path):
    with pytest.raises(DataError, match="input_size"):
        load_dataset("digits", input_size=0)
    with pytest.raises(DataError, match="in_channels=2 does not fit CIFAR-10, which has 3 channels"):
        load_dataset("cifar10", root=write_cifar(tmp_path), in_channels=2)


def test_unknown_name_lists_the_choices():
    with pytest.raises(DataError, match="unknown data set 'svhn'.*digits, mnist, fashion-mnist, cifar10"):
        check_dataset("svhn")


def test_a_new_source_is_one_registry_entry(monkeypatch):
    """Registered, a data set is checked, loaded, fitted and listed like the others: nothing else to edit."""
    x, y = torch.randint(0, 256, (6, 1, 4, 4), dtype=torch.uint8), torch.tensor([0, 1] * 3)
    toy = DatasetInfo("toy", "Toy", "test", 1, 4, "flip", check=lambda root, lenient: "made here",
                      load=lambda root, lenient: Raw(x, y, x[:2], y[:2], ("a", "b"), "made here"))
    monkeypatch.setitem(DATASETS, "toy", toy)
    assert check_dataset("toy") == "made here"
    data = load_dataset("toy", input_size=8, in_channels=3, cache=False)
    assert isinstance(data, DataSet) and data.train_x.shape == (6, 3, 8, 8) and data.augment == "flip"
    with pytest.raises(DataError, match="use one of digits, mnist, fashion-mnist, cifar10, toy,"):
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
    from archs.training import DataConfig, MemoryRecorder, RunRequest, TrainConfig, execute_request

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


class Python2Pickler(pickle._Pickler):
    """Pickles as Python 2 did for CIFAR-10's own files: ``bytes`` as Python 2's ``str`` (read back as text
    with latin-1) and NumPy's globals under NumPy 1's ``numpy.core`` names."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        size = len(obj)
        self.write((pickle.SHORT_BINSTRING + bytes([size]) if size < 256 else
                    pickle.BINSTRING + size.to_bytes(4, "little")) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str

    def save_global(self, obj, name=None):
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)


def dump(obj, protocol) -> bytes:
    if protocol == "py2":
        buffer = __import__("io").BytesIO()
        Python2Pickler(buffer, protocol=2).dump(obj)
        return buffer.getvalue()
    return pickle.dumps(obj, protocol=protocol)


@pytest.mark.parametrize("protocol", ["py2", 2, 4, 5])
@pytest.mark.parametrize("keys", ["str", "bytes"])
def test_cifar_batches_in_each_pickle_format_are_read_as_torchvision_reads_them(tmp_path, monkeypatch, protocol,
                                                                                keys):
    key = (lambda k: k.encode()) if keys == "bytes" else (lambda k: k)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(1)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batches[name] = (rng.integers(0, 256, (3, 3072), dtype=np.uint8), [int(v) for v in rng.integers(0, 10, 3)])
        entry = {key("data"): batches[name][0], key("labels"): batches[name][1], key("batch_label"): key(name)}
        (folder / name).write_bytes(dump(entry, protocol))
    labels = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (folder / "batches.meta").write_bytes(dump({key("label_names"): [key(n) for n in labels],
                                                key("num_vis"): 3072}, protocol))
    data = load_dataset("cifar10", root=tmp_path, cache=False)
    train = [batches[f"data_batch_{i}"] for i in range(1, 6)]
    assert data.train_x.dtype == torch.uint8 and data.train_x.shape == (15, 3, 32, 32)
    assert torch.equal(data.train_x, torch.from_numpy(np.concatenate([d for d, _ in train]).reshape(-1, 3, 32, 32)))
    assert data.train_y.tolist() == sum((lab for _, lab in train), [])
    assert torch.equal(data.test_x, torch.from_numpy(batches["test_batch"][0].reshape(-1, 3, 32, 32)))
    assert data.test_y.tolist() == batches["test_batch"][1] and data.classes == tuple(labels)
    if keys == "str":  # torchvision's own reader (pickle.load, fine on files made here) gives the same tensors
        from archs._compat import import_torchvision

        tv = import_torchvision()
        monkeypatch.setattr(tv.datasets.cifar, "check_integrity", lambda *args, **kwargs: True)  # not the md5s
        for split, x, y in ((True, data.train_x, data.train_y), (False, data.test_x, data.test_y)):
            theirs = tv.datasets.CIFAR10(str(tmp_path), train=split)
            assert torch.equal(x, torch.from_numpy(theirs.data).permute(0, 3, 1, 2))
            assert y.tolist() == theirs.targets and data.classes == tuple(theirs.classes)


def test_cifar_batches_that_are_not_cifar_are_refused(tmp_path):
    root = write_cifar(tmp_path / "float")
    (root / "cifar-10-batches-py" / "data_batch_2").write_bytes(pickle.dumps({"data": np.zeros((2, 3072)),
                                                                               "labels": [0, 1]}))
    with pytest.raises(DataError, match="data_batch_2: its data is not rows of 3072 bytes"):
        load_dataset("cifar10", root=root, cache=False)
    root = write_cifar(tmp_path / "label")
    (root / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8),
                                                                             "labels": [0, 10]}))
    with pytest.raises(DataError, match="a label is outside the 10 classes"):
        load_dataset("cifar10", root=root, cache=False)
    root = write_cifar(tmp_path / "list")
    (root / "cifar-10-batches-py" / "batches.meta").write_bytes(pickle.dumps(["airplane"]))
    with pytest.raises(DataError, match="batches.meta: it holds a list, not a dict"):
        load_dataset("cifar10", root=root, cache=False)


def test_the_command_line_still_names_any_folder(tmp_path):
    """Plain paths (the operator's ``--data PATH --data-root DIR``) are not confined to the data folder."""
    from archs.cli import build_parser
    from archs.training.cli import build_request

    root = write_cifar(tmp_path / "tv")
    assert load_dataset("cifar10", root=root / "cifar-10-batches-py", cache=False).train_size == 20  # root/<folder>
    images = write_folder(tmp_path / "elsewhere", per_class=3)
    args = build_parser().parse_args(["train", "seed002-inception", "--data", str(images), "--data-root", str(root)])
    request = build_request(args)
    assert (request.data.name, request.data.root) == (str(images), str(root))
    assert "3 classes" in check_data(request.data)


def test_an_image_folder_named_inside_the_data_dir(tmp_path, monkeypatch):
    from archs.training.datadir import image_folders

    data_dir = tmp_path / "data"
    folder = write_folder(data_dir / "shapes" / "grey", per_class=5)
    (data_dir / "MNIST" / "raw").mkdir(parents=True)
    (data_dir / "linked").symlink_to(folder)  # a link that stays inside is fine
    (data_dir / "shapes" / "one" / "only").mkdir(parents=True)
    monkeypatch.setenv("ARCHS_DATA_DIR", str(data_dir))
    assert image_folders() == ["linked", "shapes/grey"]
    assert check_dataset("folder:shapes/grey") == "image folder 'shapes/grey' of the data folder (3 classes)"
    inside = load_dataset("folder:shapes/grey", input_size=8, cache=False)
    plain = load_dataset(str(folder), input_size=8, cache=False)
    assert torch.equal(inside.train_x, plain.train_x) and inside.classes == plain.classes
    assert inside.name == "folder:shapes/grey" and str(tmp_path) not in inside.summary()["source"]
    assert load_dataset("folder:linked", input_size=8, cache=False).train_size == plain.train_size
    with pytest.raises(DataError, match="^image folder 'shapes/missing' not found$"):
        check_dataset("folder:shapes/missing")
    with pytest.raises(DataError, match="image folder 'shapes/one' needs at least two class sub-folders, found 1"):
        load_dataset("folder:shapes/one")
    for name in ("folder:", "folder:.", "folder:shapes/.."):
        with pytest.raises(DataError, match="not inside the data folder"):
            check_dataset(name)
