"""Measurements leave the web process (issue 18): gradients and activation health at initialisation, a stored run's
activation health, measured cost and export run as quick jobs in a worker of the local executor, bounded in
memory (by the OS) and time; the server (here, the AppTest's process, where every measuring function raises)
keeps only the small result."""

import os
import time

import pytest
from app_helpers import metric, open_app, run, texts
from run_fakes import real_run, trained_like, use_real_store

from archs import PRESETS
from archs.training import RunRequest, RunStore, TrainConfig
from archs.training.executors import get_executor
from ui import identity, jobs

MEASURING = ("archs.measure_cost", "archs.cost.measure_cost", "archs.gradient_profile", "archs.inspect.gradient_profile",
             "archs.activation_health", "archs.health.activation_health", "archs.export.export_bytes",
             "archs.export.formats.export_bytes")


@pytest.fixture(autouse=True)
def runs_dir(monkeypatch, tmp_path):
    use_real_store(monkeypatch, tmp_path / "runs")
    monkeypatch.setattr(jobs, "INLINE_SECONDS", 120.0)  # AppTest runs no fragment: each rerun waits for its job

    def measured_here(*args, **kwargs):
        raise AssertionError("a measurement ran in the web server's process")

    for target in MEASURING:
        monkeypatch.setattr(target, measured_here)
    yield tmp_path / "runs"
    jobs.forget()


def jobs_in(runs_dir) -> list[tuple[str, str]]:
    return sorted((r["kind"], r["status"]) for r in RunStore(runs_dir).list_runs())


def build_tab(tab: str, **query):
    at = open_app(**query)
    at.session_state["build_tab"] = tab
    return run(at)


def test_measured_cost_runs_as_a_job_and_the_server_keeps_the_report(runs_dir):
    at = build_tab("Measured cost", preset="seed002-inception", batch="4")
    assert "takes about" in texts(at.info) and not jobs_in(runs_dir)          # it asks first
    run(at.selectbox(key="cost_repeats").select(3))
    run(at.button(key="cost_measure").click())
    assert jobs_in(runs_dir) == [("cost", "completed")]
    assert metric(at, "Inference").endswith("ms") and metric(at, "Peak memory").endswith("iB")
    assert "Measured: 3 repeats on cpu, in a worker process." in texts(at.caption)
    table = at.dataframe[0].value
    assert list(table["part"]) == ["stem", "stage1", "stage2", "stage3", "head"] and (table["forward ms"] > 0).all()
    assert {c.key for c in at.get("plotly_chart")} == {"cost_shares", "cost_memory"}
    request = RunRequest.from_run(RunStore(runs_dir).get(RunStore(runs_dir).list_runs()[0]["id"]))
    assert request.max_memory_bytes and request.max_seconds                   # bounded: a cap and a time limit
    # another session, the same network, batch and device: shown at once, no second job
    again = build_tab("Measured cost", preset="seed002-inception", batch="4")
    again.session_state["cost_repeats"] = 3
    run(again)
    assert metric(again, "Training step") and jobs_in(runs_dir) == [("cost", "completed")]


def test_resnet50_at_batch_256_is_refused_before_any_job_starts(runs_dir):
    at = build_tab("Measured cost", preset="resnet50", batch="256")
    if at.button(key="cost_measure"):
        run(at.button(key="cost_measure").click())
    assert "ARCHS_MAX_MEMORY_MB" in texts(at.error) and not jobs_in(runs_dir)


def test_the_gradients_page_measures_both_networks_in_one_job(runs_dir):
    at = open_app(preset="cifar-resnet20")
    at.session_state["grad_batch"] = 4
    run(at.switch_page("pages/gradients.py"))
    assert {"grad_layers", "grad_blocks", "health_chart"} <= {c.key for c in at.get("plotly_chart")}
    assert "the first conv's gradient is" in texts(at.markdown) and "ReLU channels dead" in texts(at.markdown)
    table = at.dataframe[0].value
    assert table["block"].iloc[0] == "stem.0" and len(table) == 10
    assert table["dead · plain twin"].iloc[1].endswith("/32")        # stage1.block1: two ReLUs of 16 channels
    assert jobs_in(runs_dir) == [("inspect", "completed")]


def test_a_links_hrun_asks_before_measuring_a_stored_run(runs_dir):
    spec = PRESETS["cifar-resnet20"]
    run_id = real_run(runs_dir, spec, trained_like(spec), "trained net")
    at = open_app(preset="cifar-resnet20", gbatch="4", hrun=run_id)
    run(at.switch_page("pages/gradients.py"))
    assert at.button(key="health_measure") and "Measure the activations of" in texts(at.info)
    assert ("health", "completed") not in jobs_in(runs_dir)                    # opening the link measured nothing
    run(at.button(key="health_measure").click())
    chart = next(c for c in at.get("plotly_chart") if c.key == "health_chart")
    assert f"trained net ({run_id[-6:]}), trained" in chart.proto.spec
    assert ("health", "completed") in jobs_in(runs_dir)


def test_the_stored_run_the_gradients_page_shows_is_spared_by_pruning(runs_dir):
    spec = PRESETS["cifar-resnet20"]
    shown = real_run(runs_dir, spec, trained_like(spec), "shown net")
    other = real_run(runs_dir, spec, trained_like(spec), "other net")
    at = open_app(preset="cifar-resnet20", gbatch="4", hrun=shown)
    run(at.switch_page("pages/gradients.py"))
    assert at.button(key="health_measure")                                     # on the page, not yet measured
    pruned = RunStore(runs_dir).prune(keep=0)                                  # ARCHS_MAX_RUNS_KEPT at its lowest
    assert shown not in pruned and other in pruned
    assert RunStore(runs_dir).get(shown).has_weights()


def waiting_for_a_visitor(runs_dir, name: str) -> str:
    """A measurement queued in the name of visitors who own nothing (nothing runs it: no job has started a worker)."""
    run_ = RunStore(runs_dir).create(RunRequest(PRESETS["cifar-resnet20"], TrainConfig(batch_size=2), kind="inspect",
                                                owner=jobs.ANONYMOUS, owner_name=name), executor="local", queue=True)
    assert RunStore(runs_dir).get(run_.id).status()["status"] == "queued"
    return run_.id


def gradients_as_a_visitor(**query):
    at = open_app(preset="cifar-resnet20", gbatch="4", **query)
    return run(at.switch_page("pages/gradients.py"))


def test_one_visitor_who_is_not_logged_in_waits_in_one_place_and_leaves_the_others_theirs(runs_dir, monkeypatch):
    monkeypatch.setenv("ARCHS_AUTH", "required")
    key = "one-visitors-browser-key-01"
    monkeypatch.setattr(identity, "_cookie_token", lambda: key)        # every tab of their browser sends it
    first = waiting_for_a_visitor(runs_dir, identity.viewer_of_token(key))  # their first tab's, still waiting
    tab = gradients_as_a_visitor()
    assert "yours (in another tab?) is still waiting" in texts(tab.warning)
    assert not tab.get("plotly_chart") and len(RunStore(runs_dir).list_runs()) == 1     # nothing more queued
    monkeypatch.setattr(identity, "_cookie_token", lambda: None)       # another visitor: measured as always
    other = gradients_as_a_visitor()
    assert {"grad_layers", "health_chart"} <= {c.key for c in other.get("plotly_chart")}
    theirs = [r for r in RunStore(runs_dir).list_runs() if r["id"] != first]
    assert [(r["owner"], r["owner_name"] not in (None, identity.viewer_of_token(key)), r["status"]) for r in theirs] == [
        (jobs.ANONYMOUS, True, "completed")]


def test_visitors_who_are_not_logged_in_share_a_capped_queue_and_are_told_so(runs_dir, monkeypatch):
    monkeypatch.setenv("ARCHS_AUTH", "required")
    monkeypatch.setenv("ARCHS_MAX_QUEUED_PER_OWNER", "2")
    for n in range(2):                                                  # two other visitors' measurements wait
        waiting_for_a_visitor(runs_dir, identity.viewer_of_token(f"another-visitors-key-{n:04}"))
    at = gradients_as_a_visitor()
    assert "visitors who are not logged in share 2 places in this server's queue" in texts(at.error)
    assert "you already have" not in texts(at.error) and not at.get("plotly_chart")
    assert len(RunStore(runs_dir).list_runs()) == 2


def test_export_runs_as_a_job_and_offers_its_files(runs_dir):
    at = build_tab("Export", preset="cifar-resnet20")
    run(at.button(key="export_prepare").click())
    downloads = at.get("download_button")[1:]                                  # after Build's own JSON download
    assert [b.label.split(" · ")[0] for b in downloads] == ["cifar_resnet20.py", "cifar_resnet20.pt",
                                                             "cifar_resnet20.json"]
    assert jobs_in(runs_dir) == [("export", "completed")]


def test_export_of_a_stored_runs_trained_weights_reads_them_in_the_worker(runs_dir):
    spec = PRESETS["seed002-inception"]
    run_id = real_run(runs_dir, spec, trained_like(spec), "digits run")
    at = build_tab("Export", preset="cifar-resnet20")
    run(at.selectbox(key="export_source").select(run_id))
    run(at.selectbox(key="export_format").select("pt"))
    run(at.button(key="export_prepare").click())
    assert [b.label.split(" · ")[0] for b in at.get("download_button")][1:] == ["seed002_inception.pt",
                                                                                "seed002_inception.json"]
    assert ("export", "completed") in jobs_in(runs_dir)


def test_a_running_measurement_shows_progress_and_cancel_stops_it(runs_dir, monkeypatch):
    at = build_tab("Measured cost", preset="seed002-inception", batch="64")
    monkeypatch.setattr(jobs, "INLINE_SECONDS", 0.0)  # the page answers at once, the job still running
    run(at.selectbox(key="cost_repeats").select(10))
    run(at.button(key="cost_measure").click())
    assert at.button(key="cost_cancel") and at.get("progress")
    run(at.button(key="cost_cancel").click())
    store = RunStore(runs_dir)
    job = store.list_runs()[0]["id"]
    assert get_executor("local", runs_dir).wait(job, timeout=90)
    assert store.get(job).status()["status"] == "stopped"
    run(at)
    assert at.button(key="cost_measure") and not at.get("plotly_chart")        # asked again, nothing kept


def _rss() -> int:
    with open("/proc/self/statm", "rb") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_a_quick_job_over_its_memory_cap_fails_with_the_reason_and_the_server_lives_on(runs_dir):
    executor = get_executor("local", runs_dir)
    before = _rss()
    hog = executor.submit(RunRequest(PRESETS["cifar-resnet20"], TrainConfig(batch_size=4096, device="cpu"),
                                     kind="cost", repeats=1, owner="session:someone", max_memory_bytes=256 << 20))
    assert executor.wait(hog, timeout=120)
    # what the supervisor records (a reader sees a dead worker's run as failed at once, and why a moment later);
    # the allocation fails as a MemoryError, a SystemError from native code, or the worker's death: each says the cap
    deadline = time.monotonic() + 60
    while executor.store.get(hog).stored_status()["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, "the supervisor did not record the hog's end"
        time.sleep(0.1)
    status = executor.status(hog)
    assert status["status"] == "failed" and "memory" in status["error"] and "cap" in status["error"], status
    small = executor.submit(RunRequest(PRESETS["cifar-resnet20"], TrainConfig(batch_size=2), kind="inspect",
                                       owner="session:someone", max_memory_bytes=2 << 30))
    assert executor.wait(small, timeout=120) and executor.status(small)["status"] == "completed"
    assert _rss() - before < 200 << 20                                        # nothing of it grew this process
