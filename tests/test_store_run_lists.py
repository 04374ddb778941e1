"""The run pickers' list (Compare, Gradients, Build's Export tab) is one paged query (issue 18): whether a run has
weights is the store's record, made when the run ends, not a lookup and a file check per run every few seconds; the
file is looked at for the one run someone picks, so a weights file removed or replaced by a link is never used."""

from __future__ import annotations

import pytest
from run_fakes import use_real_store

import archs
from archs import sources
from archs.training import DataConfig, RunRequest, RunStore, TrainConfig
from archs.training.store.db import Database
from archs.training.store.records import Run

SPEC = archs.PRESETS["seed002-inception"]


def _runs(store: RunStore, n: int) -> list[Run]:
    return store.submit([RunRequest(SPEC, TrainConfig(), DataConfig(name="digits"), owner="session:x")
                         for _ in range(n)], executor="local", queue=False, status="running")


@pytest.fixture
def store(monkeypatch, tmp_path) -> RunStore:
    use_real_store(monkeypatch, tmp_path / "runs")
    return RunStore(tmp_path / "runs")


@pytest.fixture
def counted(monkeypatch) -> dict[str, int]:
    """How many queries the store reads, runs it opens one by one, and weights files it looks at."""
    calls = {"read": 0, "get": 0, "file": 0}

    def count(name, real):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(Database, "read", count("read", Database.read))
    monkeypatch.setattr(RunStore, "get", count("get", RunStore.get))
    monkeypatch.setattr(Run, "has_weights", count("file", Run.has_weights))
    return calls


def test_the_pickers_list_is_one_query_with_no_lookup_per_run(store, counted):
    runs = _runs(store, 30)
    for run in runs[::3]:
        run.save_weights_file(b"weights")  # as a worker saves them, before its final status
    for run in runs[:-2]:
        run.write_status(status="completed")  # the last two still running: no weights yet
    sources.list_runs()  # the store's setup, once per store object
    for name in counted:
        counted[name] = 0
    rows = sources.list_runs()
    assert len(rows) == 30
    assert counted == {"read": 1, "get": 0, "file": 0}  # before: 31 reads, 30 runs opened, 30 files looked at
    assert {r["id"] for r in rows if r["has_weights"]} == {run.id for run in runs[::3]}


def test_a_final_status_records_the_weights_its_run_saved(store):
    from archs.training.stored import save_weights

    with_weights, without = _runs(store, 2)
    save_weights(with_weights, {})  # the local worker's path: a file, then the final status
    assert not {r["id"]: r["has_weights"] for r in sources.list_runs()}[with_weights.id]  # not recorded yet
    with_weights.write_status(status="completed")
    without.write_status(status="stopped")
    assert {r["id"]: r["has_weights"] for r in sources.list_runs()} == {with_weights.id: True, without.id: False}


@pytest.mark.parametrize("tamper", ["removed", "linked"])
def test_a_picked_runs_file_is_looked_at_and_a_wrong_record_corrected(store, tmp_path, tamper):
    [run] = _runs(store, 1)
    run.save_weights_file(b"weights")
    run.write_status(status="completed")
    (run.path / "weights.pt").unlink()
    if tamper == "linked":  # a shell user of the server points the run's weights at its secrets
        secret = tmp_path / "secrets.toml"
        secret.write_text("password = 'x'")
        (run.path / "weights.pt").symlink_to(secret)
    assert sources.list_runs()[0]["has_weights"]  # the record, until someone picks the run
    assert not sources.run_has_weights(run.id)
    with pytest.raises(sources.SourceError, match="has no saved weights"):
        sources.run_weights(run.id)
    assert not sources.list_runs()[0]["has_weights"]  # no longer offered


def test_an_older_store_learns_which_runs_have_weights_from_their_files(store, tmp_path):
    """A store of schema 3 (no record of weights) opened by this version: each run's folder is looked at once."""
    kept, linked, none = _runs(store, 3)
    for run in (kept, linked, none):
        run.write_status(status="completed")
    kept.save_weights_file(b"weights")
    linked.save_weights_file(b"weights")
    (linked.path / "weights.pt").unlink()
    (linked.path / "weights.pt").symlink_to(tmp_path / "elsewhere.pt")
    with store.db.write() as conn:
        conn.execute("ALTER TABLE runs DROP COLUMN has_weights")
        conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema'")
    store.db.close()
    rows = {r["id"]: r["has_weights"] for r in RunStore(store.root).list_runs(weights=True)}
    assert rows == {kept.id: True, linked.id: False, none.id: False}


def test_the_export_tab_checks_the_picked_runs_file(store):
    """The tab offers the runs the store recorded with weights; the one picked is looked at on disk, so one whose
    file was removed since is refused there and then no longer offered."""
    from app_helpers import open_app, run, texts
    from run_fakes import real_run, trained_like

    run_id = real_run(store.root, SPEC, trained_like(SPEC), "digits run")
    at = open_app(preset="cifar-resnet20")
    at.session_state["build_tab"] = "Export"
    run(run(at).selectbox(key="export_source").select(run_id))
    assert at.button(key="export_prepare")
    (store.root / run_id / "weights.pt").unlink()
    run(at)
    assert "has no saved weights any more" in texts(at.error)
    assert not [b for b in at.button if b.key == "export_prepare"]
    assert not sources.list_runs()[0]["has_weights"]
