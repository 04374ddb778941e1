"""The named data sets: :data:`DATASETS` maps each name to its :class:`DatasetInfo`, registered by the source
modules of this package (:func:`~archs.training.data.base.register_source`). The command line's ``--data`` help,
the dashboard's lists and the error for an unknown name all read it; any other name is an image folder
(:mod:`archs.training.data.folder`)."""

from __future__ import annotations

from archs.training.data.base import DATASETS, DatasetInfo, register_source
from archs.training.datadir import relative_part

__all__ = ["DATASETS", "dataset_info", "register_source"]


def dataset_info(name: str) -> DatasetInfo:
    """Info for a named data set, or for an image folder when ``name`` is a path or ``folder:<relative>``."""
    if name in DATASETS:
        return DATASETS[name]
    return DatasetInfo(str(name), f"Image folder {relative_part(str(name))}", "folder", 3, 0, "crop-flip")
