"""From a name to a data set fitted to the network: check it cheaply, read it whole (or stream an image folder
too large for memory), keep a fixed subset, fit channels and size once, and cache the result."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F

from archs.training.config import DataConfig
from archs.training.data import folder
from archs.training.data.base import DataSet, DatasetInfo, Raw, StreamingData, TensorData, first_line, mean_std
from archs.training.data.registry import DATASETS, dataset_info
from archs.training.datadir import DataError, data_dir, is_folder_name

CACHE_SIZE = 2  # data sets kept in this process (a dashboard's reruns, a study's trials)
_cache: OrderedDict[tuple, DataSet] = OrderedDict()
_cache_lock = threading.Lock()


def memory_budget() -> int:
    """Bytes a data set may take in memory before it is streamed from disk: ``$ARCHS_DATA_MEMORY_BUDGET``
    (a number of bytes, or with a K, M or G suffix), default 2G."""
    text = os.environ.get("ARCHS_DATA_MEMORY_BUDGET", "2G").strip().upper()
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    try:
        return int(float(text[:-1] if scale > 1 else text) * scale)
    except ValueError:
        return 2 << 30


def data_workers() -> int:
    """DataLoader workers for a streamed data set: ``$ARCHS_DATA_WORKERS``, default min(4, the cores this process
    may use)."""
    try:
        return max(0, int(os.environ["ARCHS_DATA_WORKERS"]))
    except (KeyError, ValueError):
        cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
        return min(4, len(cores))


def _folder(name: str) -> folder.Folder:
    """The image folder a name that is no registered data set means; DataError when it means none."""
    if not is_folder_name(name) and not Path(name).exists():
        raise DataError(f"unknown data set {name!r}: use one of {', '.join(DATASETS)}, or the path of an image folder")
    return folder.locate(name)


def check_dataset(name: str, root: str | os.PathLike | None = None, download: bool = False) -> str:
    """Check that a data set can be read, cheaply (files present, archives intact).

    Returns a one-line description of where it will be read from; raises :class:`DataError`
    otherwise. Used before a run is queued, so no run starts on a missing data set.
    With ``download=True`` a missing torchvision data set is not an error (it will be fetched).
    A ``folder:<relative>`` name is looked for inside the data folder only (``root`` does not apply), and
    without ``root`` torchvision data sets are looked for in the data folder itself, not beside it.
    """
    info = DATASETS.get(name)
    if info is None:
        return folder.check(_folder(name))
    where = Path(root) if root is not None else data_dir()
    try:
        return info.check(where, root is not None)
    except DataError:
        if download and info.download is not None:
            return f"{info.title}: will be downloaded into {where}"
        raise


def check_data(config: DataConfig) -> str:
    """:func:`check_dataset` of a run's data settings."""
    return check_dataset(config.name, config.root, download=config.download)


def _read(info: DatasetInfo, root: Path, download: bool, lenient: bool) -> Raw:
    """A named data set, downloaded first when asked to and missing."""
    if download and info.download is not None:
        try:
            info.check(root, lenient)
        except DataError:
            try:
                info.download(root)
            except Exception as exc:
                raise DataError(f"could not download {info.title} into {root}: {first_line(exc)}") from exc
            lenient = False
    return info.load(root, lenient)


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
    idx = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[:limit].sort().values
    return x[idx], y[idx]


def _spread(n: int, k: int) -> list[int]:
    """At most ``k`` indices spread evenly over ``range(n)``."""
    return sorted({round(i * (n - 1) / max(k - 1, 1)) for i in range(min(n, k))})


def _in_memory(name: str, info: DatasetInfo, raw: Raw, in_channels: int | None, input_size: int | None,
               train_limit: int | None, test_limit: int | None) -> TensorData:
    if len(raw.train_y) == 0 or len(raw.test_y) == 0:
        raise DataError(f"{info.title} has an empty train or test split")
    train_x, train_y = _subset(raw.train_x, raw.train_y, train_limit, seed=0)
    test_x, test_y = _subset(raw.test_x, raw.test_y, test_limit, seed=1)
    channels, size = in_channels or train_x.shape[1], input_size or train_x.shape[-1]
    train_x = _fit_size(_fit_channels(train_x, channels, info.title), size)
    test_x = _fit_size(_fit_channels(test_x, channels, info.title), size)
    mean, std = mean_std(train_x)
    return TensorData(name, train_x.contiguous(), train_y.contiguous(), test_x.contiguous(), test_y.contiguous(),
                      raw.classes, mean, std, augment=info.augment, source=raw.source)


def _from_folder(name: str, place: folder.Folder, info: DatasetInfo, in_channels: int | None,
                 input_size: int | None, train_limit: int | None, test_limit: int | None,
                 budget: int) -> DataSet:
    """An image folder (default 3 x 32 x 32) read whole, or streamed when it would take more than ``budget``."""
    channels, size = in_channels or 3, input_size or 32
    train, test, classes = folder.splits(place, channels, size)
    if (len(train) + len(test)) * channels * size * size <= budget:
        return _in_memory(name, info, folder.read(train, test, classes, place.source), channels, size,
                          train_limit, test_limit)
    train, test = train.limited(train_limit, seed=0), test.limited(test_limit, seed=1)
    mean, std = mean_std(torch.stack([train[i][0] for i in _spread(len(train), 512)]))
    return StreamingData(name, train, test, classes, channels, size, mean, std, info.augment, place.source,
                         workers=data_workers())


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
) -> DataSet:
    """Load a data set as uint8 tensors fitted to ``in_channels`` x ``input_size`` x ``input_size``.

    ``name`` is a key of :data:`DATASETS`, the path of an image folder, or ``folder:<relative>``: an
    image folder inside the data folder, refused (DataError) when it leads out of it. ``root`` is where the
    torchvision data sets live (default the data folder, then only that folder itself, not its parents).
    ``None`` for size or channels keeps the data set's own (image folders default to 3 x 32 x 32).
    ``train_limit`` and ``test_limit`` keep a fixed random subset. Results are cached in-process
    (:data:`CACHE_SIZE` entries). An image folder whose images would take more than the memory budget
    (:func:`memory_budget`, or ``memory_budget_bytes``) is not loaded: a :class:`StreamingData` reads it
    batch by batch instead. Raises :class:`DataError` for anything that cannot be read.
    """
    for field_name, value in (("input_size", input_size), ("in_channels", in_channels),
                              ("train_limit", train_limit), ("test_limit", test_limit)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise DataError(f"{field_name} must be a positive integer, got {value!r}")
    lenient = root is not None
    root = Path(root) if root is not None else data_dir()
    info = dataset_info(name)
    place = None if name in DATASETS else _folder(str(name))  # a folder: name is resolved again on every load
    where = str(place.path) if place is not None and place.real_base is not None else str(root.resolve())
    key = (str(name), where, input_size, in_channels, train_limit, test_limit, memory_budget_bytes)
    with _cache_lock:
        if cache and key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    if place is None:
        data = _in_memory(name, info, _read(info, root, download, lenient), in_channels, input_size, train_limit,
                          test_limit)
    else:
        budget = memory_budget() if memory_budget_bytes is None else memory_budget_bytes
        data = _from_folder(str(name), place, info, in_channels, input_size, train_limit, test_limit, budget)
    if cache:
        with _cache_lock:
            _cache[key] = data
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
    return data
