"""CIFAR-10 from its python batches in torchvision's layout (``<root>/cifar-10-batches-py``): five training
batches, a test batch and the class names, each a pickle. They are read with an unpickler that accepts only
what those files hold (dicts, lists, strings, numbers and NumPy arrays), never with ``pickle.load``; the
tensors are torchvision's CIFAR10's (N x 3 x 32 x 32 uint8, labels in file order)."""

from __future__ import annotations

import _compat_pickle
import pickle
from pathlib import Path

import numpy as np
import torch

from archs._compat import import_torchvision
from archs.training.data.base import DatasetInfo, Raw, first_line, register_source
from archs.training.datadir import DataError

FOLDER = "cifar-10-batches-py"
TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST = ("test_batch",)
META = "batches.meta"


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
        if (module, name) in self._allowed:
            return self._allowed[(module, name)]
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        raise _Refused(f"{module}.{name}")


def _unpickle(path: Path, what: str) -> dict:
    """The dict (text keys) that a data file holds as a pickle, through :class:`_DataUnpickler`."""
    try:
        with open(path, "rb") as handle:
            entry = _DataUnpickler(handle).load()
    except _Refused as refused:
        raise DataError(f"could not read {what} {path}: it refers to {refused.name}, which a data file may "
                        "not") from None
    except Exception as exc:  # truncated, not a pickle, an array NumPy refuses: the file is bad
        raise DataError(f"could not read {what} {path}: {first_line(exc)}") from exc
    if not isinstance(entry, dict):
        raise DataError(f"could not read {what} {path}: it holds a {type(entry).__name__}, not a dict")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in entry.items()}


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(data N x 3072 uint8, labels N int64) of one CIFAR batch."""
    what = "CIFAR-10 batch"
    entry = _unpickle(path, what)
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


def _read_meta(path: Path) -> tuple[str, ...]:
    what = "CIFAR-10 meta file"
    names = _unpickle(path, what).get("label_names")
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, (str, bytes)) for n in names):
        raise DataError(f"could not read {what} {path}: it has no list of label_names")
    return tuple(n.decode("latin1") if isinstance(n, bytes) else n for n in names)


def _checked(root: Path, lenient: bool) -> Path:
    """The torchvision root that holds every file of CIFAR-10: ``root``, or with ``lenient`` its parent too."""
    tv_root = next((c for c in ((root, root.parent) if lenient else (root,)) if (c / FOLDER).is_dir()), root)
    folder = tv_root / FOLDER
    if not folder.is_dir():
        raise DataError(f"CIFAR-10 not found: expected {folder} (torchvision layout <root>/{FOLDER})"
                        + ("; name a folder that holds it" if lenient else ""))
    missing = [n for n in TRAIN + TEST + (META,) if not (folder / n).is_file()]
    if missing:
        raise DataError(f"CIFAR-10 in {folder} is incomplete: missing " + ", ".join(missing))
    return tv_root


def check(root: Path, lenient: bool) -> str:
    return f"CIFAR-10 from {_checked(root, lenient)}"


def load(root: Path, lenient: bool) -> Raw:
    folder = _checked(root, lenient) / FOLDER
    classes = _read_meta(folder / META)
    splits = []
    for names in (TRAIN, TEST):
        batches = [_read_batch(folder / n) for n in names]
        data = np.concatenate([b[0] for b in batches]).reshape(-1, 3, 32, 32)
        labels = np.concatenate([b[1] for b in batches])
        if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
            raise DataError(f"CIFAR-10 in {folder}: a label is outside the {len(classes)} classes of {META}")
        splits += [torch.from_numpy(data), torch.from_numpy(labels)]
    return Raw(*splits, classes, str(folder))


def download(root: Path) -> None:
    """Fetch and unpack torchvision's CIFAR-10 archive into ``root`` (its md5 checked); reads nothing."""
    tv = import_torchvision()
    cls = tv.datasets.CIFAR10
    tv.datasets.utils.download_and_extract_archive(cls.url, str(root), filename=cls.filename, md5=cls.tgz_md5)


register_source(DatasetInfo(
    "cifar10", "CIFAR-10", "torchvision", 3, 32, "crop-flip",
    "60,000 colour images of 32x32 pixels (torchvision layout: <root>/cifar-10-batches-py).",
    check=check, load=load, download=download, rank=20))
