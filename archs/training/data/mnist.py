"""MNIST and Fashion-MNIST from their IDX files in torchvision's layout (``<root>/MNIST/raw/...``), read by
torchvision. Verified ``.gz`` files are decompressed in place; nothing is fetched but by ``download``."""

from __future__ import annotations

import hashlib
from functools import partial
from pathlib import Path

from archs._compat import import_torchvision
from archs.training.data.base import DatasetInfo, Raw, first_line, register_source
from archs.training.datadir import DataError


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _checked(folder: str, title: str, root: Path, lenient: bool) -> Path:
    """The torchvision root that holds the four decompressed IDX files of ``folder`` (torchvision's class name):
    ``root``, or with ``lenient`` its parent or grandparent too (``root`` named as ``.../MNIST`` or
    ``.../MNIST/raw``). Decompresses ``.gz`` files whose md5 is right; never touches the network."""
    resources = getattr(import_torchvision().datasets, folder).resources
    candidates = (root, root.parent, root.parent.parent) if lenient else (root,)
    tv_root = next((c for c in candidates if (c / folder / "raw").is_dir()), root)
    raw = tv_root / folder / "raw"
    if not raw.is_dir():
        raise DataError(f"{title} not found: expected its files in {raw} (torchvision layout <root>/{folder}/raw)"
                        + ("; name a folder that holds them" if lenient else ""))
    missing, corrupt = [], []
    for gz_name, md5 in resources:
        if (raw / gz_name[: -len(".gz")]).is_file():
            continue
        if not (raw / gz_name).is_file():
            missing.append(gz_name)
        elif _md5(raw / gz_name) != md5:
            corrupt.append(gz_name)
    if missing or corrupt:
        parts = (["missing " + ", ".join(missing)] if missing else []) + (
            ["corrupt (checksum mismatch) " + ", ".join(corrupt)] if corrupt else [])
        raise DataError(f"{title} in {raw} is incomplete: " + "; ".join(parts))
    for gz_name, _ in resources:
        if not (raw / gz_name[: -len(".gz")]).is_file():
            try:
                import_torchvision().datasets.utils.extract_archive(str(raw / gz_name), str(raw))
            except Exception as exc:  # a gzip that passes md5 but cannot be read: disk trouble
                raise DataError(f"{title}: could not decompress {raw / gz_name}: {exc}") from exc
    return tv_root


def check(folder: str, title: str, root: Path, lenient: bool) -> str:
    return f"{title} from {_checked(folder, title, root, lenient)}"


def load(folder: str, title: str, root: Path, lenient: bool) -> Raw:
    tv_root = _checked(folder, title, root, lenient)
    cls = getattr(import_torchvision().datasets, folder)
    try:
        train = cls(str(tv_root), train=True, download=False)
        test = cls(str(tv_root), train=False, download=False)
        return Raw(train.data.unsqueeze(1), train.targets.long(), test.data.unsqueeze(1), test.targets.long(),
                   tuple(train.classes), str(tv_root / folder))
    except Exception as exc:
        raise DataError(f"could not read {title} in {tv_root / folder / 'raw'}: {first_line(exc)}") from exc


def download(folder: str, root: Path) -> None:
    getattr(import_torchvision().datasets, folder)(str(root), train=True, download=True)


def _source(name: str, folder: str, title: str, augment: str, what: str, rank: int) -> DatasetInfo:
    return register_source(DatasetInfo(name, title, "torchvision", 1, 28, augment,
                                       f"70,000 {what} of 28x28 pixels (torchvision layout: <root>/{folder}/raw).",
                                       check=partial(check, folder, title), load=partial(load, folder, title),
                                       download=partial(download, folder), rank=rank))


_source("mnist", "MNIST", "MNIST", "crop", "handwritten digits", rank=10)
_source("fashion-mnist", "FashionMNIST", "Fashion-MNIST", "crop-flip", "clothing images", rank=11)
