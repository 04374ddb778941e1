"""Studies and their trials in the run store (``RunStore.studies``).

A study is a named set of runs with one purpose (a sweep, a search, a claim of a seed article), owned like a run.
Its record holds its definition (plain JSON), its state and the identity of the process driving it; each trial
holds the values it tries (``params``), its run once submitted (the run's ``group`` is the study's id), its
objective values and why it ended. A driver that stops (a server restart, SIGKILL) leaves all of that here, so a
new driver carries on without repeating a finished trial. Every write is one transaction.

Study statuses: ``running`` (a driver works on it, or will when the study is opened again: a running study whose
driver is gone reads as ``interrupted``), ``completed``, ``stopped``, ``failed``. Trial statuses: ``pending``
(not submitted yet), ``queued`` and ``running`` (its run's), ``completed``, ``repeated`` (a search drew the
values of an earlier completed trial: answered from its result, not run again), ``infeasible`` (the values make no
valid network, or a network over a server limit: the error says which), ``pruned`` (stopped early by the
search's pruner), ``stopped``, ``diverged``, ``failed``.
"""

from __future__ import annotations

import re
import secrets
import shutil
import time
from typing import Any

from archs.training.store.db import RunError, Store, dumps, loads
from archs.training.store.processes import process_alive

__all__ = ["STUDY_STATUSES", "TRIAL_STATUSES", "StudyRecords"]

STUDY_STATUSES = ("running", "completed", "stopped", "failed")
TRIAL_STATUSES = ("pending", "queued", "running", "completed", "repeated", "infeasible", "pruned", "stopped",
                  "diverged", "failed")
TRIAL_FINAL = ("completed", "repeated", "infeasible", "pruned", "stopped", "diverged", "failed")
DRIVER_START_SECONDS = 60  # a driver process being started has this long to record itself before its study
#                            reads as interrupted
_ID = re.compile(r"^study-[A-Za-z0-9_.-]{1,120}$")
_STUDY_COLUMNS = ("id", "owner", "owner_name", "kind", "name", "status", "executor", "created", "updated",
                  "finished_at", "error")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-.")[:40] or "study"


class StudyRecords:
    """The studies of one run store."""

    def __init__(self, store: Store):
        self.store, self.db = store, store.db

    # ----- creating
    def create(self, *, owner: str, owner_name: str | None, kind: str, name: str, definition: dict, executor: str,
               trials: list[dict] | None = None, admit=None) -> str:
        """A new study (status ``running``) with its first trials (each ``{"params": {...}}``, pending), in one
        transaction; ``admit(counts, n_trials)`` may refuse it there. Returns its id."""
        if not isinstance(owner, str) or not owner:
            raise RunError("a study needs an owner (who may stop and delete it)")
        now = time.time()
        with self.db.write() as conn:
            if admit is not None:
                admit(conn, len(trials or ()))
            study_id = f"study-{time.strftime('%Y%m%d-%H%M%S', time.localtime(now))}-{_slug(name)}-" \
                       f"{secrets.token_hex(3)}"
            seq = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM studies").fetchone()[0]
            conn.execute("INSERT INTO studies (id, seq, owner, owner_name, kind, name, status, definition, executor, "
                         "created, updated) VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?)",
                         (study_id, seq, owner, owner_name, kind, str(name)[:200], dumps(definition), executor, now,
                          now))
            self._insert_trials(conn, study_id, trials or [], 0)
        return study_id

    def add_trials(self, study_id: str, trials: list[dict]) -> list[int]:
        """Append trials (``{"params", "status"?, "optuna_number"?}``); returns their numbers."""
        with self.db.write() as conn:
            start = conn.execute("SELECT COALESCE(MAX(number), -1) + 1 FROM trials WHERE study_id = ?",
                                 (study_id,)).fetchone()[0]
            return self._insert_trials(conn, study_id, trials, start)

    @staticmethod
    def _insert_trials(conn, study_id: str, trials: list[dict], start: int) -> list[int]:
        now = time.time()
        numbers = list(range(start, start + len(trials)))
        conn.executemany("INSERT INTO trials (study_id, number, status, params, optuna_number, error, created, "
                         "updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         [(study_id, n, t.get("status", "pending"), dumps(t["params"]), t.get("optuna_number"),
                           t.get("error"), now, now) for n, t in zip(numbers, trials)])
        return numbers

    # ----- reading
    def get(self, study_id: str) -> dict:
        """The study's record: its columns, ``definition``, ``summary`` and ``driver``; a running study whose
        driver has died reads as ``interrupted`` (``stored_status`` keeps what was stored)."""
        if not isinstance(study_id, str) or not _ID.match(study_id):
            raise RunError(f"invalid study id {str(study_id)[:130]!r}")  # a link's text: shown shortened
        rows = self.db.read("SELECT * FROM studies WHERE id = ?", (study_id,))
        if not rows:
            raise RunError(f"no study {study_id!r} in {self.store.root}")
        return self._record(rows[0])

    def _record(self, row) -> dict:
        record = {column: row[column] for column in _STUDY_COLUMNS}
        record.update(definition=loads(row["definition"], dict, {}), summary=loads(row["summary"], dict, None),
                      driver=loads(row["driver"], dict, None), stop_requested=row["stop_requested"] is not None)
        starting = record["driver"] is None and time.time() - (record["updated"] or 0) < DRIVER_START_SECONDS
        if record["status"] == "running" and not starting and process_alive(record["driver"]) is False:
            record.update(status="interrupted", stored_status="running")
        return record

    def list(self, owner: str | None = None, limit: int | None = None) -> list[dict]:
        sql, params = "SELECT * FROM studies", []
        if owner is not None:
            sql += " WHERE owner = ?"
            params.append(owner)
        sql += " ORDER BY seq DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [self._record(r) for r in self.db.read(sql, params)]

    def trials(self, study_id: str) -> list[dict]:
        """The study's trials in order, each with ``params`` and ``objectives`` parsed."""
        rows = self.db.read("SELECT * FROM trials WHERE study_id = ? ORDER BY number", (study_id,))
        return [{"number": r["number"], "status": r["status"], "params": loads(r["params"], dict, {}),
                 "run_id": r["run_id"], "optuna_number": r["optuna_number"],
                 "objectives": loads(r["objectives"], dict, {}), "error": r["error"], "created": r["created"],
                 "updated": r["updated"]} for r in rows]

    # ----- writing (by the study's driver)
    def update(self, study_id: str, **fields: Any) -> None:
        """Set ``status``, ``driver``, ``summary``, ``error``, ``finished_at`` (JSON values encoded here)."""
        allowed = {"status", "driver", "summary", "error", "finished_at"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"study fields {sorted(unknown)} cannot be set")
        values = {k: dumps(v) if k in ("driver", "summary") and v is not None else v for k, v in fields.items()}
        with self.db.write() as conn:
            conn.execute(f"UPDATE studies SET {', '.join(k + ' = ?' for k in values)}, updated = ? WHERE id = ?",
                         (*values.values(), time.time(), study_id))

    def claim_driver(self, study_id: str, identity: dict) -> bool:
        """Record ``identity`` as the study's driver unless a live one holds it; False if one does."""
        with self.db.write() as conn:
            row = conn.execute("SELECT driver, status FROM studies WHERE id = ?", (study_id,)).fetchone()
            if row is None:
                raise RunError(f"no study {study_id!r}")
            current = loads(row["driver"], dict, None)
            if current not in (None, identity) and process_alive(current):
                return False
            conn.execute("UPDATE studies SET driver = ?, updated = ? WHERE id = ?",
                         (dumps(identity), time.time(), study_id))
            return True

    def update_trial(self, study_id: str, number: int, **fields: Any) -> None:
        """Set a trial's ``status``, ``run_id``, ``objectives``, ``error`` or ``optuna_number``."""
        allowed = {"status", "run_id", "objectives", "error", "optuna_number"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"trial fields {sorted(unknown)} cannot be set")
        values = {k: dumps(v) if k == "objectives" else v for k, v in fields.items()}
        with self.db.write() as conn:
            conn.execute(f"UPDATE trials SET {', '.join(k + ' = ?' for k in values)}, updated = ? "
                         "WHERE study_id = ? AND number = ?", (*values.values(), time.time(), study_id, number))

    def request_stop(self, study_id: str, owner: str | None, admin: bool = False) -> None:
        self._check_owner(study_id, owner, "stop", admin)
        with self.db.write() as conn:
            conn.execute("UPDATE studies SET stop_requested = COALESCE(stop_requested, ?) WHERE id = ?",
                         (time.time(), study_id))

    def delete(self, study_id: str, owner: str | None, admin: bool = False) -> list[str]:
        """Delete a study that is not running, its trials and its runs; returns the runs' ids."""
        record = self._check_owner(study_id, owner, "delete", admin)
        if record["status"] == "running":
            raise RunError(f"study {study_id} is running; stop it before deleting it")
        with self.db.write() as conn:
            active = conn.execute("SELECT COUNT(*) FROM runs WHERE grp = ? AND status IN ('queued', 'running')",
                                  (study_id,)).fetchone()[0]
            if active:
                raise RunError(f"study {study_id} still has {active} active run{'s' if active != 1 else ''}; "
                               "wait for them to end")
            run_ids = [r[0] for r in conn.execute("SELECT id FROM runs WHERE grp = ?", (study_id,))]
            conn.executemany("DELETE FROM metrics WHERE run_id = ?", [(i,) for i in run_ids])
            conn.execute("DELETE FROM runs WHERE grp = ?", (study_id,))
            conn.execute("DELETE FROM trials WHERE study_id = ?", (study_id,))
            conn.execute("DELETE FROM studies WHERE id = ?", (study_id,))
        for run_id in run_ids:
            shutil.rmtree(self.store.root / run_id, ignore_errors=True)
        return run_ids

    def _check_owner(self, study_id: str, owner: str | None, action: str, admin: bool) -> dict:
        record = self.get(study_id)
        if admin:
            return record
        if not isinstance(owner, str) or not owner:
            raise RunError(f"say who you are to {action} study {study_id}")
        if record["owner"] != owner:
            raise RunError(f"study {study_id} was started by someone else: only they can {action} it")
        return record

    def stop_requested(self, study_id: str) -> bool:
        rows = self.db.read("SELECT stop_requested FROM studies WHERE id = ?", (study_id,))
        return bool(rows) and rows[0]["stop_requested"] is not None

    def counts(self, conn, owner: str) -> dict:
        """Studies this owner has running (for the limits, inside a transaction)."""
        return {"running": conn.execute("SELECT COUNT(*) FROM studies WHERE owner = ? AND status = 'running'",
                                        (owner,)).fetchone()[0]}

    def driven(self, conn, exclude: str | None = None) -> int:
        """Studies with a driver at this moment, everyone's (a live driver, or one being started): what
        ``ARCHS_MAX_STUDY_DRIVERS`` counts, inside a transaction. An interrupted study does not count."""
        rows = conn.execute("SELECT * FROM studies WHERE status = 'running' AND id != ?", (exclude or "",))
        return sum(self._record(row)["status"] == "running" for row in rows)

    def claim_start(self, study_id: str, max_drivers: int | None) -> int | None:
        """Mark the study's driver as being started (it reads as running, not interrupted, meanwhile) unless
        ``max_drivers`` other studies are driven already; then nothing changes and their number is returned.
        None when the study may start its driver. One transaction: two at once cannot both take the last slot."""
        with self.db.write() as conn:
            if max_drivers:
                driven = self.driven(conn, exclude=study_id)
                if driven >= max_drivers:
                    return driven
            conn.execute("UPDATE studies SET driver = NULL, updated = ? WHERE id = ?", (time.time(), study_id))
        return None

    def queued(self, owner: str) -> tuple[int, int]:
        """(runs waiting in the queue, this owner's of them), read without the write lock: a driver checks for
        room before it submits, so one waiting on a full queue never takes the lock to be refused."""
        rows = self.db.read("SELECT COUNT(*) AS everyone, COALESCE(SUM(owner = ?), 0) AS mine FROM runs "
                            "WHERE status = 'queued'", (owner,))
        return rows[0]["everyone"], rows[0]["mine"]
