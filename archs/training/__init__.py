"""Training: settings, data, the loop, the run store, and the executors that run requests.

Layout, from the bottom up (each module imports only those above it; ``.importlinter`` checks it)::

    config.py        TrainConfig, DataConfig, statuses            (no torch)
    limits.py        a shared server's limits, from the environment (no torch)
    events.py        TensorBoard event files and the metrics' CSV
    store/           the run store: runs.db (runs, queue, metrics, studies), run folders (no torch)
    stored.py        a stored run as a network (spec, weights, model, CSV) and as a recorder (TensorBoard files)
    datadir.py       the server's data folder; DataError              (no torch)
    data/            data sets: one module per family of sources (each registers its own), the DataSet interface,
                     loading, augmentation
    device.py        device, precision, memory layout, data placement
    tuning.py, distributed.py, recipes/     the loop's helpers
    loop.py          the training loop, in small named parts
    request.py       RunRequest, the Recorder protocol, execute_request: the one way to carry out a run
    worker.py        a worker's job (carry_out), for a local worker process and a Ray task alike
    executors/       base.py (the contract, the registry), local.py (worker processes), ray.py (a Ray cluster)
    speedrun.py      ``python -m archs speedrun``
    cli.py           ``python -m archs train`` and ``python -m archs runs``

Experiments made of several runs are studies (:mod:`archs.studies`).

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
