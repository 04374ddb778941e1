"""The named data sets: :data:`DATASETS` maps each name to its :class:`DatasetInfo`, gathered from the source
modules listed here. The command line's ``--data`` help, the dashboard's lists and the error for an unknown
name all read it; any other name is an image folder (:mod:`archs.training.data.folder`)."""

from __future__ import annotations

from archs.training.data import cifar, digits, mnist
from archs.training.data.base import DatasetInfo
from archs.training.datadir import relative_part

SOURCE_MODULES = (digits, mnist, cifar)  # each declares SOURCES: a tuple of DatasetInfo

DATASETS: dict[str, DatasetInfo] = {}
for _info in (info for module in SOURCE_MODULES for info in module.SOURCES):
    if _info.name in DATASETS:
        raise ValueError(f"data set {_info.name!r} is registered twice")
    DATASETS[_info.name] = _info


def dataset_info(name: str) -> DatasetInfo:
    """Info for a named data set, or for an image folder when ``name`` is a path or ``folder:<relative>``."""
    if name in DATASETS:
        return DATASETS[name]
    return DatasetInfo(str(name), f"Image folder {relative_part(str(name))}", "folder", 3, 0, "crop-flip")
