"""The runs folder and its database (:class:`RunStore`): submit, list, open, queue, stop and delete runs.

Every write is one transaction of :class:`archs.training.store.db.Database`. A limit check and the runs it admits
are one transaction (:meth:`RunStore.submit`); the FIFO queue is the ``queued`` runs in ``queue_seq`` order, and
claiming the next one is one transaction (:meth:`RunStore.claim_next`); listing is one query over plain columns.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from archs.training.config import ACTIVE_STATUSES
from archs.training.store.db import DB_NAME, Database, RunError, default_runs_dir, dumps, loads, number
from archs.training.store.legacy import migrate
from archs.training.store.processes import derive_status, process_alive, process_identity
from archs.training.store.records import _STATUS_SELECT, _WRITE_COLUMNS, ROW_KEYS, Run, _status_columns, _status_dict
from archs.training.store.studies import StudyRecords

__all__ = ["QueueCounts", "RunStore"]

LOW_DISK_BYTES = 64 << 20
GONE_SECONDS = 3600.0  # a session none of whose runs was created, updated or viewed for this long is gone
VIEWED_SECONDS = 600.0  # a run a page showed this recently is someone's to look at: not pruned
VIEW_MARK_SECONDS = 60.0  # how stale a run's view record may get before a page writes it again

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
        self.db = Database(self.root / DB_NAME, lambda: migrate(self.db, self.root))

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    @property
    def db_path(self) -> Path:
        return self.db.path

    @property
    def studies(self):
        """The studies of this store and their trials (:class:`archs.training.store.studies.StudyRecords`)."""
        return StudyRecords(self)

    # ----- creating
    def submit(self, requests: list, *, executor: str, queue: bool = True, status: str = "queued",
               admit: Callable[[sqlite3.Connection, list], None] | None = None,
               keep: int | None = None, **status_fields: Any) -> list[Run]:
        """Create runs for these requests in one transaction: all of them, or none.

        ``admit(counts, requests)``, called inside the transaction, may raise to refuse them (the limits), with
        ``counts`` the :class:`QueueCounts` at that moment. ``queue``: the runs enter the FIFO queue
        (``status`` queued). ``keep``: at most this many runs stay stored (``ARCHS_MAX_RUNS_KEPT``, a cap on the
        whole store): the oldest finished runs are deleted to make room, those of sessions that are gone first
        (see :meth:`prune`).
        """
        if not requests:
            return []
        for request in requests:
            if not isinstance(request.owner, str) or not request.owner:
                raise RunError("a run needs an owner")
        now = time.time()
        ids: list[str] = []
        doomed: list[str] = []
        with self.db.write() as conn:
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
                     number(train.get("epochs")), number(train.get("batch_size")), number(train.get("lr")),
                     train.get("optimizer"), request.spec.to_json(), dumps(settings), *values.values()))
            if keep:
                doomed += self._prunable(conn, keep, {r.owner for r in requests})
        # no run folder here: the server's own processes make it (the supervisor, a worker; archs.training.store.files)
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
        return [r["id"] for r in self.db.read(sql + " ORDER BY queue_seq", params)]

    def waiting(self, executor: str) -> list[str]:
        """Ids of ``executor``'s runs that have not started, first in line first (its own queue, where the
        backend keeps one, holds them in the order they were submitted)."""
        rows = self.db.read("SELECT id, status, relay FROM runs WHERE status = 'queued' AND executor = ? AND "
                             "claimed_by IS NULL ORDER BY COALESCE(queue_seq, seq)", (executor,))
        return [r["id"] for r in rows if derive_status({"status": "queued", "relay": loads(r["relay"], dict)})[
            "status"] == "queued"]

    def claim_next(self, executor: str, claimer: dict, kinds: tuple[str, ...] | None = None) -> str | None:
        """Take the first waiting run of ``executor`` (of one of ``kinds``, if given) out of the queue, in one
        transaction; None if none waits."""
        kind_filter = f" AND kind IN ({', '.join('?' * len(kinds))})" if kinds else ""
        with self.db.write() as conn:
            row = conn.execute("SELECT id FROM runs WHERE status = 'queued' AND executor = ? AND queue_seq IS NOT NULL "
                               "AND claimed_by IS NULL" + kind_filter + " ORDER BY queue_seq LIMIT 1",
                               (executor, *(kinds or ()))).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE runs SET claimed_by = ?, dispatched_at = ?, updated = ? WHERE id = ?",
                         (dumps(claimer), time.time(), time.time(), row["id"]))
            return row["id"]

    def claim(self, run_id: str, claimer: dict | None = None) -> bool:
        """Take this queued run out of the queue; False if it is no longer waiting."""
        with self.db.write() as conn:
            cursor = conn.execute("UPDATE runs SET claimed_by = ?, dispatched_at = ? WHERE id = ? "
                                  "AND status = 'queued' AND queue_seq IS NOT NULL AND claimed_by IS NULL",
                                  (dumps(claimer or process_identity()), time.time(), run_id))
            return cursor.rowcount == 1

    def requeue_stale_claims(self, executor: str, min_age: float = 60.0) -> list[str]:
        """Runs claimed more than ``min_age`` seconds ago by a process that has died, and whose worker never
        recorded "running", go back to their place in the queue (a worker still starting has had its time)."""
        rows = self.db.read("SELECT id, claimed_by FROM runs WHERE status = 'queued' AND executor = ? "
                             "AND claimed_by IS NOT NULL AND dispatched_at < ?", (executor, time.time() - min_age))
        stale = [r["id"] for r in rows if process_alive(loads(r["claimed_by"], dict)) is False]
        if stale:
            with self.db.write() as conn:
                conn.executemany("UPDATE runs SET claimed_by = NULL WHERE id = ? AND status = 'queued'",
                                 [(i,) for i in stale])
        return stale

    def claimed(self, executor: str) -> list[str]:
        return [r["id"] for r in self.db.read("SELECT id FROM runs WHERE status = 'queued' AND executor = ? AND "
                                               "claimed_by IS NOT NULL", (executor,))]

    def unqueue(self, run_id: str, message: str = "stopped while queued") -> bool:
        """A run still waiting in the store's queue leaves it as ``stopped``; False if it was taken (or has ended,
        or waits in a queue of its executor's own)."""
        now = time.time()
        with self.db.write() as conn:
            cursor = conn.execute("UPDATE runs SET status = 'stopped', finished_at = ?, updated = ?, message = ?, "
                                  "queue_seq = NULL WHERE id = ? AND status = 'queued' AND queue_seq IS NOT NULL "
                                  "AND claimed_by IS NULL", (now, now, message, run_id))
            return cursor.rowcount == 1

    # ----- reading
    def get(self, run_id: str) -> Run:
        if not isinstance(run_id, str) or not _ID.match(run_id):
            raise RunError(f"invalid run id {str(run_id)[:130]!r}")  # a link's text: shown shortened
        if not self.db.read("SELECT 1 FROM runs WHERE id = ?", (run_id,)):
            raise RunError(f"no run {run_id!r} in {self.root}")
        return Run(self, run_id)

    def runs(self) -> list[Run]:
        """Every run, newest first."""
        return [Run(self, r["id"]) for r in self.db.read("SELECT id FROM runs ORDER BY seq DESC")]

    def list_runs(self, group: str | None = None, kind: str | None = None, *, owner: str | None = None,
                  status: str | None = None, search: str | None = None, limit: int | None = None,
                  offset: int = 0, weights: bool = False) -> list[dict]:
        """A row per run (:data:`ROW_KEYS`), newest first, with ``queue_position`` (1 = next) for waiting runs; with
        ``weights``, also ``has_weights``: the store's record that the run saved its weights, for a list of runs to
        pick weights from (:meth:`Run.check_weights` looks at the file of the one run someone picks).

        One query; an active run's status is checked against the process responsible for it."""
        where, params = self._filters(group, kind, owner, status, search)
        sql = where + " ORDER BY seq DESC"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params += [int(limit), int(offset)]
        return self._rows(sql, params, weights)

    def count_runs(self, group: str | None = None, kind: str | None = None, *, owner: str | None = None,
                   status: str | None = None, search: str | None = None) -> int:
        where, params = self._filters(group, kind, owner, status, search)
        return self.db.read("SELECT COUNT(*) AS n FROM runs " + where, params)[0]["n"]

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

    def _rows(self, where: str, params: Iterable = (), weights: bool = False) -> list[dict]:
        rows = self.db.read(f"SELECT {_ROW_SELECT} FROM runs {where}", params)
        positions = None
        out = []
        for row in rows:
            item = dict(zip(ROW_KEYS, (row[c] for c in _ROW_COLUMNS)))
            item["queue_position"] = None
            if weights:
                item["has_weights"] = bool(row["has_weights"])  # recorded when the run ended (Run.write_status)
            if item["status"] in ACTIVE_STATUSES:
                derived = derive_status({"status": item["status"], "worker": loads(row["worker"], dict),
                                         "relay": loads(row["relay"], dict), "error": item["error"]},
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
        for row in self.db.read("SELECT id, executor FROM runs WHERE status = 'queued' AND queue_seq IS NOT NULL "
                                 "AND claimed_by IS NULL ORDER BY queue_seq"):
            counters[row["executor"]] = counters.get(row["executor"], 0) + 1
            positions[row["id"]] = counters[row["executor"]]
        return positions

    def active(self) -> list[str]:
        """Ids of running then queued runs (queued ones in FIFO order)."""
        rows = self.db.read("SELECT id, status, worker, relay, queue_seq FROM runs WHERE status IN ('queued', "
                             "'running') ORDER BY status = 'queued', COALESCE(queue_seq, seq), id")
        return [r["id"] for r in rows if derive_status({"status": r["status"], "worker": loads(r["worker"], dict),
                                                        "relay": loads(r["relay"], dict)},
                                                       in_queue=r["queue_seq"] is not None)["status"]
                in ACTIVE_STATUSES]

    def stop_requests(self, run_ids: Iterable[str]) -> list[str]:
        """Which of these runs someone has asked to stop."""
        ids = list(run_ids)
        if not ids:
            return []
        rows = self.db.read(f"SELECT id FROM runs WHERE stop_requested IS NOT NULL AND id IN "
                             f"({', '.join('?' * len(ids))})", ids)
        return [r["id"] for r in rows]

    def stop_states(self, run_ids: Iterable[str]) -> dict[str, dict]:
        """For each of these runs: ``started_at`` (when its worker recorded it running, None before) and ``stop``
        (why someone asked it to stop, None if no one has): what the supervisor's bounds look at, in one query."""
        ids = list(run_ids)
        if not ids:
            return {}
        rows = self.db.read(f"SELECT id, started_at, stop_requested, stop_reason FROM runs WHERE id IN "
                            f"({', '.join('?' * len(ids))})", ids)
        return {r["id"]: {"started_at": r["started_at"], "stop": None if r["stop_requested"] is None else
                          (r["stop_reason"] or "stopped")} for r in rows}

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
        with self.db.write() as conn:
            row = conn.execute(f"SELECT {_STATUS_SELECT}, queue_seq FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise RunError(f"no run {run_id!r} in {self.root}")
            status = derive_status(_status_dict(row), in_queue=row["queue_seq"] is not None)["status"]
            if status in ACTIVE_STATUSES:
                raise RunError(f"run {run_id} is {status}; stop it before deleting it")
            conn.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
            conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        self._remove_folders([run_id])

    def prune(self, keep: int) -> list[str]:
        """Delete finished runs while more than ``keep`` runs are stored (everyone's together); return their ids.

        The oldest go first, and first of all those of sessions that are gone: owners ``session:*`` none of whose
        runs was created, updated or viewed in the last :data:`GONE_SECONDS` (then, at a submit, the submitter's
        own). Never deleted: a queued or running
        run, a run an administrator pinned (:meth:`pin`), a run a page showed in the last :data:`VIEWED_SECONDS`
        (:meth:`mark_viewed`; every page that shows a run records it, through :func:`archs.sources.mark_viewed`
        or, on the Runs page, directly), a trial of a study that is still running.
        When every run is one of these, the store holds more than ``keep`` runs until some can go."""
        with self.db.write() as conn:
            doomed = self._prunable(conn, keep)
        self._remove_folders(doomed)
        return doomed

    def _prunable(self, conn: sqlite3.Connection, keep: int, submitters: Iterable[str] = ()) -> list[str]:
        """The runs :meth:`prune` deletes (deleted here, in the caller's transaction); after the gone sessions'
        runs, the ``submitters``' own (a flood of submits eats its own runs before anyone else's)."""
        total = conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        excess = total - keep
        if excess <= 0:
            return []
        now = time.time()
        submitters = sorted(set(submitters))
        mine = f"r.owner IN ({', '.join('?' * len(submitters))})" if submitters else "0 = 1"
        rows = conn.execute(
            "WITH seen AS (SELECT owner, MAX(MAX(created, COALESCE(updated, 0), COALESCE(viewed_at, 0))) AS last "
            "FROM runs GROUP BY owner) "
            "SELECT r.id FROM runs r JOIN seen ON seen.owner = r.owner "
            "WHERE r.status NOT IN ('queued', 'running') AND r.pinned = 0 AND COALESCE(r.viewed_at, 0) < ? "
            "AND NOT EXISTS (SELECT 1 FROM trials t JOIN studies s ON s.id = t.study_id "
            "                WHERE t.run_id = r.id AND s.status NOT IN ('completed', 'stopped', 'failed')) "
            f"ORDER BY (r.owner LIKE 'session:%' AND seen.last < ?) DESC, {mine} DESC, r.seq LIMIT ?",
            (now - VIEWED_SECONDS, now - GONE_SECONDS, *submitters, excess)).fetchall()
        doomed = [r["id"] for r in rows]
        conn.executemany("DELETE FROM metrics WHERE run_id = ?", [(i,) for i in doomed])
        conn.executemany("DELETE FROM runs WHERE id = ?", [(i,) for i in doomed])
        return doomed

    def pin(self, run_id: str, pinned: bool = True, *, admin: bool = False) -> None:
        """Pin a run (or unpin it): pruning never deletes a pinned run. Administrators only."""
        if not admin:
            raise RunError(f"only an administrator can {'pin' if pinned else 'unpin'} a run")
        self.get(run_id)
        with self.db.write() as conn:
            conn.execute("UPDATE runs SET pinned = ? WHERE id = ?", (1 if pinned else 0, run_id))

    def mark_viewed(self, run_ids: Iterable[str]) -> None:
        """Record that a page shows these runs now (pruning spares them for :data:`VIEWED_SECONDS`); a write only
        when the last record is more than a minute old, so a page redrawn every few seconds writes once a minute."""
        ids = [i for i in dict.fromkeys(run_ids) if isinstance(i, str)][:200]
        if not ids:
            return
        now = time.time()
        marks = ", ".join("?" * len(ids))
        stale = [r["id"] for r in self.db.read(f"SELECT id FROM runs WHERE id IN ({marks}) AND "
                                                "COALESCE(viewed_at, 0) < ?", (*ids, now - VIEW_MARK_SECONDS))]
        if stale:
            with self.db.write() as conn:
                conn.executemany("UPDATE runs SET viewed_at = ? WHERE id = ?", [(now, i) for i in stale])

    def _remove_folders(self, run_ids: Iterable[str]) -> None:
        for run_id in run_ids:
            if _ID.match(run_id):
                shutil.rmtree(self.root / run_id, ignore_errors=True)

    # ----- the supervisor's record, and what a page shows when something is wrong
    def set_meta(self, key: str, value: Any) -> None:
        with self.db.write() as conn:
            conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, dumps(value)))

    def meta(self, key: str, default=None):
        rows = self.db.read("SELECT value FROM meta WHERE key = ?", (key,))
        return loads(rows[0]["value"], object, default) if rows else default

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
_ROW_SELECT = ", ".join(_ROW_COLUMNS + ("worker", "relay", "queue_seq", "claimed_by", "has_weights"))
