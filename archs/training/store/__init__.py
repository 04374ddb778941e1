"""The run store: every run's request, status, metric records and queue place, and every study's trials, in
one SQLite database in the runs folder (``$ARCHS_RUNS_DIR``, default ``./runs``); each run also has a folder
there for what stays a file (weights, TensorBoard event files, its worker's log).

This package makes every write to that database, and every write is one transaction. Its modules, from the top
down (each imports only those below it; ``.importlinter``'s ``store-layers`` contract checks it, so no import
goes round in a circle)::

    runs.py       the runs folder (RunStore): submit with limits, the FIFO queue, list, stop, delete
    studies.py    studies and their trials (StudyRecords, ``RunStore.studies``)
    legacy.py     the one-time import of a runs folder of the file-based store
    records.py    one run (Run): status, settings, spec as JSON, records, the weights file; a recorder's writes
    processes.py  who is responsible for an active run, and whether it is alive
    files.py      a run folder's files, never through a link
    db.py         the database: tables, migrations, transactions; ``Store``, what a run and the studies need of
                  the store that holds them (so that neither imports runs.py)

Nothing here imports torch, the network code or the executors: the local executor's supervisor uses it without
torch. A stored run's ``NetSpec``, weights as tensors, model, CSV and TensorBoard event files, and the recorder a
worker writes a run through, are in :mod:`archs.training.stored`, above the store.
"""

from archs.training.config import ACTIVE_STATUSES, FINAL_STATUSES
from archs.training.store.db import DB_NAME, RunError, StoreUnavailable, default_runs_dir
from archs.training.store.processes import derive_status, process_alive, process_identity
from archs.training.store.records import ROW_KEYS, Run, grad_heatmap
from archs.training.store.runs import QueueCounts, RunStore

__all__ = ["ACTIVE_STATUSES", "DB_NAME", "FINAL_STATUSES", "QueueCounts", "ROW_KEYS", "Run", "RunError", "RunStore",
           "StoreUnavailable", "default_runs_dir", "derive_status", "grad_heatmap", "process_alive",
           "process_identity"]
