"""The run store: every run's request, status, metric records and queue place, and every study's trials, in
one SQLite database in the runs folder (``$ARCHS_RUNS_DIR``, default ``./runs``); each run also has a folder
there for what stays a file (weights, TensorBoard event files, its worker's log).

This package makes every write to that database, and every write is one transaction::

    db.py         the database: tables, migrations, transactions (no torch)
    processes.py  who is responsible for an active run, and whether it is alive
    records.py    one run (Run): status, settings, records; the recorder a worker writes through
    runs.py       the runs folder (RunStore): submit with limits, the FIFO queue, list, stop, delete
    studies.py    studies and their trials (StudyRecords, ``RunStore.studies``)
    legacy.py     the one-time import of a runs folder of the file-based store

Nothing here imports torch or the executors: the local executor's supervisor uses it without torch.
"""

from archs.training.config import ACTIVE_STATUSES, FINAL_STATUSES
from archs.training.store.db import DB_NAME, RunError, StoreUnavailable, default_runs_dir
from archs.training.store.processes import derive_status, process_alive, process_identity
from archs.training.store.records import ROW_KEYS, Run, grad_heatmap
from archs.training.store.runs import QueueCounts, RunStore

__all__ = ["ACTIVE_STATUSES", "DB_NAME", "FINAL_STATUSES", "QueueCounts", "ROW_KEYS", "Run", "RunError", "RunStore",
           "StoreUnavailable", "default_runs_dir", "derive_status", "grad_heatmap", "process_alive",
           "process_identity"]
