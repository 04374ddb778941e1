"""A run's records in the formats other tools read: TensorBoard event files and CSV.

Every run writes TensorBoard event files into its own folder as its records arrive, so
``tensorboard --logdir runs`` shows the whole run history, one TensorBoard run per run folder:

- ``train/loss``, ``train/accuracy``, ``train/lr``, ``train/images_per_second``: each ``step`` record;
- ``test/loss``, ``test/accuracy``: each evaluation (``epoch`` and ``eval`` records);
- ``epoch/train_loss``, ``epoch/train_accuracy``: each ``epoch`` record (the epoch's running means);
- ``grad_norm/log10``: each ``grad`` record, a histogram of log10 of every layer's weight-gradient norm;
- ``grad_norm/NNN <layer>``: each ``grad`` record, one scalar per layer, NNN its depth (input first).

The run store (``metrics.jsonl``) stays the record the dashboard reads; the event files are a copy.
"""

from __future__ import annotations

import csv
import io
import math

__all__ = ["CSV_COLUMNS", "EventLog", "metrics_csv"]

CSV_COLUMNS = ("kind", "step", "epoch", "loss", "train_accuracy", "test_loss", "test_accuracy", "lr",
               "images_per_second", "elapsed")


class EventLog:
    """TensorBoard event files in a folder, written from metric records (opened on the first record)."""

    def __init__(self, folder):
        self.folder = folder
        self._writer = None
        self.failed = False

    def _open(self):
        if self._writer is None and not self.failed:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(log_dir=str(self.folder), flush_secs=2)
            except Exception:  # noqa: BLE001 - no tensorboard package, a read-only folder: the store still records
                self.failed = True
        return self._writer

    def write(self, records: list[dict]) -> None:
        if not records or self._open() is None:
            return
        for record in records:
            self._write(record)

    def _write(self, record: dict) -> None:
        writer, kind, step = self._writer, record.get("kind"), record.get("step")
        if step is None:
            return

        def scalar(tag: str, key: str) -> None:
            value = record.get(key)
            if isinstance(value, (int, float)):
                writer.add_scalar(tag, value, step)

        if kind == "step":
            for tag, key in (("train/loss", "loss"), ("train/accuracy", "train_accuracy"), ("train/lr", "lr"),
                             ("train/images_per_second", "images_per_second")):
                scalar(tag, key)
        elif kind in ("epoch", "eval"):
            scalar("test/loss", "test_loss")
            scalar("test/accuracy", "test_accuracy")
            if kind == "epoch":
                scalar("epoch/train_loss", "loss")
                scalar("epoch/train_accuracy", "train_accuracy")
        elif kind == "grad":
            import numpy as np

            layers = record.get("layers") or []
            norms = [layer["grad_norm"] for layer in layers]
            logs = [math.log10(v) for v in norms if isinstance(v, (int, float)) and v > 0 and math.isfinite(v)]
            if logs:
                writer.add_histogram("grad_norm/log10", np.asarray(logs), step)
            for layer in layers:
                writer.add_scalar(f"grad_norm/{layer['depth']:03d} {layer['name']}", layer["grad_norm"], step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def metrics_csv(records: list[dict]) -> str:
    """The step, epoch and evaluation records of a run as CSV text, one row each, in the order they came."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for record in records:
        if record.get("kind") in ("step", "epoch", "eval"):
            writer.writerow({k: record.get(k, "") for k in CSV_COLUMNS})
    return out.getvalue()
