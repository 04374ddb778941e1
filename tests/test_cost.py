"""Measured cost per part: structure, memory worked out by hand, the cache. No assertion here depends on
how fast this machine is (speed is for benchmarks/): only on what the measurement must add up to."""

import pytest

from archs import PRESETS, NetSpec, PlainSpec, summarize
from archs.cost import available_devices, cached_cost, measure_cost

# one 3x3 conv (4 channels, no bias, no norm) and ReLU on 1x8x8 inputs, then the head
TINY = NetSpec(name="tiny", in_channels=1, num_classes=10, input_size=8, norm="none",
               stages=(PlainSpec(channels=4, kernel_size=3, padding=1),))


def test_memory_of_a_tiny_net_by_hand():
    """Batch 2. The conv's output (2x4x8x8 floats, 2 KiB) is freed once ReLU has made its own output, which
    is kept for the backward pass: the stage keeps 2,048 bytes. torchinfo counts twice the conv's output:
    4,096. Parameters: 36 conv weights + 4x10 + 10 linear = 86 floats; Adam keeps two more copies and a step
    count (4 bytes) per parameter tensor: 2 x 344 + 3 x 4 = 700 bytes."""
    report = measure_cost(TINY, batch_size=2, repeats=1)
    stage = report.parts[1]
    assert (stage.name, stage.kept_bytes, stage.estimate_bytes) == ("stage1", 2048, 4096)
    assert report.memory["parameters"] == 4 * TINY.num_params() == 344
    assert report.memory["optimizer state"] == 700
    assert report.peak_bytes >= sum(report.memory.values()) - 1 and report.peak_bytes > 2048 + 344 + 700
    assert "MemTracker" in report.memory_method


def test_parts_add_up_to_the_whole_pass():
    spec = PRESETS["seed002-inception"]
    report = measure_cost(spec, batch_size=4, repeats=2)
    assert [p.name for p in report.parts] == ["stem", "stage1", "stage2", "stage3", "head"]
    assert [p.label for p in report.parts][1] == "Inception x1 · 88 ch"
    # each part runs from its hook to the next one's, so together they lie within the whole pass
    assert 0 < sum(p.forward_s for p in report.parts) <= report.forward_s
    assert all(p.forward_s > 0 and p.train_forward_s > 0 and p.backward_s > 0 for p in report.parts[:-1])
    assert 0 < report.optimizer_s < report.train_step_s
    # analytic mult-adds for the batch, as the summary counts them
    per_image = summarize(spec)
    assert [p.mult_adds for p in report.parts] == [4 * s.mult_adds for s in per_image.stages]
    assert report.mult_adds == 4 * per_image.mult_adds
    assert report.to_dict()["parts"][0]["name"] == "stem" and report.device == "cpu"


def test_the_same_arguments_hit_the_cache_and_progress_reaches_the_end():
    calls = []
    first = measure_cost(TINY, batch_size=3, repeats=2, progress=lambda f, m: calls.append((f, m)))
    assert calls[-1] == (1.0, "training memory measured") and len(calls) == 2 * 3 + 1
    assert [f for f, _ in calls] == sorted(f for f, _ in calls)
    assert cached_cost(TINY, batch_size=3, repeats=2) is first
    assert measure_cost(TINY, batch_size=3, repeats=2, progress=lambda f, m: calls.append(f)) is first
    assert len(calls) == 7                                  # nothing ran the second time
    assert cached_cost(TINY, batch_size=4, repeats=2) is None


def test_kept_memory_scales_with_the_batch():
    two, six = measure_cost(TINY, batch_size=2, repeats=1), measure_cost(TINY, batch_size=6, repeats=1)
    assert six.parts[1].kept_bytes == 3 * two.parts[1].kept_bytes
    assert six.parts[1].estimate_bytes == 3 * two.parts[1].estimate_bytes


def test_bad_arguments_are_refused():
    assert available_devices()[0] == "cpu"
    with pytest.raises(ValueError, match="device 'tpu' is not available here"):
        measure_cost(TINY, device="tpu")
    with pytest.raises(ValueError, match="at least 1"):
        measure_cost(TINY, repeats=0)
    with pytest.raises(ValueError, match="optimizer"):
        measure_cost(TINY, optimizer="lbfgs")
