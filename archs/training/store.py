"""The run store: every run's request, status, metric records and queue place, in one SQLite database.

``<runs dir>/runs.db`` (``$ARCHS_RUNS_DIR``, default ``./runs``) holds the records; each run also has a
folder ``<runs dir>/<run id>/`` for what stays a file: its weights (``weights.pt``), its TensorBoard event
files and exports. This module owns every write to the database, and every write is one transaction:

- a run's creation and the limits that admit it are checked in the same ``BEGIN IMMEDIATE`` transaction
  (:meth:`RunStore.submit`), so concurrent submits from separate processes never pass a limit together;
- the FIFO queue is the ``queued`` runs of the local executor in ``queue_seq`` order, and claiming the next
  one is one transaction (:meth:`RunStore.claim_next`);
- a status change is a read-modify-write in one transaction, and metric records are rows: no reader ever
  sees half a record, and a crash loses at most the record being written;
- listing runs (:meth:`RunStore.list_runs`) is one query over plain columns: no file is opened per run.

Readers derive the truth about active runs from who is responsible for them, so a crash needs no clean-up
to show correctly: a ``running`` run whose worker process is gone reads as ``failed``; a run relayed by a
process that is gone (a remote run's records) reads as ``interrupted``.

The first time a runs folder written by the file-based store (before this database) is opened, its run
folders are imported (:mod:`archs.training.store_import`); their files are left as they were.

SQLite runs in WAL mode (readers never block the writer) with a busy timeout; nothing to install or start.
This module imports neither torch nor the executors (the local executor's supervisor uses it without torch).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import secrets
import shutil
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from archs.training.config import ACTIVE_STATUSES, FINAL_STATUSES

__all__ = ["ACTIVE_STATUSES", "DB_NAME", "FINAL_STATUSES", "Run", "RunError", "RunStore", "StoreUnavailable",
           "default_runs_dir", "grad_heatmap", "process_alive", "process_identity"]

DB_NAME = "runs.db"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 30_000
SUPERVISOR_BEAT_SECONDS = 2.0
LOW_DISK_BYTES = 64 << 20

# the columns of a table row (``Run.info``, ``RunStore.list_runs``), in the order `archs runs --json` prints them
ROW_KEYS = ("id", "label", "group", "kind", "owner", "owner_name", "executor", "network", "data", "status",
            "created", "queued_at", "dispatched_at", "started_at", "finished_at", "step", "total_steps", "epochs",
            "batch_size", "lr", "optimizer", "device", "train_loss", "test_accuracy", "images_per_second", "error")
# status fields kept in columns of their own; any other field of write_status goes into ``extra``
_STATUS_COLUMNS = ("status", "network", "executor", "queued_at", "dispatched_at", "started_at", "finished_at",
                   "updated", "error", "message", "device")
_JSON_STATUS_COLUMNS = ("worker", "relay", "progress", "result")

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
    progress TEXT, result TEXT, extra TEXT
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
"""


class RunError(ValueError):
    """A run that does not exist, or an action a run's state (or its owner) does not allow."""


class StoreUnavailable(RunError):
    """The run store cannot be read or written (a full disk, a read-only folder, a corrupt database)."""


def default_runs_dir() -> Path:
    return Path(os.environ.get("ARCHS_RUNS_DIR", "runs"))


def _dumps(value: Any) -> str:
    return json.dumps(value, default=_json_default, allow_nan=True)


def _json_default(value):
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):  # a tensor or an array, without importing torch here
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


def _loads(text: str | None, want: type = dict, default=None):
    """Parsed JSON of the expected type, or ``default``: a stored value is data, never trusted to be well-formed."""
    if text is None:
        return default
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return default
    return value if isinstance(value, want) else default


def _number(value) -> float | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


# ---------------------------------------------------------------------------------------------
# processes: who is responsible for an active run


def _start_time(pid: int) -> str | None:
    """The kernel's start time of a process (Linux), so a recycled pid is not taken for the old process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode("ascii", "replace")
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def process_identity(pid: int | None = None) -> dict:
    """``{"pid", "host", "start"}`` of a process (default: this one), as recorded with a run."""
    pid = os.getpid() if pid is None else pid
    return {"pid": pid, "host": socket.gethostname(), "start": _start_time(pid)}


def process_alive(identity: Any) -> bool | None:
    """True or False for a process recorded by :func:`process_identity` on this host; None when it was
    recorded on another host (nothing can be known from here)."""
    if not isinstance(identity, dict) or not isinstance(identity.get("pid"), int) or isinstance(
            identity.get("pid"), bool):
        return False
    if identity.get("host") != socket.gethostname():
        return None
    pid = identity["pid"]
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except (OSError, OverflowError):
        return False
    start = _start_time(pid)
    if start is not None and identity.get("start") not in (None, start):
        return False  # the pid now belongs to another process
    try:  # a zombie (dead, not yet reaped by its parent) still answers kill(pid, 0)
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def derive_status(stored: dict, in_queue: bool = True) -> dict:
    """A stored status checked against whoever is responsible for the run (see the module docstring).
    ``in_queue``: a ``queued`` run is in the store's queue (a run queued nowhere, with no relay, is held by no one)."""
    status = stored.get("status")
    if status not in ACTIVE_STATUSES:
        return stored
    if stored.get("relay") is not None:  # a remote run: its records reach the store through that process
        if process_alive(stored["relay"]) is False:
            return {**stored, "status": "interrupted", "stored_status": status,
                    "error": "the server relaying this run's records stopped"}
        return stored
    if status == "running":
        if process_alive(stored.get("worker")) is False:
            pid = (stored.get("worker") or {}).get("pid") if isinstance(stored.get("worker"), dict) else None
            return {**stored, "status": "failed", "stored_status": status,
                    "error": stored.get("error") or f"the worker process (pid {pid}) ended without recording a "
                                                    "result (killed, or out of memory)"}
    elif not in_queue:
        return {**stored, "status": "interrupted", "stored_status": status,
                "error": stored.get("error") or "the process that held this run stopped before it ended"}
    return stored


# ---------------------------------------------------------------------------------------------
# the database


class _Database:
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
            raise _unavailable(self.path, error) from None
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
            raise _unavailable(self.path, error) from None

    def read(self, sql: str, params: Iterable = ()) -> list[sqlite3.Row]:
        try:
            return self.connection().execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as error:
            raise _unavailable(self.path, error) from None

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _unavailable(path: Path, error: sqlite3.Error) -> StoreUnavailable:
    text = str(error)
    hint = {"database or disk is full": "the disk is full", "attempt to write a readonly database":
            "the runs folder is read-only", "unable to open database file": "the runs folder cannot be opened",
            "database is locked": "another process held the store for too long"}.get(text, text)
    return StoreUnavailable(f"the run store {path} cannot be written: {hint}")


# ---------------------------------------------------------------------------------------------
# one run


class Run:
    """A handle on one stored run. Every read goes to the database, so it is always current.

    A run is also what :func:`archs.training.request.execute_request` records into (a *recorder*):
    ``write_status``, ``append_metric(s)``, ``write_spec``, ``write_error``, ``save_weights``.
    """

    def __init__(self, store: RunStore, run_id: str):
        self.store, self.id = store, run_id
        self.path = store.root / run_id

    def __repr__(self) -> str:
        return f"Run({self.id!r})"

    def _row(self, columns: str = "*") -> sqlite3.Row:
        rows = self.store._db.read(f"SELECT {columns} FROM runs WHERE id = ?", (self.id,))
        if not rows:
            raise RunError(f"no run {self.id!r} in {self.store.root}")
        return rows[0]

    # ----- reading
    def stored_status(self) -> dict:
        return _status_dict(self._row(_STATUS_SELECT))

    def status(self) -> dict:
        """The stored status, with an active status checked against whoever is responsible for the run."""
        row = self._row(_STATUS_SELECT + ", queue_seq")
        return derive_status(_status_dict(row), in_queue=row["queue_seq"] is not None)

    def settings(self) -> dict:
        """Everything but the spec, as submitted: ``train``, ``data``, ``kind``, ``label``, ``group``, ``owner`` …"""
        row = self._row("settings, created")
        return {**_loads(row["settings"], dict, {}), "created": row["created"]}

    @property
    def owner(self) -> str:
        return self._row("owner")["owner"]

    def spec_json(self) -> str | None:
        text = self._row("spec")["spec"]
        return text or None

    def spec(self):
        """The run's ``NetSpec`` (as adapted to its data)."""
        from archs.spec import NetSpec

        text = self.spec_json()
        if text is None:
            raise RunError(f"run {self.id} has no network")
        return NetSpec.from_json(text)

    def request(self):
        """The :class:`~archs.training.request.RunRequest` this run was made from."""
        from archs.training.request import RunRequest

        return RunRequest.from_run(self)

    def metrics(self, kind: str | None = None) -> list[dict]:
        sql, params = "SELECT record FROM metrics WHERE run_id = ?", [self.id]
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        rows = self.store._db.read(sql + " ORDER BY id", params)
        return [record for record in (_loads(r["record"]) for r in rows) if record is not None]

    def metrics_csv(self) -> str:
        """The step, epoch and evaluation records as CSV text."""
        from archs.training.events import metrics_csv

        return metrics_csv(self.metrics())

    def traceback(self) -> str | None:
        return self._row("traceback")["traceback"]

    def has_weights(self) -> bool:
        return (self.path / "weights.pt").is_file()

    def weights(self) -> dict:
        import torch

        if not self.has_weights():
            raise RunError(f"run {self.id} has no saved weights")
        return torch.load(self.path / "weights.pt", map_location="cpu", weights_only=True)

    def load_model(self):
        """The trained network: ``build_model(spec)`` with the saved weights, in eval mode."""
        from archs.builder import build_model

        model = build_model(self.spec())
        model.load_state_dict(self.weights())
        return model.eval()

    def stop_request(self) -> str | None:
        """Why someone asked the run to stop (``"stopped"`` if they gave no reason), or None if no one has."""
        row = self._row("stop_requested, stop_reason")
        return None if row["stop_requested"] is None else (row["stop_reason"] or "stopped")

    def stop_requested(self) -> bool:
        return self.stop_request() is not None

    def info(self) -> dict:
        """One row for a run table (:data:`ROW_KEYS` and ``queue_position``): plain values only."""
        rows = self.store._rows("WHERE id = ?", (self.id,))
        if not rows:
            raise RunError(f"no run {self.id!r} in {self.store.root}")
        return rows[0]

    # ----- writing (by the one process responsible for the run at the time)
    def write_status(self, **fields: Any) -> dict:
        """Merge ``fields`` into the run's status, in one transaction; return the whole status."""
        with self.store._db.write() as conn:
            row = conn.execute(f"SELECT {_STATUS_SELECT} FROM runs WHERE id = ?", (self.id,)).fetchone()
            if row is None:
                raise RunError(f"no run {self.id!r} in {self.store.root}")
            data = _status_dict(row)
            data.update(fields, updated=time.time())
            conn.execute(f"UPDATE runs SET {', '.join(c + ' = ?' for c in _WRITE_COLUMNS)} WHERE id = ?",
                         (*_status_columns(data), self.id))
            if fields.get("status") not in (None, "queued"):
                conn.execute("UPDATE runs SET queue_seq = NULL, claimed_by = NULL WHERE id = ?", (self.id,))
        if fields.get("status") in FINAL_STATUSES and "events" in self.__dict__:
            self.events.close()  # the run is over: flush its event file
        return data

    def append_metric(self, record: dict) -> None:
        self.append_metrics([record])

    def append_metrics(self, records: list[dict]) -> None:
        """Records appended to the run's metrics, and to its TensorBoard event files."""
        if not records:
            return
        with self.store._db.write() as conn:
            conn.executemany("INSERT INTO metrics (run_id, kind, record) VALUES (?, ?, ?)",
                             [(self.id, str(r.get("kind")), _dumps(r)) for r in records])
        self.events.write(records)

    @functools.cached_property
    def events(self):
        """This handle's TensorBoard writer (one per process that records the run)."""
        from archs.training.events import EventLog

        return EventLog(self.path)

    def write_spec(self, spec) -> None:
        with self.store._db.write() as conn:
            conn.execute("UPDATE runs SET spec = ?, network = ? WHERE id = ?", (spec.to_json(), spec.name, self.id))

    def write_error(self, text: str) -> None:
        with self.store._db.write() as conn:
            conn.execute("UPDATE runs SET traceback = ? WHERE id = ?", (str(text), self.id))

    def save_weights(self, state_dict: dict) -> None:
        import torch

        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.path / f".weights.{os.getpid()}.tmp"
        torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, tmp)
        os.replace(tmp, self.path / "weights.pt")

    def save_weights_file(self, data: bytes) -> None:
        """Weights already serialised by ``torch.save`` (sent back by a remote worker)."""
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.path / f".weights.{os.getpid()}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, self.path / "weights.pt")

    def request_stop(self, reason: str | None = None) -> None:
        with self.store._db.write() as conn:
            conn.execute("UPDATE runs SET stop_requested = COALESCE(stop_requested, ?), "
                         "stop_reason = COALESCE(stop_reason, ?) WHERE id = ?", (time.time(), reason, self.id))


_STATUS_SELECT = ", ".join(_STATUS_COLUMNS + _JSON_STATUS_COLUMNS + ("extra",))
_WRITE_COLUMNS = _STATUS_COLUMNS + _JSON_STATUS_COLUMNS + ("extra", "step", "total_steps", "train_loss",
                                                           "test_accuracy", "images_per_second")


def _status_dict(row: sqlite3.Row) -> dict:
    """The status of a run as one dict (what status.json held): columns, JSON columns and ``extra``."""
    data = dict(_loads(row["extra"], dict, {}))
    for column in _STATUS_COLUMNS:
        if row[column] is not None:
            data[column] = row[column]
    for column in _JSON_STATUS_COLUMNS:
        value = _loads(row[column], object, None)
        if value is not None:
            data[column] = value
    return data


def _status_columns(data: dict) -> tuple:
    """The column values of a status dict, including the table row's figures (from progress, then result)."""
    extra = {k: v for k, v in data.items() if k not in _STATUS_COLUMNS and k not in _JSON_STATUS_COLUMNS}
    progress = data.get("progress") if isinstance(data.get("progress"), dict) else {}
    result = data.get("result") if isinstance(data.get("result"), dict) else {}
    device = data.get("device") if isinstance(data.get("device"), str) else None
    figures = (
        _number(progress.get("step", result.get("steps"))),
        _number(progress.get("total_steps")),
        _number(result.get("train_loss", progress.get("loss"))),
        _number(result.get("test_accuracy")),
        _number(result.get("images_per_second", progress.get("images_per_second"))),
    )
    plain = []
    for column in _STATUS_COLUMNS:
        value = data.get(column)
        if column == "device":
            value = result.get("device") if isinstance(result.get("device"), str) else device
        elif column in ("status", "network", "executor", "error", "message"):
            value = None if value is None else str(value)
        else:
            value = _number(value)
        plain.append(value)
    return (*plain, *(None if data.get(c) is None else _dumps(data[c]) for c in _JSON_STATUS_COLUMNS),
            _dumps(extra), *figures)


# ---------------------------------------------------------------------------------------------
# the runs folder


_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,120}$")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-.")[:40] or "run"


def _new_id(name: str) -> str:
    now = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + f"{int(now * 1000) % 1000:03d}"
    return f"{stamp}-{_slug(name)}-{secrets.token_hex(3)}"


class RunStore:
    """The runs folder and its database: submit, list, open, queue, stop and delete runs."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_runs_dir()
        self._db = _Database(self.root / DB_NAME, self._setup)

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    @property
    def db_path(self) -> Path:
        return self._db.path

    def _setup(self) -> None:
        """Create the tables (and import the run folders of the file-based store) on first use."""
        conn = self._db.connection()
        version = self._schema_version(conn)
        if version is not None and version > SCHEMA_VERSION:
            raise StoreUnavailable(f"the run store {self.db_path} was written by a newer version (schema "
                                   f"{version}); upgrade archs to read it")
        if version == SCHEMA_VERSION:
            return
        with self._db.write() as conn:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            if conn.execute("SELECT value FROM meta WHERE key = 'imported'").fetchone() is None:
                from archs.training.store_import import import_run_folders

                imported = import_run_folders(self.root, conn)
                conn.execute("INSERT INTO meta VALUES ('imported', ?)",
                             (_dumps({"when": time.time(), "runs": imported}),))

    @staticmethod
    def _schema_version(conn: sqlite3.Connection) -> int | None:
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        except sqlite3.OperationalError:
            return None
        return int(row[0]) if row else None

    # ----- creating
    def submit(self, requests: list, *, executor: str, queue: bool = True, status: str = "queued",
               admit: Callable[[sqlite3.Connection, list], None] | None = None,
               keep: int | None = None, **status_fields: Any) -> list[Run]:
        """Create runs for these requests in one transaction: all of them, or none.

        ``admit(counts, requests)``, called inside the transaction, may raise to refuse them (the limits), with
        ``counts`` the :class:`QueueCounts` at that moment. ``queue``: the runs enter the FIFO queue
        (``status`` queued). ``keep``: at most this many runs stay stored; the submitting owner's oldest
        finished runs are deleted to make room (never anyone else's).
        """
        if not requests:
            return []
        owners = {r.owner for r in requests}
        for request in requests:
            if not isinstance(request.owner, str) or not request.owner:
                raise RunError("a run needs an owner")
        now = time.time()
        ids: list[str] = []
        doomed: list[str] = []
        with self._db.write() as conn:
            if admit is not None:
                admit(QueueCounts(conn), requests)
            for request in requests:  # unique among the stored ones and these (the same millisecond and name)
                run_id = _new_id(request.spec.name)
                while run_id in ids or conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone():
                    run_id = _new_id(request.spec.name)
                ids.append(run_id)
            seq = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM runs").fetchone()[0]
            qseq = conn.execute("SELECT COALESCE(MAX(queue_seq), 0) FROM runs").fetchone()[0]
            for n, (run_id, request) in enumerate(zip(ids, requests), start=1):
                settings = request.settings_dict()
                train = settings.get("train") or {}
                fields = {"status": status, "network": request.spec.name, "executor": executor,
                          "queued_at": now, **status_fields}
                values = dict(zip(_WRITE_COLUMNS, _status_columns({**fields, "updated": now})))
                conn.execute(
                    "INSERT INTO runs (id, seq, owner, owner_name, kind, grp, label, data, created, queue_seq, epochs, "
                    "batch_size, lr, optimizer, spec, settings, " + ", ".join(_WRITE_COLUMNS) + ") VALUES ("
                    + ", ".join("?" * (16 + len(_WRITE_COLUMNS))) + ")",
                    (run_id, seq + n, request.owner, request.owner_name, request.kind, request.group,
                     request.display_label, request.data.name, now, qseq + n if queue and status == "queued" else None,
                     _number(train.get("epochs")), _number(train.get("batch_size")), _number(train.get("lr")),
                     train.get("optimizer"), request.spec.to_json(), _dumps(settings), *values.values()))
            if keep:
                for owner in owners:
                    doomed += self._prunable(conn, keep, owner)
        for run_id in ids:
            (self.root / run_id).mkdir(parents=True, exist_ok=True)
        self._remove_folders(doomed)
        return [Run(self, run_id) for run_id in ids]

    def create(self, request, *, executor: str | None = None, queue: bool = False, **status_fields) -> Run:
        """One run, outside any limit (the operator's own command line, tests)."""
        return self.submit([request], executor=executor or "cli", queue=queue, **status_fields)[0]

    # ----- the queue (FIFO)
    def queued(self, executor: str | None = None) -> list[str]:
        """Ids of the runs waiting for a worker, first in line first (claimed ones are no longer waiting)."""
        sql = "SELECT id FROM runs WHERE status = 'queued' AND queue_seq IS NOT NULL AND claimed_by IS NULL"
        params: list = []
        if executor is not None:
            sql += " AND executor = ?"
            params.append(executor)
        return [r["id"] for r in self._db.read(sql + " ORDER BY queue_seq", params)]

    def waiting(self, executor: str) -> list[str]:
        """Ids of ``executor``'s runs that have not started, first in line first (its own queue, where the
        backend keeps one, holds them in the order they were submitted)."""
        rows = self._db.read("SELECT id, status, relay FROM runs WHERE status = 'queued' AND executor = ? AND "
                             "claimed_by IS NULL ORDER BY COALESCE(queue_seq, seq)", (executor,))
        return [r["id"] for r in rows if derive_status({"status": "queued", "relay": _loads(r["relay"], dict)})[
            "status"] == "queued"]

    def claim_next(self, executor: str, claimer: dict, kinds: tuple[str, ...] | None = None) -> str | None:
        """Take the first waiting run of ``executor`` (of one of ``kinds``, if given) out of the queue, in one
        transaction; None if none waits."""
        kind_filter = f" AND kind IN ({', '.join('?' * len(kinds))})" if kinds else ""
        with self._db.write() as conn:
            row = conn.execute("SELECT id FROM runs WHERE status = 'queued' AND executor = ? AND queue_seq IS NOT NULL "
                               "AND claimed_by IS NULL" + kind_filter + " ORDER BY queue_seq LIMIT 1",
                               (executor, *(kinds or ()))).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE runs SET claimed_by = ?, dispatched_at = ?, updated = ? WHERE id = ?",
                         (_dumps(claimer), time.time(), time.time(), row["id"]))
            return row["id"]

    def claim(self, run_id: str, claimer: dict | None = None) -> bool:
        """Take this queued run out of the queue; False if it is no longer waiting."""
        with self._db.write() as conn:
            cursor = conn.execute("UPDATE runs SET claimed_by = ?, dispatched_at = ? WHERE id = ? AND status = 'queued' "
                                  "AND queue_seq IS NOT NULL AND claimed_by IS NULL",
                                  (_dumps(claimer or process_identity()), time.time(), run_id))
            return cursor.rowcount == 1

    def requeue_stale_claims(self, executor: str, min_age: float = 60.0) -> list[str]:
        """Runs claimed more than ``min_age`` seconds ago by a process that has died, and whose worker never
        recorded "running", go back to their place in the queue (a worker still starting has had its time)."""
        rows = self._db.read("SELECT id, claimed_by FROM runs WHERE status = 'queued' AND executor = ? "
                             "AND claimed_by IS NOT NULL AND dispatched_at < ?", (executor, time.time() - min_age))
        stale = [r["id"] for r in rows if process_alive(_loads(r["claimed_by"], dict)) is False]
        if stale:
            with self._db.write() as conn:
                conn.executemany("UPDATE runs SET claimed_by = NULL WHERE id = ? AND status = 'queued'",
                                 [(i,) for i in stale])
        return stale

    def claimed(self, executor: str) -> list[str]:
        return [r["id"] for r in self._db.read("SELECT id FROM runs WHERE status = 'queued' AND executor = ? AND "
                                               "claimed_by IS NOT NULL", (executor,))]

    def unqueue(self, run_id: str, message: str = "stopped while queued") -> bool:
        """A run still waiting in the store's queue leaves it as ``stopped``; False if it was taken (or has ended,
        or waits in a queue of its executor's own)."""
        now = time.time()
        with self._db.write() as conn:
            cursor = conn.execute("UPDATE runs SET status = 'stopped', finished_at = ?, updated = ?, message = ?, "
                                  "queue_seq = NULL WHERE id = ? AND status = 'queued' AND queue_seq IS NOT NULL "
                                  "AND claimed_by IS NULL", (now, now, message, run_id))
            return cursor.rowcount == 1

    # ----- reading
    def get(self, run_id: str) -> Run:
        if not isinstance(run_id, str) or not _ID.match(run_id):
            raise RunError(f"invalid run id {run_id!r}")
        if not self._db.read("SELECT 1 FROM runs WHERE id = ?", (run_id,)):
            raise RunError(f"no run {run_id!r} in {self.root}")
        return Run(self, run_id)

    def runs(self) -> list[Run]:
        """Every run, newest first."""
        return [Run(self, r["id"]) for r in self._db.read("SELECT id FROM runs ORDER BY seq DESC")]

    def list_runs(self, group: str | None = None, kind: str | None = None, *, owner: str | None = None,
                  status: str | None = None, search: str | None = None, limit: int | None = None,
                  offset: int = 0) -> list[dict]:
        """A row per run (:data:`ROW_KEYS`), newest first, with ``queue_position`` (1 = next) for waiting runs.

        One query; an active run's status is checked against the process responsible for it."""
        where, params = self._filters(group, kind, owner, status, search)
        sql = where + " ORDER BY seq DESC"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params += [int(limit), int(offset)]
        return self._rows(sql, params)

    def newest_group(self, prefix: str, owner: str | None = None) -> str | None:
        """The group starting with ``prefix`` (of ``owner``, if given) whose newest run is the newest."""
        sql = "SELECT grp FROM runs WHERE grp LIKE ? ESCAPE '\\'"
        params: list = [re.sub(r"([%_\\])", r"\\\1", prefix) + "%"]
        if owner is not None:
            sql += " AND owner = ?"
            params.append(owner)
        rows = self._db.read(sql + " ORDER BY seq DESC LIMIT 1", params)
        return rows[0]["grp"] if rows else None

    def count_runs(self, group: str | None = None, kind: str | None = None, *, owner: str | None = None,
                   status: str | None = None, search: str | None = None) -> int:
        where, params = self._filters(group, kind, owner, status, search)
        return self._db.read("SELECT COUNT(*) AS n FROM runs " + where, params)[0]["n"]

    @staticmethod
    def _filters(group, kind, owner, status, search) -> tuple[str, list]:
        clauses, params = [], []
        for column, value in (("grp", group), ("kind", kind), ("owner", owner), ("status", status)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if search:
            clauses.append("(label LIKE ? ESCAPE '\\' OR network LIKE ? ESCAPE '\\' OR id LIKE ? ESCAPE '\\')")
            pattern = "%" + re.sub(r"([%_\\])", r"\\\1", search) + "%"
            params += [pattern] * 3
        return ("WHERE " + " AND ".join(clauses) if clauses else ""), params

    def _rows(self, where: str, params: Iterable = ()) -> list[dict]:
        rows = self._db.read(f"SELECT {_ROW_SELECT} FROM runs {where}", params)
        positions = None
        out = []
        for row in rows:
            item = dict(zip(ROW_KEYS, (row[c] for c in _ROW_COLUMNS)))
            item["queue_position"] = None
            if item["status"] in ACTIVE_STATUSES:
                derived = derive_status({"status": item["status"], "worker": _loads(row["worker"], dict),
                                         "relay": _loads(row["relay"], dict), "error": item["error"]},
                                        in_queue=row["queue_seq"] is not None)
                item["status"], item["error"] = derived["status"], derived.get("error")
                if item["status"] == "queued" and row["queue_seq"] is not None and row["claimed_by"] is None:
                    if positions is None:
                        positions = self._queue_positions()
                    item["queue_position"] = positions.get(item["id"])
            out.append(item)
        return out

    def _queue_positions(self) -> dict[str, int]:
        """Each waiting run's place in its executor's queue (1 = next)."""
        counters: dict[str, int] = {}
        positions = {}
        for row in self._db.read("SELECT id, executor FROM runs WHERE status = 'queued' AND queue_seq IS NOT NULL "
                                 "AND claimed_by IS NULL ORDER BY queue_seq"):
            counters[row["executor"]] = counters.get(row["executor"], 0) + 1
            positions[row["id"]] = counters[row["executor"]]
        return positions

    def active(self) -> list[str]:
        """Ids of running then queued runs (queued ones in FIFO order)."""
        rows = self._db.read("SELECT id, status, worker, relay, queue_seq FROM runs WHERE status IN ('queued', "
                             "'running') ORDER BY status = 'queued', COALESCE(queue_seq, seq), id")
        return [r["id"] for r in rows if derive_status({"status": r["status"], "worker": _loads(r["worker"], dict),
                                                        "relay": _loads(r["relay"], dict)},
                                                       in_queue=r["queue_seq"] is not None)["status"]
                in ACTIVE_STATUSES]

    def stop_requests(self, run_ids: Iterable[str]) -> list[str]:
        """Which of these runs someone has asked to stop."""
        ids = list(run_ids)
        if not ids:
            return []
        rows = self._db.read(f"SELECT id FROM runs WHERE stop_requested IS NOT NULL AND id IN "
                             f"({', '.join('?' * len(ids))})", ids)
        return [r["id"] for r in rows]

    # ----- owners
    def check_owner(self, run: Run, owner: str | None, action: str, admin: bool = False) -> None:
        """Only whoever started a run (or an administrator) may stop or delete it."""
        if admin:
            return
        if not isinstance(owner, str) or not owner:
            raise RunError(f"say who you are to {action} run {run.id}")
        if run.owner != owner:
            raise RunError(f"run {run.id} was started by someone else: only they can {action} it")

    # ----- removing
    def delete(self, run_id: str, owner: str | None = None, admin: bool = False) -> None:
        run = self.get(run_id)
        self.check_owner(run, owner, "delete", admin)
        with self._db.write() as conn:
            row = conn.execute(f"SELECT {_STATUS_SELECT}, queue_seq FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise RunError(f"no run {run_id!r} in {self.root}")
            status = derive_status(_status_dict(row), in_queue=row["queue_seq"] is not None)["status"]
            if status in ACTIVE_STATUSES:
                raise RunError(f"run {run_id} is {status}; stop it before deleting it")
            conn.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
            conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        self._remove_folders([run_id])

    def prune(self, keep: int, owner: str) -> list[str]:
        """Delete ``owner``'s oldest finished runs while more than ``keep`` runs are stored; return their ids."""
        with self._db.write() as conn:
            doomed = self._prunable(conn, keep, owner)
        self._remove_folders(doomed)
        return doomed

    def _prunable(self, conn: sqlite3.Connection, keep: int, owner: str) -> list[str]:
        total = conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        excess = total - keep
        if excess <= 0:
            return []
        rows = conn.execute("SELECT id, " + _STATUS_SELECT + " FROM runs WHERE owner = ? AND status NOT IN "
                            "('queued', 'running') ORDER BY seq LIMIT ?", (owner, excess)).fetchall()
        doomed = [r["id"] for r in rows]
        conn.executemany("DELETE FROM metrics WHERE run_id = ?", [(i,) for i in doomed])
        conn.executemany("DELETE FROM runs WHERE id = ?", [(i,) for i in doomed])
        return doomed

    def _remove_folders(self, run_ids: Iterable[str]) -> None:
        for run_id in run_ids:
            if _ID.match(run_id):
                shutil.rmtree(self.root / run_id, ignore_errors=True)

    # ----- the supervisor's record, and what a page shows when something is wrong
    def set_meta(self, key: str, value: Any) -> None:
        with self._db.write() as conn:
            conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, _dumps(value)))

    def meta(self, key: str, default=None):
        rows = self._db.read("SELECT value FROM meta WHERE key = ?", (key,))
        return _loads(rows[0]["value"], object, default) if rows else default

    def health(self) -> list[str]:
        """What is wrong with the store or the local executor's supervisor, in words (empty: nothing)."""
        problems = []
        try:
            usage = shutil.disk_usage(self.root)
            if usage.free < LOW_DISK_BYTES:
                problems.append(f"the disk holding {self.root} is (almost) full: {usage.free / 2**20:.0f} MiB free")
        except OSError as error:
            problems.append(f"the runs folder {self.root} cannot be read: {error.strerror}")
        if not os.access(self.root, os.W_OK) or (self.db_path.exists() and not os.access(self.db_path, os.W_OK)):
            problems.append(f"the runs folder {self.root} is read-only for this server")
        supervisor = self.meta("supervisor") or {}
        if isinstance(supervisor, dict) and supervisor.get("error"):
            if process_alive(supervisor.get("process")) is not False:
                problems.append(f"the local executor's supervisor cannot work: {supervisor['error']} (since "
                                f"{time.strftime('%H:%M:%S', time.localtime(supervisor.get('error_since') or 0))}; "
                                "it retries)")
        error_file = self.root / ".supervisor-error"
        try:
            text = error_file.read_text(encoding="utf-8", errors="replace")[:300].strip()
            if text and time.time() - error_file.stat().st_mtime < 120:
                problems.append(f"the local executor's supervisor reports: {text}")
        except OSError:
            pass
        return problems


class QueueCounts:
    """What the limits check at submit time, counted inside the submitting transaction."""

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn

    def queued(self, owner: str | None = None) -> int:
        if owner is None:
            return self._conn.execute("SELECT COUNT(*) FROM runs WHERE status = 'queued'").fetchone()[0]
        return self._conn.execute("SELECT COUNT(*) FROM runs WHERE status = 'queued' AND owner = ?",
                                  (owner,)).fetchone()[0]

    def stored(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]


_ROW_COLUMNS = tuple({"group": "grp"}.get(k, k) for k in ROW_KEYS)
_ROW_SELECT = ", ".join(_ROW_COLUMNS + ("worker", "relay", "queue_seq", "claimed_by"))


def grad_heatmap(records: list[dict]) -> dict:
    """Gradient-norm records of a run as a depth x step matrix for a heatmap.

    Returns ``{"steps": [...], "layers": [names by depth], "values": [[norm per step] per layer]}``
    (``None`` where a layer has no value at a step).
    """
    grads = [r for r in records if r.get("kind") == "grad"]
    steps = [r["step"] for r in grads]
    names: list[str] = []
    for r in grads:
        for layer in r.get("layers", []):
            if layer["name"] not in names:
                names.append(layer["name"])
    index = {name: i for i, name in enumerate(names)}
    values: list[list[float | None]] = [[None] * len(steps) for _ in names]
    for j, r in enumerate(grads):
        for layer in r.get("layers", []):
            values[index[layer["name"]]][j] = layer["grad_norm"]
    return {"steps": steps, "layers": names, "values": values}
