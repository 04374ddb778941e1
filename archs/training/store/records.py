"""One stored run (:class:`Run`): its status, settings, spec (as JSON), metric records and weights file, and the
writes a run's recorder makes into the store.

What needs torch (the run's ``NetSpec``, its weights as tensors, its model, its TensorBoard event files, the CSV of
its records) is in :mod:`archs.training.stored`, above the store, with the recorder a worker writes through
(:class:`archs.training.stored.RunRecorder`, the *recorder* of :func:`archs.training.request.execute_request`).

A run's status is what ``status.json`` held in the file-based store: a dict, kept as columns (the ones a table
shows, so that listing reads no JSON), JSON columns (worker, relay, progress, result) and ``extra`` (the rest).
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from archs.training.config import FINAL_STATUSES
from archs.training.store.db import RunError, Store, dumps, loads, number
from archs.training.store.files import UnsafeFile, read_regular, regular_size, replace_file
from archs.training.store.processes import derive_status

__all__ = ["ROW_KEYS", "Run", "WEIGHTS_NAME", "grad_heatmap"]

ROW_KEYS = ("id", "label", "group", "kind", "owner", "owner_name", "executor", "network", "data", "status",
            "created", "queued_at", "dispatched_at", "started_at", "finished_at", "step", "total_steps", "epochs",
            "batch_size", "lr", "optimizer", "device", "train_loss", "test_accuracy", "images_per_second", "error")
# status fields kept in columns of their own; any other field of write_status goes into ``extra``
_STATUS_COLUMNS = ("status", "network", "executor", "queued_at", "dispatched_at", "started_at", "finished_at",
                   "updated", "error", "message", "device")
_JSON_STATUS_COLUMNS = ("worker", "relay", "progress", "result")
WEIGHTS_NAME = "weights.pt"
# a run's records in the store, whatever its worker sends (the loop sends at most ~2,700 plus one per epoch)
MAX_RECORDS_PER_RUN = 5000
MAX_RECORD_BYTES_PER_RUN = 64 << 20
CHART_POINTS = 500  # records of one kind a chart reads (a line of 500 points looks as one of 50,000)
CHART_GRAD_POINTS = 100  # gradient records a heatmap reads (columns)

class Run:
    """A handle on one stored run. Every read goes to the database, so it is always current.

    Its writes (``write_status``, ``append_metric(s)``, ``write_spec``, ``write_error``, ``save_weights_file``) are
    what a run's recorder (:class:`archs.training.stored.RunRecorder`) stores.
    """

    def __init__(self, store: Store, run_id: str):
        self.store, self.id = store, run_id
        self.path = store.root / run_id
        self._recorded: list[int] | None = None  # [records, bytes] stored, once this handle has appended
        self.dropped = 0  # records this handle did not store: past the run's cap

    def __repr__(self) -> str:
        return f"Run({self.id!r})"

    def _row(self, columns: str = "*") -> sqlite3.Row:
        rows = self.store.db.read(f"SELECT {columns} FROM runs WHERE id = ?", (self.id,))
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
        return {**loads(row["settings"], dict, {}), "created": row["created"]}

    @property
    def owner(self) -> str:
        return self._row("owner")["owner"]

    def pinned(self) -> bool:
        """Whether an administrator pinned the run (pruning never deletes it)."""
        return bool(self._row("pinned")["pinned"])

    def spec_json(self) -> str | None:
        """The run's ``NetSpec`` (as adapted to its data) as JSON; :func:`archs.training.stored.spec_of` reads it."""
        text = self._row("spec")["spec"]
        return text or None

    def metrics(self, kind: str | None = None) -> list[dict]:
        """Every record of the run (of one kind), oldest first: for exports. A page reads :meth:`chart_metrics`."""
        sql, params = "SELECT record FROM metrics WHERE run_id = ?", [self.id]
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        rows = self.store.db.read(sql + " ORDER BY id", params)
        return [record for record in (loads(r["record"]) for r in rows) if record is not None]

    def chart_metrics(self, kinds: tuple[str, ...] = ("start", "step", "epoch", "eval", "grad"),
                      points: int = CHART_POINTS, grad_points: int = CHART_GRAD_POINTS) -> list[dict]:
        """The records a chart draws, oldest first: of each kind at most ``points`` (``grad_points`` of gradient
        records, the big ones), picked in SQL counting back from the newest (which is always kept) at an even
        stride, so a page reads a few hundred records however long the run."""
        if not kinds:
            return []
        # the picking reads only the index on (run_id, kind, id); only the picked rows' records are read
        rows = self.store.db.read(
            "WITH m AS (SELECT id, ROW_NUMBER() OVER (PARTITION BY kind ORDER BY id DESC) - 1 AS back, "
            "COUNT(*) OVER (PARTITION BY kind) AS n, CASE kind WHEN 'grad' THEN ? ELSE ? END AS most "
            f"FROM metrics INDEXED BY metrics_by_kind WHERE run_id = ? AND kind IN ({', '.join('?' * len(kinds))})) "
            "SELECT record FROM metrics WHERE id IN (SELECT id FROM m WHERE back % MAX(1, (n + most - 1) / most) = 0) "
            "ORDER BY id",
            (max(1, int(grad_points)), max(1, int(points)), self.id, *kinds))
        return [record for record in (loads(r["record"]) for r in rows) if record is not None]

    def traceback(self) -> str | None:
        return self._row("traceback")["traceback"]

    def has_weights(self) -> bool:
        """Whether the run's folder holds its weights: a regular file of its own (a link planted there is not)."""
        return regular_size(self.path, WEIGHTS_NAME) is not None

    def check_weights(self) -> bool:
        """:meth:`has_weights`, looked up in the folder, and the store's record of it (``has_weights`` of the run's
        row, which lists of runs read instead of a file per run) set to what was found: a run whose weights file was
        removed, or replaced by a link, is then no longer offered. For the one run someone picks."""
        found = self.has_weights()
        if bool(self._row("has_weights")["has_weights"]) != found:
            with self.store.db.write() as conn:
                conn.execute("UPDATE runs SET has_weights = ? WHERE id = ?", (int(found), self.id))
        return found

    def weights_bytes(self) -> bytes:
        """The saved weights as ``torch.save`` wrote them (the Runs page's download, and what
        :func:`archs.training.stored.weights_of` loads), read without following a link: RunError when there are
        none, or a link or anything but a regular file stands in their place."""
        try:
            return read_regular(self.path, WEIGHTS_NAME)
        except FileNotFoundError:
            raise RunError(f"run {self.id} has no saved weights") from None
        except UnsafeFile as error:
            raise RunError(f"run {self.id}'s weights cannot be read safely: {error}") from None

    def stop_request(self) -> str | None:
        """Why someone asked the run to stop (``"stopped"`` if they gave no reason), or None if no one has."""
        row = self._row("stop_requested, stop_reason")
        return None if row["stop_requested"] is None else (row["stop_reason"] or "stopped")

    def stop_requested(self) -> bool:
        return self.stop_request() is not None

    def row(self) -> dict:
        """One row for a run table (:data:`ROW_KEYS` and ``queue_position``): plain values only."""
        rows = self.store._rows("WHERE id = ?", (self.id,))
        if not rows:
            raise RunError(f"no run {self.id!r} in {self.store.root}")
        return rows[0]

    # ----- writing (by the one process responsible for the run at the time)
    def write_status(self, **fields: Any) -> dict:
        """Merge ``fields`` into the run's status, in one transaction; return the whole status. A final status also
        records whether the run's weights are saved (they are written before it), for the lists of runs with weights
        to read in their one query."""
        final = fields.get("status") in FINAL_STATUSES
        weights = self.has_weights() if final else None  # the file looked at by the run's own process, once
        with self.store.db.write() as conn:
            row = conn.execute(f"SELECT {_STATUS_SELECT} FROM runs WHERE id = ?", (self.id,)).fetchone()
            if row is None:
                raise RunError(f"no run {self.id!r} in {self.store.root}")
            data = _status_dict(row)
            data.update(fields, updated=time.time())
            conn.execute(f"UPDATE runs SET {', '.join(c + ' = ?' for c in _WRITE_COLUMNS)} WHERE id = ?",
                         (*_status_columns(data), self.id))
            if fields.get("status") not in (None, "queued"):
                conn.execute("UPDATE runs SET queue_seq = NULL, claimed_by = NULL WHERE id = ?", (self.id,))
            if final:
                conn.execute("UPDATE runs SET has_weights = ? WHERE id = ?", (int(weights), self.id))
        return data

    def append_metric(self, record: dict) -> list[dict]:
        return self.append_metrics([record])

    def append_metrics(self, records: list[dict]) -> list[dict]:
        """Records appended to the run's metrics; returns those kept (a recorder copies them to the run's
        TensorBoard event files). A run keeps at most :data:`MAX_RECORDS_PER_RUN` records and
        :data:`MAX_RECORD_BYTES_PER_RUN` bytes of them (the training loop records far fewer:
        ``archs.training.config.MAX_STEP_RECORDS``); records past either are dropped."""
        if not records:
            return []
        rows = [(self.id, str(r.get("kind")), dumps(r)) for r in records]
        with self.store.db.write() as conn:
            if self._recorded is None:  # counted once per handle (one worker records a run), then kept here
                count, size = conn.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(record)), 0) FROM metrics "
                                           "WHERE run_id = ?", (self.id,)).fetchone()
                self._recorded = [count, size]
            kept, kept_records = [], []
            for row, record in zip(rows, records):
                if self._recorded[0] >= MAX_RECORDS_PER_RUN or self._recorded[1] + len(row[2]) > \
                        MAX_RECORD_BYTES_PER_RUN:
                    self.dropped += 1
                    continue
                self._recorded[0] += 1
                self._recorded[1] += len(row[2])
                kept.append(row)
                kept_records.append(record)
            conn.executemany("INSERT INTO metrics (run_id, kind, record) VALUES (?, ?, ?)", kept)
        return kept_records

    def write_spec(self, spec) -> None:
        with self.store.db.write() as conn:
            conn.execute("UPDATE runs SET spec = ?, network = ? WHERE id = ?", (spec.to_json(), spec.name, self.id))

    def write_error(self, text: str) -> None:
        with self.store.db.write() as conn:
            conn.execute("UPDATE runs SET traceback = ? WHERE id = ?", (str(text), self.id))

    def save_weights_file(self, data: bytes) -> None:
        """Weights already serialised by ``torch.save`` (sent back by a remote worker), written to a fresh temporary
        file and renamed to ``weights.pt`` (see :mod:`.files`); :func:`archs.training.stored.save_weights` writes
        a state dict."""
        replace_file(self.path, WEIGHTS_NAME, lambda handle: handle.write(data))
        with self.store.db.write() as conn:
            conn.execute("UPDATE runs SET has_weights = 1 WHERE id = ?", (self.id,))

    def request_stop(self, reason: str | None = None) -> None:
        with self.store.db.write() as conn:
            conn.execute("UPDATE runs SET stop_requested = COALESCE(stop_requested, ?), "
                         "stop_reason = COALESCE(stop_reason, ?) WHERE id = ?", (time.time(), reason, self.id))


_STATUS_SELECT = ", ".join(_STATUS_COLUMNS + _JSON_STATUS_COLUMNS + ("extra",))
_WRITE_COLUMNS = _STATUS_COLUMNS + _JSON_STATUS_COLUMNS + ("extra", "step", "total_steps", "train_loss",
                                                           "test_accuracy", "images_per_second")


def _status_dict(row: sqlite3.Row) -> dict:
    """The status of a run as one dict (what status.json held): columns, JSON columns and ``extra``."""
    data = dict(loads(row["extra"], dict, {}))
    for column in _STATUS_COLUMNS:
        if row[column] is not None:
            data[column] = row[column]
    for column in _JSON_STATUS_COLUMNS:
        value = loads(row[column], object, None)
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
        number(progress.get("step", result.get("steps"))),
        number(progress.get("total_steps")),
        number(result.get("train_loss", progress.get("loss"))),
        number(result.get("test_accuracy")),
        number(result.get("images_per_second", progress.get("images_per_second"))),
    )
    plain = []
    for column in _STATUS_COLUMNS:
        value = data.get(column)
        if column == "device":
            value = result.get("device") if isinstance(result.get("device"), str) else device
        elif column in ("status", "network", "executor", "error", "message"):
            value = None if value is None else str(value)
        else:
            value = number(value)
        plain.append(value)
    return (*plain, *(None if data.get(c) is None else dumps(data[c]) for c in _JSON_STATUS_COLUMNS),
            dumps(extra), *figures)


# ---------------------------------------------------------------------------------------------
# the runs folder


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
