"""Load: 8 sessions at once, each starting 2 short runs, on a server allowing 2 concurrent runs. All 16
complete, leave the queue in the order they entered it (FIFO; two workers started together may begin
training in either order), never more than 2 train at once, and each session shows its own run and keeps
its own network (no cross-talk between sessions' drafts)."""

from __future__ import annotations

import time
from dataclasses import replace

from app_helpers import open_app, run, texts
from test_app_train import stop_all, tiny_spec

import archs
from archs.training import RunStore

SESSIONS = 8


def test_eight_sessions_two_runs_each_limit_two(tmp_path, monkeypatch):
    runs_dir = tmp_path / "runs"
    monkeypatch.setenv("ARCHS_RUNS_DIR", str(runs_dir))
    monkeypatch.setenv("ARCHS_MAX_CONCURRENT_RUNS", "2")
    sessions = []
    try:
        for n in range(SESSIONS):
            spec = replace(tiny_spec(), name=f"net-{n}", stages=tiny_spec().stages[: 1 + n % 2])
            at = open_app(spec=archs.encode_spec(spec), session=f"load-test-session-{n:04d}")
            run(at.switch_page("pages/train.py"))
            for name, value in (("max_steps", 4), ("batch_size", 16), ("log_every", 1), ("grad_every", 0)):
                at.number_input(key=f"train.{name}").set_value(value)
            sessions.append((at, spec))
        for _round in range(2):  # every session presses Start, then every session presses it again
            for at, _ in sessions:
                run(at.button(key="train_start").click())
                assert not at.error, texts(at.error)
        store = RunStore(runs_dir)
        assert len(store.runs()) == 2 * SESSIONS
        deadline = time.monotonic() + 600
        while any(r["status"] in ("queued", "running") for r in store.list_runs()):
            assert time.monotonic() < deadline, "the 16 runs did not finish"
            time.sleep(0.5)
        rows = store.list_runs()
        assert [r["status"] for r in rows] == ["completed"] * 2 * SESSIONS, [r["error"] for r in rows]
        by_queue = sorted(rows, key=lambda r: r["queued_at"])
        by_dispatch = sorted(rows, key=lambda r: r["dispatched_at"])
        assert [r["id"] for r in by_dispatch] == [r["id"] for r in by_queue]  # first in, first out of the queue
        starts = sorted(r["started_at"] for r in rows)
        ends = sorted(r["finished_at"] for r in rows)
        assert all(start >= ends[i - 2] for i, start in enumerate(starts) if i >= 2)  # never more than 2 at once
        for at, spec in sessions:
            run(at)
            assert at.session_state["spec"] == spec  # its own draft, untouched by the others
            mine = [r for r in rows if r["owner"] == at.session_state["_identity"].owner]
            assert [r["network"] for r in mine] == [spec.name, spec.name]
            assert [m.value for m in at.metric if m.label == "Status"] == ["completed"]
            assert f"{spec.name} on digits" in texts(at.subheader)
    finally:
        stop_all(runs_dir)
