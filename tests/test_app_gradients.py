"""The Gradients page, driven through AppTest on small CIFAR nets (no 110-layer measurements here)."""

import time

import pytest
from app_helpers import open_app, run, texts
from run_fakes import use_real_store

from archs.training import RunStore
from ui import jobs


@pytest.fixture(autouse=True)
def measured_in_workers(monkeypatch, tmp_path):
    """The page's measurements are quick jobs in workers (tests/test_measure_jobs.py): a real run store, and
    each rerun waits for its job (AppTest runs no fragment)."""
    use_real_store(monkeypatch, tmp_path / "runs")
    monkeypatch.setattr(jobs, "INLINE_SECONDS", 120.0)


def gradients_page(**query):
    at = open_app(**query)
    at.session_state["grad_batch"] = 4                # small batches keep these tests quick
    return run(at.switch_page("pages/gradients.py"))


def test_layer_and_block_views_with_the_plain_twin_overlaid():
    at = gradients_page(preset="cifar-resnet20")
    layers, blocks, health = at.get("plotly_chart")[:3]
    assert len(at.get("plotly_chart")) == 3          # the sweep has not been run
    notes = texts(at.markdown)
    assert "cifar-resnet20 (with skips)" in notes and "plain twin" in notes
    assert "the first conv's gradient is" in notes
    assert "with BatchNorm, batch 4, seed 0, input 32×32" in texts(at.caption)


def test_gradients_page_controls():
    at = gradients_page(preset="seed004-resnet")
    run(at.toggle(key="grad_norm").set_value(False))
    assert "without normalisation" in texts(at.caption)
    run(at.number_input(key="grad_seed").set_value(3))
    assert "seed 3" in texts(at.caption)
    run(at.select_slider(key="grad_size").set_value(16))
    assert "input 16×16" in texts(at.caption)


def test_a_net_without_skips_has_no_twin_to_overlay():
    at = gradients_page(preset="cifar-plain20")
    assert "no residual skips" in texts(at.caption)


def test_depth_sweep_runs_through_the_executor_with_progress_and_numbers(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHS_RUNS_DIR", str(tmp_path / "runs"))
    at = gradients_page()
    run(at.select_slider(key="sweep_range").set_range(8, 14))
    assert "Depths 8, 14" in texts(at.caption)
    run(at.button(key="sweep_run").click())
    assert at.get("progress")[0].proto.text.startswith("Measured ")  # queued: the page does not wait
    deadline = time.monotonic() + 120
    while at.get("progress")[0].proto.text != "Done: 4 networks measured." and time.monotonic() < deadline:
        time.sleep(0.5)
        run(at)
    bars = at.get("progress")
    assert len(bars) == 1 and bars[0].proto.value == 100 and bars[0].proto.text == "Done: 4 networks measured."
    assert len(at.get("plotly_chart")) == 4
    notes = texts(at.markdown)
    assert "depth 8: residual" in notes and "depth 14: residual" in notes
    assert len(RunStore(tmp_path / "runs").list_runs(kind="gradients")) == 4


def test_cancel_stops_the_depth_sweeps_remaining_measurements_and_says_so(tmp_path):
    at = gradients_page()
    run(at.select_slider(key="sweep_range").set_range(8, 110))        # 8 networks up to 110 layers: still going
    run(at.button(key="sweep_run").click())
    run(at.button(key="sweep_cancel").click())                        # beside the progress, as every measurement's
    store = RunStore(tmp_path / "runs")
    [study] = store.studies.list()
    deadline = time.monotonic() + 120
    while store.studies.get(study["id"])["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert store.studies.get(study["id"])["status"] == "stopped"
    trials = store.studies.trials(study["id"])
    assert any(t["status"] == "stopped" for t in trials) and len(trials) == 8
    assert not [r for r in store.list_runs(group=study["id"]) if r["status"] in ("queued", "running")]
    run(at)
    [bar] = at.get("progress")
    assert bar.proto.text.startswith("Cancelled: ") and "the other measurements were stopped" in bar.proto.text
    assert "failed" not in texts(at.warning)                           # stopped on request is not a failure
    assert [b for b in at.button if b.key == "sweep_cancel"] == []


def test_an_expensive_network_asks_before_measuring():
    at = gradients_page(preset="resnet50")
    assert "takes about" in texts(at.info)
    assert not at.get("plotly_chart")
    assert at.button(key="grad_measure")


def test_an_input_size_the_network_cannot_take_is_an_error_not_a_traceback():
    at = gradients_page(preset="resnet18")
    run(at.select_slider(key="grad_size").set_value(16))
    assert "does not work at 16×16" in texts(at.error)
