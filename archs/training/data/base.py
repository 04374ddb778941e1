"""What a data set offers the training loop (:class:`DataSet`) and its two kinds: :class:`TensorData`, held
whole in memory, and :class:`StreamingData`, read from disk batch by batch. Also what a source declares
(:class:`DatasetInfo`) and returns (:class:`Raw`), and where it is registered (:data:`DATASETS`,
:func:`register_source`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar, NamedTuple

import torch
from torch.utils.data import DataLoader, Dataset

from archs._registry import add

Batches = Iterator[tuple[torch.Tensor, torch.Tensor]]


class Raw(NamedTuple):
    """A source's data as read: uint8 images ``N x C x H x W`` at their own size and int64 labels."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[str, ...]
    source: str  # where it was read from, for display


@dataclass(frozen=True)
class DatasetInfo:
    """A named data set, and how to check, read and (optionally) download it.

    ``check(root, lenient)`` is cheap (files present, archives intact) and says where the data will be read
    from; ``load(root, lenient)`` reads it; ``download(root)`` fetches it into ``root``. They raise DataError
    with a message a UI can show. ``lenient``: the operator named ``root``, so the files may also lie in a
    folder around it; otherwise ``root`` is the data folder, and only it is read.
    """

    name: str
    title: str
    source: str  # "sklearn" | "torchvision" | "folder"
    channels: int  # native channels
    size: int  # native square size (0 when it varies: image folders)
    augment: str  # recommended augmentation: "none" | "crop" | "flip" | "crop-flip"
    description: str = ""
    check: Callable[[Path, bool], str] | None = field(default=None, repr=False, compare=False)
    load: Callable[[Path, bool], Raw] | None = field(default=None, repr=False, compare=False)
    download: Callable[[Path], None] | None = field(default=None, repr=False, compare=False)
    rank: int = field(default=100, repr=False, compare=False)  # where lists show it: lowest first, then as registered


DATASETS: dict[str, DatasetInfo] = {}


def register_source(info: DatasetInfo) -> DatasetInfo:
    """Make a named data set known (the command line's ``--data``, the pages' lists, ``DataConfig``'s check and
    the error for an unknown name read :data:`DATASETS`), and return it. A source module in
    ``archs/training/data/`` calls it on each of its :class:`DatasetInfo`; the package imports every module of
    itself, so nothing else is edited. A name already taken is refused."""
    add(DATASETS, info.name, info, "data set")
    ordered = sorted(DATASETS.values(), key=lambda known: known.rank)  # stable: equal ranks as registered
    DATASETS.clear()
    DATASETS.update((known.name, known) for known in ordered)
    return info


class DataSet(ABC):
    """A data set as the training loop uses it: uint8 images ``C x H x W`` already at the network's size and
    channel count, int64 labels, class names, and per-channel ``mean`` and ``std`` (0..1 scale) to normalise
    with. Batches come out where the data lives (:attr:`device`); the loop moves them on."""

    name: str
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: str  # the data set's usual augmentation
    source: str  # where it was read from, for display
    in_channels: int
    input_size: int
    streamed: ClassVar[bool] = False

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    @abstractmethod
    def train_size(self) -> int: ...

    @property
    @abstractmethod
    def test_size(self) -> int: ...

    @abstractmethod
    def train_batches(self, generator: torch.Generator | None, global_batch: int, local_batch: int, rank: int,
                      steps: int) -> Batches:
        """One epoch: ``steps`` batches of a fresh permutation; this process's ``local_batch`` images of each
        ``global_batch`` (rank ``rank``)."""

    @abstractmethod
    def test_batches(self, batch: int, rank: int = 0, world: int = 1) -> Batches:
        """The test set in order (every ``world``-th image from ``rank``), in batches."""

    def summary(self) -> dict:
        return {"name": self.name, "train": self.train_size, "test": self.test_size, "channels": self.in_channels,
                "size": self.input_size, "classes": self.num_classes, "source": self.source,
                "streamed": self.streamed}


@dataclass(frozen=True)
class TensorData(DataSet):
    """A whole data set as tensors, ready for batch indexing on one device."""

    name: str
    train_x: torch.Tensor  # uint8, N x C x H x W
    train_y: torch.Tensor  # int64, N
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: str = "none"
    source: str = field(default="", compare=False)

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def input_size(self) -> int:
        return int(self.train_x.shape[-1])

    @property
    def device(self) -> torch.device:
        return self.train_x.device

    @property
    def train_size(self) -> int:
        return len(self.train_y)

    @property
    def test_size(self) -> int:
        return len(self.test_y)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.train_x, self.train_y, self.test_x, self.test_y))

    def to(self, device: torch.device | str) -> TensorData:
        return replace(self, train_x=self.train_x.to(device), train_y=self.train_y.to(device),
                       test_x=self.test_x.to(device), test_y=self.test_y.to(device))

    def hold_out(self, fraction: float, seed: int = 0) -> tuple[TensorData, TensorData]:
        """(the training images less a validation set, the validation set as a data set whose *test* split it is),
        the validation set being ``fraction`` of each class's training images (at least one where a class has two),
        picked by a generator seeded with ``seed``: the same images each time. Normalisation statistics stay the
        training set's, as they were."""
        if not 0 < fraction < 1:
            raise ValueError(f"val_split must be between 0 and 1, got {fraction!r}")
        generator = torch.Generator().manual_seed(seed)
        labels = self.train_y.cpu()
        held = []
        for label in torch.unique(labels).tolist():
            members = torch.nonzero(labels == label).flatten()
            if len(members) < 2:
                continue
            count = min(len(members) - 1, max(1, round(fraction * len(members))))
            held.append(members[torch.randperm(len(members), generator=generator)[:count]])
        held_index = torch.sort(torch.cat(held)).values if held else torch.zeros(0, dtype=torch.long)
        keep = torch.ones(len(labels), dtype=torch.bool)
        keep[held_index] = False
        kept_index = torch.nonzero(keep).flatten()
        device = self.train_x.device
        held_index, kept_index = held_index.to(device), kept_index.to(device)
        rest = replace(self, train_x=self.train_x[kept_index], train_y=self.train_y[kept_index])
        validation = replace(self, train_x=self.train_x[:0], train_y=self.train_y[:0],  # shapes kept, no images
                             test_x=self.train_x[held_index], test_y=self.train_y[held_index])
        return rest, validation

    def train_batches(self, generator, global_batch, local_batch, rank, steps) -> Batches:
        order = torch.randperm(self.train_size, device=self.device, generator=generator)
        for index in range(steps):
            idx = order[index * global_batch + rank * local_batch:][:local_batch]
            yield self.train_x[idx], self.train_y[idx]

    def test_batches(self, batch, rank=0, world=1) -> Batches:
        xs, ys = self.test_x[rank::world], self.test_y[rank::world]
        for start in range(0, len(ys), batch):
            yield xs[start : start + batch], ys[start : start + batch]


@dataclass(frozen=True)
class StreamingData(DataSet):
    """An image folder too large for memory: read from disk batch by batch through a ``DataLoader`` with
    ``workers`` processes, each image decoded to uint8 at the network's size; the same batches, in the same
    order, as the :class:`TensorData` of the same folder."""

    name: str
    train: Dataset  # index -> (uint8 C x H x W, label)
    test: Dataset
    classes: tuple[str, ...]
    in_channels: int
    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: str
    source: str
    workers: int
    streamed: ClassVar[bool] = True

    @property
    def train_size(self) -> int:
        return len(self.train)

    @property
    def test_size(self) -> int:
        return len(self.test)

    def summary(self) -> dict:
        return super().summary() | {"workers": self.workers}

    def _loader(self, dataset: Dataset, batches: list[list[int]]) -> DataLoader:
        return DataLoader(dataset, batch_sampler=batches, num_workers=self.workers,
                          pin_memory=torch.cuda.is_available(), persistent_workers=False)

    def train_batches(self, generator, global_batch, local_batch, rank, steps) -> Batches:
        order = torch.randperm(self.train_size, generator=generator).tolist()
        yield from self._loader(self.train, [order[i * global_batch + rank * local_batch:][:local_batch]
                                             for i in range(steps)])

    def test_batches(self, batch, rank=0, world=1) -> Batches:
        mine = list(range(rank, self.test_size, world))
        yield from self._loader(self.test, [mine[i : i + batch] for i in range(0, len(mine), batch)])


def mean_std(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (0..1 scale) of uint8 images ``N x C x H x W``."""
    scaled = images.float().div_(255.0)
    mean = tuple(float(v) for v in scaled.mean(dim=(0, 2, 3)))
    std = tuple(max(float(v), 1e-3) for v in scaled.std(dim=(0, 2, 3)))
    return mean, std


def first_line(exc: BaseException) -> str:
    """An exception's message for a DataError: its first line (its type's name when it has none)."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
