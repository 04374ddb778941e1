"""The run store's database: one SQLite file, its tables, its migrations, and transactions.

``runs.db`` in the runs folder, in WAL mode (readers never block the writer) with a busy timeout; a connection
per thread. :meth:`Database.write` is one ``BEGIN IMMEDIATE`` transaction: the write lock is taken at once, so a
check made inside it still holds when the transaction writes. The schema carries its version in ``meta``;
:func:`archs.training.store.legacy.migrate` brings an older database (or a folder of the file-based store) up to it.

Everything read back is data: :func:`loads` returns the expected type or a default, never raises.

:class:`Store` is what a run (:mod:`.records`) and the studies (:mod:`.studies`) need of the store that holds
them, so that neither imports :mod:`.runs`, which imports both.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

__all__ = ["DB_NAME", "Database", "RunError", "SCHEMA_VERSION", "Store", "StoreUnavailable", "add_columns",
           "default_runs_dir", "dumps", "loads", "number"]

DB_NAME = "runs.db"
SCHEMA_VERSION = 4
BUSY_TIMEOUT_MS = 30_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    owner TEXT NOT NULL,
    owner_name TEXT,
    kind TEXT NOT NULL,
    grp TEXT,
    label TEXT NOT NULL,
    executor TEXT,
    network TEXT,
    data TEXT,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    queued_at REAL, dispatched_at REAL, started_at REAL, finished_at REAL, updated REAL,
    queue_seq INTEGER,
    claimed_by TEXT,
    worker TEXT, relay TEXT,
    stop_requested REAL, stop_reason TEXT,
    step INTEGER, total_steps INTEGER, epochs INTEGER, batch_size INTEGER, lr REAL, optimizer TEXT, device TEXT,
    train_loss REAL, test_accuracy REAL, images_per_second REAL,
    error TEXT, message TEXT, traceback TEXT,
    spec TEXT NOT NULL,
    settings TEXT NOT NULL,
    progress TEXT, result TEXT, extra TEXT,
    pinned INTEGER NOT NULL DEFAULT 0,
    viewed_at REAL,
    has_weights INTEGER
);
CREATE INDEX IF NOT EXISTS runs_newest ON runs (seq DESC);
CREATE INDEX IF NOT EXISTS runs_queue ON runs (status, executor, queue_seq);
CREATE INDEX IF NOT EXISTS runs_owner ON runs (owner, status);
CREATE INDEX IF NOT EXISTS runs_group ON runs (grp);
CREATE TABLE IF NOT EXISTS metrics (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    kind TEXT,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS metrics_of_run ON metrics (run_id, id);
CREATE TABLE IF NOT EXISTS studies (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    owner TEXT NOT NULL,
    owner_name TEXT,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    definition TEXT NOT NULL,
    executor TEXT NOT NULL,
    created REAL NOT NULL, updated REAL, finished_at REAL,
    driver TEXT,
    stop_requested REAL,
    error TEXT,
    summary TEXT
);
CREATE INDEX IF NOT EXISTS studies_newest ON studies (seq DESC);
CREATE TABLE IF NOT EXISTS trials (
    study_id TEXT NOT NULL,
    number INTEGER NOT NULL,
    status TEXT NOT NULL,
    params TEXT NOT NULL,
    run_id TEXT,
    optuna_number INTEGER,
    objectives TEXT,
    error TEXT,
    created REAL NOT NULL, updated REAL,
    PRIMARY KEY (study_id, number)
);
CREATE INDEX IF NOT EXISTS trials_of_run ON trials (run_id);
"""


# columns added after a table's first version: (table, column, declaration), added where a database lacks them
# (version 3: an administrator's pin, and when a page last showed the run, which pruning respects; version 4: whether
# the run's weights were saved, so that a list of runs to pick weights from is one query, not a file check per run;
# NULL: not recorded yet, for a run still going, or filled in by legacy.migrate from the files)
ADDED_COLUMNS = (("runs", "pinned", "INTEGER NOT NULL DEFAULT 0"), ("runs", "viewed_at", "REAL"),
                 ("runs", "has_weights", "INTEGER"))
LATE_INDEXES = ("CREATE INDEX IF NOT EXISTS runs_prunable ON runs (status, pinned, seq)",
                # a chart's records picked by kind without reading the others (Run.chart_metrics)
                "CREATE INDEX IF NOT EXISTS metrics_by_kind ON metrics (run_id, kind, id)")


def add_columns(conn: sqlite3.Connection) -> None:
    """The columns of :data:`ADDED_COLUMNS` a database of an earlier version lacks, and their indexes."""
    for table, column, declaration in ADDED_COLUMNS:
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
    for statement in LATE_INDEXES:
        conn.execute(statement)


class RunError(ValueError):
    """A run that does not exist, or an action a run's state (or its owner) does not allow."""


class StoreUnavailable(RunError):
    """The run store cannot be read or written (a full disk, a read-only folder, a corrupt database)."""


def default_runs_dir() -> Path:
    return Path(os.environ.get("ARCHS_RUNS_DIR", "runs"))


def dumps(value: Any) -> str:
    return json.dumps(value, default=_json_default, allow_nan=True)


def _json_default(value):
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):  # a tensor or an array, without importing torch here
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


def loads(text: str | None, want: type = dict, default=None):
    """Parsed JSON of the expected type, or ``default``: a stored value is data, never trusted to be well-formed."""
    if text is None:
        return default
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return default
    return value if isinstance(value, want) else default


def number(value) -> float | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


# ---------------------------------------------------------------------------------------------
# processes: who is responsible for an active run


class Database:
    """One SQLite file; a connection per thread (sqlite3 connections are not shared between threads)."""

    def __init__(self, path: Path, setup: Callable[[], None]):
        self.path = path
        self._local = threading.local()
        self._setup = setup
        self._setup_lock = threading.RLock()  # re-entered by the setup's own queries
        self._ready = self._in_setup = False

    def connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                       check_same_thread=True)
                conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode.lower() != "wal":
                    conn.execute("PRAGMA journal_mode = WAL")
                # WAL + NORMAL: a commit survives a crash of the process (not a power cut), without an fsync each
                conn.execute("PRAGMA synchronous = NORMAL")
            except (OSError, sqlite3.Error) as error:
                raise StoreUnavailable(f"the run store {self.path} cannot be opened: {error}") from None
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
        if not self._ready:
            with self._setup_lock:  # the schema (and the import of an older store) once per process
                if not self._ready and not self._in_setup:
                    self._in_setup = True
                    try:
                        self._setup()
                        self._ready = True
                    finally:
                        self._in_setup = False
        return conn

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``: the write lock is taken at once, so a check made inside
        it still holds when the transaction writes)."""
        conn = self.connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            raise unavailable(self.path, error) from None
        try:
            yield conn
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as error:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise unavailable(self.path, error) from None

    def read(self, sql: str, params: Iterable = ()) -> list[sqlite3.Row]:
        try:
            return self.connection().execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as error:
            raise unavailable(self.path, error) from None

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def unavailable(path: Path, error: sqlite3.Error) -> StoreUnavailable:
    text = str(error)
    hint = {"database or disk is full": "the disk is full", "attempt to write a readonly database":
            "the runs folder is read-only", "unable to open database file": "the runs folder cannot be opened",
            "database is locked": "another process held the store for too long"}.get(text, text)
    return StoreUnavailable(f"the run store {path} cannot be written: {hint}")


class Store(Protocol):
    """What one run and the studies need of their store (:class:`archs.training.store.runs.RunStore` is one):
    the runs folder, its database, and a run's table row (with its queue place, which only the store knows)."""

    root: Path
    db: Database

    def _rows(self, where: str, params: Iterable = ()) -> list[dict]: ...
