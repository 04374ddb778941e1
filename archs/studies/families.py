"""The three claims of the seed articles, as networks for Fashion-MNIST (1 x 28 x 28, 10 classes), and
how a claim is judged from its runs.

- ``residual`` (He et al. 2016, Fig. 1): deeper *plain* nets fit worse than shallower ones, deeper
  *residual* nets do not. The degradation experiment's four nets (``cifar-plain20``, ``cifar-plain56``,
  ``cifar-resnet20``, ``cifar-resnet56``) adapted to the data exactly as
  :func:`archs.studies.experiments.degradation_plan` adapts them (1 channel, 28 x 28; the tests check
  they are equal), on its budget (135 steps of Adam 1e-3 at a constant rate, batch 64, test on 2,000
  images).
- ``dense`` (Huang et al. 2017): at the same number of parameters, DenseNet-BC nets are more accurate
  than residual nets. Four DenseNet-BC nets (bottleneck layers of width 4k, compression 0.5, blocks of
  2, 4 and 8 layers: more layers where the map is small, as DenseNet-121's 6, 12, 24, 16) at growth
  rates k = 6, 8, 12, 16, against He et al.'s ResNet-20 (three stages of 3 basic blocks, widths w, 2w,
  4w, zero-padding shortcuts) at widths w = 4, 8, 12, 16.
- ``inception`` (Szegedy et al. 2015): at the same computation, Inception nets are more accurate than
  nets without parallel branches. Three Inception nets (three stages of two modules; branch widths in
  GoogLeNet 3a's proportions: 1x1 2u, 1x1 3u then 3x3 4u, 1x1 u/2 then a real 5x5 u, pool then 1x1 u,
  with u = w, 2w, 4w per stage) at w = 2, 4, 6, against ResNet-20 at w = 4, 8, 16 and its plain twin
  (the same layers without skips, He et al.'s plain-20) at the same widths.

The dense and inception claims' nets share one kind of stem, a 3x3 conv (+ BatchNorm, ReLU) and a 2x2
max-pool (28 -> 14), which cuts their cost about four-fold against a stem at full resolution, and
Kaiming-normal initialisation. Their budget: 300 steps of Adam 1e-3 with a cosine schedule at batch 64 (19,200 images,
a third of an epoch), no augmentation (no image is seen twice), tested on the whole test set, 3 seeds.

Sizes (exact; the tests assert them) and the time of one training step: forward, backward and an Adam
step at batch 64 on random data, one thread, under ``nice``, median (and fastest) of 6 steps taken in three
interleaved rounds after a warm-up step, on this project's 2-core development machine while other
engineers' jobs kept its load average at 7.5-9. ``budget`` is steps x median: the training alone, without
start-up and the test evaluation. An idle machine, or two threads, should be faster; that was not
measured. The residual claim's nets are the degradation experiment's, unchanged, at full resolution
(135 steps); the others train for 300:

=========  ============  ===============  =========  ==========  =======  =======  ==========
claim      net           spec                params   mult-adds  ms/step  fastest  budget (s)
=========  ============  ===============  =========  ==========  =======  =======  ==========
residual   plain 20      cifar-plain20      269,434  30,822,634      281      253          38
residual   plain 56      cifar-plain56      852,730  95,853,418      923      872         125
residual   residual 20   cifar-resnet20     269,434  30,822,634      294      238          40
residual   residual 56   cifar-resnet56     852,730  95,853,418      843      705         114
dense      dense k6      densenet-bc-k6      31,882   1,337,998       75       60          22
dense      dense k8      densenet-bc-k8      55,530   2,339,930      154       99          46
dense      dense k12     densenet-bc-k12    122,362   5,177,698      158      129          47
dense      dense k16     densenet-bc-k16    215,242   9,127,338      208      151          62
dense      residual w4   resnet20-w4         17,254     556,066       32       27          10
dense      residual w8   resnet20-w8         67,906   2,166,778       42       40          13
dense      residual w12  resnet20-w12       151,966   4,832,146       84       72          25
dense      residual w16  resnet20-w16       269,434   8,552,170       98       87          29
inception  inception w2  inception-w2        28,178     741,694       84       68          25
inception  inception w4  inception-w4       109,938   2,851,250      144      112          43
inception  inception w6  inception-w6       245,290   6,328,678      220      170          66
inception  plain w4      plain20-w4          17,254     556,066       28       26           8
inception  plain w8      plain20-w8          67,906   2,166,778       40       38          12
inception  plain w16     plain20-w16        269,434   8,552,170       90       83          27
=========  ============  ===============  =========  ==========  =======  =======  ==========

Mult-adds are per image (``archs.summarize(spec).mult_adds``, batch 1). Under that load the largest dense
and Inception nets take about a minute for 300 steps and the smallest under ten seconds; a study that
needs less can lower ``Budget.steps``.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from archs.presets import PRESETS
from archs.spec import HeadSpec, NetSpec
from archs.stages import DenseSpec, InceptionSpec, PlainSpec, ResidualSpec
from archs.training.config import DataConfig, TrainConfig

__all__ = ["Budget", "CLAIMS", "Claim", "ClaimNet", "DEGRADATION_NETS", "dense_net", "dense_nets", "inception_net",
           "inception_nets", "judge", "net_costs", "residual_net", "residual_nets"]

CHANNELS, SIZE, CLASSES = 1, 28, 10          # Fashion-MNIST
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


def _stem(channels: int) -> tuple[PlainSpec, ...]:
    """3x3 conv + BatchNorm + ReLU, then a 2x2 max-pool: 28 x 28 -> 14 x 14."""
    return (PlainSpec(channels=channels, kernel_size=3, padding=1, **_POOL2),)


def _net(name: str, stem: tuple, stages: tuple, head: HeadSpec = HeadSpec()) -> NetSpec:
    return NetSpec(name=name, in_channels=CHANNELS, num_classes=CLASSES, input_size=SIZE, init="kaiming_normal",
                   stem=stem, stages=stages, head=head)


def residual_net(width: int, skip: bool = True, blocks: int = 3) -> NetSpec:
    """He et al.'s CIFAR ResNet-(6n+2) (n = ``blocks``: 3 gives ResNet-20) at widths ``width``, 2x, 4x,
    zero-padding shortcuts, after the shared stem; ``skip=False`` gives its plain twin."""
    depth = 6 * blocks + 2
    return _net(f"{'resnet' if skip else 'plain'}{depth}-w{width}", _stem(width), tuple(
        ResidualSpec(blocks=blocks, channels=c, stride=1 if i == 0 else 2, shortcut="zero_pad", skip=skip)
        for i, c in enumerate((width, 2 * width, 4 * width))))


def dense_net(growth_rate: int, layers: tuple[int, ...] = (2, 4, 8)) -> NetSpec:
    """DenseNet-BC: a stem of 2k channels, dense blocks of bottleneck layers (1x1 to 4k, then 3x3 to k),
    transitions halving the channels (and the map) after every block but the last, then DenseNet's final
    BatchNorm + ReLU before the global pool."""
    k = growth_rate
    last = len(layers) - 1
    return _net(f"densenet-bc-k{k}", _stem(2 * k), tuple(
        DenseSpec(layers=n, growth_rate=k, bottleneck=True, bn_size=4, compression=0.5, transition=i < last)
        for i, n in enumerate(layers)), HeadSpec(norm_activation=True))


def inception_net(width: int, modules: int = 2) -> NetSpec:
    """Three Inception stages of ``modules`` modules each, branch widths in GoogLeNet 3a's proportions at
    u = w, 2w, 4w (a module outputs 8u channels), a 2x2 max-pool after the first two stages (14 -> 7 -> 3),
    after a shared stem of 4w channels."""
    def stage(u: int, pool: bool) -> InceptionSpec:
        return InceptionSpec(modules=modules, branch1x1=2 * u, branch3x3_reduce=3 * u, branch3x3=4 * u,
                             branch5x5_reduce=max(u // 2, 1), branch5x5=u, branch5x5_kernel=5,
                             branch_pool_type="max", branch_pool_projection=u, **(_POOL2 if pool else {}))

    w = width
    return _net(f"inception-w{w}", _stem(4 * w), (stage(w, True), stage(2 * w, True), stage(4 * w, False)))


def residual_nets() -> list[ClaimNet]:
    """The degradation experiment's four nets for Fashion-MNIST: plain 20, plain 56, residual 20, residual 56."""
    return [ClaimNet(family, size, dataclasses.replace(PRESETS[preset], in_channels=CHANNELS, input_size=SIZE,
                                                       num_classes=CLASSES))
            for family, size, preset in DEGRADATION_NETS]


DENSE_GROWTH = (6, 8, 12, 16)
DENSE_RESIDUAL_WIDTHS = (4, 8, 12, 16)
INCEPTION_WIDTHS = (2, 4, 6)
INCEPTION_BASELINE_WIDTHS = (4, 8, 16)


def dense_nets() -> list[ClaimNet]:
    """DenseNet-BC at k = 6, 8, 12, 16 and ResNet-20 at w = 4, 8, 12, 16."""
    return ([ClaimNet("dense", f"k{k}", dense_net(k)) for k in DENSE_GROWTH]
            + [ClaimNet("residual", f"w{w}", residual_net(w)) for w in DENSE_RESIDUAL_WIDTHS])


def inception_nets() -> list[ClaimNet]:
    """Inception at w = 2, 4, 6; ResNet-20 and plain-20 at w = 4, 8, 16."""
    return ([ClaimNet("inception", f"w{w}", inception_net(w)) for w in INCEPTION_WIDTHS]
            + [ClaimNet("residual", f"w{w}", residual_net(w)) for w in INCEPTION_BASELINE_WIDTHS]
            + [ClaimNet("plain", f"w{w}", residual_net(w, skip=False)) for w in INCEPTION_BASELINE_WIDTHS])


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

    def train_config(self, seed: int = 0) -> TrainConfig:
        return TrainConfig(epochs=1000, max_steps=self.steps, batch_size=self.batch_size, lr=self.lr,
                           optimizer=self.optimizer, schedule=self.schedule, warmup_steps=0, augment=self.augment,
                           log_every=self.log_every, grad_every=0, seed=seed)

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


_MATCHED_RULE = (
    "Each {subject} net's mean test accuracy over its seeds is compared with the {baseline} nets' accuracy at "
    "the same {x}, read off the {baseline} curve by linear interpolation in log({x}) between the two nearest "
    "{baseline} nets (their mean accuracies, and their seed standard deviations likewise). A difference counts "
    "only where it is larger than the two standard deviations added together (the mean +- one SD intervals do "
    "not overlap); otherwise it is within the seed spread. A {subject} net outside the {baseline} nets' range of "
    "{x} is not compared (no extrapolation), nor one whose nets have fewer than two seeds. Against each "
    "baseline the claim holds if every compared {subject} net is above the curve, does not hold if every one "
    "is below, is inconclusive if every difference is within the seed spread or nothing could be compared, "
    "and is mixed otherwise; across several baselines the verdicts must agree, else the claim is mixed.")

# Default budgets: about 10 CPU-minutes (5 wall-minutes on 2 cores) per claim with 3 seeds on the 2-core AMD EPYC
# development machine (2026-12-01): measured training time per seed, 2 threads, at the former budgets
# (135 / 300 steps) was 245 s (residual), 180 s (dense) and 200 s (inception) of wall time, plus ~5 s per run to
# start a worker and test it. Fewer steps per run keeps every net and all 3 seeds.
RESIDUAL_STEPS = 60
CLAIM_STEPS = 150

CLAIMS: dict[str, Claim] = {c.name: c for c in (
    Claim("residual",
          "Do deeper plain nets end up less accurate than shallower ones, while deeper residual nets do not "
          "(He et al. 2016, Fig. 1)?",
          tuple(residual_nets()), "params", "residual", ("plain",),
          Budget(steps=RESIDUAL_STEPS, schedule="constant", augment="auto", log_every=10, test_limit=2000),
          "The mean test accuracy over seeds of the 56-layer net is compared with the 20-layer one's, for plain "
          "and for residual nets. A difference counts only where it exceeds the two nets' seed standard "
          "deviations added together. The claim holds if plain-56 is below plain-20 and residual-56 is not "
          "below residual-20; it does not hold if plain-56 is above plain-20, or if residual-56 is below "
          "residual-20; otherwise (plain within the seed spread, or fewer than two seeds) it is inconclusive. "
          "The nets are the degradation experiment's (archs.studies.experiments.DegradationSettings), whose "
          "page judges them on training loss; this claim's default budget is shorter, to run 3 seeds.",
          kind="depth"),
    Claim("dense",
          "At the same number of parameters, are DenseNet-BC nets more accurate than residual nets "
          "(Huang et al. 2017)?",
          tuple(dense_nets()), "params", "dense", ("residual",), Budget(steps=CLAIM_STEPS, test_limit=2000),
          _MATCHED_RULE.format(subject="dense", baseline="residual", x="params")),
    Claim("inception",
          "At the same computation (mult-adds per image), are Inception nets more accurate than plain and "
          "residual nets (Szegedy et al. 2015)?",
          tuple(inception_nets()), "mult_adds", "inception", ("plain", "residual"),
          Budget(steps=CLAIM_STEPS, test_limit=2000),
          _MATCHED_RULE.format(subject="inception", baseline="plain and residual", x="mult_adds")),
)}


# --------------------------------------------------------------------------------------------- judging
def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return float(value)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _net_stats(claim: Claim, results: Iterable[Mapping[str, Any]]) -> tuple[list[dict], list[str], int]:
    """Per net: seeds, mean/sd/min/max test accuracy, mean params, mult-adds, train seconds (train loss
    where given). Also the labels of runs without an accuracy, and how many results matched no net."""
    known = {(net.family, net.size) for net in claim.nets}
    groups: dict[tuple[str, str], list[Mapping]] = defaultdict(list)
    failed, ignored = [], 0
    for row in results:
        key = (str(row.get("family")), str(row.get("size")))
        if key not in known:
            ignored += 1
        elif _number(row.get("test_accuracy")) is None:
            failed.append(f"{key[0]} {key[1]} seed {row.get('seed')}")
        else:
            groups[key].append(row)
    stats = []
    for net in claim.nets:
        rows = groups.get((net.family, net.size), [])
        accs = [float(r["test_accuracy"]) for r in rows]
        entry = {"family": net.family, "size": net.size, "label": net.label, "seeds": len(accs),
                 "mean": _mean(accs), "sd": statistics.stdev(accs) if len(accs) >= 2 else None,
                 "min": min(accs, default=None), "max": max(accs, default=None)}
        for key in ("params", "mult_adds", "train_seconds", "train_loss"):
            entry[key] = _mean([v for v in (_number(r.get(key)) for r in rows) if v is not None])
        stats.append(entry)
    return stats, failed, ignored


def _x(entry: dict, claim: Claim, key: str) -> float | None:
    """A net's x: from its results, else computed from its spec."""
    if entry[key] is not None:
        return entry[key]
    params, mult_adds = net_costs(claim.net(entry["family"], entry["size"]).spec)
    return float(params if key == "params" else mult_adds)


def _interpolate(curve: list[dict], x: float) -> tuple[float, float | None] | None:
    """(mean, sd) of a baseline curve at x, linearly in log x between its neighbours; None outside it."""
    if not curve or x < curve[0]["x"] or x > curve[-1]["x"]:
        return None
    for lo, hi in zip(curve, curve[1:] + curve[-1:]):
        if lo["x"] <= x <= hi["x"]:
            if hi["x"] == lo["x"]:
                t = 0.0
            else:
                t = (math.log(x) - math.log(lo["x"])) / (math.log(hi["x"]) - math.log(lo["x"]))
            mean = (1 - t) * lo["mean"] + t * hi["mean"]
            sd = None if lo["sd"] is None or hi["sd"] is None else (1 - t) * lo["sd"] + t * hi["sd"]
            return mean, sd
    return None


def _outcome(diff: float, margin: float, better: str, worse: str) -> str:
    return better if diff > margin else worse if diff < -margin else "within spread"


def _pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def _pts(value: float) -> str:
    return f"{100 * value:+.1f} points"


def _verdict(outcomes: list[str], good: str, bad: str) -> str:
    decided = [o for o in outcomes if o in (good, bad, "within spread")]
    if not decided or all(o == "within spread" for o in decided):
        return "inconclusive"
    if all(o == good for o in decided):
        return "holds"
    if all(o == bad for o in decided):
        return "does not hold"
    return "mixed"


def judge(claim: Claim | str, results: Iterable[Mapping[str, Any]]) -> dict:
    """A verdict on ``claim`` from per-run results, each a mapping with ``family``, ``size``, ``seed``,
    ``test_accuracy`` (0..1; None or absent for a failed run), ``params``, ``mult_adds``, ``train_seconds``
    (and optionally ``train_loss``). Results naming no net of the claim are counted in ``ignored``.

    Returns ``{"claim", "question", "rule", "verdict", "statement", "objective_x", "nets", "comparisons",
    "against", "runs", "failed", "ignored"}``: ``verdict`` is ``holds``, ``does not hold``, ``mixed`` or
    ``inconclusive``; ``nets`` the per-net seeds, mean, sd, min and max accuracy, params, mult-adds and
    seconds; ``comparisons`` one entry per compared pair with both accuracies, the difference, the margin
    (the summed seed SDs) and the outcome; ``against`` the verdict per baseline family (dense, inception)
    or per family (residual: ``plain`` and ``residual``, the deeper net against the shallower);
    ``statement`` one plain-English paragraph. The rule is the claim's ``rule``.
    """
    if isinstance(claim, str):
        if claim not in CLAIMS:
            raise ValueError(f"unknown claim {claim!r} (known: {', '.join(CLAIMS)})")
        claim = CLAIMS[claim]
    results = list(results)
    stats, failed, ignored = _net_stats(claim, results)
    if claim.kind == "depth":
        comparisons, against, verdict, findings = _judge_depth(stats)
    else:
        comparisons, against, verdict, findings = _judge_matched(claim, stats)
    runs = sum(entry["seeds"] for entry in stats)
    missing = [e["label"] for e in stats if e["seeds"] == 0]
    lead = f"{claim.question} From {runs} run{'s' if runs != 1 else ''}"
    lead += f" ({len(failed)} without a test accuracy left out)" if failed else ""
    lead += f"; no results for {', '.join(missing)}" if missing else ""
    statement = f"{lead}: {findings} {_VERDICT_TEXT[verdict]}"
    return {"claim": claim.name, "question": claim.question, "rule": claim.rule, "verdict": verdict,
            "statement": statement, "objective_x": claim.objective_x, "nets": stats, "comparisons": comparisons,
            "against": against, "runs": runs, "failed": failed, "ignored": ignored}


_VERDICT_TEXT = {
    "holds": "On this budget the claim holds.",
    "does not hold": "On this budget the claim does not hold.",
    "mixed": "On this budget the evidence is mixed: the claim holds in part only.",
    "inconclusive": "On this budget the result is inconclusive: the differences lie within the spread between "
                    "seeds, or too little could be compared (more seeds or a longer budget may decide it).",
}


def _judge_matched(claim: Claim, stats: list[dict]) -> tuple[list[dict], dict, str, str]:
    key = claim.objective_x
    unit = "parameters" if key == "params" else "mult-adds"
    comparisons, against, sentences = [], {}, []
    subjects = [e for e in stats if e["family"] == claim.subject and e["seeds"]]
    for baseline in claim.baselines:
        curve = sorted(({"x": _x(e, claim, key), "mean": e["mean"], "sd": e["sd"], "label": e["label"]}
                        for e in stats if e["family"] == baseline and e["seeds"]), key=lambda p: p["x"])
        outcomes, parts = [], defaultdict(list)
        for entry in subjects:
            x = _x(entry, claim, key)
            at = _interpolate(curve, x)
            row = {"net": entry["label"], "against": baseline, "x": x, "accuracy": entry["mean"],
                   "sd": entry["sd"], "baseline_accuracy": None, "baseline_sd": None, "difference": None,
                   "margin": None}
            if at is None:
                row["outcome"] = "outside range"
            else:
                mean, sd = at
                row.update(baseline_accuracy=mean, baseline_sd=sd, difference=entry["mean"] - mean)
                if entry["sd"] is None or sd is None:
                    row["outcome"] = "too few seeds"
                else:
                    row["margin"] = entry["sd"] + sd
                    row["outcome"] = _outcome(row["difference"], row["margin"], "above", "below")
            comparisons.append(row)
            outcomes.append(row["outcome"])
            parts[row["outcome"]].append(_describe(row))
        against[baseline] = _verdict(outcomes, "above", "below")
        described = [f"{name} at {', '.join(items)}" for name, items in (
            (f"above the {baseline} curve", parts["above"]), ("below it", parts["below"]),
            ("within the seed spread", parts["within spread"]), ("with too few seeds to judge", parts["too few seeds"]),
            ("outside its range of " + unit + " (not compared)", parts["outside range"])) if items]
        phrase = {"holds": "holds", "does not hold": "does not hold", "mixed": "is mixed",
                  "inconclusive": "is inconclusive"}[against[baseline]]
        sentences.append(f"against the {baseline} nets at equal {unit}, the {claim.subject} nets were "
                         + ("; ".join(described) if described else "not compared (no results)")
                         + f"; against them the claim {phrase}.")
    verdicts = set(against.values())
    verdict = verdicts.pop() if len(verdicts) == 1 else "mixed"
    return comparisons, against, verdict, " ".join(s if i == 0 else s[0].upper() + s[1:]
                                                   for i, s in enumerate(sentences))


def _describe(row: dict) -> str:
    name = row["net"].split(" ", 1)[1]
    if row["difference"] is None:
        return name
    spread = "" if row["margin"] is None else f", seed spread {100 * row['margin']:.1f} points"
    return (f"{name} ({_pct(row['accuracy'])} against {_pct(row['baseline_accuracy'])}, "
            f"{_pts(row['difference'])}{spread})")


def _judge_depth(stats: list[dict]) -> tuple[list[dict], dict, str, str]:
    by = {(e["family"], e["size"]): e for e in stats}
    comparisons, against, sentences = [], {}, []
    for family in ("plain", "residual"):
        shallow, deep = by[(family, "20")], by[(family, "56")]
        row = {"net": f"{family} 56", "against": f"{family} 20", "accuracy": deep["mean"], "sd": deep["sd"],
               "baseline_accuracy": shallow["mean"], "baseline_sd": shallow["sd"], "difference": None,
               "margin": None}
        if deep["mean"] is None or shallow["mean"] is None:
            row["outcome"] = "missing"
        else:
            row["difference"] = deep["mean"] - shallow["mean"]
            if deep["sd"] is None or shallow["sd"] is None:
                row["outcome"] = "too few seeds"
            else:
                row["margin"] = deep["sd"] + shallow["sd"]
                row["outcome"] = _outcome(row["difference"], row["margin"], "deeper better", "deeper worse")
        comparisons.append(row)
        against[family] = row["outcome"]
        if row["difference"] is None:
            sentences.append(f"{family}-56 against {family}-20: no results.")
        else:
            spread = "" if row["margin"] is None else f", seed spread {100 * row['margin']:.1f} points"
            words = {"deeper better": "more accurate than", "deeper worse": "less accurate than",
                     "within spread": "within the seed spread of", "too few seeds": "(too few seeds to judge) against"}
            sentences.append(f"{family}-56 was {words[row['outcome']]} {family}-20 ({_pct(deep['mean'])} against "
                             f"{_pct(shallow['mean'])}, {_pts(row['difference'])}{spread}).")
    plain, residual = against["plain"], against["residual"]
    if plain == "deeper better" or residual == "deeper worse":
        verdict = "does not hold"
    elif plain == "deeper worse" and residual in ("deeper better", "within spread"):
        verdict = "holds"
    else:
        verdict = "inconclusive"
    return comparisons, against, verdict, " ".join(sentences)
