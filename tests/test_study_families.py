"""The three claims' networks (exact sizes, valid, overlapping ranges) and how a claim is judged."""

import dataclasses
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

from archs import NetSpec, build_model
from archs.studies.families import (
    CLAIM_STEPS,
    CLAIMS,
    CONVERGENCE_RULE,
    DEGRADATION_NETS,
    MATCHED_SIZE,
    MAX_GAP,
    RESIDUAL_STEPS,
    VERDICTS,
    Budget,
    Claim,
    ClaimNet,
    converged,
    curve_positions,
    dense_net,
    depth_verdicts,
    inception_net,
    judge,
    matched_verdicts,
    net_costs,
    residual_net,
    verdict_text,
)
from archs.training.config import DataConfig, TrainConfig

# the ResNet-20 baseline grid of the dense and inception claims: (family, size) -> (name, params, mult-adds)
RESNET20 = {
    ("residual", "w4"): ("resnet20-w4", 17_254, 664_066),
    ("residual", "w5"): ("resnet20-w5", 26_785, 1_025_920),
    ("residual", "w7"): ("resnet20-w7", 52_111, 1_984_636),
    ("residual", "w9"): ("resnet20-w9", 85_789, 3_256_696),
    ("residual", "w12"): ("resnet20-w12", 151_966, 5_752_306),
    ("residual", "w16"): ("resnet20-w16", 269_434, 10_176_490),
}

# (family, size) -> (spec name, parameters, mult-adds per image), per claim
EXPECTED = {
    "residual": {
        ("plain", "20"): ("cifar-plain20", 269_434, 30_822_634),
        ("plain", "56"): ("cifar-plain56", 852_730, 95_853_418),
        ("residual", "20"): ("cifar-resnet20", 269_434, 30_822_634),
        ("residual", "56"): ("cifar-resnet56", 852_730, 95_853_418),
    },
    "dense": {
        ("dense", "k6"): ("densenet-bc-k6", 31_882, 1_822_630),
        ("dense", "k8"): ("densenet-bc-k8", 55_530, 3_189_978),
        ("dense", "k12"): ("densenet-bc-k12", 122_362, 7_064_386),
        ("dense", "k16"): ("densenet-bc-k16", 215_242, 12_458_410),
        **RESNET20,
    },
    "inception": {
        ("inception", "w2"): ("inception-w2", 28_178, 1_055_006),
        ("inception", "w4"): ("inception-w4", 109_938, 4_069_938),
        ("inception", "w6"): ("inception-w6", 245_290, 9_044_806),
        **RESNET20,
        ("plain", "w4"): ("plain20-w4", 17_254, 664_066),
        ("plain", "w5"): ("plain20-w5", 26_785, 1_025_920),
        ("plain", "w7"): ("plain20-w7", 52_111, 1_984_636),
        ("plain", "w9"): ("plain20-w9", 85_789, 3_256_696),
        ("plain", "w12"): ("plain20-w12", 151_966, 5_752_306),
        ("plain", "w16"): ("plain20-w16", 269_434, 10_176_490),
        ("plain-14", "w6"): ("plain14-w6", 24_628, 968_278),
        ("plain-14", "w8"): ("plain14-w8", 43_490, 1_696_538),
        ("plain-14", "w11"): ("plain14-w11", 81_773, 3_169_088),
        ("plain-14", "w15"): ("plain14-w15", 151_465, 5_842_120),
        ("plain-14", "w20"): ("plain14-w20", 268_550, 10_323_890),
    },
}


@pytest.fixture(scope="module")
def costs():
    """(params, mult-adds) per distinct spec, computed once (summarize is the slow part)."""
    specs = {net.spec for claim in CLAIMS.values() for net in claim.nets}
    return {spec: net_costs(spec) for spec in specs}


def test_the_claims_and_their_nets():
    assert list(CLAIMS) == ["residual", "dense", "inception"]
    for name, claim in CLAIMS.items():
        assert isinstance(claim, Claim) and claim.name == name and claim.question.endswith("?") and claim.rule
        assert [(n.family, n.size) for n in claim.nets] == list(EXPECTED[name])
        assert [n.spec.name for n in claim.nets] == [v[0] for v in EXPECTED[name].values()]
        for net in claim.nets:
            assert isinstance(net, ClaimNet) and isinstance(net.spec, NetSpec)
            size = 28 if name == "residual" else MATCHED_SIZE   # the matched claims' nets take 32 x 32
            assert (net.spec.in_channels, net.spec.input_size, net.spec.num_classes) == (1, size, 10)
            net.spec.plan()
            assert NetSpec.from_json(net.spec.to_json()) == net.spec
    assert (CLAIMS["dense"].subject, CLAIMS["dense"].baselines, CLAIMS["dense"].objective_x) == (
        "dense", ("residual",), "params")
    assert (CLAIMS["inception"].subject, CLAIMS["inception"].baselines, CLAIMS["inception"].objective_x) == (
        "inception", ("plain", "residual", "plain-14"), "mult_adds")
    assert CLAIMS["inception"].families == ("inception", "residual", "plain", "plain-14")
    assert [c.kind for c in CLAIMS.values()] == ["depth", "matched", "matched"]
    assert CLAIMS["dense"].net("dense", "k8").spec == dense_net(8)
    with pytest.raises(KeyError, match="claim 'dense' has no net dense k7"):
        CLAIMS["dense"].net("dense", "k7")


@pytest.mark.parametrize("claim", list(EXPECTED))
def test_exact_sizes(claim, costs):
    for net in CLAIMS[claim].nets:
        _, params, mult_adds = EXPECTED[claim][(net.family, net.size)]
        assert costs[net.spec] == (params, mult_adds), net.label
        assert net.spec.num_params() == params


def test_parameter_counts_match_the_built_networks():
    """Every claim net's exact parameter count, counted on the built network, and its output for a batch."""
    import torch

    built = {}
    for claim, nets in EXPECTED.items():
        for net in CLAIMS[claim].nets:
            if net.spec not in built:
                model = build_model(net.spec)
                built[net.spec] = sum(p.numel() for p in model.parameters())
                if claim != "residual":
                    with torch.no_grad():
                        out = model.eval()(torch.zeros(2, 1, net.spec.input_size, net.spec.input_size))
                    assert tuple(out.shape) == (2, 10), net.label
            assert built[net.spec] == nets[(net.family, net.size)][1] == net.spec.num_params(), net.label


def test_shapes_of_the_families():
    assert [p.out_size for p in dense_net(12).plan()] == [(16, 16), (8, 8), (4, 4), (4, 4), (1, 1)]
    assert [p.out_size for p in inception_net(4).plan()] == [(16, 16), (8, 8), (4, 4), (4, 4), (1, 1)]
    assert [p.out_size for p in residual_net(8).plan()] == [(16, 16), (16, 16), (8, 8), (4, 4), (1, 1)]
    assert [p.out_size for p in residual_net(8, skip=False, blocks=2).plan()] == [
        (16, 16), (16, 16), (8, 8), (4, 4), (1, 1)]
    assert [p.out_channels for p in dense_net(12).plan()][:4] == [24, 24, 36, 132]  # halved, halved
    assert [p.out_channels for p in inception_net(4).plan()][:4] == [16, 32, 64, 128]  # 8u per module
    assert residual_net(8, skip=False) == dataclasses.replace(residual_net(8).without_skips(), name="plain20-w8")


@pytest.mark.parametrize("claim", list(EXPECTED))
def test_every_claim_net_keeps_every_row_and_column(claim):
    """Issue 19: every reduction of every claim net halves its map exactly (nothing dropped, nothing padded in), and
    the matched claims' families all end on the same map: 32 -> 16 -> 8 -> 4 before the global pool."""
    for net in CLAIMS[claim].nets:
        sizes = [(net.spec.input_size, net.spec.input_size)] + [p.out_size for p in net.spec.plan()]
        assert sizes[-1] == (1, 1), net.label                         # the head's global pool
        for before, after in zip(sizes[:-2], sizes[1:-1]):
            assert after == before or (2 * after[0], 2 * after[1]) == before, (net.label, before, after)
        if claim != "residual":
            assert sorted(set(sizes[1:-1]), reverse=True) == [(16, 16), (8, 8), (4, 4)], net.label
        else:                                                          # the degradation nets: 28 -> 14 -> 7
            assert sorted(set(sizes[1:-1]), reverse=True) == [(28, 28), (14, 14), (7, 7)], net.label


@pytest.mark.parametrize("claim", list(EXPECTED))
def test_no_comparison_interpolates_across_more_than_a_2x_gap(claim, costs):
    """Issue 19: each subject net is compared with baseline nets at most 2x apart in x on either side of it, and the
    baseline grids have no gap wider than 2x. The residual claim compares nets of equal size (plain and residual at
    20 and at 56 layers, paired), so it interpolates nothing."""
    c = CLAIMS[claim]
    if c.kind == "depth":
        assert {(n.family, n.size) for n in c.nets} == {(f, d) for f in ("plain", "residual") for d in ("20", "56")}
        for depth in ("20", "56"):
            assert costs[c.net("plain", depth).spec] == costs[c.net("residual", depth).spec]
        return
    index = 0 if c.objective_x == "params" else 1
    for baseline in c.baselines:
        xs = sorted(costs[n.spec][index] for n in c.nets if n.family == baseline)
        assert all(b / a <= MAX_GAP == 2.0 for a, b in zip(xs, xs[1:])), (baseline, xs)
        positions = curve_positions(c, baseline, costs)
        assert all(p is not None for p in positions), baseline      # every subject net inside the range
        for lo, hi, _ in positions:
            assert xs[hi] / xs[lo] <= 2.0, (baseline, xs[lo], xs[hi])


def test_the_inception_claim_has_a_depth_matched_plain_control():
    """Issue 19: the Inception nets are 14 weighted layers deep along their longest path (stem, two per module:
    a 1x1 reduction then a 3x3 or 5x5, and the classifier); plain-14 has the same depth and no branches or skips."""
    from archs.stages import InceptionSpec, ResidualSpec

    def depth(spec):
        layers = len(spec.stem) + 1                                   # the stem's conv and the classifier
        for stage in spec.stages:
            if isinstance(stage, InceptionSpec):
                layers += 2 * stage.modules
            else:
                assert isinstance(stage, ResidualSpec)
                layers += 2 * stage.blocks
        return layers

    nets = CLAIMS["inception"].nets
    assert {depth(n.spec) for n in nets if n.family == "inception"} == {14}
    controls = [n for n in nets if n.family == "plain-14"]
    assert len(controls) == 5 and {depth(n.spec) for n in controls} == {14}
    assert all(not stage.skip for n in controls for stage in n.spec.stages)
    assert {depth(n.spec) for n in nets if n.family in ("plain", "residual")} == {20}
    assert controls[0].spec == residual_net(6, skip=False, blocks=2) and controls[0].spec.name == "plain14-w6"


def test_ranges_overlap_so_nets_can_be_matched(costs):
    def xs(claim, family, index):
        return [costs[n.spec][index] for n in CLAIMS[claim].nets if n.family == family]

    dense, residual = xs("dense", "dense", 0), xs("dense", "residual", 0)
    assert min(residual) < 20_000 and max(residual) > 250_000          # about 20k to 300k parameters
    assert all(min(residual) < p < max(residual) for p in dense)       # every dense net can be compared
    incep = xs("inception", "inception", 1)
    for family in ("residual", "plain", "plain-14"):
        base = xs("inception", family, 1)
        assert all(min(base) < m < max(base) for m in incep)


def test_the_residual_claim_is_the_degradation_experiment():
    from archs.studies.experiments import DEGRADATION_PRESETS, DegradationSettings, degradation_plan

    settings = DegradationSettings(data="fashion-mnist")
    assert tuple(preset for _, _, preset in DEGRADATION_NETS) == DEGRADATION_PRESETS
    assert [(n.spec.name, n.spec) for n in CLAIMS["residual"].nets] == degradation_plan(settings)
    budget = CLAIMS["residual"].budget  # the experiment's settings, on a shorter budget to run 3 seeds
    for seed in (0, 2):   # at the claim's one fixed precision and layout
        assert budget.train_config(seed) == dataclasses.replace(
            DegradationSettings(seed=seed, steps=RESIDUAL_STEPS).train_config(), amp="off", channels_last="off")
    assert budget.data_config() == dataclasses.replace(settings.data_config(), test_limit=None)  # the full test set


def test_budgets_and_runs():
    budget = CLAIMS["dense"].budget
    assert budget == Budget(steps=CLAIM_STEPS) == CLAIMS["inception"].budget and budget.seeds == 3
    config = budget.train_config(2)
    assert config == TrainConfig(epochs=1000, max_steps=CLAIM_STEPS, batch_size=64, lr=1e-3, optimizer="adam",
                                 schedule="cosine", augment="none", grad_every=0, seed=2, amp="off",
                                 channels_last="off")
    assert budget.data_config("/data") == DataConfig(name="fashion-mnist", root="/data", test_limit=None)
    runs = CLAIMS["dense"].runs()
    assert len(runs) == 3 * 10
    assert [(net.label, seed) for net, seed, _ in runs[:11]] == [(n.label, 0) for n in CLAIMS["dense"].nets] + [
        ("dense k6", 1)]
    assert all(config.seed == seed for _, seed, config in runs)


def test_one_precision_and_layout_per_claim_in_the_rule_and_the_stored_definition():
    """Issue 19: no timing probe chooses bf16 or fp32, NCHW or channels-last per network: each claim fixes one for
    every net, says so in its rule, and the study's stored definition records it and applies it to every trial."""
    from archs.studies.definition import StudyDefinition, trial_request

    for name, claim in CLAIMS.items():
        assert (claim.budget.amp, claim.budget.channels_last) == ("off", "off")
        assert {(c.amp, c.channels_last) for _, _, c in claim.runs()} == {("off", "off")}
        assert claim.budget.precision_text in claim.rule and "float32" in claim.rule and "NCHW" in claim.rule
        assert "Adam at 1e-3" in claim.rule and "SGD" in claim.rule        # one optimizer, and why
        assert "whole test set" in claim.rule and claim.budget.test_limit is None
        d = StudyDefinition(kind="claim", name=name, claim=name, seeds=2, train={"amp": "auto", "channels_last":
                                                                                "auto"})
        stored = d.to_dict()
        assert (stored["amp"], stored["channels_last"]) == ("off", "off")
        assert StudyDefinition.from_dict(stored) == d
        for net in claim.nets[:2]:
            request = trial_request(d, {"family": net.family, "size": net.size, "train.seed": 1}, study_id="s",
                                    owner="o", owner_name=None)
            assert (request.train.amp, request.train.channels_last) == ("off", "off")   # the page's "auto" too
    bf16 = StudyDefinition(kind="claim", name="x", claim="dense", amp="bf16")
    assert bf16.to_dict()["amp"] == "bf16" and bf16.channels_last == "off"
    with pytest.raises(Exception, match="amp"):
        StudyDefinition(kind="claim", name="x", claim="dense", amp="auto")
    with pytest.raises(ValueError, match="fixed"):
        Budget(amp="auto")


# --------------------------------------------------------------------------------------------- judging
OFFSETS = (-1.0, 0.0, 1.0, -0.5, 0.5)


def results(claim, means, sd=0.005, seeds=3, with_costs=True, **extra):
    """Per-run results: net j's seed s is ``mean + sd * OFFSETS[(s + j) % seeds]`` (rotated per net, so the
    paired differences between nets vary from seed to seed; each net's mean is exactly ``mean``)."""
    rows = []
    for j, net in enumerate(CLAIMS[claim].nets):
        mean = means[(net.family, net.size)]
        _, params, mult_adds = EXPECTED[claim][(net.family, net.size)]
        for seed in range(seeds):
            offset = sd * OFFSETS[(seed + j) % seeds] if seeds in (3, 5) else 0.0
            row = {"family": net.family, "size": net.size, "seed": seed, "test_accuracy": mean + offset,
                   "train_seconds": 10.0 + seed}
            if with_costs:
                row.update(params=params, mult_adds=mult_adds)
            row.update(extra)
            rows.append(row)
    return rows


RESIDUAL_CURVE = {("residual", "w4"): 0.80, ("residual", "w5"): 0.815, ("residual", "w7"): 0.83,
                  ("residual", "w9"): 0.845, ("residual", "w12"): 0.86, ("residual", "w16"): 0.87}
DENSE_X = {"k6": 31_882, "k8": 55_530, "k12": 122_362, "k16": 215_242}
RESIDUAL_X = [(17_254, "w4"), (26_785, "w5"), (52_111, "w7"), (85_789, "w9"), (151_966, "w12"), (269_434, "w16")]


def log_interp(x, x0, y0, x1, y1):
    t = (math.log(x) - math.log(x0)) / (math.log(x1) - math.log(x0))
    return y0 + t * (y1 - y0)


def residual_at(x, curve=RESIDUAL_CURVE):
    for (x0, s0), (x1, s1) in zip(RESIDUAL_X, RESIDUAL_X[1:]):
        if x0 <= x <= x1:
            return log_interp(x, x0, curve[("residual", s0)], x1, curve[("residual", s1)])
    raise ValueError(x)


def dense_means(k6, k8, k12, k16, curve=RESIDUAL_CURVE):
    return {**curve, ("dense", "k6"): k6, ("dense", "k8"): k8, ("dense", "k12"): k12, ("dense", "k16"): k16}


def dense_by_difference(*points, curve=RESIDUAL_CURVE):
    """Dense means that many points (0.01 = 1 point) above the residual curve at their parameters."""
    return dense_means(*(residual_at(DENSE_X[k], curve) + d for k, d in zip(DENSE_X, points)), curve=curve)


BUDGET_150 = ("Budget: 150 steps at batch 64 per run, 9,600 images seen, 0.16 epochs of the 60,000 Fashion-MNIST "
              "training images.")


def test_dense_holds_when_the_dense_nets_are_above_the_residual_curve():
    verdict = judge("dense", results("dense", dense_by_difference(0.03, 0.02, 0.02, 0.03), sd=0.002))
    assert verdict["verdict"] == "holds" and verdict["against"] == {"residual": "holds"}
    assert verdict["rule_version"] == 2 and verdict["verdict"] in VERDICTS
    assert [c["outcome"] for c in verdict["comparisons"]] == ["above"] * 4
    first = verdict["comparisons"][0]
    expected = log_interp(31_882, 26_785, 0.815, 52_111, 0.83)
    assert first["net"] == "dense k6" and first["against"] == "residual" and first["x"] == 31_882
    assert first["baseline_accuracy"] == pytest.approx(expected, abs=1e-12)
    assert first["difference"] == pytest.approx(0.03, abs=1e-12) and first["n"] == 3
    assert first["lower"] < 0.03 < first["upper"] and first["p_holm"] < 0.05
    primary = verdict["primary"]["residual"]
    assert primary["mean"] == pytest.approx(0.025) and primary["sizes"] == ["k6", "k8", "k12", "k16"]
    assert primary["seeds"] == [0, 1, 2] and primary["lower"] > 0
    assert verdict["runs"] == 30 and verdict["failed"] == [] and verdict["ignored"] == 0
    nets = {n["label"]: n for n in verdict["nets"]}
    assert nets["dense k6"]["seeds"] == 3 and nets["dense k6"]["failed"] == 0
    assert nets["residual w16"]["params"] == 269_434 and nets["residual w16"]["train_seconds"] == 11.0
    text = verdict["statement"]
    assert text == verdict_text(verdict)
    assert text.startswith(CLAIMS["dense"].question + " Verdict: the claim holds at this budget. " + BUDGET_150)
    assert "Runs: 30 over 3 seeds; none failed or diverged." in text
    assert "dense minus residual (paired by seed, averaged over k6, k8, k12 and k16): +2.5 points, 95 % CI" in text
    assert "Per size (Holm across 4): above at k6 (+3.0 points, 95 % CI" in text
    assert "Student t" in verdict["rule"] and "Holm" in verdict["rule"] and "chance" in verdict["rule"]
    json.dumps(verdict, allow_nan=False)


def test_dense_does_not_hold_when_the_dense_nets_are_below():
    verdict = judge("dense", results("dense", dense_by_difference(-0.03, -0.02, -0.02, -0.03), sd=0.002))
    assert verdict["verdict"] == "does not hold" and verdict["against"] == {"residual": "does not hold"}
    assert [c["outcome"] for c in verdict["comparisons"]] == ["below"] * 4
    assert "Verdict: the claim does not hold at this budget." in verdict["statement"]


def test_differences_within_the_seed_noise_are_not_decided():
    verdict = judge("dense", results("dense", dense_by_difference(0.005, -0.005, 0.005, 0.0), sd=0.03))
    assert verdict["verdict"] == "not decided" and verdict["against"] == {"residual": "not decided"}
    assert [c["outcome"] for c in verdict["comparisons"]] == ["not decided"] * 4
    assert "Verdict: the claim is not decided at this budget." in verdict["statement"]
    assert "not decided at k6 (" in verdict["statement"]


def test_the_dense_case_of_issue_19_never_holds_in_part():
    """Issue 19: no DenseNet above the ResNet curve at any size (+0.2 and +0.3 points within the spread, -1.4 and
    -2.4 below it) was called "mixed: the claim holds in part only"."""
    curve = {("residual", "w4"): 0.62, ("residual", "w5"): 0.66, ("residual", "w7"): 0.71, ("residual", "w9"): 0.74,
             ("residual", "w12"): 0.775, ("residual", "w16"): 0.80}
    means = dense_by_difference(0.002, 0.003, -0.014, -0.024, curve=curve)
    verdict = judge("dense", results("dense", means, sd=0.006))
    assert verdict["verdict"] in ("does not hold", "not decided")
    assert not any(word in verdict["statement"] for word in ("mixed", "in part", "inconclusive"))
    rng = random.Random(19)
    for _ in range(40):                                   # seed noise of 0.6 points: never "holds"
        rows = [{**r, "test_accuracy": r["test_accuracy"] + rng.gauss(0, 0.006)} for r in results("dense", means)]
        assert judge("dense", rows)["verdict"] in ("does not hold", "not decided")


def test_sizes_that_disagree_are_named():
    verdict = judge("dense", results("dense", dense_by_difference(0.04, 0.04, -0.03, 0.0), sd=0.002))
    assert [c["outcome"] for c in verdict["comparisons"]] == ["above", "above", "below", "not decided"]
    assert verdict["verdict"] == "holds"                  # the mean over sizes, +1.25 points, is the primary test
    assert "Per size (Holm across 4): above at k6 (+4.0 points" in verdict["statement"]
    assert "; below at k12 (-3.0 points" in verdict["statement"]
    assert "; not decided at k16 (" in verdict["statement"]


def test_interpolation_is_in_log_parameters_per_seed():
    # dense k6 (31,882) lies 26 % of the way from w5 to w7 in log space but 20 % in linear
    verdict = judge("dense", results("dense", dense_means(0.815, 0.90, 0.90, 0.90), sd=0.001))
    assert verdict["comparisons"][0]["baseline_accuracy"] == pytest.approx(0.815 + 0.26190 * 0.015, abs=1e-5)
    rows = results("dense", dense_means(0.9, 0.9, 0.9, 0.9), sd=0.0)
    for row in rows:                                      # seed 1's w5 is 10 points lower: only seed 1 moves
        if (row["size"], row["seed"]) == ("w5", 1):
            row["test_accuracy"] -= 0.10
    k6 = judge("dense", rows)["comparisons"][0]
    t = math.log(31_882 / 26_785) / math.log(52_111 / 26_785)
    assert k6["difference"] == pytest.approx(0.9 - log_interp(31_882, 26_785, 0.815, 52_111, 0.83)
                                             + (1 - t) * 0.10 / 3)


def test_one_seed_decides_nothing():
    verdict = judge("dense", results("dense", dense_by_difference(0.1, 0.1, 0.1, 0.1), seeds=1))
    assert [c["outcome"] for c in verdict["comparisons"]] == ["too few seeds"] * 4
    assert verdict["verdict"] == "not decided" and verdict["comparisons"][0]["lower"] is None
    assert verdict["nets"][0]["sd"] is None
    assert judge("dense", [])["verdict"] == "not decided"


def test_nets_outside_the_baseline_range_are_not_compared():
    rows = results("dense", dense_by_difference(0.03, 0.03, 0.03, 0.03))
    for row in rows:
        if row["size"] == "k16":
            row["params"] = 1_000_000                     # beyond residual w16: no extrapolation
    verdict = judge("dense", rows)
    assert [c["outcome"] for c in verdict["comparisons"]] == ["above"] * 3 + ["outside range"]
    assert verdict["verdict"] == "holds" and verdict["primary"]["residual"]["sizes"] == ["k6", "k8", "k12"]
    assert "; not compared (outside the residual range) at k16." in verdict["statement"]


def test_x_is_computed_from_the_spec_when_results_lack_it():
    verdict = judge("dense", results("dense", dense_by_difference(0.03, 0.02, 0.02, 0.03), with_costs=False))
    assert [c["x"] for c in verdict["comparisons"]] == [31_882, 55_530, 122_362, 215_242]
    assert verdict["verdict"] == "holds"


def test_failed_and_diverged_runs_count_at_chance_and_are_shown():
    rows = results("dense", dense_by_difference(0.03, 0.02, 0.02, 0.03))
    for row in rows:
        if (row["size"], row["seed"]) == ("k8", 1):
            row["test_accuracy"] = None                   # failed
        if (row["size"], row["seed"]) == ("k12", 2):
            row["test_accuracy"] = float("nan")           # diverged
    rows.append({"family": "vgg", "size": "16", "seed": 0, "test_accuracy": 0.99})
    verdict = judge(CLAIMS["dense"], rows)
    assert verdict["failed"] == ["dense k8 seed 1", "dense k12 seed 2"] and verdict["ignored"] == 1
    assert verdict["runs"] == 30 and {n["label"]: n["failed"] for n in verdict["nets"]}["dense k8"] == 1
    k8 = verdict["comparisons"][1]
    assert k8["difference"] == pytest.approx((2 * (residual_at(55_530) + 0.02) + 0.1) / 3 - residual_at(55_530),
                                             abs=0.005)
    assert verdict["verdict"] != "holds"                 # without the failed runs it held
    assert ("Runs: 30 over 3 seeds; 2 failed or diverged (dense k8 seed 1, dense k12 seed 2), counted at chance "
            "accuracy (10.0 %).") in verdict["statement"]
    # the baseline failing instead: the family that fails more is worse at this budget
    rows = results("dense", dense_by_difference(0.0, 0.0, 0.0, 0.0, curve=RESIDUAL_CURVE), sd=0.002)
    for row in rows:
        if row["size"] in ("w7", "w9", "w12"):
            row["test_accuracy"] = None
    verdict = judge("dense", rows)
    assert verdict["verdict"] == "holds" and len(verdict["failed"]) == 9
    rows = [r for r in results("dense", dense_by_difference(0.03, 0.02, 0.02, 0.03)) if r["size"] != "w12"]
    verdict = judge("dense", rows)                        # a net with no runs at all: the curve skips it
    assert verdict["comparisons"][2]["baseline_accuracy"] == pytest.approx(
        log_interp(122_362, 85_789, 0.845, 269_434, 0.87))
    with pytest.raises(ValueError, match="unknown claim 'sparse' \\(known: residual, dense, inception\\)"):
        judge("sparse", [])


def test_the_budget_and_convergence_are_stated():
    means = dense_by_difference(0.03, 0.02, 0.02, 0.03)
    rows = results("dense", means, steps=600, batch_size=64, train_size=60_000, data="fashion-mnist")
    for row in rows:
        row["converged"] = row["seed"] != 0
    verdict = judge("dense", rows)
    assert verdict["budget"] == {"steps": 600, "batch_size": 64, "images": 38_400, "data": "fashion-mnist",
                                 "train_size": 60_000, "epochs": pytest.approx(0.64), "converged": 20,
                                 "not_converged": 10, "convergence_unknown": 0}
    text = verdict["statement"]
    assert ("Budget: 600 steps at batch 64 per run, 38,400 images seen, 0.64 epochs of the 60,000 Fashion-MNIST "
            "training images.") in text
    assert ("Converged (train loss no longer falling over the last fifth of training): 20 of 30 runs. The paper's "
            "claim is about converged nets.") in text
    done = judge("dense", results("dense", means, converged=True))
    assert "30 of 30 runs." in done["statement"] and "about converged nets" not in done["statement"]
    digits = judge("dense", results("dense", means, steps=2, batch_size=16, train_size=1_000, data="digits"))
    assert "Budget: 2 steps at batch 16 per run, 32 images seen, 0.032 epochs of the 1,000 digits" in \
        digits["statement"]
    assert CONVERGENCE_RULE in CLAIMS["dense"].rule and CONVERGENCE_RULE in CLAIMS["residual"].rule


def test_the_convergence_test():
    falling = [(s, 2.0 - s / 100) for s in range(10, 151, 10)]
    assert converged(falling, 150) is False
    noise = [0.31, 0.29, 0.30, 0.32, 0.28, 0.30, 0.31, 0.29]
    assert converged(list(zip(range(80, 151, 10), noise)), 150) is True
    assert converged([(10, 1.0), (20, 0.9)], 150) is None
    assert converged([(s, 0.5) for s in (130, 140, 150)], 150) is True       # flat: nothing left to fall
    assert converged([(s, 0.5 + s / 1000) for s in (130, 140, 150)], 150) is True   # rising


def test_the_papers_readouts():
    # dense k6 at the residual curve's accuracy at three times its parameters (95,646: between w9 and w12)
    means = dense_means(residual_at(3 * 31_882), 0.95, 0.75, 0.86)
    verdict = judge("dense", results("dense", means))
    readout = verdict["readout"]
    assert readout["quantity"] == "parameter ratio at equal accuracy" and readout["paper"] == pytest.approx(1 / 3)
    nets = readout["against"]["residual"]["nets"]
    assert nets[0]["ratio"] == pytest.approx(1 / 3) and nets[0]["baseline_x"] == pytest.approx(3 * 31_882)
    assert nets[1]["ratio"] is None and nets[2]["ratio"] is None           # above and below the curve's range
    assert nets[3]["baseline_x"] == pytest.approx(151_966) and nets[3]["ratio"] == pytest.approx(215_242 / 151_966)
    assert "against residual: k6 0.33x, k8 not read: outside the baseline's accuracy range" in verdict["statement"]
    assert "Huang et al.: about 1/3 of the parameters" in verdict["statement"]
    inception = judge("inception", results("inception", inception_means((0.84, 0.87, 0.89), PLAIN20, RESIDUAL20)))
    plain = inception["readout"]["against"]["plain"]["nets"]
    assert inception["readout"]["quantity"] == "mult-add ratio at equal accuracy"
    assert plain[0]["ratio"] is not None and plain[2]["ratio"] is None      # w6 is above plain-20 w16
    residual = inception["readout"]["against"]["residual"]["nets"]
    # inception w4 (0.87) a third of the way from residual w5 (0.865) to w7 (0.88), in log mult-adds
    x = math.exp(math.log(1_025_920) + (0.87 - 0.865) / 0.015 * math.log(1_984_636 / 1_025_920))
    assert residual[1]["baseline_x"] == pytest.approx(x) and residual[1]["ratio"] == pytest.approx(4_069_938 / x)
    deep = judge("residual", results("residual", residual_means(0.85, 0.80, 0.85, 0.87)))
    gaps = deep["readout"]["gaps"]
    assert gaps["20"]["mean"] == pytest.approx(0.0, abs=1e-12) and gaps["56"]["mean"] == pytest.approx(-0.07)
    assert "the gap at equal depth (plain minus residual;" in deep["statement"]
    assert "at 56 layers -7.0 points, 95 % CI" in deep["statement"]


# baseline accuracies by size: ResNet-20 and plain-20 at w4, w5, w7, w9, w12, w16; plain-14 at w6, w8, w11, w15, w20
PLAIN20 = (0.78, 0.79, 0.81, 0.82, 0.84, 0.85)
RESIDUAL20 = (0.86, 0.865, 0.88, 0.90, 0.91, 0.92)
PLAIN14_CURVE = (0.77, 0.79, 0.81, 0.83, 0.845)


def inception_means(inception, plain, residual, plain14=PLAIN14_CURVE):
    """Means by net; a baseline given as one number is level at every size."""
    out = {}
    for family, values in (("inception", inception), ("plain", plain), ("residual", residual), ("plain-14", plain14)):
        sizes = [n.size for n in CLAIMS["inception"].nets if n.family == family]
        values = (values,) * len(sizes) if isinstance(values, float) else values
        assert len(values) == len(sizes), family
        out.update({(family, size): v for size, v in zip(sizes, values)})
    return out


def test_inception_is_judged_against_each_baseline():
    means = inception_means((0.84, 0.87, 0.89), plain=PLAIN20, residual=RESIDUAL20)
    verdict = judge("inception", results("inception", means))
    assert verdict["against"] == {"plain": "holds", "residual": "does not hold", "plain-14": "holds"}
    assert verdict["verdict"] == "does not hold"           # it does not hold against one baseline
    assert [(c["net"], c["against"], c["outcome"]) for c in verdict["comparisons"]] == [
        ("inception w2", "plain", "above"), ("inception w4", "plain", "above"), ("inception w6", "plain", "above"),
        ("inception w2", "residual", "below"), ("inception w4", "residual", "below"),
        ("inception w6", "residual", "below"), ("inception w2", "plain-14", "above"),
        ("inception w4", "plain-14", "above"), ("inception w6", "plain-14", "above")]
    w4 = verdict["comparisons"][1]
    assert w4["x"] == 4_069_938
    assert w4["baseline_accuracy"] == pytest.approx(log_interp(4_069_938, 3_256_696, 0.82, 5_752_306, 0.84))
    assert ("Against the plain nets at equal mult-adds, inception minus plain (paired by seed, averaged over w2, w4 "
            "and w6):") in verdict["statement"]
    assert "; against them the claim holds. Per size (Holm across 3): above at w2" in verdict["statement"]
    assert "Against the plain-14 nets at equal mult-adds, inception minus plain-14" in verdict["statement"]
    assert "CI (ends at one-sided 2.5 % and 0.833 %)" in verdict["statement"]     # Bonferroni over 3 baselines
    both = judge("inception", results("inception", inception_means((0.95,) * 3, 0.8, 0.8, 0.8)))
    assert both["verdict"] == "holds" and both["against"] == {"plain": "holds", "residual": "holds",
                                                              "plain-14": "holds"}
    level = judge("inception", results("inception", inception_means((0.9,) * 3, 0.8, 0.9, 0.8), sd=0.01))
    assert level["against"] == {"plain": "holds", "residual": "not decided", "plain-14": "holds"}
    assert level["verdict"] == "not decided"


def residual_means(plain20, plain56, residual20, residual56):
    return {("plain", "20"): plain20, ("plain", "56"): plain56, ("residual", "20"): residual20,
            ("residual", "56"): residual56}


@pytest.mark.parametrize("means, against, verdict", [
    ((0.85, 0.80, 0.85, 0.87), {"plain": "below", "residual": "above"}, "holds"),
    ((0.85, 0.80, 0.85, 0.853), {"plain": "below", "residual": "not decided"}, "holds"),
    ((0.85, 0.80, 0.85, 0.82), {"plain": "below", "residual": "below"}, "does not hold"),
    ((0.80, 0.85, 0.85, 0.87), {"plain": "above", "residual": "above"}, "does not hold"),
    ((0.85, 0.847, 0.85, 0.87), {"plain": "not decided", "residual": "above"}, "not decided"),
    ((0.85, 0.847, 0.85, 0.80), {"plain": "not decided", "residual": "below"}, "does not hold"),
])
def test_the_residual_claim(means, against, verdict):
    result = judge("residual", results("residual", residual_means(*means), sd=0.002))
    assert result["against"] == against and result["verdict"] == verdict
    assert result["comparisons"][0]["net"] == "plain 56" and result["comparisons"][0]["against"] == "plain 20"
    assert result["comparisons"][0]["difference"] == pytest.approx(means[1] - means[0])


def test_the_residual_claim_statement_and_missing_nets():
    result = judge("residual", results("residual", residual_means(0.85, 0.80, 0.85, 0.87), train_loss=0.4))
    text = result["statement"]
    assert text.startswith(CLAIMS["residual"].question + " Verdict: the claim holds at this budget. Budget: 60 steps "
                           "at batch 64 per run, 3,840 images seen, 0.064 epochs of the 60,000 Fashion-MNIST")
    assert "plain-56 minus plain-20, paired by seed: -5.0 points, 95 % CI" in text and ", n = 3: below." in text
    assert "residual-56 minus residual-20, paired by seed: +2.0 points" in text
    assert result["nets"][0]["train_loss"] == pytest.approx(0.4)
    rows = [r for r in results("residual", residual_means(0.85, 0.80, 0.85, 0.86)) if r["size"] != "56"
            or r["family"] != "plain"]
    result = judge("residual", rows)
    assert result["against"]["plain"] == "missing" and result["verdict"] == "not decided"
    assert "plain-56 against plain-20: no results." in result["statement"]
    single = judge("residual", results("residual", residual_means(0.85, 0.80, 0.85, 0.86), seeds=1))
    assert single["verdict"] == "not decided" and single["against"]["plain"] == "too few seeds"
    rows = results("residual", residual_means(0.85, 0.85, 0.85, 0.85))
    for row in rows:                                       # plain-56 fails at every seed: counted at chance
        if (row["family"], row["size"]) == ("plain", "56"):
            row["test_accuracy"] = None
    failed = judge("residual", rows)
    assert failed["verdict"] == "holds" and failed["comparisons"][0]["difference"] == pytest.approx(0.1 - 0.85)


def test_one_function_writes_the_words():
    verdict = judge("dense", results("dense", dense_by_difference(0.03, 0.02, 0.02, 0.03)))
    stored = json.loads(json.dumps(verdict, allow_nan=False))         # as the study's summary keeps it
    assert verdict_text(stored) == verdict["statement"]
    old = {"verdict": "mixed", "statement": "On this budget the evidence is mixed: the claim holds in part only."}
    assert verdict_text(old).startswith("Judged by an earlier rule that this version no longer uses")
    for module in ("pages/studies.py", "archs/studies/cli.py"):
        source = (Path(__file__).parent.parent / module).read_text()
        assert "verdict_text(verdict)" in source and 'verdict["statement"]' not in source


# --------------------------------------------------------------------------------------------- error rates
def simulate(claim, effect, seeds, studies, rng, costs):
    """Verdict indices (into VERDICTS) of ``studies`` simulated runs of ``claim``: every net's accuracy at each
    seed independent, normal, seed SD 1; the subject family ``effect`` SDs above every baseline (residual: plain-56
    ``effect`` below plain-20, residual-56 level with residual-20)."""
    if claim == "residual":
        z = rng.standard_normal((4, studies, seeds))
        return depth_verdicts(z[1] - effect - z[0], z[3] - z[2]), z
    c = CLAIMS[claim]
    subject = rng.standard_normal((studies, sum(n.family == c.subject for n in c.nets), seeds)) + effect
    per_baseline, draws = [], {"subject": subject}
    for baseline in c.baselines:
        positions = curve_positions(c, baseline, costs)
        base = rng.standard_normal((studies, sum(n.family == baseline for n in c.nets), seeds))
        draws[baseline] = base
        d = [subject[:, i] - ((1 - t) * base[:, lo] + t * base[:, hi])
             for i, (lo, hi, t) in enumerate(p for p in positions if p)]
        per_baseline.append(np.mean(d, axis=0))
    return matched_verdicts(per_baseline), draws


def at_most(rate_limit, decided, studies):
    """The simulated rate is not above ``rate_limit`` beyond the simulation's own error (3 binomial SEs)."""
    return decided / studies <= rate_limit + 3 * math.sqrt(rate_limit * (1 - rate_limit) / studies)


STUDIES = 20_000


def test_the_rules_error_rates_by_simulation(costs):
    """With no difference a claim is decided (holds or does not hold) at most 5 % of the time; with a 2-SD
    difference (SD: one net's seed SD) at 5 seeds, dense and inception hold at least 80 % of the time. The residual
    claim is one paired comparison of two nets, whose 2-SD gap needs 7 seeds for 80 %."""
    rng = np.random.default_rng(2027)
    measured = {}
    for claim in ("residual", "dense", "inception"):
        for seeds in (3, 5):
            verdicts, _ = simulate(claim, 0.0, seeds, STUDIES, rng, costs)
            decided = int((verdicts != 2).sum())
            measured[(claim, seeds)] = decided / STUDIES
            assert at_most(0.05, decided, STUDIES), (claim, seeds, decided / STUDIES)
        power = (simulate(claim, 2.0, 7 if claim == "residual" else 5, STUDIES, rng, costs)[0] == 0).mean()
        assert power >= 0.80, (claim, power)
        measured[(claim, "power")] = power
    assert (simulate("residual", 2.0, 5, STUDIES, rng, costs)[0] == 0).mean() > 0.6


def test_judge_gives_the_simulated_verdicts(costs):
    """The simulation's vectorised test is the one judge applies: simulated studies through judge() itself."""
    rng = np.random.default_rng(5)
    for claim, effect in (("dense", 0.0), ("dense", 1.5), ("inception", 1.5), ("residual", 0.0), ("residual", 2.0)):
        verdicts, draws = simulate(claim, effect, 3, 12, rng, costs)
        nets = CLAIMS[claim].nets
        for k in range(12):
            rows = []
            for net in nets:
                if claim == "residual":
                    z = draws[[("plain", "20"), ("plain", "56"), ("residual", "20"), ("residual", "56")].index(
                        (net.family, net.size))]
                    values = z[k] - (effect if (net.family, net.size) == ("plain", "56") else 0.0)
                else:
                    family = "subject" if net.family == CLAIMS[claim].subject else net.family
                    index = [n for n in nets if n.family == net.family].index(net)
                    values = draws[family][k, index]
                _, params, mult_adds = EXPECTED[claim][(net.family, net.size)]
                rows += [{"family": net.family, "size": net.size, "seed": s, "test_accuracy": 0.5 + 0.01 * v,
                          "params": params, "mult_adds": mult_adds} for s, v in enumerate(values)]
            assert judge(claim, rows)["verdict"] == VERDICTS[verdicts[k]], (claim, effect, k)


def test_the_package_exports_resolve():
    import archs.studies

    for name in archs.studies.__all__:
        assert getattr(archs.studies, name) is not None
    assert archs.studies.CLAIMS is CLAIMS and archs.studies.judge is judge


def test_claim_results_carry_the_budget_convergence_and_failures():
    """The driver's reading of a claim's trials: failed and diverged runs come through without an accuracy, each run
    with its start record's budget and its train-loss convergence."""
    from archs.studies.driver import claim_results
    from archs.training.store import RunError

    class Run:
        def __init__(self, losses):
            self.losses = losses

        def metrics(self, kind):
            if kind == "start":
                return [{"total_steps": 150, "batch_size": 64, "train_size": 60_000}]
            return [{"step": s, "loss": v} for s, v in self.losses]

        def settings(self):
            return {"data": {"name": "fashion-mnist"}}

    class Store:
        runs = {"a": Run([(s, 2.0 - s / 100) for s in range(10, 151, 10)]),
                "b": Run([(s, 0.3 + 0.01 * (s % 20 == 0)) for s in range(10, 151, 10)])}

        def get(self, run_id):
            if run_id not in self.runs:
                raise RunError(f"no run {run_id!r}")
            return self.runs[run_id]

    def trial(run_id, status, accuracy):
        return {"family": "dense", "size": "k6", "seed": 0, "run_id": run_id, "status": status,
                "test_accuracy": accuracy, "params": 31_882, "mult_adds": 1, "train_seconds": 1.0}

    rows = claim_results([trial("a", "completed", 0.8), trial("b", "diverged", None), trial("c", "failed", None),
                          trial("d", "stopped", None), trial(None, "pending", None)], Store())
    assert [(r["status"], r["test_accuracy"]) for r in rows] == [("completed", 0.8), ("diverged", None),
                                                                  ("failed", None)]
    assert {k: rows[0][k] for k in ("steps", "batch_size", "train_size", "data", "converged")} == {
        "steps": 150, "batch_size": 64, "train_size": 60_000, "data": "fashion-mnist", "converged": False}
    assert rows[1]["converged"] is True and "converged" not in rows[2]      # run c was deleted
    assert claim_results([trial("a", "completed", 0.8)])[0].keys() >= {"family", "size", "seed", "test_accuracy"}
