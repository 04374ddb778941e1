"""What a claim is (:class:`Claim`, its nets, its :class:`Budget`, its rule), where claims are registered
(:data:`CLAIMS`, :func:`register_claim`), the nets they are built from, and how a claim is judged from its runs.
The three claims of the seed articles (:mod:`.builtin`), as networks for Fashion-MNIST (1 x 28 x 28, 10 classes):

- ``residual`` (He et al. 2016, Fig. 1): deeper *plain* nets fit worse than shallower ones, deeper
  *residual* nets do not. The degradation experiment's four nets (``cifar-plain20``, ``cifar-plain56``,
  ``cifar-resnet20``, ``cifar-resnet56``) adapted to the data exactly as
  :func:`archs.studies.experiments.degradation_plan` adapts them (1 channel, 28 x 28; the tests check
  they are equal), on its optimizer (Adam 1e-3 at a constant rate, batch 64), 60 steps, tested on the whole
  test set.
- ``dense`` (Huang et al. 2017): at the same number of parameters, DenseNet-BC nets are more accurate
  than residual nets. Four DenseNet-BC nets (bottleneck layers of width 4k, compression 0.5, blocks of
  2, 4 and 8 layers: more layers where the map is small, as DenseNet-121's 6, 12, 24, 16) at growth
  rates k = 6, 8, 12, 16, against He et al.'s ResNet-20 (three stages of 3 basic blocks, widths w, 2w,
  4w, zero-padding shortcuts) at widths w = 4, 5, 7, 9, 12, 16 (neighbours at most 2x apart in parameters).
- ``inception`` (Szegedy et al. 2015): at the same computation, Inception nets are more accurate than
  nets without parallel branches. Three Inception nets (three stages of two modules; branch widths in
  GoogLeNet 3a's proportions: 1x1 2u, 1x1 3u then 3x3 4u, 1x1 u/2 then a real 5x5 u, pool then 1x1 u,
  with u = w, 2w, 4w per stage; 14 layers deep along the longest path) at w = 2, 4, 6, against ResNet-20
  and its plain twin (He et al.'s plain-20) at w = 4, 5, 7, 9, 12, 16, and the depth-matched control
  plain-14 (two blocks a stage, 14 layers) at w = 6, 8, 11, 15, 20 (neighbours at most 2x apart in mult-adds).

Issue 19 removed three confounds of the matched claims. (1) Every claim trains every net at one precision and
memory layout, float32 in NCHW (``Budget.amp``/``channels_last``, recorded in the study's definition), not the
per-network timing probe of ``auto``. (2) The nets take the images resized to 32 x 32: the shared stem (a 3x3
conv + BatchNorm + ReLU and a 2x2 max-pool) gives 16 x 16, and every family halves it exactly, 16 -> 8 -> 4. At
28 x 28 the stem gave 14 -> 7, and DenseNet's 2x2 average-pool transition and Inception's 2x2 max-pool dropped
a row and a column (7 -> 3) where ResNet's padded strided conv kept them (7 -> 4). (3) Inception is compared
with a plain net of its own depth too. The matched claims' nets use Kaiming-normal initialisation; their
budget is 150 steps of Adam 1e-3 with a cosine schedule at batch 64, no augmentation, 3 seeds.

Sizes (exact; the tests assert them, counted on the built nets). Mult-adds are per image
(``archs.summarize(spec).mult_adds``, batch 1):

=========  ==============  ===============  =========  ==========
claim      net             spec                params   mult-adds
=========  ==============  ===============  =========  ==========
residual   plain 20        cifar-plain20      269,434  30,822,634
residual   plain 56        cifar-plain56      852,730  95,853,418
residual   residual 20     cifar-resnet20     269,434  30,822,634
residual   residual 56     cifar-resnet56     852,730  95,853,418
dense      dense k6        densenet-bc-k6      31,882   1,822,630
dense      dense k8        densenet-bc-k8      55,530   3,189,978
dense      dense k12       densenet-bc-k12    122,362   7,064,386
dense      dense k16       densenet-bc-k16    215,242  12,458,410
both       residual w4     resnet20-w4         17,254     664,066
both       residual w5     resnet20-w5         26,785   1,025,920
both       residual w7     resnet20-w7         52,111   1,984,636
both       residual w9     resnet20-w9         85,789   3,256,696
both       residual w12    resnet20-w12       151,966   5,752,306
both       residual w16    resnet20-w16       269,434  10,176,490
inception  inception w2    inception-w2        28,178   1,055,006
inception  inception w4    inception-w4       109,938   4,069,938
inception  inception w6    inception-w6       245,290   9,044,806
inception  plain w4..w16   plain20-w*         (as resnet20-w* at the same width)
inception  plain-14 w6     plain14-w6          24,628     968,278
inception  plain-14 w8     plain14-w8          43,490   1,696,538
inception  plain-14 w11    plain14-w11         81,773   3,169,088
inception  plain-14 w15    plain14-w15        151,465   5,842,120
inception  plain-14 w20    plain14-w20        268,550  10,323,890
=========  ==============  ===============  =========  ==========

Test on the whole test set: measured on this project's 2-core development machine (one thread, under ``nice``,
other engineers' jobs running, random data of the claims' shapes, 2026-12-05), the largest matched-claim net,
inception w6, takes 510 ms per training step at batch 64 (77 s for 150 steps) and 36 s to test 10,000 images at
the evaluation batch of 256 (8 s for 2,000): the whole test set makes its run about 1.3x as long, not 2x. The
residual claim's plain-56 at 28 x 28: 2.3 s per step (139 s for 60 steps) and about 190 s for 10,000 test
images (38 s for 2,000): 1.86x, still under double, so every claim now tests on all 10,000 images
(``test_limit`` None; it was 2,000).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from archs._registry import add
from archs.spec import HeadSpec, NetSpec
from archs.stages import DenseSpec, InceptionSpec, PlainSpec, ResidualSpec
from archs.training.config import DataConfig, TrainConfig

__all__ = ["Budget", "CLAIMS", "CLAIM_STEPS", "CONVERGENCE_RULE", "Claim", "ClaimNet", "DEGRADATION_NETS", "DEPTH_RULE",
           "FULL_TEST", "MATCHED_BUDGET", "MATCHED_NETS", "MATCHED_RULE", "MATCHED_SIZE", "MAX_GAP", "RESIDUAL_STEPS",
           "SAME_TRAINING", "VERDICTS", "converged", "curve_positions", "dense_net", "depth_verdicts", "inception_net",
           "judge", "matched_net", "matched_stem", "matched_verdicts", "net_costs", "register_claim", "residual_net",
           "rule", "verdict_text"]

CHANNELS, SIZE, CLASSES = 1, 28, 10          # Fashion-MNIST
# The matched claims' nets take the images resized to 32 x 32, so every family halves its map 32 -> 16 -> 8 -> 4
# with nothing dropped: at 28 the stem gave 14 -> 7, and DenseNet's 2x2 average-pool transition (and a 2x2
# max-pool) then dropped a row and a column (7 -> 3) where ResNet's padded strided conv kept them (7 -> 4)
MATCHED_SIZE = 32
DATA = "fashion-mnist"
# archs.studies.experiments.DEGRADATION_PRESETS, named here as (family, size): that module imports this one,
# not the other way round
DEGRADATION_NETS = (("plain", "20", "cifar-plain20"), ("plain", "56", "cifar-plain56"),
                    ("residual", "20", "cifar-resnet20"), ("residual", "56", "cifar-resnet56"))

_POOL2 = dict(pool="max", pool_kernel=2, pool_stride=2)


# --------------------------------------------------------------------------------------------- nets
@dataclass(frozen=True)
class ClaimNet:
    """One network of a claim: ``family`` (``dense``, ``residual``, ``plain``, ``inception``) and ``size``
    (``k12``, ``w8``, ``56``) name it in results."""

    family: str
    size: str
    spec: NetSpec

    @property
    def label(self) -> str:
        return f"{self.family} {self.size}"


def matched_stem(channels: int) -> tuple[PlainSpec, ...]:
    """The matched claims' shared stem: 3x3 conv + BatchNorm + ReLU, then a 2x2 max-pool: 32 x 32 -> 16 x 16."""
    return (PlainSpec(channels=channels, kernel_size=3, padding=1, **_POOL2),)


def matched_net(name: str, stem: tuple, stages: tuple, head: HeadSpec = HeadSpec()) -> NetSpec:
    """A matched claim's net: Fashion-MNIST's 1 channel and 10 classes at 32 x 32, Kaiming-normal initialisation."""
    return NetSpec(name=name, in_channels=CHANNELS, num_classes=CLASSES, input_size=MATCHED_SIZE,
                   init="kaiming_normal", stem=stem, stages=stages, head=head)


def residual_net(width: int, skip: bool = True, blocks: int = 3) -> NetSpec:
    """He et al.'s CIFAR ResNet-(6n+2) (n = ``blocks``: 3 gives ResNet-20, 2 ResNet-14) at widths ``width``, 2x,
    4x, zero-padding shortcuts, after the shared stem (32 -> 16 -> 8 -> 4); ``skip=False`` gives its plain twin."""
    depth = 6 * blocks + 2
    return matched_net(f"{'resnet' if skip else 'plain'}{depth}-w{width}", matched_stem(width), tuple(
        ResidualSpec(blocks=blocks, channels=c, stride=1 if i == 0 else 2, shortcut="zero_pad", skip=skip)
        for i, c in enumerate((width, 2 * width, 4 * width))))


def dense_net(growth_rate: int, layers: tuple[int, ...] = (2, 4, 8)) -> NetSpec:
    """DenseNet-BC: a stem of 2k channels, dense blocks of bottleneck layers (1x1 to 4k, then 3x3 to k),
    transitions halving the channels (and the map: 16 -> 8 -> 4, no row dropped) after every block but the last,
    then DenseNet's final BatchNorm + ReLU before the global pool."""
    k = growth_rate
    last = len(layers) - 1
    return matched_net(f"densenet-bc-k{k}", matched_stem(2 * k), tuple(
        DenseSpec(layers=n, growth_rate=k, bottleneck=True, bn_size=4, compression=0.5, transition=i < last)
        for i, n in enumerate(layers)), HeadSpec(norm_activation=True))


def inception_net(width: int, modules: int = 2) -> NetSpec:
    """Three Inception stages of ``modules`` modules each, branch widths in GoogLeNet 3a's proportions at
    u = w, 2w, 4w (a module outputs 8u channels), a 2x2 max-pool after the first two stages (16 -> 8 -> 4),
    after a shared stem of 4w channels. Its depth, counted along the longest path in weighted layers, is
    14: the stem, two per module (a 1x1 reduction, then the 3x3 or 5x5) and the classifier."""
    def stage(u: int, pool: bool) -> InceptionSpec:
        return InceptionSpec(modules=modules, branch1x1=2 * u, branch3x3_reduce=3 * u, branch3x3=4 * u,
                             branch5x5_reduce=max(u // 2, 1), branch5x5=u, branch5x5_kernel=5,
                             branch_pool_type="max", branch_pool_projection=u, **(_POOL2 if pool else {}))

    w = width
    return matched_net(f"inception-w{w}", matched_stem(4 * w),
                       (stage(w, True), stage(2 * w, True), stage(4 * w, False)))


MAX_GAP = 2.0                    # the widest ratio of x between two neighbouring baseline nets


def net_costs(spec: NetSpec) -> tuple[int, int]:
    """(parameters, mult-adds per image) of a network: :meth:`NetSpec.num_params` and
    ``archs.summarize(spec).mult_adds`` at batch size 1 (torchinfo; imports torch's inspectors)."""
    from archs.inspect import summarize

    return spec.num_params(), summarize(spec).mult_adds


# --------------------------------------------------------------------------------------------- claims
@dataclass(frozen=True)
class Budget:
    """How every run of a claim trains: the same fixed number of steps for every net and seed."""

    steps: int = 300
    batch_size: int = 64
    seeds: int = 3
    lr: float = 1e-3
    optimizer: str = "adam"
    schedule: str = "cosine"
    augment: str = "none"
    log_every: int = 20
    data: str = DATA
    test_limit: int | None = None
    # one precision and one memory layout for every net of a claim, fixed (never "auto", where a timing probe
    # would choose per network): float32 (no bf16 autocast) in the default NCHW layout
    amp: str = "off"
    channels_last: str = "off"

    def __post_init__(self) -> None:
        if self.amp not in ("off", "bf16") or self.channels_last not in ("off", "on"):
            raise ValueError(f"a claim's precision and memory layout are fixed, not chosen per net: amp off or "
                             f"bf16, channels_last off or on (got {self.amp!r}, {self.channels_last!r})")

    @property
    def precision_text(self) -> str:
        precision = "float32 (no bf16 autocast)" if self.amp == "off" else "bf16 autocast"
        layout = "NCHW (channels_last off)" if self.channels_last == "off" else "channels-last"
        return (f"Every net of the claim trains in {precision} in the {layout} memory layout, fixed for the claim "
                f"and recorded in the study's definition (amp={self.amp}, channels_last={self.channels_last}), "
                "never chosen per network by a timing probe.")

    def train_config(self, seed: int = 0) -> TrainConfig:
        return TrainConfig(epochs=1000, max_steps=self.steps, batch_size=self.batch_size, lr=self.lr,
                           optimizer=self.optimizer, schedule=self.schedule, warmup_steps=0, augment=self.augment,
                           log_every=self.log_every, grad_every=0, seed=seed, amp=self.amp,
                           channels_last=self.channels_last)

    def data_config(self, root: str | None = None) -> DataConfig:
        return DataConfig(name=self.data, root=root, test_limit=self.test_limit)


@dataclass(frozen=True)
class Claim:
    """A claim of a seed article as a set of networks, a budget and a rule for judging it (:func:`judge`).

    ``subject`` is the family the claim is about, ``baselines`` the families it is compared with, and
    ``objective_x`` the axis along which nets are matched (``params`` or ``mult_adds``). ``kind`` is how it
    is judged: ``matched`` (each subject net against the baseline curves at its x) or ``depth`` (the
    residual claim: each family's 56-layer net against its 20-layer one)."""

    name: str
    question: str
    nets: tuple[ClaimNet, ...]
    objective_x: str
    subject: str
    baselines: tuple[str, ...]
    budget: Budget = field(default_factory=Budget)
    rule: str = ""
    kind: str = "matched"

    def net(self, family: str, size: str) -> ClaimNet:
        for net in self.nets:
            if (net.family, net.size) == (family, size):
                return net
        raise KeyError(f"claim {self.name!r} has no net {family} {size}")

    @property
    def families(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(net.family for net in self.nets))

    def runs(self) -> list[tuple[ClaimNet, int, TrainConfig]]:
        """Every (net, seed, training settings) of the claim: seed by seed, nets in order within a seed (a
        claim cut short has every net once)."""
        return [(net, seed, self.budget.train_config(seed)) for seed in range(self.budget.seeds) for net in self.nets]


CONVERGENCE_RULE = (
    "A run counts as converged when its train loss had stopped falling: a least-squares line through its train-"
    "loss records in the last fifth of its steps (at least its last three records) falls, over a fifth of the "
    "steps, by no more than twice the records' scatter about that line.")

MATCHED_RULE = (
    "Runs are paired by seed. For each seed, the {baseline} curve is that seed's {baseline} nets' test accuracy "
    "against log({x}), linear between neighbours; each {subject} net's accuracy minus that curve at its {x} is "
    "one paired difference per seed. A {subject} net outside the {baseline} nets' range of {x} is not compared "
    "(no extrapolation). A failed or diverged run counts at chance accuracy (1 / classes: 10 %), so a family that "
    "fails more is worse at this budget. Primary test, one per baseline: the per-seed mean of the differences "
    "over the compared sizes, with a Student t confidence interval (n - 1 degrees of freedom for n seeds). "
    "Against a baseline the claim holds if the interval's lower end at one-sided 2.5 % is above zero, does not "
    "hold if its upper end at one-sided 2.5 % / (number of baselines) is below zero, and is not decided "
    "otherwise. Overall it holds if it holds against every baseline (an intersection-union test: no correction "
    "needed), does not hold if it does not hold against any (Bonferroni across baselines), and is not decided "
    "otherwise, so with no real difference a decision comes at most 5 % of the time. Each size is also tested "
    "alone (paired t, two-sided, Holm-corrected across the sizes at 5 %: above, below or not decided, with its "
    "95 % interval) to say which sizes showed what. Fewer than two seeds decide nothing. The paper's readout is "
    "read horizontally too: the {baseline} curve's {x} at each {subject} net's mean accuracy (log-linear), as "
    "the ratio of the {subject} net's {x} to it.")

DEPTH_RULE = (
    "Runs are paired by seed: per seed, the 56-layer net's test accuracy minus the 20-layer net's, for plain and "
    "for residual nets; a failed or diverged run counts at chance accuracy (1 / classes: 10 %). Each family's "
    "differences get a Student t confidence interval (n - 1 degrees of freedom for n seeds). The claim holds if "
    "plain-56 is below plain-20 (one-sided t test at 2.5 %) and residual-56 is not found below residual-20 (its "
    "one-sided test at 1.25 %); it does not hold if plain-56 is above plain-20 or residual-56 below residual-20 "
    "(each one-sided at 1.25 %, Bonferroni for the two); otherwise it is not decided. With no real difference a "
    "decision comes at most 5 % of the time. Fewer than two seeds decide nothing. The paper's readout is the gap "
    "at equal depth: plain minus residual at 20 and at 56 layers, paired by seed, with its 95 % interval. The "
    "nets are the degradation experiment's (archs.studies.experiments.DegradationSettings), whose page judges "
    "them on training loss; this claim's default budget is shorter, to run 3 seeds.")

# Default budgets: about 10 CPU-minutes (5 wall-minutes on 2 cores) per claim with 3 seeds on the 2-core AMD EPYC
# development machine (2026-12-01): measured training time per seed, 2 threads, at the former budgets
# (135 / 300 steps) was 245 s (residual), 180 s (dense) and 200 s (inception) of wall time, plus ~5 s per run to
# start a worker and test it. Fewer steps per run keeps every net and all 3 seeds. (Issue 19 added baseline nets,
# a depth control and 32 x 32 inputs to the matched claims: they now take longer; the budget ladder measures it.)
RESIDUAL_STEPS = 60
CLAIM_STEPS = 150

SAME_TRAINING = (
    "Every family trains with the same optimizer and schedule: Adam at 1e-3 with a {schedule} rate, no warm-up, no "
    "weight decay, batch 64, {augment}. Why: Adam at its default rate trains every family here (with and without "
    "skips, dense and branched) within a few hundred steps with no per-family tuning, so no family gets a search "
    "the others did not. For the residual claim it was not fixed blind: the degradation experiment first used He "
    "et al.'s SGD (momentum 0.9), which at this budget showed the plain half of Fig. 1 but left resnet-56 above "
    "resnet-20 in training loss, and Adam was chosen after that. For the dense and inception claims it was set "
    "when the claims were written and has not changed since.")

FULL_TEST = ("Each run is tested on the whole test set (10,000 Fashion-MNIST images): measured here, that makes a "
             "claim's runs at most 1.9x as long as testing on 2,000 images, under the 2x at which a subset would "
             "be kept.")
MATCHED_NETS = (
    "Every net sees the images resized to 32 x 32 and halves its map the same way, 32 -> 16 -> 8 -> 4, so no "
    "family drops a row or column of its map. Neighbouring {baseline} nets are at most 2x apart in {x}, so no "
    "comparison interpolates across a wider gap.")


def rule(*parts: str) -> str:
    return " ".join(parts)


MATCHED_BUDGET = Budget(steps=CLAIM_STEPS)

CLAIMS: dict[str, Claim] = {}


def register_claim(claim: Claim) -> Claim:
    """Make ``claim`` known by its name (the command line's ``study claim NAME``, the Studies page and
    :func:`judge` read :data:`CLAIMS`), and return it. A module of this package calls it on its claim, beside the
    function that makes the claim's networks; the package imports every module of itself, so a new claim is one
    new file. A name already taken is refused."""
    return add(CLAIMS, claim.name, claim, "claim")


# --------------------------------------------------------------------------------------------- judging
ALPHA = 0.05                     # the claim's error rate: with no real difference, a decision at most this often
CHANCE = 1 / CLASSES             # a failed or diverged run's accuracy in the paired differences
VERDICTS = ("holds", "does not hold", "not decided")
TRAIN_SIZES = {"fashion-mnist": 60_000, "mnist": 60_000}   # training images, where a run does not say
RULE_VERSION = 2                 # 1: the difference against the two seed SDs added together ("mixed" and all)
_READOUTS = {
    "dense": ("parameter ratio at equal accuracy", 1 / 3, "Huang et al.: about 1/3 of the parameters"),
    "inception": ("mult-add ratio at equal accuracy", None, "Szegedy et al.: fewer mult-adds for the same accuracy"),
    "residual": ("gap at equal depth", None, "He et al.: plain below residual at equal depth, more so when deeper"),
}


def converged(losses: Iterable[tuple[float, float]], total_steps: int | None = None) -> bool | None:
    """Whether a run's train loss had stopped falling (:data:`CONVERGENCE_RULE`), from its ``(step, loss)``
    records; None with fewer than three finite records."""
    points = sorted((float(s), float(v)) for s, v in losses if _number(s) is not None and _number(v) is not None)
    if len(points) < 3:
        return None
    total = float(total_steps or points[-1][0])
    tail = [p for p in points if p[0] > 0.8 * total]
    if len(tail) < 3:
        tail = points[-3:]
    xs, ys = [p[0] for p in tail], [p[1] for p in tail]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = 0.0 if sxx == 0 else sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    scatter = math.sqrt(sum((y - my - slope * (x - mx)) ** 2 for x, y in zip(xs, ys)) / (len(tail) - 2))
    return -slope * total / 5 <= 2 * scatter


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _order(seed: Any) -> tuple:
    return (not isinstance(seed, (int, float)), seed if isinstance(seed, (int, float)) else 0, str(seed))


def _t(p: float, df: int) -> float:
    from scipy.stats import t

    return float(t.ppf(p, df))


# --- the tests, on arrays whose last axis is the seeds (a leading axis of simulated studies in the tests) -------
def matched_verdicts(per_baseline: list) -> Any:
    """The matched claims' primary test: per baseline, an array (..., n seeds) of the per-seed mean difference
    over the compared sizes (None where fewer than two seeds), to verdict indices into :data:`VERDICTS`."""
    import numpy as np

    b = len(per_baseline)
    holds, fails = [], []
    for d in per_baseline:
        if d is None or np.shape(d)[-1] < 2:
            holds.append(False)
            fails.append(False)
            continue
        d = np.asarray(d, dtype=float)
        n = d.shape[-1]
        mean, se = d.mean(-1), d.std(-1, ddof=1) / math.sqrt(n)
        holds.append(mean - _t(1 - ALPHA / 2, n - 1) * se > 0)
        fails.append(mean + _t(1 - ALPHA / (2 * b), n - 1) * se < 0)
    all_hold = np.logical_and.reduce([np.asarray(h) for h in holds])
    any_fail = np.logical_or.reduce([np.asarray(f) for f in fails])
    return np.where(all_hold, 0, np.where(any_fail, 1, 2))


def depth_verdicts(plain: Any, residual: Any) -> Any:
    """The residual claim's test: arrays (..., n seeds) of 56-layer minus 20-layer accuracy, to verdict indices."""
    import numpy as np

    plain_below, plain_above = _one_sided(plain, ALPHA / 2, ALPHA / 4)
    residual_below, _ = _one_sided(residual, ALPHA / 4, ALPHA / 4)
    return np.where(plain_above | residual_below, 1, np.where(plain_below, 0, 2))


def _one_sided(d: Any, below: float, above: float) -> tuple[Any, Any]:
    """(found below zero at one-sided ``below``, found above at one-sided ``above``) per study; never with n < 2."""
    import numpy as np

    if d is None or np.shape(d)[-1] < 2:
        return np.asarray(False), np.asarray(False)
    d = np.asarray(d, dtype=float)
    n = d.shape[-1]
    mean, se = d.mean(-1), d.std(-1, ddof=1) / math.sqrt(n)
    return mean + _t(1 - below, n - 1) * se < 0, mean - _t(1 - above, n - 1) * se > 0


def _summary(values: list[float], lower: float = ALPHA / 2, upper: float = ALPHA / 2) -> dict:
    """Mean, Student t interval (``lower``/``upper`` one-sided levels), two-sided p and n of paired differences."""
    n = len(values)
    mean = _mean(values)
    out = {"n": n, "mean": mean, "lower": None, "upper": None, "p": None}
    if n >= 2:
        sd = statistics.stdev(values)
        se = sd / math.sqrt(n)
        out.update(lower=mean - _t(1 - lower, n - 1) * se, upper=mean + _t(1 - upper, n - 1) * se)
        if se > 0:
            from scipy.stats import t

            out["p"] = float(2 * t.sf(abs(mean) / se, n - 1))
        else:
            out["p"] = 1.0 if mean == 0 else 0.0
    return out


def _holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the given order."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    adjusted, running = [0.0] * len(pvalues), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


# --- gathering ---------------------------------------------------------------------------------------------------
def _claim(claim: Claim | str) -> Claim:
    if isinstance(claim, str):
        if claim not in CLAIMS:
            raise ValueError(f"unknown claim {claim!r} (known: {', '.join(CLAIMS)})")
        return CLAIMS[claim]
    return claim


def _gather(claim: Claim, results: list[Mapping[str, Any]]) -> tuple[dict, list[dict], list[str], int, list]:
    """(accuracy by net and seed, chance for a failed run; per-net stats; failed run labels; ignored; the rows
    of the claim's nets)."""
    known = {(net.family, net.size) for net in claim.nets}
    table: dict[tuple[str, str], dict] = {key: {} for key in known}
    good: dict[tuple[str, str], list[Mapping]] = defaultdict(list)
    failed, ignored, rows = [], 0, []
    for row in results:
        key = (str(row.get("family")), str(row.get("size")))
        if key not in known:
            ignored += 1
            continue
        rows.append(row)
        accuracy = _number(row.get("test_accuracy"))
        if accuracy is None:
            failed.append(f"{key[0]} {key[1]} seed {row.get('seed')}")
        else:
            good[key].append(row)
        table[key][row.get("seed")] = CHANCE if accuracy is None else accuracy
    stats = []
    for net in claim.nets:
        group = good.get((net.family, net.size), [])
        accs = [float(r["test_accuracy"]) for r in group]
        entry = {"family": net.family, "size": net.size, "label": net.label, "seeds": len(accs),
                 "failed": len(table[(net.family, net.size)]) - len(accs),
                 "mean": _mean(accs), "sd": statistics.stdev(accs) if len(accs) >= 2 else None,
                 "min": min(accs, default=None), "max": max(accs, default=None)}
        for key in ("params", "mult_adds", "train_seconds", "train_loss"):
            entry[key] = _mean([v for v in (_number(r.get(key)) for r in group) if v is not None])
        stats.append(entry)
    return table, stats, failed, ignored, rows


def _x(entry: dict, claim: Claim, key: str) -> float:
    """A net's x: from its results, else computed from its spec."""
    if entry[key] is not None:
        return entry[key]
    params, mult_adds = net_costs(claim.net(entry["family"], entry["size"]).spec)
    return float(params if key == "params" else mult_adds)


def _position(xs: list[float], x: float) -> tuple[int, int, float] | None:
    """Where x lies on a curve at ascending ``xs``: (lower index, upper index, fraction in log x); None outside."""
    if not xs or x < xs[0] or x > xs[-1]:
        return None
    for i in range(len(xs)):
        j = min(i + 1, len(xs) - 1)
        if xs[i] <= x <= xs[j]:
            t = 0.0 if xs[j] == xs[i] else (math.log(x) - math.log(xs[i])) / (math.log(xs[j]) - math.log(xs[i]))
            return i, j, t
    return None


def curve_positions(claim: Claim | str, baseline: str,
                    costs: Mapping[NetSpec, tuple[int, int]] | None = None) -> list[tuple[int, int, float] | None]:
    """For each subject net of a matched claim, in order, where its x lies on the ``baseline`` nets' curve (their
    indices in order of x, from the nets' specs, or ``costs``: spec -> (params, mult-adds)): the layout the
    simulation of the rule uses."""
    claim = _claim(claim)
    key = 0 if claim.objective_x == "params" else 1
    costs = {n.spec: (costs[n.spec] if costs else net_costs(n.spec))[key] for n in claim.nets
             if n.family in (baseline, claim.subject)}
    base = sorted(costs[n.spec] for n in claim.nets if n.family == baseline)
    return [_position(base, costs[n.spec]) for n in claim.nets if n.family == claim.subject]


def _budget(claim: Claim, rows: list[Mapping[str, Any]]) -> dict:
    def common(key: str, default: Any) -> Any:
        values = [r.get(key) for r in rows if r.get(key) is not None]
        return max(set(values), key=values.count) if values else default

    steps, batch = common("steps", claim.budget.steps), common("batch_size", claim.budget.batch_size)
    data = common("data", claim.budget.data)
    train_size = common("train_size", TRAIN_SIZES.get(data))
    flags = [r.get("converged") for r in rows if _number(r.get("test_accuracy")) is not None]
    return {"steps": steps, "batch_size": batch, "images": steps * batch, "data": data, "train_size": train_size,
            "epochs": steps * batch / train_size if train_size else None,
            "converged": sum(f is True for f in flags), "not_converged": sum(f is False for f in flags),
            "convergence_unknown": sum(f is None for f in flags)}


# --- judging -------------------------------------------------------------------------------------------------------
def judge(claim: Claim | str, results: Iterable[Mapping[str, Any]]) -> dict:
    """A verdict on ``claim`` by its ``rule`` from per-run results, each a mapping with ``family``, ``size``,
    ``seed``, ``test_accuracy`` (0..1; None or NaN for a failed or diverged run, which counts at chance
    accuracy), ``params``, ``mult_adds``, ``train_seconds``, and optionally ``train_loss``, ``steps``,
    ``batch_size``, ``train_size``, ``data`` (the run's budget; else the claim's) and ``converged``
    (:func:`converged`). Results naming no net of the claim are counted in ``ignored``.

    Returns a JSON-ready dict: ``verdict`` (one of :data:`VERDICTS`), ``statement`` (:func:`verdict_text`),
    ``budget`` (steps, batch, images, epochs, convergence counts), ``nets`` (per-net stats of the runs that
    ended with an accuracy, and ``failed``), ``comparisons`` (per size and baseline, or per family for the
    residual claim: the paired mean difference, its 95 % interval, p, Holm-adjusted p and ``outcome``),
    ``against`` (per baseline, or per family: its verdict or outcome), ``primary`` (each primary test's mean,
    interval and seeds), ``readout`` (the paper's own quantity), ``runs`` (all judged, failed included),
    ``failed`` (labels of failed or diverged runs) and ``ignored``.
    """
    claim = _claim(claim)
    table, stats, failed, ignored, rows = _gather(claim, list(results))
    verdict = {"rule_version": RULE_VERSION, "claim": claim.name, "question": claim.question, "rule": claim.rule,
               "convergence_rule": CONVERGENCE_RULE, "objective_x": claim.objective_x, "subject": claim.subject,
               "kind": claim.kind, "nets": stats, "runs": len(rows), "failed": failed, "ignored": ignored,
               "seeds": len({r.get("seed") for r in rows}), "budget": _budget(claim, rows)}
    verdict.update(_judge_depth(table) if claim.kind == "depth" else _judge_matched(claim, table, stats))
    verdict["statement"] = verdict_text(verdict)
    return verdict


def _judge_matched(claim: Claim, table: dict, stats: list[dict]) -> dict:
    key = claim.objective_x
    by = {(e["family"], e["size"]): e for e in stats}
    subjects = [n for n in claim.nets if n.family == claim.subject and table[(n.family, n.size)]]
    comparisons, against, primary, arrays, readout = [], {}, {}, [], {}
    for baseline in claim.baselines:
        curve = sorted((_x(by[(n.family, n.size)], claim, key), (n.family, n.size)) for n in claim.nets
                        if n.family == baseline and table[(n.family, n.size)])
        xs = [x for x, _ in curve]
        rows, diffs = [], {}
        for net in subjects:
            x = _x(by[(net.family, net.size)], claim, key)
            at = _position(xs, x)
            row = {"net": net.label, "size": net.size, "against": baseline, "x": x}
            if at is None:
                row["outcome"] = "outside range"
                rows.append(row)
                continue
            lo, hi, t = table[curve[at[0]][1]], table[curve[at[1]][1]], at[2]
            mine = table[(net.family, net.size)]
            d = {s: mine[s] - ((1 - t) * lo[s] + t * hi[s]) for s in mine if s in lo and s in hi}
            if d:
                diffs[net.size] = d
            accs = [mine[s] for s in d]
            row.update(accuracy=_mean(accs), baseline_accuracy=_mean([mine[s] - d[s] for s in d]),
                       **{k: v for k, v in _summary(list(d.values())).items()})
            row["difference"] = row.pop("mean")
            rows.append(row)
        tested = [r for r in rows if r.get("p") is not None]
        for r, p in zip(tested, _holm([r["p"] for r in tested])):
            r["p_holm"] = p
        for r in rows:
            if "outcome" not in r:
                decided = r.get("p_holm") is not None and r["p_holm"] < ALPHA
                r["outcome"] = ("too few seeds" if r.get("p") is None else
                                ("above" if r["difference"] > 0 else "below") if decided else "not decided")
        comparisons += rows
        seeds = set.intersection(*(set(d) for d in diffs.values())) if diffs else set()
        per_seed = [_mean([d[s] for d in diffs.values()]) for s in sorted(seeds, key=_order)]
        test = _summary(per_seed, ALPHA / 2, ALPHA / (2 * len(claim.baselines)))
        primary[baseline] = {**test, "sizes": list(diffs), "seeds": sorted(seeds, key=_order)}
        arrays.append(per_seed if len(per_seed) >= 2 else None)
        readout[baseline] = _horizontal(claim, table, curve, subjects, by)
    for baseline, a in zip(claim.baselines, arrays):  # at the levels the overall test uses
        against[baseline] = _own_verdict(a, len(claim.baselines)) if a is not None else "not decided"
    overall = VERDICTS[int(matched_verdicts(arrays))]
    quantity, paper, paper_text = _READOUTS.get(claim.name, (f"{key} ratio at equal accuracy", None, ""))
    ratios = [r["ratio"] for b in readout.values() for r in b["nets"] if r["ratio"] is not None]
    return {"verdict": overall, "against": against, "primary": primary, "comparisons": comparisons,
            "readout": {"quantity": quantity, "paper": paper, "paper_text": paper_text, "against": readout,
                        "ratio": math.exp(_mean([math.log(r) for r in ratios])) if ratios else None}}


def _own_verdict(per_seed: list[float], baselines: int) -> str:
    test = _summary(per_seed, ALPHA / 2, ALPHA / (2 * baselines))
    return "holds" if test["lower"] > 0 else "does not hold" if test["upper"] < 0 else "not decided"


def _horizontal(claim: Claim, table: dict, curve: list, subjects: list, by: dict) -> dict:
    """The paper's reading: the baseline curve's x at each subject net's mean accuracy (failed runs at chance),
    log-linear between the two baseline nets that bracket it (the first such pair in order of x)."""
    points = [(x, _mean(list(table[k].values()))) for x, k in curve]
    nets = []
    for net in subjects:
        x = _x(by[(net.family, net.size)], claim, claim.objective_x)
        acc = _mean(list(table[(net.family, net.size)].values()))
        at = None
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            if min(y0, y1) <= acc <= max(y0, y1):
                t = 0.0 if y1 == y0 else (acc - y0) / (y1 - y0)
                at = math.exp((1 - t) * math.log(x0) + t * math.log(x1))
                break
        nets.append({"net": net.label, "size": net.size, "accuracy": acc, "x": x, "baseline_x": at,
                     "ratio": None if at is None else x / at})
    read = [n["ratio"] for n in nets if n["ratio"] is not None]
    return {"nets": nets, "ratio": math.exp(_mean([math.log(r) for r in read])) if read else None}


def _judge_depth(table: dict) -> dict:
    def paired(a: tuple[str, str], b: tuple[str, str]) -> dict:
        return {s: table[a][s] - table[b][s] for s in table[a] if s in table[b]}

    comparisons, against, arrays = [], {}, {}
    levels = {"plain": (ALPHA / 2, ALPHA / 4), "residual": (ALPHA / 4, ALPHA / 4)}
    for family in ("plain", "residual"):
        d = paired((family, "56"), (family, "20"))
        values = [d[s] for s in sorted(d, key=_order)]
        below, above = _one_sided(values, *levels[family]) if len(values) >= 2 else (False, False)
        row = {"net": f"{family} 56", "against": f"{family} 20", **_summary(values),
               "accuracy": _mean([table[(family, "56")][s] for s in d]),
               "baseline_accuracy": _mean([table[(family, "20")][s] for s in d])}
        row["difference"] = row.pop("mean")
        row["outcome"] = ("missing" if not values else "too few seeds" if len(values) < 2 else
                          "below" if bool(below) else "above" if bool(above) else "not decided")
        comparisons.append(row)
        against[family] = row["outcome"]
        arrays[family] = values if len(values) >= 2 else None
    verdict = VERDICTS[int(depth_verdicts(arrays["plain"], arrays["residual"]))]
    gaps = {}
    for depth in ("20", "56"):
        d = paired(("plain", depth), ("residual", depth))
        gaps[depth] = _summary([d[s] for s in sorted(d, key=_order)])
    quantity, paper, paper_text = _READOUTS["residual"]
    return {"verdict": verdict, "against": against, "comparisons": comparisons,
            "primary": {r["net"].split()[0]: {k: r[k] for k in ("n", "difference", "lower", "upper", "p")}
                        for r in comparisons},
            "readout": {"quantity": quantity, "paper": paper, "paper_text": paper_text, "gaps": gaps}}


# --- the words ------------------------------------------------------------------------------------------------------
_DATA_NAMES = {"fashion-mnist": "Fashion-MNIST", "mnist": "MNIST", "digits": "digits"}
_VERDICT_WORDS = {"holds": "holds", "does not hold": "does not hold", "not decided": "is not decided"}


def _pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def _pts(value: float) -> str:
    return f"{100 * value:+.1f} points"


def _ci(row: dict, level: str = "95 % CI") -> str:
    mean = row["difference"] if "difference" in row else row["mean"]
    if mean is None:
        return "no pairs of runs"
    if row.get("lower") is None:
        return f"{_pts(mean)}, n = {row.get('n', 0)}"
    return f"{_pts(mean)}, {level} {100 * row['lower']:+.1f} to {100 * row['upper']:+.1f}, n = {row['n']}"


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def verdict_text(verdict: Mapping[str, Any]) -> str:
    """The one plain-English statement of a verdict (:func:`judge`'s dict, as stored): the page, the command line
    and the JSON all say it in these words. A verdict stored by the earlier rule is shown as such."""
    if verdict.get("rule_version") != RULE_VERSION:
        return ("Judged by an earlier rule that this version no longer uses (a difference counted where it exceeded "
                "the two seed SDs added together); run the claim again for a verdict by the current rule. Its "
                "words were: " + str(verdict.get("statement", "")))
    parts = [f"{verdict['question']} Verdict: the claim {_VERDICT_WORDS[verdict['verdict']]} at this budget."]
    parts.append(_budget_text(verdict["budget"], verdict["runs"], verdict["seeds"], verdict["failed"]))
    if verdict["kind"] == "depth":
        parts += _depth_text(verdict)
    else:
        parts += _matched_text(verdict)
    return " ".join(parts)


def _budget_text(budget: dict, runs: int, seeds: int, failed: list[str]) -> str:
    epochs = ("" if budget["epochs"] is None else
              f", {budget['epochs']:.2g} epochs of the {budget['train_size']:,} "
              f"{_DATA_NAMES.get(budget['data'], budget['data'])} training images")
    text = (f"Budget: {budget['steps']:,} steps at batch {budget['batch_size']} per run, {budget['images']:,} images "
            f"seen{epochs}. Runs: {runs} over {seeds} seed{'s' if seeds != 1 else ''}; ")
    text += (f"{len(failed)} failed or diverged ({', '.join(failed)}), counted at chance accuracy "
             f"({_pct(CHANCE)})." if failed else "none failed or diverged.")
    done, not_done, unknown = budget["converged"], budget["not_converged"], budget["convergence_unknown"]
    ended = done + not_done + unknown
    if ended and unknown == ended:
        text += (" Whether training had converged is not known (fewer than three train-loss records per run). "
                 "The paper's claim is about converged nets.")
    elif ended:
        text += f" Converged (train loss no longer falling over the last fifth of training): {done} of {ended} runs"
        text += f" ({unknown} not known)." if unknown else "."
        if done < ended:
            text += " The paper's claim is about converged nets."
    return text


def _matched_text(verdict: dict) -> list[str]:
    unit = "parameters" if verdict["objective_x"] == "params" else "mult-adds"
    subject, out = verdict["subject"], []
    for baseline, test in verdict["primary"].items():
        rows = [r for r in verdict["comparisons"] if r["against"] == baseline]
        word = _VERDICT_WORDS[verdict["against"][baseline]]
        if test["n"]:
            b = len(verdict["primary"])
            level = "95 % CI" if b == 1 else f"CI (ends at one-sided 2.5 % and {100 * ALPHA / (2 * b):.3g} %)"
            head = (f"Against the {baseline} nets at equal {unit}, {subject} minus {baseline} (paired by seed, "
                    f"averaged over {_join(test['sizes'])}): {_ci(test, level)}; against them the claim {word}.")
        else:
            head = f"Against the {baseline} nets: nothing could be compared; the claim {word}."
        groups = defaultdict(list)
        for r in rows:
            groups[r["outcome"]].append(r["size"] if r["outcome"] in ("outside range", "too few seeds")
                                        else f"{r['size']} ({_ci(r)})")
        tested = sum(r["outcome"] in ("above", "below", "not decided") for r in rows)
        said = [f"{name} at {', '.join(groups[o])}" for o, name in (
            ("above", "above"), ("below", "below"), ("not decided", "not decided"),
            ("too few seeds", "too few seeds"), ("outside range", f"not compared (outside the {baseline} range)"))
            if groups[o]]
        if said:
            head += f" Per size (Holm across {tested}): " + "; ".join(said) + "."
        out.append(head)
    readout = verdict["readout"]
    read = []
    for baseline, block in readout["against"].items():
        items = [f"{n['size']} {n['ratio']:.2f}x" if n["ratio"] is not None else
                 f"{n['size']} not read: outside the baseline's accuracy range" for n in block["nets"]]
        mean = f" (geometric mean {block['ratio']:.2f}x)" if block["ratio"] is not None else ""
        read.append(f"against {baseline}: {', '.join(items) or 'none'}{mean}")
    out.append(f"Paper's readout, {readout['quantity']} ({subject} {unit} over the {unit} at which the baseline "
               f"curve reaches the same accuracy; {readout['paper_text']}): " + "; ".join(read) + ".")
    return out


def _depth_text(verdict: dict) -> list[str]:
    words = {"below": "below", "above": "above", "not decided": "not decided", "too few seeds": "too few seeds",
             "missing": "no results"}
    out = []
    for row in verdict["comparisons"]:
        family = row["net"].split()[0]
        if row["outcome"] == "missing":
            out.append(f"{family}-56 against {family}-20: no results.")
        else:
            out.append(f"{family}-56 minus {family}-20, paired by seed: {_ci(row)}: {words[row['outcome']]}.")
    gaps = verdict["readout"]["gaps"]
    said = [f"at {depth} layers {_ci(g)}" if g["n"] else f"at {depth} layers no pairs" for depth, g in gaps.items()]
    out.append(f"Paper's readout, the gap at equal depth (plain minus residual; {verdict['readout']['paper_text']}): "
               + "; ".join(said) + ".")
    return out
