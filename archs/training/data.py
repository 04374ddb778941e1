"""Data sets as tensors: load once, resize once, then batches are plain tensor indexing.

Every data set ends up as a :class:`TensorData`: uint8 images ``N x C x H x W`` already at the
network's size and channel count, int64 labels, and per-channel mean and std for normalisation.
Augmentation (pad-crop, horizontal flip) works on whole batches of such tensors, so the training
loop never touches a PIL image or runs Python per sample.

Sources (see :data:`DATASETS`):

- ``digits``: scikit-learn's bundled 8x8 handwritten digits. Shipped inside scikit-learn, so it is
  the offline default.
- ``mnist``, ``fashion-mnist``, ``cifar10``: torchvision data sets, read from ``root`` in
  torchvision's layout (``<root>/MNIST/raw/...``, ``<root>/cifar-10-batches-py/...``). Nothing is
  fetched unless ``download=True``.
- any other string is a folder of images in torchvision ``ImageFolder`` layout: either
  ``<path>/train/<class>/*`` plus ``<path>/test/<class>/*`` (or ``val``), or ``<path>/<class>/*``
  split 80/20 with a fixed seed.
- ``folder:<relative/path>`` is such a folder inside the server's data folder (``$ARCHS_DATA_DIR``),
  resolved there when it is checked or loaded and refused if it leads out of it: how the dashboard
  names image folders (see :mod:`archs.training.datadir`). Plain paths are for the operator (the CLI).

CIFAR-10's python batches are pickles: they are read with an unpickler that accepts only what those
files hold (dicts, lists, strings, numbers and NumPy arrays), never with ``pickle.load``.

Anything missing, partial or unreadable raises :class:`DataError` with a message a UI can show.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F

from archs.training.config import AUGMENTATIONS
from archs.training.datadir import (FOLDER_PREFIX, class_dirs, confined_file, data_dir, is_folder_name,
                                    relative_part, resolve_folder, split_folder)

__all__ = [
    "AUGMENTATIONS",
    "StreamingData",
    "memory_budget",
    "DATASETS",
    "FOLDER_PREFIX",
    "DataError",
    "DatasetInfo",
    "TensorData",
    "augment_batch",
    "check_dataset",
    "dataset_info",
    "default_data_root",
    "load_dataset",
    "normalize_batch",
]


class DataError(ValueError):
    """A data set is missing, partial, unreadable or cannot be fitted to the network."""


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    title: str
    source: str  # "sklearn" | "torchvision" | "folder"
    channels: int  # native channels
    size: int  # native square size (0 when it varies: image folders)
    augment: str  # recommended augmentation: "none" | "crop" | "flip" | "crop-flip"
    description: str = ""


DATASETS: dict[str, DatasetInfo] = {
    "digits": DatasetInfo(
        "digits", "Digits (scikit-learn, offline)", "sklearn", 1, 8, "none",
        "1,797 handwritten digits of 8x8 pixels bundled with scikit-learn; needs no network.",
    ),
    "mnist": DatasetInfo(
        "mnist", "MNIST", "torchvision", 1, 28, "crop",
        "70,000 handwritten digits of 28x28 pixels (torchvision layout: <root>/MNIST/raw).",
    ),
    "fashion-mnist": DatasetInfo(
        "fashion-mnist", "Fashion-MNIST", "torchvision", 1, 28, "crop-flip",
        "70,000 clothing images of 28x28 pixels (torchvision layout: <root>/FashionMNIST/raw).",
    ),
    "cifar10": DatasetInfo(
        "cifar10", "CIFAR-10", "torchvision", 3, 32, "crop-flip",
        "60,000 colour images of 32x32 pixels (torchvision layout: <root>/cifar-10-batches-py).",
    ),
}



def default_data_root() -> Path:
    """``$ARCHS_DATA_DIR`` or ``./data``."""
    return data_dir()


def dataset_info(name: str) -> DatasetInfo:
    """Info for a named data set, or for an image folder when ``name`` is a path or ``folder:<relative>``."""
    if name in DATASETS:
        return DATASETS[name]
    return DatasetInfo(str(name), f"Image folder {relative_part(str(name))}", "folder", 3, 0, "crop-flip")


@dataclass(frozen=True)
class TensorData:
    """A whole data set as tensors, ready for batch indexing on one device."""

    name: str
    train_x: torch.Tensor  # uint8, N x C x H x W
    train_y: torch.Tensor  # int64, N
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[str, ...]
    mean: tuple[float, ...]  # per channel, on the 0..1 scale
    std: tuple[float, ...]
    augment: str = "none"  # recommended augmentation for this data set
    source: str = field(default="", compare=False)  # where it was read from, for display

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def input_size(self) -> int:
        return int(self.train_x.shape[-1])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.train_x, self.train_y, self.test_x, self.test_y))

    def to(self, device: torch.device | str) -> "TensorData":
        return replace(
            self,
            train_x=self.train_x.to(device), train_y=self.train_y.to(device),
            test_x=self.test_x.to(device), test_y=self.test_y.to(device),
        )

    @property
    def device(self) -> torch.device:
        return self.train_x.device

    @property
    def train_size(self) -> int:
        return len(self.train_y)

    @property
    def test_size(self) -> int:
        return len(self.test_y)

    def summary(self) -> dict:
        return {
            "name": self.name, "train": len(self.train_y), "test": len(self.test_y),
            "channels": self.in_channels, "size": self.input_size, "classes": self.num_classes,
            "source": self.source, "streamed": False,
        }

    def train_batches(self, generator: torch.Generator | None, global_batch: int, local_batch: int, rank: int,
                      steps: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch: ``steps`` batches of a fresh permutation; this process's ``local_batch`` images of each
        ``global_batch`` (rank ``rank``), as uint8 images and labels where the data lives."""
        order = torch.randperm(self.train_size, device=self.device, generator=generator)
        for index in range(steps):
            idx = order[index * global_batch + rank * local_batch:][:local_batch]
            yield self.train_x[idx], self.train_y[idx]

    def test_batches(self, batch: int, rank: int = 0, world: int = 1) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The test set in order (every ``world``-th image from ``rank``), in batches."""
        xs, ys = self.test_x[rank::world], self.test_y[rank::world]
        for start in range(0, len(ys), batch):
            yield xs[start : start + batch], ys[start : start + batch]


class StreamingData:
    """An image folder too large for memory (see :func:`memory_budget`): read from disk batch by batch
    through a ``DataLoader`` with worker processes, decoded to uint8 images at the network's size, then
    augmented and normalised on whole batches like :class:`TensorData`, which it stands in for."""

    def __init__(self, name: str, train, test, classes: tuple[str, ...], channels: int, size: int,
                 augment: str, source: str, workers: int):
        self.name, self.train, self.test, self.classes = name, train, test, classes
        self.in_channels, self.input_size, self.augment, self.source = channels, size, augment, source
        self.workers = workers
        self.mean, self.std = _mean_std(torch.stack([train[i][0] for i in _spread(len(train), 512)]))

    device = torch.device("cpu")
    nbytes = 0  # nothing resident: place_data leaves it where it is

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def train_size(self) -> int:
        return len(self.train)

    @property
    def test_size(self) -> int:
        return len(self.test)

    def to(self, device) -> StreamingData:
        return self  # batches move to the device one at a time

    def summary(self) -> dict:
        return {"name": self.name, "train": self.train_size, "test": self.test_size, "channels": self.in_channels,
                "size": self.input_size, "classes": self.num_classes, "source": self.source, "streamed": True,
                "workers": self.workers}

    def _loader(self, dataset, batches: list[list[int]]):
        import torch.utils.data

        return torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=self.workers,
                                           pin_memory=torch.cuda.is_available(),
                                           persistent_workers=False)

    def train_batches(self, generator, global_batch: int, local_batch: int, rank: int,
                      steps: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(self.train_size, generator=generator).tolist()
        batches = [order[i * global_batch + rank * local_batch:][:local_batch] for i in range(steps)]
        yield from self._loader(self.train, batches)

    def test_batches(self, batch: int, rank: int = 0, world: int = 1) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        mine = list(range(rank, self.test_size, world))
        yield from self._loader(self.test, [mine[i : i + batch] for i in range(0, len(mine), batch)])


def _limit(split, limit: int | None, seed: int):
    """A fixed random subset of at most ``limit`` items of a lazily decoded split (as :func:`_subset` does
    for tensors)."""
    if limit is None or limit >= len(split):
        return split
    keep = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:limit].sort().values.tolist()
    base = split.indices if split.indices is not None else range(len(split.folder))
    return type(split)(split.folder, [base[i] for i in keep])


def _spread(n: int, k: int) -> list[int]:
    """At most ``k`` indices spread evenly over ``range(n)``."""
    return sorted({round(i * (n - 1) / max(k - 1, 1)) for i in range(min(n, k))})


def _mean_std(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (0..1 scale) of uint8 images ``N x C x H x W``."""
    scaled = images.float().div_(255.0)
    mean = tuple(float(v) for v in scaled.mean(dim=(0, 2, 3)))
    std = tuple(max(float(v), 1e-3) for v in scaled.std(dim=(0, 2, 3)))
    return mean, std


def memory_budget() -> int:
    """Bytes a data set may take in memory before it is streamed from disk: ``$ARCHS_DATA_MEMORY_BUDGET``
    (a number of bytes, or with a K, M or G suffix), default 2G."""
    text = os.environ.get("ARCHS_DATA_MEMORY_BUDGET", "2G").strip().upper()
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    try:
        return int(float(text[:-1] if scale > 1 else text) * scale)
    except ValueError:
        return 2 << 30


# ---------------------------------------------------------------------------------------------
# torchvision (imported through the CPU/CUDA shim)


def _torchvision():
    from archs._compat import import_torchvision

    return import_torchvision()


# ---------------------------------------------------------------------------------------------
# checking and reading each source

_TV_CLASS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "cifar10": "CIFAR10"}


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _mnist_root(name: str, root: Path, lenient: bool = True) -> Path:
    """The torchvision root for ``name``: accepts ``root``, ``root/MNIST`` or ``root/MNIST/raw`` (only
    ``root`` itself when not ``lenient``: the data folder, whose parents are not the dashboard's to read)."""
    folder = _TV_CLASS[name]
    for candidate in (root, root.parent, root.parent.parent) if lenient else (root,):
        if (candidate / folder / "raw").is_dir():
            return candidate
    return root


def _check_mnist(name: str, root: Path, lenient: bool = True) -> Path:
    """Make sure the four decompressed IDX files exist; decompress verified ``.gz`` files.

    Never touches the network. Returns the torchvision root to read from.
    """
    tv = _torchvision()
    cls = getattr(tv.datasets, _TV_CLASS[name])
    tv_root = _mnist_root(name, root, lenient)
    raw = tv_root / _TV_CLASS[name] / "raw"
    title = DATASETS[name].title
    if not raw.is_dir():
        raise DataError(
            f"{title} not found: expected its files in {raw} "
            f"(torchvision layout <root>/{_TV_CLASS[name]}/raw)"
            + ("; name a folder that holds them" if lenient else "")
        )
    missing, corrupt = [], []
    for gz_name, md5 in cls.resources:
        plain = raw / gz_name[: -len(".gz")]
        gz = raw / gz_name
        if plain.is_file():
            continue
        if not gz.is_file():
            missing.append(gz_name)
        elif _md5(gz) != md5:
            corrupt.append(gz_name)
    if missing or corrupt:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(missing))
        if corrupt:
            parts.append("corrupt (checksum mismatch) " + ", ".join(corrupt))
        raise DataError(f"{title} in {raw} is incomplete: " + "; ".join(parts))
    for gz_name, _ in cls.resources:
        plain = raw / gz_name[: -len(".gz")]
        if not plain.is_file():
            try:
                tv.datasets.utils.extract_archive(str(raw / gz_name), str(raw))
            except Exception as exc:  # a gzip that passes md5 but cannot be read: disk trouble
                raise DataError(f"{title}: could not decompress {raw / gz_name}: {exc}") from exc
    return tv_root


# CIFAR-10's python version: five training batches, a test batch and the class names, each a pickle
CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST = ("test_batch",)
CIFAR_META = "batches.meta"


class _Refused(pickle.UnpicklingError):
    """A pickle names a global a data file may not use."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


def _latin1(text, encoding="latin1", errors="strict"):
    """``_codecs.encode`` as Python 3 pickles ``bytes`` at protocol 2, for latin-1 only (no other codec)."""
    if not isinstance(text, str) or str(encoding).lower().replace("-", "").replace("_", "") != "latin1":
        raise _Refused(f"_codecs.encode with {encoding!r}")
    return text.encode("latin1")


def _data_globals() -> dict[tuple[str, str], object]:
    """The globals a CIFAR batch may name: NumPy's array and dtype as pickled by NumPy 1 and 2 (classic
    ``_reconstruct`` and protocol 5's ``_frombuffer``), and Python 3's protocol-2 ``bytes``."""
    import numpy as np

    sample = np.zeros(1, np.uint8)
    allowed: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype, ("_codecs", "encode"): _latin1,
    }
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = sample.__reduce__()[0]
        allowed[(f"{core}.numeric", "_frombuffer")] = sample.__reduce_ex__(5)[0]
    return allowed


class _DataUnpickler(pickle.Unpickler):
    """Unpickles only plain data (dicts, lists, tuples, strings, bytes, numbers) and NumPy arrays; any
    other global (``os.system``, ``builtins.eval``, a class) is refused before it is looked up."""

    def __init__(self, file):
        super().__init__(file, encoding="latin1")  # Python 2's str, as torchvision reads these files
        self._allowed = _data_globals()

    def find_class(self, module: str, name: str):
        import _compat_pickle

        if (module, name) in self._allowed:
            return self._allowed[(module, name)]
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        raise _Refused(f"{module}.{name}")


def _unpickle_data(path: Path, what: str):
    """The contents of a data file that is a pickle, through :class:`_DataUnpickler`."""
    try:
        with open(path, "rb") as handle:
            return _DataUnpickler(handle).load()
    except _Refused as refused:
        raise DataError(f"could not read {what} {path}: it refers to {refused.name}, which a data file may "
                        "not") from None
    except Exception as exc:  # truncated, not a pickle, an array NumPy refuses: the file is bad
        raise DataError(f"could not read {what} {path}: {_first_line(exc)}") from exc


def _text_keys(entry, path: Path, what: str) -> dict:
    if not isinstance(entry, dict):
        raise DataError(f"could not read {what} {path}: it holds a {type(entry).__name__}, not a dict")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in entry.items()}


def _read_cifar_batch(path: Path):
    """(data N x 3072 uint8, labels N int64) of one CIFAR batch."""
    import numpy as np

    what = "CIFAR-10 batch"
    entry = _text_keys(_unpickle_data(path, what), path, what)
    data = entry.get("data")
    labels = entry.get("labels", entry.get("fine_labels"))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"could not read {what} {path}: its data is not rows of 3072 bytes (uint8, N x 3072)")
    if labels is None:
        raise DataError(f"could not read {what} {path}: it has no labels")
    labels = np.asarray(labels)
    if labels.size == 0:
        labels = labels.astype(np.int64)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(f"could not read {what} {path}: its labels are not a list of integers")
    if len(labels) != len(data):
        raise DataError(f"CIFAR-10 in {path.parent}: image and label counts differ in {path.name}")
    return data, labels.astype(np.int64)


def _read_cifar_meta(path: Path) -> tuple[str, ...]:
    what = "CIFAR-10 meta file"
    entry = _text_keys(_unpickle_data(path, what), path, what)
    names = entry.get("label_names")
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, (str, bytes)) for n in names):
        raise DataError(f"could not read {what} {path}: it has no list of label_names")
    return tuple(n.decode("latin1") if isinstance(n, bytes) else n for n in names)


def _cifar_root(root: Path, lenient: bool = True) -> Path:
    for candidate in (root, root.parent) if lenient else (root,):
        if (candidate / CIFAR_FOLDER).is_dir():
            return candidate
    return root


def _check_cifar(root: Path, lenient: bool = True) -> Path:
    tv_root = _cifar_root(root, lenient)
    folder = tv_root / CIFAR_FOLDER
    if not folder.is_dir():
        raise DataError(
            f"CIFAR-10 not found: expected {folder} (torchvision layout <root>/{CIFAR_FOLDER})"
            + ("; name a folder that holds it" if lenient else "")
        )
    names = list(CIFAR_TRAIN + CIFAR_TEST) + [CIFAR_META]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise DataError(f"CIFAR-10 in {folder} is incomplete: missing " + ", ".join(missing))
    return tv_root


def _check_folder(path: Path, label: str, real_base: Path | None = None) -> tuple[Path, list[Path]]:
    """(train folder, its class folders) of an image folder; ``label`` names it in messages. With
    ``real_base`` (a folder of the data folder) every class folder must lie inside it too."""
    if not path.exists():
        raise DataError(f"{label} not found")
    if not path.is_dir():
        raise DataError(f"{label} is not a folder of class sub-folders")
    train_dir, test_dir = split_folder(path)
    classes = class_dirs(train_dir)
    if len(classes) < 2:
        shown = label if real_base is not None else f"image folder {train_dir}"
        raise DataError(f"{shown} needs at least two class sub-folders, found {len(classes)}")
    if real_base is not None:
        every = [train_dir] + classes + ([test_dir] + class_dirs(test_dir) if test_dir is not None else [])
        if not all(confined_file(p, real_base) for p in every):
            raise DataError(f"{label}: a link in it leads outside the data folder, which is not allowed")
    return train_dir, classes


def _confined(name: str) -> tuple[Path, str, Path]:
    """(real path, label for messages, real data folder) of a ``folder:<relative>`` name; DataError when it
    leads outside the data folder."""
    relative = relative_part(name)
    path = resolve_folder(relative)
    return path, f"image folder {relative!r}", data_dir().resolve()


def check_dataset(name: str, root: str | os.PathLike | None = None, download: bool = False) -> str:
    """Check that a data set can be read, cheaply (files present, archives intact).

    Returns a one-line description of where it will be read from; raises :class:`DataError`
    otherwise. Used before a run is queued, so no run starts on a missing data set.
    With ``download=True`` a missing torchvision data set is not an error (it will be fetched).
    A ``folder:<relative>`` name is looked for inside the data folder only (``root`` does not apply), and
    without ``root`` torchvision data sets are looked for in the data folder itself, not beside it.
    """
    lenient = root is not None
    root = Path(root) if root is not None else default_data_root()
    if name == "digits":
        return "scikit-learn bundled digits"
    if name in ("mnist", "fashion-mnist"):
        try:
            return f"{DATASETS[name].title} from {_check_mnist(name, root, lenient)}"
        except DataError:
            if download:
                return f"{DATASETS[name].title}: will be downloaded into {root}"
            raise
    if name == "cifar10":
        try:
            return f"CIFAR-10 from {_check_cifar(root, lenient)}"
        except DataError:
            if download:
                return f"CIFAR-10: will be downloaded into {root}"
            raise
    if is_folder_name(name):
        path, label, real_base = _confined(name)
        _, classes = _check_folder(path, label, real_base)
        return f"{label} of the data folder ({len(classes)} classes)"
    path = Path(name)
    if not path.exists():
        known = ", ".join(DATASETS)
        raise DataError(f"unknown data set {name!r}: use one of {known}, or the path of an image folder")
    if not path.is_dir():
        raise DataError(f"data set path {path} is not a folder of class sub-folders")
    _, classes = _check_folder(path, f"image folder {path}")
    return f"image folder {path} ({len(classes)} classes)"


def _load_digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = torch.from_numpy(bunch.images).float().mul(255.0 / 16.0).round().to(torch.uint8)
    images = images.unsqueeze(1)  # N x 1 x 8 x 8
    labels = torch.from_numpy(bunch.target).long()
    train_idx, test_idx = train_test_split(
        range(len(labels)), test_size=0.2, random_state=0, stratify=bunch.target
    )
    train_idx, test_idx = torch.tensor(train_idx), torch.tensor(test_idx)
    classes = tuple(str(c) for c in bunch.target_names)
    return images[train_idx], labels[train_idx], images[test_idx], labels[test_idx], classes, "scikit-learn"


def _load_mnist(name: str, root: Path, download: bool, lenient: bool = True):
    tv = _torchvision()
    cls = getattr(tv.datasets, _TV_CLASS[name])
    if download:
        try:
            tv_root = _check_mnist(name, root, lenient)
        except DataError:
            tv_root = root
            try:
                cls(str(root), train=True, download=True)
            except Exception as exc:
                raise DataError(f"could not download {DATASETS[name].title} into {root}: {_first_line(exc)}") from exc
    else:
        tv_root = _check_mnist(name, root, lenient)
    try:
        train = cls(str(tv_root), train=True, download=False)
        test = cls(str(tv_root), train=False, download=False)
        tensors = (train.data.unsqueeze(1), train.targets.long(), test.data.unsqueeze(1), test.targets.long())
    except Exception as exc:
        raise DataError(
            f"could not read {DATASETS[name].title} in {tv_root / _TV_CLASS[name] / 'raw'}: {_first_line(exc)}"
        ) from exc
    return (*tensors, tuple(train.classes), str(tv_root / _TV_CLASS[name]))


def _download_cifar(root: Path) -> None:
    """Fetch and unpack torchvision's CIFAR-10 archive into ``root`` (its md5 checked); reads nothing."""
    tv = _torchvision()
    cls = tv.datasets.CIFAR10
    tv.datasets.utils.download_and_extract_archive(cls.url, str(root), filename=cls.filename, md5=cls.tgz_md5)


def _load_cifar(root: Path, download: bool, lenient: bool = True):
    """CIFAR-10 from its python batches, read with :class:`_DataUnpickler` (never ``pickle.load``): the
    same tensors as torchvision's CIFAR10 (N x 3 x 32 x 32 uint8, labels in file order, class names
    from ``batches.meta``)."""
    import numpy as np

    if download:
        try:
            tv_root = _check_cifar(root, lenient)
        except DataError:
            try:
                _download_cifar(root)
            except Exception as exc:
                raise DataError(f"could not download CIFAR-10 into {root}: {_first_line(exc)}") from exc
            tv_root = _check_cifar(root, lenient=False)
    else:
        tv_root = _check_cifar(root, lenient)
    folder = tv_root / CIFAR_FOLDER
    classes = _read_cifar_meta(folder / CIFAR_META)
    splits = []
    for names in (CIFAR_TRAIN, CIFAR_TEST):
        batches = [_read_cifar_batch(folder / n) for n in names]
        data = np.concatenate([b[0] for b in batches]).reshape(-1, 3, 32, 32)
        labels = np.concatenate([b[1] for b in batches])
        if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
            raise DataError(f"CIFAR-10 in {folder}: a label is outside the {len(classes)} classes of {CIFAR_META}")
        splits += [torch.from_numpy(data), torch.from_numpy(labels)]
    return (*splits, classes, str(folder))


def _to_rgb(img):
    return img.convert("RGB")


class _Decoded:
    """An ImageFolder (or a subset of one) whose items are uint8 ``C x H x W`` tensors at the network's
    size, with a DataError naming the file that cannot be read."""

    def __init__(self, folder, indices=None):
        self.folder, self.indices = folder, indices

    def __len__(self) -> int:
        return len(self.folder) if self.indices is None else len(self.indices)

    def __getitem__(self, i: int):
        index = i if self.indices is None else self.indices[i]
        try:
            return self.folder[index]
        except Exception as exc:
            raise DataError(f"could not read image {self.folder.samples[index][0]}: {_first_line(exc)}") from exc

    @property
    def targets(self) -> torch.Tensor:
        targets = torch.tensor(self.folder.targets, dtype=torch.long)
        return targets if self.indices is None else targets[torch.as_tensor(self.indices, dtype=torch.long)]


def _check_samples(ds, label: str, real_base: Path) -> None:
    """Every image of an ImageFolder inside the data folder: its folders' real paths, and each file that is
    a link (one ``lstat`` per file; a folder's real path once)."""
    folders: set[str] = set()
    for sample, _ in ds.samples:
        parent = os.path.dirname(sample)
        if parent not in folders:
            if not confined_file(parent, real_base):
                raise DataError(f"{label}: a link in it leads outside the data folder, which is not allowed")
            folders.add(parent)
        if os.path.islink(sample) and not confined_file(sample, real_base):
            raise DataError(f"{label}: a link in it leads outside the data folder, which is not allowed")


def _folder_splits(path: Path, channels: int, size: int, label: str | None = None,
                   real_base: Path | None = None) -> tuple[_Decoded, _Decoded, tuple[str, ...]]:
    """The train and test splits of an image folder, decoded lazily (nothing is read yet). With
    ``real_base`` (a folder of the data folder) every image must lie inside it."""
    tv = _torchvision()
    T = tv.transforms
    label = label or f"image folder {path}"
    if real_base is None:
        check_dataset(str(path))
    else:
        _check_folder(path, label, real_base)
    to_mode = T.Grayscale(1) if channels == 1 else T.Lambda(_to_rgb)
    transform = T.Compose([to_mode, T.Resize((size, size), antialias=True), T.PILToTensor()])
    train_dir, test_dir = split_folder(path)

    def scan(folder: Path, class_to_idx=None):
        shown = label if real_base is not None else f"image folder {folder}"
        try:
            ds = tv.datasets.ImageFolder(str(folder), transform=transform)
        except Exception as exc:
            raise DataError(f"could not read {shown}: {_first_line(exc)}") from exc
        if class_to_idx is not None and ds.class_to_idx != class_to_idx:
            raise DataError(f"class folders of {shown if real_base is not None else folder} differ from those of "
                            "the training folder")
        if real_base is not None:
            _check_samples(ds, label, real_base)
        return ds

    train = scan(train_dir)
    if test_dir is not None:
        return _Decoded(train), _Decoded(scan(test_dir, train.class_to_idx)), tuple(train.classes)
    from sklearn.model_selection import train_test_split

    targets = torch.tensor(train.targets, dtype=torch.long)
    stratify = targets.numpy() if int(torch.bincount(targets).min()) >= 2 else None
    train_idx, test_idx = train_test_split(list(range(len(targets))), test_size=0.2, random_state=0,
                                           stratify=stratify)
    return _Decoded(train, train_idx), _Decoded(train, test_idx), tuple(train.classes)


def _load_folder(splits, source: str):
    train, test, classes = splits

    def read(split: _Decoded):  # once, at load time: never in the training loop
        return torch.stack([split[i][0] for i in range(len(split))]), split.targets

    train_x, train_y = read(train)
    test_x, test_y = read(test)
    return train_x, train_y, test_x, test_y, classes, source


def _data_workers() -> int:
    """DataLoader workers for a streamed data set: ``$ARCHS_DATA_WORKERS``, default min(4, cores)."""
    try:
        return max(0, int(os.environ["ARCHS_DATA_WORKERS"]))
    except (KeyError, ValueError):
        from archs.training.device import cpu_count  # device imports this module

        return min(4, cpu_count())


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


# ---------------------------------------------------------------------------------------------
# fitting images to the network


def _fit_channels(x: torch.Tensor, channels: int, name: str) -> torch.Tensor:
    have = x.shape[1]
    if have == channels:
        return x
    if have == 1:
        return x.expand(-1, channels, -1, -1).contiguous()
    if have == 3 and channels == 1:  # ITU-R 601-2 luma, as PIL's convert("L")
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (x.float() * weights).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    raise DataError(f"in_channels={channels} does not fit {name}, which has {have} channels (use 1 or 3)")


def _fit_size(x: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    out = torch.empty((x.shape[0], x.shape[1], size, size), dtype=torch.uint8)
    for start in range(0, x.shape[0], chunk):
        part = x[start : start + chunk].float()
        part = F.interpolate(part, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[start : start + chunk] = part.round().clamp(0, 255).to(torch.uint8)
    return out


def _subset(x: torch.Tensor, y: torch.Tensor, limit: int | None, seed: int):
    if limit is None or limit >= len(y):
        return x, y
    generator = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(y), generator=generator)[:limit].sort().values
    return x[idx], y[idx]


_CACHE: "OrderedDict[tuple, TensorData]" = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 2


def load_dataset(
    name: str = "digits",
    *,
    root: str | os.PathLike | None = None,
    input_size: int | None = None,
    in_channels: int | None = None,
    download: bool = False,
    train_limit: int | None = None,
    test_limit: int | None = None,
    cache: bool = True,
    memory_budget_bytes: int | None = None,
) -> TensorData | StreamingData:
    """Load a data set as uint8 tensors fitted to ``in_channels`` x ``input_size`` x ``input_size``.

    ``name`` is a key of :data:`DATASETS`, the path of an image folder, or ``folder:<relative>``: an
    image folder inside the data folder, refused (DataError) when it leads out of it. ``root`` is where the
    torchvision data sets live (default :func:`default_data_root`, then only that folder itself, not its
    parents). ``None`` for size or
    channels keeps the data set's own (image folders default to 3 x 32 x 32). ``train_limit``
    and ``test_limit`` keep a fixed random subset. Results are cached in-process (two entries).
    An image folder whose images would take more than the memory budget (:func:`memory_budget`, or
    ``memory_budget_bytes``) is not loaded: a :class:`StreamingData` reads it batch by batch instead.
    Raises :class:`DataError` for anything that cannot be read.
    """
    for field_name, value in (("input_size", input_size), ("in_channels", in_channels),
                              ("train_limit", train_limit), ("test_limit", test_limit)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise DataError(f"{field_name} must be a positive integer, got {value!r}")
    lenient = root is not None
    root = Path(root) if root is not None else default_data_root()
    confined = _confined(str(name)) if is_folder_name(str(name)) else None  # checked again on every load
    where = str(confined[0]) if confined else str(root.resolve())
    key = (str(name), where, input_size, in_channels, train_limit, test_limit, memory_budget_bytes)
    if cache:
        with _CACHE_LOCK:
            if key in _CACHE:
                _CACHE.move_to_end(key)
                return _CACHE[key]
    info = dataset_info(name)
    if name == "digits":
        raw = _load_digits()
    elif name in ("mnist", "fashion-mnist"):
        raw = _load_mnist(name, root, download, lenient)
    elif name == "cifar10":
        raw = _load_cifar(root, download, lenient)
    else:
        channels, size = in_channels or 3, input_size or 32
        if confined:
            path, label, real_base = confined
            splits = _folder_splits(path, channels, size, label, real_base)
            source = f"{label} of the data folder"
        else:
            splits = _folder_splits(Path(name), channels, size)
            source = str(name)
        train, test, classes = splits
        budget = memory_budget() if memory_budget_bytes is None else memory_budget_bytes
        if (len(train) + len(test)) * channels * size * size > budget:
            train, test = _limit(train, train_limit, seed=0), _limit(test, test_limit, seed=1)
            data = StreamingData(str(name), train, test, classes, channels, size, info.augment, source,
                                 workers=_data_workers())
            if cache:
                with _CACHE_LOCK:
                    _CACHE[key] = data
            return data
        raw = _load_folder(splits, source)
    train_x, train_y, test_x, test_y, classes, source = raw
    if len(train_y) == 0 or len(test_y) == 0:
        raise DataError(f"{info.title} has an empty train or test split")
    train_x, train_y = _subset(train_x, train_y, train_limit, seed=0)
    test_x, test_y = _subset(test_x, test_y, test_limit, seed=1)
    channels = in_channels or train_x.shape[1]
    size = input_size or train_x.shape[-1]
    train_x = _fit_size(_fit_channels(train_x, channels, info.title), size)
    test_x = _fit_size(_fit_channels(test_x, channels, info.title), size)
    mean, std = _mean_std(train_x)
    data = TensorData(
        name=str(name), train_x=train_x.contiguous(), train_y=train_y.contiguous(),
        test_x=test_x.contiguous(), test_y=test_y.contiguous(), classes=classes,
        mean=mean, std=std, augment=info.augment, source=source,
    )
    if cache:
        with _CACHE_LOCK:
            _CACHE[key] = data
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
    return data


# ---------------------------------------------------------------------------------------------
# batch operations (used by the trainer's hot loop: whole batches, no per-sample Python)


def augment_batch(x: torch.Tensor, mode: str, pad: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random pad-and-crop and/or horizontal flip of a whole batch ``N x C x H x W``.

    ``mode`` is one of ``"none"``, ``"crop"``, ``"flip"``, ``"crop-flip"``. The crop pads with
    zeros by ``pad`` pixels and cuts a window of the original size at a random offset per image
    (torchvision's ``Pad(pad)`` + ``RandomCrop(size)``, done for all images at once).
    """
    if mode not in AUGMENTATIONS:
        raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {mode!r}")
    if mode == "none":
        return x
    n, _, h, w = x.shape
    device = x.device
    if "crop" in mode and pad > 0:
        padded = F.pad(x, (pad, pad, pad, pad))
        oy = torch.randint(0, 2 * pad + 1, (n, 1, 1), device=device, generator=generator)
        ox = torch.randint(0, 2 * pad + 1, (n, 1, 1), device=device, generator=generator)
        rows = oy + torch.arange(h, device=device).view(1, h, 1)  # n x h x 1
        cols = ox + torch.arange(w, device=device).view(1, 1, w)  # n x 1 x w
        batch = torch.arange(n, device=device).view(n, 1, 1)
        x = padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)  # n x c x h x w
    if "flip" in mode:
        flip = torch.rand(n, device=device, generator=generator) < 0.5
        x = torch.where(flip.view(n, 1, 1, 1), x.flip(3), x)
    return x


def normalize_batch(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, memory_format=torch.contiguous_format):
    """uint8 ``N x C x H x W`` to normalised float32 in the requested memory format."""
    x = x.to(memory_format=memory_format).float()
    return x.div_(255.0).sub_(mean).div_(std)
