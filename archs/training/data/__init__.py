"""Data sets as tensors: load once, resize once, then batches are plain tensor indexing.

Every data set ends up as a :class:`DataSet`: uint8 images ``N x C x H x W`` already at the network's size and
channel count, int64 labels, and per-channel mean and std for normalisation; held whole in memory
(:class:`TensorData`) or, for an image folder too large for it, streamed from disk (:class:`StreamingData`).
Augmentation (pad-crop, horizontal flip) works on whole batches, so the training loop never touches a PIL
image or runs Python per sample. Anything missing, partial or unreadable raises :class:`DataError` with a
message a UI can show. Nothing is fetched unless ``download=True``.

One job per module::

    base.py      DataSet (the interface), TensorData, StreamingData; DatasetInfo, what a source declares, and
                 register_source, which puts it in DATASETS
    digits.py    scikit-learn's bundled 8x8 digits (the offline default)
    mnist.py     MNIST and Fashion-MNIST in torchvision's layout (<root>/MNIST/raw/...)
    cifar.py     CIFAR-10's python batches (<root>/cifar-10-batches-py), read by a safe unpickler
    registry.py  DATASETS: name -> DatasetInfo, as the modules above registered them
    folder.py    image folders: a path, or folder:<relative/path> inside the data folder ($ARCHS_DATA_DIR)
    load.py      check_dataset, load_dataset: read, subset, fit to the network, stream, cache
    augment.py   augment_batch, normalize_batch: the hot loop's batch operations

To add a named data set: a module beside these with a ``load(root, lenient) -> Raw`` (and a cheap ``check``),
and ``register_source(DatasetInfo(name, title, ..., load=load))``. This package imports every module of itself,
so nothing else is edited; the command line, the dashboard and the error for an unknown name list it from there.
"""

from archs._registry import import_modules
from archs.training.data.augment import augment_batch, normalize_batch
from archs.training.data.base import DataSet, DatasetInfo, Raw, StreamingData, TensorData, register_source
from archs.training.data.load import check_data, check_dataset, load_dataset, memory_budget
from archs.training.data.registry import DATASETS, dataset_info
from archs.training.datadir import DataError

import_modules(__name__, __path__)  # every module but base: a source module registers its data sets

__all__ = [
    "DATASETS", "DataError", "DataSet", "DatasetInfo", "Raw", "StreamingData", "TensorData", "augment_batch",
    "check_data", "check_dataset", "dataset_info", "load_dataset", "memory_budget", "normalize_batch",
    "register_source",
]
