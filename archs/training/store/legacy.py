"""An older store brought up to date on first open: the schema's versions (:func:`migrate`), and the import of a
runs folder written by the file-based run store (before ``runs.db``), once.

That store kept each run as files in its folder (``spec.json``, ``settings.json``, ``status.json``,
``metrics.jsonl``, ``error.txt``, a ``stop`` file) and its FIFO queue as empty files in ``.queue/``
(``<time ns>-<run id>``, or ``claimed-<run id>`` once a launcher took it). Each run folder becomes a row, its
metric records rows, its queue place its place in the new queue (a claimed run goes back to the front);
weights and TensorBoard event files stay where they are. The old files are left as they were (nothing is
deleted): the database is what is read from now on.

Everything read here is data: a file that is missing, truncated, not JSON, or JSON of the wrong shape gives
what can be recovered of it, never an exception. A run without an owner (runs the command line started
before owners were recorded) is given ``cli:<user who owns its folder>``.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from pathlib import Path

from archs.training.store.db import SCHEMA, SCHEMA_VERSION, Database, StoreUnavailable, add_columns, dumps, number
from archs.training.store.files import regular_size
from archs.training.store.records import _WRITE_COLUMNS, WEIGHTS_NAME, _status_columns

__all__ = ["import_run_folders", "migrate"]

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,120}$")


def _read(path: Path, want: type = dict):
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, want) else None


def _records(path: Path) -> list[dict]:
    """JSON lines, skipping a truncated or garbled line (a crash mid-write) instead of failing."""
    records = []
    try:
        with open(path, "rb") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    records.append(record)
    except OSError:
        pass
    return records


def _folder_owner(path: Path) -> str:
    try:
        import pwd

        return "cli:" + pwd.getpwuid(path.stat().st_uid).pw_name
    except (ImportError, KeyError, OSError):
        return "cli:unknown"


def _queue(root: Path) -> dict[str, int]:
    """Run id -> place in the old queue (claimed runs first: a launcher had already taken them)."""
    try:
        names = sorted(os.listdir(root / ".queue"))
    except OSError:
        return {}
    claimed = [n[len("claimed-"):] for n in names if n.startswith("claimed-")]
    waiting = [n.split("-", 1)[1] for n in names if n[:1].isdigit() and "-" in n]
    return {run_id: n for n, run_id in enumerate(claimed + waiting, start=1)}


def import_run_folders(root: Path, conn: sqlite3.Connection) -> int:
    """Insert every run folder of ``root`` that the database does not hold yet; return how many."""

    root = Path(root)
    try:
        folders = sorted(p for p in root.iterdir() if p.is_dir() and _ID.match(p.name))
    except OSError:
        return 0
    queue = _queue(root)
    known = {r[0] for r in conn.execute("SELECT id FROM runs")}
    seq = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM runs").fetchone()[0]
    count = 0
    for folder in folders:
        if folder.name in known:
            continue
        settings, status = _read(folder / "settings.json"), _read(folder / "status.json")
        if settings is None and status is None and not (folder / "spec.json").exists():
            continue  # not a run folder
        settings, status = settings or {}, status or {}
        try:
            spec = (folder / "spec.json").read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            spec = ""
        if _read(folder / "spec.json") is None:
            spec = ""
        created = number(settings.get("created")) or number(status.get("queued_at")) or folder.stat().st_mtime
        owner = settings.get("owner") if isinstance(settings.get("owner"), str) and settings.get("owner") else \
            _folder_owner(folder)
        train = settings.get("train") if isinstance(settings.get("train"), dict) else {}
        data = settings.get("data") if isinstance(settings.get("data"), dict) else {}
        if not status:
            status = {"status": "interrupted", "error": "status.json was missing or unreadable when the run store "
                                                        "was imported"}
        stored = status.get("status")
        in_queue = folder.name in queue and stored == "queued"
        if stored == "queued" and not in_queue:
            status = {**status, "status": "interrupted",
                      "error": status.get("error") or "the process that held this run stopped before it ended"}
        elif stored not in ("queued", "running", "completed", "stopped", "diverged", "failed", "interrupted"):
            status = {**status, "status": "interrupted", "error": f"unknown status {stored!r} when imported"}
        status.setdefault("network", settings.get("network"))
        try:
            traceback = (folder / "error.txt").read_text(encoding="utf-8", errors="replace")
        except OSError:
            traceback = None
        seq += 1
        values = _status_columns({**status, "updated": number(status.get("updated")) or created})
        label = settings.get("label") if isinstance(settings.get("label"), str) else folder.name
        group = settings.get("group") if isinstance(settings.get("group"), str) else None
        kind = settings.get("kind") if settings.get("kind") in ("train", "gradients") else "train"
        stop = time.time() if (folder / "stop").exists() else None
        conn.execute(
            "INSERT INTO runs (id, seq, owner, owner_name, kind, grp, label, data, created, queue_seq, epochs, "
            "batch_size, lr, optimizer, spec, settings, traceback, stop_requested, " + ", ".join(_WRITE_COLUMNS)
            + ") VALUES (" + ", ".join("?" * (18 + len(_WRITE_COLUMNS))) + ")",
            (folder.name, seq, owner, settings.get("owner_name") if isinstance(settings.get("owner_name"), str)
             else None, kind, group, label, data.get("name") if isinstance(data.get("name"), str) else None,
             created, queue.get(folder.name) if in_queue else None, number(train.get("epochs")),
             number(train.get("batch_size")), number(train.get("lr")),
             train.get("optimizer") if isinstance(train.get("optimizer"), str) else None, spec,
             dumps({**settings, "owner": owner}), traceback, stop, *values))
        conn.executemany("INSERT INTO metrics (run_id, kind, record) VALUES (?, ?, ?)",
                         [(folder.name, str(r.get("kind")), dumps(r)) for r in _records(folder / "metrics.jsonl")])
        count += 1
    return count


def schema_version(conn: sqlite3.Connection) -> int | None:
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    except sqlite3.OperationalError:
        return None
    return int(row[0]) if row else None


def migrate(db: Database, root: Path) -> None:
    """Create the tables (version 1: runs and metrics; 2: studies and trials; 3: a run's pin and when it was last
    viewed; 4: whether its weights were saved), and import the run folders of the file-based store (before any
    database) once."""
    version = schema_version(db.connection())
    if version is not None and version > SCHEMA_VERSION:
        raise StoreUnavailable(f"the run store {db.path} was written by a newer version (schema {version}); "
                               "upgrade archs to read it")
    if version == SCHEMA_VERSION:
        return
    with db.write() as conn:
        for statement in SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        add_columns(conn)  # version 3: the columns an older runs table lacks
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        if conn.execute("SELECT value FROM meta WHERE key = 'imported'").fetchone() is None:
            imported = import_run_folders(root, conn)
            conn.execute("INSERT INTO meta VALUES ('imported', ?)", (dumps({"when": time.time(), "runs": imported}),))
        record_weights(root, conn)


def record_weights(root: Path, conn: sqlite3.Connection) -> None:
    """Version 4: whether each run saved its weights, looked up once in its folder for the runs that do not say
    (runs of an older store, imported ones); from then on the run records it when it ends
    (:meth:`archs.training.store.records.Run.write_status`). A link there counts as none, as everywhere."""
    rows = conn.execute("SELECT id FROM runs WHERE has_weights IS NULL").fetchall()
    conn.executemany("UPDATE runs SET has_weights = ? WHERE id = ?",
                     [(int(_ID.match(r[0]) is not None and regular_size(root / r[0], WEIGHTS_NAME) is not None), r[0])
                      for r in rows])
