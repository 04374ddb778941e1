"""Training: settings, data, the loop, the run store, and the executors that run requests.

Layout (each module imports only those above it)::

    config.py        TrainConfig, DataConfig, statuses            (no torch)
    limits.py        a shared server's limits, from the environment (no torch)
    store.py         the run store: run folders and the FIFO queue (no torch)
    datadir.py       the server's data folder; DataError              (no torch)
    data/            data sets as tensors: sources, loading, batch augmentation
    device.py        device, precision, memory layout, data placement
    loop.py          the training loop, in small named parts
    request.py       RunRequest and execute_request: the one way to carry out a run
    worker.py        a worker process: one run of the store
    executors/       base.py (the interface, the registry), local.py (worker processes), ray.py (a Ray cluster)
    experiments.py   runs made of several requests (He et al.'s degradation experiment)
    cli.py           ``python -m archs train`` and ``python -m archs runs``

Names load on first use, so that importing a light module does not import torch.
"""

from archs._lazy import lazy_exports

_EXPORTS = {
    "archs.training.config": ("ACTIVE_STATUSES", "ConfigError", "DataConfig", "DEFAULT_DATA", "DEFAULT_PRESET",
                              "FINAL_STATUSES", "TrainConfig"),
    "archs.training.limits": ("LimitError", "Limits"),
    "archs.training.store": ("Run", "RunError", "RunStore", "grad_heatmap"),
    "archs.training.data": ("DATASETS", "DataError", "TensorData", "load_dataset"),
    "archs.training.loop": ("TrainResult", "train"),
    "archs.training.request": ("MemoryRecorder", "RunRequest", "execute_request"),
    "archs.training.executors": ("EXECUTORS", "Executor", "get_executor", "register"),
}
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
__all__ = sorted(name for names in _EXPORTS.values() for name in names)
