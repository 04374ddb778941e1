"""The three claims' networks (exact sizes, valid, overlapping ranges) and how a claim is judged."""

import dataclasses
import math

import pytest

from archs import NetSpec, build_model
from archs.studies.families import (
    CLAIM_STEPS,
    CLAIMS,
    DEGRADATION_NETS,
    RESIDUAL_STEPS,
    Budget,
    Claim,
    ClaimNet,
    dense_net,
    inception_net,
    judge,
    net_costs,
    residual_net,
)
from archs.training.config import DataConfig, TrainConfig

# (family, size) -> (spec name, parameters, mult-adds per image), per claim
EXPECTED = {
    "residual": {
        ("plain", "20"): ("cifar-plain20", 269_434, 30_822_634),
        ("plain", "56"): ("cifar-plain56", 852_730, 95_853_418),
        ("residual", "20"): ("cifar-resnet20", 269_434, 30_822_634),
        ("residual", "56"): ("cifar-resnet56", 852_730, 95_853_418),
    },
    "dense": {
        ("dense", "k6"): ("densenet-bc-k6", 31_882, 1_337_998),
        ("dense", "k8"): ("densenet-bc-k8", 55_530, 2_339_930),
        ("dense", "k12"): ("densenet-bc-k12", 122_362, 5_177_698),
        ("dense", "k16"): ("densenet-bc-k16", 215_242, 9_127_338),
        ("residual", "w4"): ("resnet20-w4", 17_254, 556_066),
        ("residual", "w8"): ("resnet20-w8", 67_906, 2_166_778),
        ("residual", "w12"): ("resnet20-w12", 151_966, 4_832_146),
        ("residual", "w16"): ("resnet20-w16", 269_434, 8_552_170),
    },
    "inception": {
        ("inception", "w2"): ("inception-w2", 28_178, 741_694),
        ("inception", "w4"): ("inception-w4", 109_938, 2_851_250),
        ("inception", "w6"): ("inception-w6", 245_290, 6_328_678),
        ("residual", "w4"): ("resnet20-w4", 17_254, 556_066),
        ("residual", "w8"): ("resnet20-w8", 67_906, 2_166_778),
        ("residual", "w16"): ("resnet20-w16", 269_434, 8_552_170),
        ("plain", "w4"): ("plain20-w4", 17_254, 556_066),
        ("plain", "w8"): ("plain20-w8", 67_906, 2_166_778),
        ("plain", "w16"): ("plain20-w16", 269_434, 8_552_170),
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
            assert (net.spec.in_channels, net.spec.input_size, net.spec.num_classes) == (1, 28, 10)
            net.spec.plan()
            assert NetSpec.from_json(net.spec.to_json()) == net.spec
    assert (CLAIMS["dense"].subject, CLAIMS["dense"].baselines, CLAIMS["dense"].objective_x) == (
        "dense", ("residual",), "params")
    assert (CLAIMS["inception"].subject, CLAIMS["inception"].baselines, CLAIMS["inception"].objective_x) == (
        "inception", ("plain", "residual"), "mult_adds")
    assert CLAIMS["inception"].families == ("inception", "residual", "plain")
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
    for spec in (dense_net(6), inception_net(2), residual_net(4), residual_net(4, skip=False)):
        assert sum(p.numel() for p in build_model(spec).parameters()) == spec.num_params()


def test_shapes_of_the_families():
    assert [p.out_size for p in dense_net(12).plan()] == [(14, 14), (7, 7), (3, 3), (3, 3), (1, 1)]
    assert [p.out_size for p in inception_net(4).plan()] == [(14, 14), (7, 7), (3, 3), (3, 3), (1, 1)]
    assert [p.out_size for p in residual_net(8).plan()] == [(14, 14), (14, 14), (7, 7), (4, 4), (1, 1)]
    assert [p.out_channels for p in dense_net(12).plan()][:4] == [24, 24, 36, 132]  # halved, halved
    assert [p.out_channels for p in inception_net(4).plan()][:4] == [16, 32, 64, 128]  # 8u per module
    assert residual_net(8, skip=False) == dataclasses.replace(residual_net(8).without_skips(), name="plain20-w8")


def test_ranges_overlap_so_nets_can_be_matched(costs):
    def xs(claim, family, index):
        return [costs[n.spec][index] for n in CLAIMS[claim].nets if n.family == family]

    dense, residual = xs("dense", "dense", 0), xs("dense", "residual", 0)
    assert min(residual) < 20_000 and max(residual) > 250_000          # about 20k to 300k parameters
    assert all(min(residual) < p < max(residual) for p in dense)       # every dense net can be compared
    incep = xs("inception", "inception", 1)
    for family in ("residual", "plain"):
        base = xs("inception", family, 1)
        assert all(min(base) < m < max(base) for m in incep)


def test_the_residual_claim_is_the_degradation_experiment():
    from archs.studies.experiments import DEGRADATION_PRESETS, DegradationSettings, degradation_plan

    settings = DegradationSettings(data="fashion-mnist")
    assert tuple(preset for _, _, preset in DEGRADATION_NETS) == DEGRADATION_PRESETS
    assert [(n.spec.name, n.spec) for n in CLAIMS["residual"].nets] == degradation_plan(settings)
    budget = CLAIMS["residual"].budget  # the experiment's settings, on a shorter budget to run 3 seeds
    for seed in (0, 2):
        assert budget.train_config(seed) == DegradationSettings(seed=seed, steps=RESIDUAL_STEPS).train_config()
    assert budget.data_config() == settings.data_config()


def test_budgets_and_runs():
    budget = CLAIMS["dense"].budget
    assert budget == Budget(steps=CLAIM_STEPS, test_limit=2000) == CLAIMS["inception"].budget and budget.seeds == 3
    config = budget.train_config(2)
    assert config == TrainConfig(epochs=1000, max_steps=CLAIM_STEPS, batch_size=64, lr=1e-3, optimizer="adam",
                                 schedule="cosine", augment="none", grad_every=0, seed=2)
    assert budget.data_config("/data") == DataConfig(name="fashion-mnist", root="/data", test_limit=2000)
    runs = CLAIMS["dense"].runs()
    assert len(runs) == 3 * 8
    assert [(net.label, seed) for net, seed, _ in runs[:9]] == [(n.label, 0) for n in CLAIMS["dense"].nets] + [
        ("dense k6", 1)]
    assert all(config.seed == seed for _, seed, config in runs)


# --------------------------------------------------------------------------------------------- judging
def results(claim, means, sd=0.005, seeds=3, with_costs=True, **extra):
    """Per-run results with accuracies mean - sd, mean, mean + sd (sample SD exactly ``sd``)."""
    rows = []
    for net in CLAIMS[claim].nets:
        mean = means[(net.family, net.size)]
        _, params, mult_adds = EXPECTED[claim][(net.family, net.size)]
        offsets = [-sd, 0.0, sd][:seeds] if seeds <= 3 else [0.0] * seeds
        for seed, offset in enumerate(offsets):
            row = {"family": net.family, "size": net.size, "seed": seed, "test_accuracy": mean + offset,
                   "train_seconds": 10.0 + seed}
            if with_costs:
                row.update(params=params, mult_adds=mult_adds)
            row.update(extra)
            rows.append(row)
    return rows


RESIDUAL_CURVE = {("residual", "w4"): 0.80, ("residual", "w8"): 0.84, ("residual", "w12"): 0.86,
                  ("residual", "w16"): 0.87}


def log_interp(x, x0, y0, x1, y1):
    t = (math.log(x) - math.log(x0)) / (math.log(x1) - math.log(x0))
    return y0 + t * (y1 - y0)


def dense_means(k6, k8, k12, k16):
    return {**RESIDUAL_CURVE, ("dense", "k6"): k6, ("dense", "k8"): k8, ("dense", "k12"): k12, ("dense", "k16"): k16}


def test_dense_holds_when_every_dense_net_is_above_the_residual_curve_by_more_than_the_spread():
    verdict = judge("dense", results("dense", dense_means(0.85, 0.86, 0.88, 0.89)))
    assert verdict["verdict"] == "holds" and verdict["against"] == {"residual": "holds"}
    assert [c["outcome"] for c in verdict["comparisons"]] == ["above"] * 4
    first = verdict["comparisons"][0]
    expected = log_interp(31_882, 17_254, 0.80, 67_906, 0.84)
    assert first["net"] == "dense k6" and first["against"] == "residual" and first["x"] == 31_882
    assert first["baseline_accuracy"] == pytest.approx(expected, abs=1e-12)
    assert first["difference"] == pytest.approx(0.85 - expected, abs=1e-12)
    assert first["margin"] == pytest.approx(0.01) and first["sd"] == pytest.approx(0.005)
    assert verdict["runs"] == 24 and verdict["failed"] == [] and verdict["ignored"] == 0
    nets = {n["label"]: n for n in verdict["nets"]}
    assert nets["dense k6"]["seeds"] == 3 and nets["dense k6"]["mean"] == pytest.approx(0.85)
    assert (nets["dense k6"]["min"], nets["dense k6"]["max"]) == pytest.approx((0.845, 0.855))
    assert nets["residual w16"]["params"] == 269_434 and nets["residual w16"]["train_seconds"] == 11.0
    text = verdict["statement"]
    assert text.startswith(CLAIMS["dense"].question + " From 24 runs:")
    assert "k6 (85.0 % against 81.8 %, +3.2 points, seed spread 1.0 points)" in text
    assert text.endswith("On this budget the claim holds.")


def test_interpolation_is_in_log_parameters():
    # dense k6 (31,882) lies 45 % of the way from w4 to w8 in log space but 29 % in linear: the two readings
    # of the curve (81.79 % and 81.16 %) straddle 81.5 %
    means = dense_means(0.815, 0.90, 0.90, 0.90)
    verdict = judge("dense", results("dense", means, sd=0.001))
    k6 = verdict["comparisons"][0]
    assert k6["outcome"] == "below" and k6["baseline_accuracy"] == pytest.approx(0.81793, abs=1e-5)
    # the seed SDs are interpolated the same way
    rows = [r for r in results("dense", means, sd=0.001) if r["size"] != "w8"]
    rows += [r for r in results("dense", means, sd=0.003) if r["size"] == "w8"]
    k6 = judge("dense", rows)["comparisons"][0]
    t = math.log(31_882 / 17_254) / math.log(67_906 / 17_254)
    assert k6["baseline_sd"] == pytest.approx(0.001 + t * 0.002) and k6["margin"] == pytest.approx(
        0.002 + t * 0.002)


def test_dense_does_not_hold_when_every_dense_net_is_below():
    verdict = judge("dense", results("dense", dense_means(0.75, 0.78, 0.80, 0.81)))
    assert verdict["verdict"] == "does not hold"
    assert [c["outcome"] for c in verdict["comparisons"]] == ["below"] * 4
    assert verdict["statement"].endswith("On this budget the claim does not hold.")


def test_overlapping_seed_spreads_are_inconclusive():
    verdict = judge("dense", results("dense", dense_means(0.82, 0.84, 0.86, 0.87), sd=0.02))
    assert verdict["verdict"] == "inconclusive"
    assert [c["outcome"] for c in verdict["comparisons"]] == ["within spread"] * 4
    assert "within the seed spread at k6" in verdict["statement"]
    assert "inconclusive: the differences lie within the spread between seeds" in verdict["statement"]


def test_mixed_results():
    verdict = judge("dense", results("dense", dense_means(0.86, 0.80, 0.86, 0.90)))
    assert [c["outcome"] for c in verdict["comparisons"]] == ["above", "below", "within spread", "above"]
    assert verdict["verdict"] == "mixed"


def test_one_seed_cannot_decide():
    verdict = judge("dense", results("dense", dense_means(0.95, 0.95, 0.95, 0.95), seeds=1))
    assert [c["outcome"] for c in verdict["comparisons"]] == ["too few seeds"] * 4
    assert verdict["verdict"] == "inconclusive" and verdict["comparisons"][0]["margin"] is None
    assert verdict["nets"][0]["sd"] is None


def test_nets_outside_the_baseline_range_are_not_compared():
    rows = results("dense", dense_means(0.95, 0.95, 0.95, 0.95))
    for row in rows:
        if row["size"] == "k16":
            row["params"] = 1_000_000                  # beyond residual w16: no extrapolation
    verdict = judge("dense", rows)
    assert [c["outcome"] for c in verdict["comparisons"]] == ["above"] * 3 + ["outside range"]
    assert verdict["verdict"] == "holds"
    assert "; outside its range of parameters (not compared) at k16; against them the claim holds." in \
        verdict["statement"]


def test_x_is_computed_from_the_spec_when_results_lack_it():
    verdict = judge("dense", results("dense", dense_means(0.85, 0.86, 0.88, 0.89), with_costs=False))
    assert [c["x"] for c in verdict["comparisons"]] == [31_882, 55_530, 122_362, 215_242]
    assert verdict["verdict"] == "holds"


def test_failed_and_unknown_runs():
    rows = results("dense", dense_means(0.85, 0.86, 0.88, 0.89))
    rows.append({"family": "dense", "size": "k6", "seed": 3, "test_accuracy": None})
    rows.append({"family": "dense", "size": "k8", "seed": 3, "test_accuracy": float("nan")})
    rows.append({"family": "vgg", "size": "16", "seed": 0, "test_accuracy": 0.99})
    rows = [r for r in rows if not (r["family"] == "residual" and r["size"] == "w12")]
    verdict = judge(CLAIMS["dense"], rows)
    assert verdict["failed"] == ["dense k6 seed 3", "dense k8 seed 3"] and verdict["ignored"] == 1
    assert verdict["runs"] == 21
    assert "From 21 runs (2 without a test accuracy left out); no results for residual w12:" in verdict["statement"]
    k12 = verdict["comparisons"][2]                    # now read between w8 and w16
    assert k12["baseline_accuracy"] == pytest.approx(log_interp(122_362, 67_906, 0.84, 269_434, 0.87))
    assert judge("dense", [])["verdict"] == "inconclusive"
    with pytest.raises(ValueError, match="unknown claim 'sparse' \\(known: residual, dense, inception\\)"):
        judge("sparse", [])


def inception_means(inception, plain, residual):
    out = {}
    for family, values, sizes in (("inception", inception, ("w2", "w4", "w6")), ("plain", plain, ("w4", "w8", "w16")),
                                  ("residual", residual, ("w4", "w8", "w16"))):
        out.update({(family, size): v for size, v in zip(sizes, values)})
    return out


def test_inception_is_judged_against_each_baseline():
    means = inception_means((0.84, 0.87, 0.89), plain=(0.78, 0.82, 0.85), residual=(0.86, 0.90, 0.92))
    verdict = judge("inception", results("inception", means))
    assert verdict["against"] == {"plain": "holds", "residual": "does not hold"}
    assert verdict["verdict"] == "mixed"
    assert [(c["net"], c["against"], c["outcome"]) for c in verdict["comparisons"]] == [
        ("inception w2", "plain", "above"), ("inception w4", "plain", "above"), ("inception w6", "plain", "above"),
        ("inception w2", "residual", "below"), ("inception w4", "residual", "below"),
        ("inception w6", "residual", "below")]
    w4 = verdict["comparisons"][1]
    assert w4["x"] == 2_851_250
    assert w4["baseline_accuracy"] == pytest.approx(log_interp(2_851_250, 2_166_778, 0.82, 8_552_170, 0.85))
    assert "From 27 runs: against the plain nets at equal mult-adds, the inception nets were above the plain curve " \
        "at w2 (84.0 % against 78.8 %" in verdict["statement"]
    assert "; against them the claim holds. Against the residual nets at equal mult-adds, the inception nets were " \
        "below it at w2" in verdict["statement"]
    both = judge("inception", results("inception", inception_means((0.95,) * 3, (0.8,) * 3, (0.8,) * 3)))
    assert both["verdict"] == "holds"


def residual_means(plain20, plain56, residual20, residual56):
    return {("plain", "20"): plain20, ("plain", "56"): plain56, ("residual", "20"): residual20,
            ("residual", "56"): residual56}


@pytest.mark.parametrize("means, against, verdict", [
    ((0.85, 0.80, 0.85, 0.87), {"plain": "deeper worse", "residual": "deeper better"}, "holds"),
    ((0.85, 0.80, 0.85, 0.853), {"plain": "deeper worse", "residual": "within spread"}, "holds"),
    ((0.85, 0.80, 0.85, 0.82), {"plain": "deeper worse", "residual": "deeper worse"}, "does not hold"),
    ((0.80, 0.85, 0.85, 0.87), {"plain": "deeper better", "residual": "deeper better"}, "does not hold"),
    ((0.85, 0.847, 0.85, 0.87), {"plain": "within spread", "residual": "deeper better"}, "inconclusive"),
    ((0.85, 0.847, 0.85, 0.80), {"plain": "within spread", "residual": "deeper worse"}, "does not hold"),
])
def test_the_residual_claim(means, against, verdict):
    result = judge("residual", results("residual", residual_means(*means)))
    assert result["against"] == against and result["verdict"] == verdict
    assert result["comparisons"][0]["net"] == "plain 56" and result["comparisons"][0]["against"] == "plain 20"
    assert result["comparisons"][0]["difference"] == pytest.approx(means[1] - means[0])


def test_the_residual_claim_statement_and_missing_nets():
    result = judge("residual", results("residual", residual_means(0.85, 0.80, 0.85, 0.87), train_loss=0.4))
    assert ("plain-56 was less accurate than plain-20 (80.0 % against 85.0 %, -5.0 points, seed spread 1.0 "
            "points). residual-56 was more accurate than residual-20 (87.0 % against 85.0 %, +2.0 points, seed spread "
            "1.0 points). On this budget the claim holds.") in result["statement"]
    assert result["nets"][0]["train_loss"] == pytest.approx(0.4)
    rows = [r for r in results("residual", residual_means(0.85, 0.80, 0.85, 0.86)) if r["size"] != "56"
            or r["family"] != "plain"]
    result = judge("residual", rows)
    assert result["against"]["plain"] == "missing" and result["verdict"] == "inconclusive"
    assert "plain-56 against plain-20: no results." in result["statement"]
    single = judge("residual", results("residual", residual_means(0.85, 0.80, 0.85, 0.86), seeds=1))
    assert single["verdict"] == "inconclusive" and single["against"]["plain"] == "too few seeds"


def test_the_package_exports_resolve():
    import archs.studies

    for name in archs.studies.__all__:
        assert getattr(archs.studies, name) is not None
    assert archs.studies.CLAIMS is CLAIMS and archs.studies.judge is judge
