"""The fitted accuracy-against-cost lines and the overlaid learning curves of a study (issue 19 §4): exact on exact
data, a band that covers the true line as often as it says (by simulation), a cost ratio that reads "a third of the
parameters" off two lines, and learning curves averaged over seeds at the steps they share."""

from __future__ import annotations

import math
import random

import pytest

from archs.studies.curves import cost_ratio_at, learning_curves, log_linear_fits


def line(family: str, costs, intercept: float, slope: float, noise=None) -> list[dict]:
    return [{"family": family, "params": c, "accuracy": intercept + slope * math.log(c) + (noise() if noise else 0.0)}
            for c in costs]


def test_exact_points_give_their_line_and_a_band_of_no_width():
    fits = log_linear_fits(line("dense", [1e4, 3e4, 1e5, 3e5], 0.1, 0.05), "params")
    fit = fits["dense"]
    assert fit.n == 4 and fit.intercept == pytest.approx(0.1) and fit.slope == pytest.approx(0.05)
    assert fit.sd == pytest.approx(0.0, abs=1e-12)
    assert fit.xs[0] == pytest.approx(1e4) and fit.xs[-1] == pytest.approx(3e5) and len(fit.xs) == 40
    assert fit.low == pytest.approx(fit.mean, abs=1e-9) and fit.high == pytest.approx(fit.mean, abs=1e-9)
    assert fit.per_doubling() == pytest.approx(0.05 * math.log(2))
    assert fit.cost_for(fit.at(5e4)) == pytest.approx(5e4)


def test_a_family_needs_three_distinct_costs_and_finite_accuracies_to_be_fitted():
    points = (line("residual", [1e4, 2e4], 0.5, 0.01) + line("plain", [1e4, 1e4, 1e4], 0.5, 0.01)
              + line("inception", [1e4, 2e4, 4e4], 0.5, 0.01) + [{"family": "inception", "params": 8e4,
                                                                  "accuracy": float("nan")},
                                                                 {"family": "inception", "params": None,
                                                                  "accuracy": 0.9}])
    fits = log_linear_fits(points, "params")
    assert set(fits) == {"inception"} and fits["inception"].n == 3


def test_the_band_covers_the_true_line_about_95_percent_of_the_time():
    """Simulated: 5 settings, noise SD 0.01; the true mean line at an end and in the middle of the range."""
    rng = random.Random(0)
    costs = [1e4, 2e4, 4e4, 8e4, 16e4]
    covered = {0: 0, 20: 0}
    trials = 2000
    for _ in range(trials):
        fit = log_linear_fits(line("dense", costs, 0.2, 0.04, lambda: rng.gauss(0, 0.01)), "params")["dense"]
        for i in covered:
            truth = 0.2 + 0.04 * math.log(fit.xs[i])
            covered[i] += fit.low[i] <= truth <= fit.high[i]
    for i, hits in covered.items():
        assert 0.93 <= hits / trials <= 0.97, (i, hits / trials)


def test_a_third_of_the_parameters_is_read_off_two_parallel_lines():
    resnet = log_linear_fits(line("residual", [3e4, 1e5, 3e5, 1e6], 0.1, 0.05), "params")["residual"]
    # the same accuracy with a third of the parameters: DenseNet's line is ResNet's moved left by ln 3
    dense = log_linear_fits(line("dense", [1e4, 3e4, 1e5, 3e5], 0.1 + 0.05 * math.log(3), 0.05), "params")["dense"]
    accuracy, ratio = cost_ratio_at(dense, resnet)
    assert ratio == pytest.approx(1 / 3)
    assert min(resnet.mean) <= accuracy <= max(dense.mean)
    assert cost_ratio_at(dense, resnet, accuracy=0.7)[1] == pytest.approx(1 / 3)
    far = log_linear_fits(line("plain", [1e4, 2e4, 4e4], 5.0, 0.05), "params")["plain"]  # no accuracy in common
    assert cost_ratio_at(far, resnet) is None


def test_learning_curves_are_the_mean_and_range_over_seeds_at_the_steps_all_recorded():
    seed0 = [{"kind": "step", "step": s, "loss": 2.0 / s} for s in (10, 20, 30)]
    seed1 = [{"kind": "step", "step": s, "loss": 4.0 / s} for s in (10, 20)] + [{"step": 30, "loss": float("nan")}]
    curves = learning_curves({"dense 1": [seed0, seed1], "empty": [[], []]})
    assert [c["label"] for c in curves] == ["dense 1"]
    curve = curves[0]
    assert curve["runs"] == 2 and curve["steps"] == [10, 20]
    assert curve["mean"] == pytest.approx([0.3, 0.15]) and curve["low"] == pytest.approx([0.2, 0.1])
    assert curve["high"] == pytest.approx([0.4, 0.2])
