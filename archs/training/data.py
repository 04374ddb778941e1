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

Anything missing, partial or unreadable raises :class:`DataError` with a message a UI can show.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F

from archs.training.config import AUGMENTATIONS

__all__ = [
    "AUGMENTATIONS",
    "StreamingData",
    "memory_budget",
    "DATASETS",
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
    return Path(os.environ.get("ARCHS_DATA_DIR", "data"))


def dataset_info(name: str) -> DatasetInfo:
    """Info for a named data set, or for an image folder when ``name`` is a path."""
    if name in DATASETS:
        return DATASETS[name]
    return DatasetInfo(str(name), f"Image folder {name}", "folder", 3, 0, "crop-flip")


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


def _mnist_root(name: str, root: Path) -> Path:
    """The torchvision root for ``name``: accepts ``root``, ``root/MNIST`` or ``root/MNIST/raw``."""
    folder = _TV_CLASS[name]
    for candidate in (root, root.parent, root.parent.parent):
        if (candidate / folder / "raw").is_dir():
            return candidate
    return root


def _check_mnist(name: str, root: Path) -> Path:
    """Make sure the four decompressed IDX files exist; decompress verified ``.gz`` files.

    Never touches the network. Returns the torchvision root to read from.
    """
    tv = _torchvision()
    cls = getattr(tv.datasets, _TV_CLASS[name])
    tv_root = _mnist_root(name, root)
    raw = tv_root / _TV_CLASS[name] / "raw"
    title = DATASETS[name].title
    if not raw.is_dir():
        raise DataError(
            f"{title} not found: expected its files in {raw} "
            f"(torchvision layout <root>/{_TV_CLASS[name]}/raw); name a folder that holds them"
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


def _cifar_classes(tv):
    base = tv.datasets.CIFAR10

    class FolderCIFAR10(base):
        """CIFAR-10 read from a folder that holds its pickles, checking presence, not checksums.

        torchvision checks every batch file's md5; a user's (or a test's) re-pickled copy in the
        same format is accepted here, and a damaged one still fails when it is unpickled.
        """

        def _check_integrity(self) -> bool:
            return all(
                os.path.isfile(os.path.join(self.root, self.base_folder, name))
                for name, _ in self.train_list + self.test_list
            )

        def _load_meta(self) -> None:
            import pickle

            path = os.path.join(self.root, self.base_folder, self.meta["filename"])
            with open(path, "rb") as infile:
                data = pickle.load(infile, encoding="latin1")
            self.classes = data[self.meta["key"]]
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    return FolderCIFAR10


def _cifar_root(root: Path) -> Path:
    for candidate in (root, root.parent):
        if (candidate / "cifar-10-batches-py").is_dir():
            return candidate
    return root


def _check_cifar(root: Path) -> Path:
    tv = _torchvision()
    cls = tv.datasets.CIFAR10
    tv_root = _cifar_root(root)
    folder = tv_root / cls.base_folder
    if not folder.is_dir():
        raise DataError(
            f"CIFAR-10 not found: expected {folder} (torchvision layout "
            "<root>/cifar-10-batches-py); name a folder that holds it"
        )
    names = [n for n, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise DataError(f"CIFAR-10 in {folder} is incomplete: missing " + ", ".join(missing))
    return tv_root


def _split_folder(path: Path) -> tuple[Path, Path | None]:
    for train_name, test_names in (("train", ("test", "val", "valid", "validation")),):
        if (path / train_name).is_dir():
            for test_name in test_names:
                if (path / test_name).is_dir():
                    return path / train_name, path / test_name
            return path / train_name, None
    return path, None


def check_dataset(name: str, root: str | os.PathLike | None = None, download: bool = False) -> str:
    """Check that a data set can be read, cheaply (files present, archives intact).

    Returns a one-line description of where it will be read from; raises :class:`DataError`
    otherwise. Used before a run is queued, so no run starts on a missing data set.
    With ``download=True`` a missing torchvision data set is not an error (it will be fetched).
    """
    root = Path(root) if root is not None else default_data_root()
    if name == "digits":
        return "scikit-learn bundled digits"
    if name in ("mnist", "fashion-mnist"):
        try:
            return f"{DATASETS[name].title} from {_check_mnist(name, root)}"
        except DataError:
            if download:
                return f"{DATASETS[name].title}: will be downloaded into {root}"
            raise
    if name == "cifar10":
        try:
            return f"CIFAR-10 from {_check_cifar(root)}"
        except DataError:
            if download:
                return f"CIFAR-10: will be downloaded into {root}"
            raise
    path = Path(name)
    if not path.exists():
        known = ", ".join(DATASETS)
        raise DataError(f"unknown data set {name!r}: use one of {known}, or the path of an image folder")
    if not path.is_dir():
        raise DataError(f"data set path {path} is not a folder of class sub-folders")
    train_dir, _ = _split_folder(path)
    classes = [p for p in sorted(train_dir.iterdir()) if p.is_dir()]
    if len(classes) < 2:
        raise DataError(f"image folder {train_dir} needs at least two class sub-folders, found {len(classes)}")
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


def _load_mnist(name: str, root: Path, download: bool):
    tv = _torchvision()
    cls = getattr(tv.datasets, _TV_CLASS[name])
    if download:
        try:
            tv_root = _check_mnist(name, root)
        except DataError:
            tv_root = root
            try:
                cls(str(root), train=True, download=True)
            except Exception as exc:
                raise DataError(f"could not download {DATASETS[name].title} into {root}: {_first_line(exc)}") from exc
    else:
        tv_root = _check_mnist(name, root)
    try:
        train = cls(str(tv_root), train=True, download=False)
        test = cls(str(tv_root), train=False, download=False)
        tensors = (train.data.unsqueeze(1), train.targets.long(), test.data.unsqueeze(1), test.targets.long())
    except Exception as exc:
        raise DataError(
            f"could not read {DATASETS[name].title} in {tv_root / _TV_CLASS[name] / 'raw'}: {_first_line(exc)}"
        ) from exc
    return (*tensors, tuple(train.classes), str(tv_root / _TV_CLASS[name]))


def _load_cifar(root: Path, download: bool):
    tv = _torchvision()
    if download:
        try:
            tv_root = _check_cifar(root)
        except DataError:
            tv_root = root
            try:
                tv.datasets.CIFAR10(str(root), train=True, download=True)
            except Exception as exc:
                raise DataError(f"could not download CIFAR-10 into {root}: {_first_line(exc)}") from exc
    else:
        tv_root = _check_cifar(root)
    cls = _cifar_classes(tv)
    try:
        train = cls(str(tv_root), train=True)
        test = cls(str(tv_root), train=False)
        to_nchw = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).contiguous()  # noqa: E731
        tensors = (
            to_nchw(train.data), torch.tensor(train.targets, dtype=torch.long),
            to_nchw(test.data), torch.tensor(test.targets, dtype=torch.long),
        )
    except Exception as exc:
        raise DataError(f"could not read CIFAR-10 in {tv_root / 'cifar-10-batches-py'}: {_first_line(exc)}") from exc
    if tensors[0].shape[0] != tensors[1].shape[0] or tensors[2].shape[0] != tensors[3].shape[0]:
        raise DataError(f"CIFAR-10 in {tv_root}: image and label counts differ")
    return (*tensors, tuple(train.classes), str(tv_root / "cifar-10-batches-py"))


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


def _folder_splits(path: Path, channels: int, size: int) -> tuple[_Decoded, _Decoded, tuple[str, ...]]:
    """The train and test splits of an image folder, decoded lazily (nothing is read yet)."""
    tv = _torchvision()
    T = tv.transforms
    check_dataset(str(path))
    to_mode = T.Grayscale(1) if channels == 1 else T.Lambda(_to_rgb)
    transform = T.Compose([to_mode, T.Resize((size, size), antialias=True), T.PILToTensor()])
    train_dir, test_dir = _split_folder(path)

    def scan(folder: Path, class_to_idx=None):
        try:
            ds = tv.datasets.ImageFolder(str(folder), transform=transform)
        except Exception as exc:
            raise DataError(f"could not read image folder {folder}: {_first_line(exc)}") from exc
        if class_to_idx is not None and ds.class_to_idx != class_to_idx:
            raise DataError(f"class folders of {folder} differ from those of the training folder")
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


def _load_folder(path: Path, channels: int, size: int):
    train, test, classes = _folder_splits(path, channels, size)

    def read(split: _Decoded):  # once, at load time: never in the training loop
        return torch.stack([split[i][0] for i in range(len(split))]), split.targets

    train_x, train_y = read(train)
    test_x, test_y = read(test)
    return train_x, train_y, test_x, test_y, classes, str(path)


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

    ``name`` is a key of :data:`DATASETS` or the path of an image folder. ``root`` is where the
    torchvision data sets live (default :func:`default_data_root`). ``None`` for size or
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
    root = Path(root) if root is not None else default_data_root()
    key = (str(name), str(root.resolve()), input_size, in_channels, train_limit, test_limit, memory_budget_bytes)
    if cache:
        with _CACHE_LOCK:
            if key in _CACHE:
                _CACHE.move_to_end(key)
                return _CACHE[key]
    info = dataset_info(name)
    if name == "digits":
        raw = _load_digits()
    elif name in ("mnist", "fashion-mnist"):
        raw = _load_mnist(name, root, download)
    elif name == "cifar10":
        raw = _load_cifar(root, download)
    else:
        channels, size = in_channels or 3, input_size or 32
        train, test, classes = _folder_splits(Path(name), channels, size)
        budget = memory_budget() if memory_budget_bytes is None else memory_budget_bytes
        if (len(train) + len(test)) * channels * size * size > budget:
            train, test = _limit(train, train_limit, seed=0), _limit(test, test_limit, seed=1)
            data = StreamingData(str(name), train, test, classes, channels, size, info.augment, str(name),
                                 workers=_data_workers())
            if cache:
                with _CACHE_LOCK:
                    _CACHE[key] = data
            return data
        raw = _load_folder(Path(name), channels, size)
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
