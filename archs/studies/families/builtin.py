"""The three claims of the seed articles (what each says and how its nets are sized: :mod:`.base`'s text), each
beside the function that makes its networks: ``residual`` (He et al. 2016), ``dense`` (Huang et al. 2017) and
``inception`` (Szegedy et al. 2015)."""

from __future__ import annotations

import dataclasses

from archs.presets import PRESETS

from .base import (
    CHANNELS,
    CLASSES,
    CONVERGENCE_RULE,
    DEGRADATION_NETS,
    DEPTH_RULE,
    FULL_TEST,
    MATCHED_BUDGET,
    MATCHED_NETS,
    MATCHED_RULE,
    RESIDUAL_STEPS,
    SAME_TRAINING,
    SIZE,
    Budget,
    Claim,
    ClaimNet,
    dense_net,
    inception_net,
    register_claim,
    residual_net,
    rule,
)

__all__ = ["dense_nets", "inception_nets", "residual_nets"]

DENSE_GROWTH = (6, 8, 12, 16)
# ResNet-20 (and plain-20) widths: each net has at most 2x the parameters and 2x the mult-adds of the one before
# (1.55, 1.95, 1.65, 1.77, 1.77x), so no matched comparison interpolates across more than a 2x gap
RESIDUAL_WIDTHS = (4, 5, 7, 9, 12, 16)
DENSE_RESIDUAL_WIDTHS = RESIDUAL_WIDTHS
INCEPTION_WIDTHS = (2, 4, 6)
INCEPTION_BASELINE_WIDTHS = RESIDUAL_WIDTHS
# plain-14, the Inception nets' depth: mult-adds 1.75, 1.87, 1.84, 1.78x apart, from below inception w2 to
# above inception w6
PLAIN14_WIDTHS = (6, 8, 11, 15, 20)
PLAIN14 = "plain-14"


# --------------------------------------------------------------------------------------------- residual
def residual_nets() -> list[ClaimNet]:
    """The degradation experiment's four nets for Fashion-MNIST: plain 20, plain 56, residual 20, residual 56."""
    return [ClaimNet(family, size, dataclasses.replace(PRESETS[preset], in_channels=CHANNELS, input_size=SIZE,
                                                       num_classes=CLASSES))
            for family, size, preset in DEGRADATION_NETS]


RESIDUAL_BUDGET = Budget(steps=RESIDUAL_STEPS, schedule="constant", augment="auto", log_every=10)

register_claim(Claim(
    "residual",
    "Do deeper plain nets end up less accurate than shallower ones, while deeper residual nets do not "
    "(He et al. 2016, Fig. 1)?",
    tuple(residual_nets()), "params", "residual", ("plain",), RESIDUAL_BUDGET,
    rule(DEPTH_RULE, RESIDUAL_BUDGET.precision_text,
         SAME_TRAINING.format(schedule="constant", augment="the data set's usual augmentation"),
         FULL_TEST, CONVERGENCE_RULE), kind="depth"))


# --------------------------------------------------------------------------------------------- dense
def dense_nets() -> list[ClaimNet]:
    """DenseNet-BC at k = 6, 8, 12, 16 and ResNet-20 at w = 4, 5, 7, 9, 12, 16."""
    return ([ClaimNet("dense", f"k{k}", dense_net(k)) for k in DENSE_GROWTH]
            + [ClaimNet("residual", f"w{w}", residual_net(w)) for w in DENSE_RESIDUAL_WIDTHS])


register_claim(Claim(
    "dense",
    "At the same number of parameters, are DenseNet-BC nets more accurate than residual nets "
    "(Huang et al. 2017)?",
    tuple(dense_nets()), "params", "dense", ("residual",), MATCHED_BUDGET,
    rule(MATCHED_RULE.format(subject="dense", baseline="residual", x="params"),
         MATCHED_NETS.format(baseline="residual", x="parameters"), MATCHED_BUDGET.precision_text,
         SAME_TRAINING.format(schedule="cosine", augment="no augmentation"), FULL_TEST,
         CONVERGENCE_RULE)))


# --------------------------------------------------------------------------------------------- inception
def inception_nets() -> list[ClaimNet]:
    """Inception at w = 2, 4, 6; ResNet-20 and plain-20 at w = 4, 5, 7, 9, 12, 16; and the depth-matched control,
    plain-14 (He et al.'s CIFAR plain net with 2 blocks a stage: 14 layers, as deep as the Inception nets), at
    w = 6, 8, 11, 15, 20."""
    return ([ClaimNet("inception", f"w{w}", inception_net(w)) for w in INCEPTION_WIDTHS]
            + [ClaimNet("residual", f"w{w}", residual_net(w)) for w in INCEPTION_BASELINE_WIDTHS]
            + [ClaimNet("plain", f"w{w}", residual_net(w, skip=False)) for w in INCEPTION_BASELINE_WIDTHS]
            + [ClaimNet(PLAIN14, f"w{w}", residual_net(w, skip=False, blocks=2)) for w in PLAIN14_WIDTHS])


register_claim(Claim(
    "inception",
    "At the same computation (mult-adds per image), are Inception nets more accurate than plain and "
    "residual nets (Szegedy et al. 2015)?",
    tuple(inception_nets()), "mult_adds", "inception", ("plain", "residual", PLAIN14), MATCHED_BUDGET,
    rule(MATCHED_RULE.format(subject="inception", baseline="plain, residual and plain-14", x="mult_adds"),
         "The Inception nets are 14 layers deep along their longest path; plain-14 (He et al.'s CIFAR plain "
         "net with two blocks a stage) is the depth-matched control, so a gap against it is not a gap of "
         "depth, and plain-20 and ResNet-20 show what six more layers (and skips) add.",
         MATCHED_NETS.format(baseline="plain, residual and plain-14", x="mult-adds"),
         MATCHED_BUDGET.precision_text, SAME_TRAINING.format(schedule="cosine", augment="no augmentation"),
         FULL_TEST, CONVERGENCE_RULE)))
