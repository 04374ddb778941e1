"""scikit-learn's 8x8 handwritten digits: shipped inside scikit-learn, so the offline default.

Read from scikit-learn's own file (``sklearn/datasets/data/digits.csv.gz``) with numpy, and split as
``train_test_split(..., test_size=0.2, random_state=0, stratify=labels)`` splits it (:func:`stratified_split`, the
same algorithm and random stream; ``tests/test_data.py`` checks the two agree), without importing scikit-learn:
that import (scipy.stats, pandas) cost a worker about 3 s of CPU, as much as torch's own, for 1,797 tiny images,
and every run on the digits starts in a fresh worker.
"""

from __future__ import annotations

import gzip
import importlib.util
import math
from pathlib import Path

import numpy as np
import torch

from archs.training.data.base import DatasetInfo, Raw, register_source


def _csv_path() -> Path:
    """scikit-learn's digits file, found without importing scikit-learn (ImportError when it is not installed)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the digits come with scikit-learn, which is not installed (pip install scikit-learn)")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"


def _approximate_mode(class_counts: np.ndarray, n_draws: int, rng: np.random.RandomState) -> np.ndarray:
    """How many of ``n_draws`` each class gets: the floor of its share, then one more for the largest remainders,
    ties broken at random (scikit-learn's ``sklearn.utils.extmath._approximate_mode``)."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (inds,) = np.where(remainder == value)
            add_now = min(len(inds), need_to_add)
            floored[rng.choice(inds, size=add_now, replace=False)] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    return floored.astype(int)


def stratified_split(labels: np.ndarray, test_size: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices) of a shuffled split that keeps each class's share in both parts: what
    scikit-learn's ``train_test_split(range(len(labels)), test_size=test_size, random_state=seed,
    stratify=labels)`` returns (its ``StratifiedShuffleSplit``, one split)."""
    n_test = math.ceil(test_size * len(labels))
    n_train = len(labels) - n_test
    _, y_indices, class_counts = np.unique(labels, return_inverse=True, return_counts=True)
    class_indices = np.split(np.argsort(y_indices, kind="stable"), np.cumsum(class_counts)[:-1])
    rng = np.random.RandomState(seed)
    n_i = _approximate_mode(class_counts, n_train, rng)
    t_i = _approximate_mode(class_counts - n_i, n_test, rng)
    train: list[int] = []
    test: list[int] = []
    for i, indices in enumerate(class_indices):
        permuted = indices.take(rng.permutation(class_counts[i]), mode="clip")
        train.extend(permuted[:n_i[i]])
        test.extend(permuted[n_i[i]:n_i[i] + t_i[i]])
    return rng.permutation(train), rng.permutation(test)


def load(root: Path, lenient: bool) -> Raw:
    """The 1,797 digits (0..16 grey levels scaled to 0..255), split 80/20, stratified, with a fixed seed."""
    with gzip.open(_csv_path(), "rt") as handle:
        table = np.loadtxt(handle, delimiter=",")  # a row: 64 pixels, then the digit
    target = table[:, -1].astype(int)
    images = torch.from_numpy(table[:, :-1].reshape(-1, 8, 8)).float().mul(255.0 / 16.0).round().to(
        torch.uint8).unsqueeze(1)
    labels = torch.from_numpy(target).long()
    train, test = (torch.from_numpy(idx.astype(np.int64)) for idx in stratified_split(target, 0.2, seed=0))
    classes = tuple(str(c) for c in range(10))
    return Raw(images[train], labels[train], images[test], labels[test], classes, "scikit-learn")


register_source(DatasetInfo(
    "digits", "Digits (scikit-learn, offline)", "sklearn", 1, 8, "none",
    "1,797 handwritten digits of 8x8 pixels bundled with scikit-learn; needs no network.",
    check=lambda root, lenient: "scikit-learn bundled digits", load=load, rank=0))  # the offline default: first
