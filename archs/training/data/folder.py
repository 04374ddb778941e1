"""Image folders in torchvision's ``ImageFolder`` layout: ``<path>/train/<class>/*`` beside
``<path>/test/<class>/*`` (or ``val``), or ``<path>/<class>/*`` split 80/20 with a fixed seed.

A folder is named by its path (the operator, on the command line), or as ``folder:<relative/path>`` inside the
server's data folder (how the dashboard names one): that name is resolved there on every check and load, and
refused when it, or a link in it, leads out (see :mod:`archs.training.datadir`). Images are decoded lazily,
one at a time, to uint8 ``C x H x W`` tensors at the network's size: read whole, or streamed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import torch

from archs._compat import import_torchvision
from archs.training.data.base import Raw, first_line
from archs.training.datadir import (
    DataError,
    class_dirs,
    confined_file,
    data_dir,
    is_folder_name,
    relative_part,
    resolve_folder,
    split_folder,
)

OUTSIDE_LINK = "a link in it leads outside the data folder, which is not allowed"


class Folder(NamedTuple):
    """Where an image folder is, how messages name it, and the real data folder it must keep inside (None for a
    plain path, which is not confined)."""

    path: Path
    label: str
    real_base: Path | None
    source: str  # for display: no server path for a folder of the data folder


def locate(name: str) -> Folder:
    """The folder a name means; DataError when a ``folder:`` name leads out of the data folder."""
    if is_folder_name(name):
        relative = relative_part(name)
        label = f"image folder {relative!r}"
        return Folder(resolve_folder(relative), label, data_dir().resolve(), f"{label} of the data folder")
    return Folder(Path(name), f"image folder {name}", None, name)


def check(folder: Folder) -> str:
    """Where the images will be read from, and how many classes; DataError when it is not an image folder."""
    return f"{folder.source if folder.real_base else folder.label} ({len(_class_dirs(folder))} classes)"


def _class_dirs(folder: Folder) -> list[Path]:
    """The class folders of the training split; every folder inside the data folder too, for a confined one."""
    path, label, real_base, _ = folder
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
            raise DataError(f"{label}: {OUTSIDE_LINK}")
    return classes


class Decoded:
    """An ImageFolder (or a subset of one) whose items are uint8 ``C x H x W`` tensors at the network's size,
    with a DataError naming the file that cannot be read."""

    def __init__(self, images, indices=None):
        self.images, self.indices = images, indices

    def __len__(self) -> int:
        return len(self.images) if self.indices is None else len(self.indices)

    def __getitem__(self, i: int):
        index = i if self.indices is None else self.indices[i]
        try:
            return self.images[index]
        except Exception as exc:
            raise DataError(f"could not read image {self.images.samples[index][0]}: {first_line(exc)}") from exc

    @property
    def targets(self) -> torch.Tensor:
        targets = torch.tensor(self.images.targets, dtype=torch.long)
        return targets if self.indices is None else targets[torch.as_tensor(self.indices, dtype=torch.long)]

    def limited(self, limit: int | None, seed: int) -> Decoded:
        """A fixed random subset of at most ``limit`` items (as the loader's subset of tensors)."""
        if limit is None or limit >= len(self):
            return self
        keep = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:limit].sort().values
        base = self.indices if self.indices is not None else range(len(self.images))
        return Decoded(self.images, [base[i] for i in keep.tolist()])


def _to_rgb(img):
    return img.convert("RGB")


def _check_samples(images, folder: Folder) -> None:
    """Every image of an ImageFolder inside the data folder: its folders' real paths, and each file that is a
    link (one ``lstat`` per file; a folder's real path once)."""
    seen: set[str] = set()
    for sample, _ in images.samples:
        parent = os.path.dirname(sample)
        if parent not in seen:
            if not confined_file(parent, folder.real_base):
                raise DataError(f"{folder.label}: {OUTSIDE_LINK}")
            seen.add(parent)
        if os.path.islink(sample) and not confined_file(sample, folder.real_base):
            raise DataError(f"{folder.label}: {OUTSIDE_LINK}")


def splits(folder: Folder, channels: int, size: int) -> tuple[Decoded, Decoded, tuple[str, ...]]:
    """The train and test splits of an image folder, decoded lazily (nothing is read yet)."""
    _class_dirs(folder)
    T = import_torchvision().transforms
    to_mode = T.Grayscale(1) if channels == 1 else T.Lambda(_to_rgb)
    transform = T.Compose([to_mode, T.Resize((size, size), antialias=True), T.PILToTensor()])
    confined = folder.real_base is not None
    train_dir, test_dir = split_folder(folder.path)

    def scan(path: Path, class_to_idx=None):
        shown = folder.label if confined else f"image folder {path}"
        try:
            images = import_torchvision().datasets.ImageFolder(str(path), transform=transform)
        except Exception as exc:
            raise DataError(f"could not read {shown}: {first_line(exc)}") from exc
        if class_to_idx is not None and images.class_to_idx != class_to_idx:
            raise DataError(f"class folders of {shown if confined else path} differ from those of the training "
                            "folder")
        if confined:
            _check_samples(images, folder)
        return images

    train = scan(train_dir)
    classes = tuple(train.classes)
    if test_dir is not None:
        return Decoded(train), Decoded(scan(test_dir, train.class_to_idx)), classes
    from sklearn.model_selection import train_test_split  # heavy: scikit-learn

    targets = torch.tensor(train.targets, dtype=torch.long)
    stratify = targets.numpy() if int(torch.bincount(targets).min()) >= 2 else None
    train_idx, test_idx = train_test_split(list(range(len(targets))), test_size=0.2, random_state=0,
                                           stratify=stratify)
    return Decoded(train, train_idx), Decoded(train, test_idx), classes


def read(train: Decoded, test: Decoded, classes: tuple[str, ...], source: str) -> Raw:
    """Every image of both splits, decoded once, at load time: never in the training loop."""
    def stack(split: Decoded) -> torch.Tensor:
        return torch.stack([split[i][0] for i in range(len(split))])

    return Raw(stack(train), train.targets, stack(test), test.targets, classes, source)
