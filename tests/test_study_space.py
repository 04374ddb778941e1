"""Study spaces: field paths as SpecError names them, domains from the field metadata, the command line's
FIELD=... syntax, setting an assignment with full validation, grids and labels."""

import dataclasses
import re

import pytest

from archs import PRESETS, DenseSpec, InceptionSpec, NetSpec, PlainSpec, ResidualSpec, SpecError
from archs.studies.space import (
    MAX_TRIALS,
    Domain,
    FieldPath,
    StudyError,
    Vary,
    apply,
    domain,
    field_info,
    grid,
    parse_path,
    parse_vary,
    trial_label,
)
from archs.training.config import ConfigError, TrainConfig
from archs.training.recipes import RECIPES, apply_recipe

RESNET = PRESETS["cifar-resnet20"]          # stem[0] plain, stages[0..2] residual
DENSENET = PRESETS["d2l-densenet"]          # stages[0..3] dense
MIXED = NetSpec(name="mixed", in_channels=1, input_size=28, stem=(PlainSpec(channels=8),),
                stages=(DenseSpec(layers=2, growth_rate=4), PlainSpec(layers=2, channels=16),
                        ResidualSpec(blocks=1, channels=16, stride=2)))
INCEPTION = NetSpec(name="incep", in_channels=1, input_size=28, stem=(PlainSpec(channels=16),),
                    stages=(InceptionSpec(),))


# --------------------------------------------------------------------------------------------- paths
@pytest.mark.parametrize("text, spec, expected", [
    ("stages[2].growth_rate", DENSENET, FieldPath("stages", "growth_rate", 2)),
    ("stages[*].blocks", RESNET, FieldPath("stages", "blocks", "*")),
    ("  stem[0].channels ", RESNET, FieldPath("stem", "channels", 0)),
    ("head.dropout", RESNET, FieldPath("head", "dropout")),
    ("input_size", RESNET, FieldPath("net", "input_size")),
    ("in_channels", None, FieldPath("net", "in_channels")),
    ("train.lr", None, FieldPath("train", "lr")),
    ("train.recipe", None, FieldPath("train", "recipe")),
    ("train.batch_size", RESNET, FieldPath("train", "batch_size")),
    ("stages[17].growth_rate", None, FieldPath("stages", "growth_rate", 17)),   # no spec: any dense stage
])
def test_paths_parse_to_their_parts_and_back(text, spec, expected):
    path = parse_path(text, spec)
    assert path == expected
    assert str(path) == path.text == text.strip()
    assert parse_path(path, spec) == path


BAD_PATHS = [
    ("stages[x].blocks", RESNET, "stages[x].blocks: the index of stages[...] must be a whole number or *, got 'x'"),
    ("stages[-1].blocks", RESNET, "stages[-1].blocks: the index of stages[...] must be a whole number or *"),
    ("stages[01].blocks", RESNET, "stages[01].blocks: the index of stages[...] must be a whole number or *"),
    ("stages[99].blocks", RESNET, "stages[99].blocks: the network has 3 stages (stages[0] to stages[2])"),
    ("stem[1].channels", RESNET, "stem[1].channels: the network has 1 stem part (stem[0])"),
    ("stages[2].growth_rate", RESNET, "stages[2].growth_rate: a residual stage has no field 'growth_rate' (its "
                                      "fields: blocks, channels, block,"),
    ("stages[*].growth_rate", RESNET, "stages[*].growth_rate: no stage of this network has a field 'growth_rate' "
                                      "(its stages: residual, residual, residual)"),
    ("stages[0].nope", None, "stages[0].nope: no stage type has a field 'nope'"),
    ("stem[0].growth_rate", None, "stem[0].growth_rate: no stem part type has a field 'growth_rate'"),
    ("train.nope", None, "train.nope: unknown training setting (known: recipe, epochs, max_steps,"),
    ("head.nope", None, "head.nope: unknown field of the head (its fields: pool, pool_kernel, norm_activation, "
                        "norm_after_pool, dropout)"),
    ("nope", None, "nope: unknown field of the network (its fields: name, in_channels,"),
    ("", None, "field path: empty; name a field"),
    ("   ", None, "field path: empty"),
    ("stages", None, "stages: name a field of one part, e.g. stages[0].channels"),
    ("train", None, "train: name one of its fields, e.g. train.lr"),
    ("stages[0]", RESNET, "stages[0]: not a field path"),
    ("stage[0].blocks", RESNET, "stage[0].blocks: not a field path"),
    ("stages[0].blocks.x", RESNET, "stages[0].blocks.x: not a field path"),
    ("Input_size", None, "Input_size: not a field path"),
    # only declared fields: no dunders, methods, class variables or nested parts by attribute
    ("__class__", None, "__class__: not a field path"),
    ("stages[0].__class__", RESNET, "stages[0].__class__: not a field path"),
    ("head.__dict__", RESNET, "head.__dict__: not a field path"),
    ("train.__init__", None, "train.__init__: not a field path"),
    ("__import__('os')", None, "__import__('os'): not a field path"),
    ("stages[0].type_name", RESNET, "stages[0].type_name: a residual stage has no field 'type_name'"),
    ("stages[0].without_skips", RESNET, "stages[0].without_skips: a residual stage has no field 'without_skips'"),
    ("head.out_size", RESNET, "head.out_size: unknown field of the head"),
    ("train.to_dict", None, "train.to_dict: unknown training setting"),
    ("stem", None, "stem: name a field of one part"),
    ("head", None, "head: name one of its fields, e.g. head.dropout"),
]


@pytest.mark.parametrize("text, spec, message", BAD_PATHS)
def test_bad_paths_raise_a_study_error_naming_them(text, spec, message):
    with pytest.raises(StudyError) as info:
        parse_path(text, spec)
    assert str(info.value).startswith(message)
    assert isinstance(info.value, SpecError) and isinstance(info.value, ValueError)
    if text.strip():
        assert info.value.path == text.strip()


def test_long_and_odd_paths_are_shortened_in_the_message():
    with pytest.raises(StudyError) as info:
        parse_path("a" * 500)
    assert str(info.value) == "a" * 57 + "...: a field path is at most 200 characters, got 500"
    with pytest.raises(StudyError) as info:
        parse_path("stages[" + "9" * 150 + "].blocks", RESNET)
    assert "must be a whole number or *" in str(info.value) and len(str(info.value)) < 200
    with pytest.raises(StudyError, match=r"^'\\x00bad\\tx': not a field path"):
        parse_path("\x00bad\tx\n")
    with pytest.raises(StudyError, match="^field path: must be text, got int"):
        parse_path(3)


def test_field_info_merges_the_stage_types_a_wildcard_matches():
    layers = field_info("stages[*].layers", MIXED)            # dense 1..128, plain 1..64
    assert (layers.kind, layers.minimum, layers.maximum) == ("int", 1, 64)
    assert field_info("stages[0].layers", MIXED).maximum == 128
    assert field_info("stages[*].stride", None).maximum == 2  # plain 1..4, residual 1..2
    assert field_info("stages[*].stride", NetSpec(stages=(PlainSpec(),))).maximum == 4
    assert field_info("train.recipe").choices == tuple(RECIPES)
    assert field_info("head.dropout").maximum == 0.9


# --------------------------------------------------------------------------------------------- domains
def test_domains_come_from_the_field_metadata():
    assert domain(RESNET, "stages[*].blocks") == Domain("stages[*].blocks", "int", 1, 200, step=1, default=3)
    assert domain(RESNET, "stages[1].channels").default == 32
    assert domain(RESNET, "stages[*].channels").default == 64   # the largest of the stages'
    assert domain(RESNET, "input_size") == Domain("input_size", "int", 8, 1024, step=1, default=32)
    assert domain(RESNET, "head.dropout") == Domain("head.dropout", "float", 0.0, 0.9, default=0.0)
    assert domain(RESNET, "stages[0].skip") == Domain("stages[0].skip", "bool", choices=(False, True), default=True)
    assert domain(RESNET, "stages[*].shortcut") == Domain(
        "stages[*].shortcut", "categorical", choices=("projection", "conv3x3", "zero_pad", "conv1x1_bias"),
        default="zero_pad")
    assert domain(RESNET, "train.recipe").choices == ("default", "article", "fast")
    assert domain(RESNET, "train.optimizer").choices == ("adam", "sgd")
    assert domain(RESNET, "train.batch_size", TrainConfig(batch_size=32)).default == 32
    with pytest.raises(StudyError, match=r"^name: is free text: give its values as a list"):
        domain(RESNET, "name")


def test_log_scale_is_suggested_for_positive_floats_spanning_two_decades():
    assert domain(RESNET, "norm_eps").log                               # 1e-6 .. 0.1
    lr = domain(RESNET, "train.lr")
    assert (lr.low, lr.high, lr.log) == (0.0, 10.0, False)             # a low end of 0 cannot be log-scaled
    assert domain(RESNET, "train.lr", low=1e-4, high=1e-1).log
    assert domain(RESNET, "train.lr", low=1e-3, high=1e-1).log          # exactly two decades
    assert not domain(RESNET, "train.lr", low=1e-3, high=5e-2).log
    assert not domain(RESNET, "stages[*].channels", low=1, high=2048).log   # ints: never


def test_open_ranges_are_bounded_as_documented():
    assert (domain(RESNET, "train.warmup_steps").low, domain(RESNET, "train.warmup_steps").high) == (0, 100)
    assert domain(RESNET, "train.log_every").high == 101                 # max(4 x 20, 1 + 100)
    assert domain(RESNET, "train.log_every", TrainConfig(log_every=50)).high == 200
    assert domain(RESNET, "train.max_steps").high == 101                 # None: from the low end
    assert domain(RESNET, "train.max_steps", TrainConfig(max_steps=500)).high == 2000
    assert domain(RESNET, "train.seed", low=0, high=7).high == 7


def test_given_bounds_are_checked_against_the_metadata():
    with pytest.raises(StudyError, match=r"^stages\[0\]\.blocks: must be >= 1, got 0$"):
        domain(RESNET, "stages[0].blocks", low=0, high=4)
    with pytest.raises(StudyError, match=r"^train\.lr: must be <= 10\.0, got 20"):
        domain(RESNET, "train.lr", high=20.0)
    with pytest.raises(StudyError, match=r"^train\.lr: the range's low end 0\.1 is above its high end 0\.01"):
        domain(RESNET, "train.lr", low=0.1, high=0.01)
    with pytest.raises(StudyError, match=r"^stages\[0\]\.blocks: must be an integer, got 2\.5"):
        domain(RESNET, "stages[0].blocks", low=2.5)
    with pytest.raises(StudyError, match=r"^stages\[0\]\.skip: a range needs a number field"):
        domain(RESNET, "stages[0].skip", low=0)


class FakeTrial:
    def __init__(self):
        self.calls = []

    def suggest_int(self, name, low, high, step=1, log=False):
        self.calls.append(("int", name, low, high, step))
        return low

    def suggest_float(self, name, low, high, log=False):
        self.calls.append(("float", name, low, high, log))
        return high

    def suggest_categorical(self, name, choices):
        self.calls.append(("categorical", name, choices))
        return choices[-1]


def test_a_domain_suggests_through_an_optuna_like_trial():
    trial = FakeTrial()
    assert domain(RESNET, "stages[*].blocks", low=1, high=9).suggest(trial) == 1
    assert domain(RESNET, "train.lr", low=1e-4, high=1e-1).suggest(trial, "lr") == 1e-1
    assert domain(RESNET, "stages[0].skip").suggest(trial) is True
    assert domain(RESNET, "train.recipe").suggest(trial) == "fast"
    assert trial.calls == [("int", "stages[*].blocks", 1, 9, 1), ("float", "lr", 1e-4, 1e-1, True),
                           ("categorical", "stages[0].skip", [False, True]),
                           ("categorical", "train.recipe", ["default", "article", "fast"])]


def test_domain_contains():
    blocks = domain(RESNET, "stages[*].blocks", low=1, high=9)
    assert blocks.contains(1) and blocks.contains(9) and not blocks.contains(10)
    assert not blocks.contains(2.0) and not blocks.contains(True) and not blocks.contains("3")
    lr = domain(RESNET, "train.lr", low=1e-4, high=1e-1)
    assert lr.contains(1e-3) and lr.contains(1e-1) and not lr.contains(0.2) and not lr.contains(None)
    skip = domain(RESNET, "stages[0].skip")
    assert skip.contains(False) and not skip.contains(0) and not skip.contains(1)
    kernel = domain(INCEPTION, "stages[0].branch5x5_kernel")
    assert kernel.choices == (5, 3) and kernel.contains(3) and not kernel.contains(True)


# --------------------------------------------------------------------------------------------- --vary
@pytest.mark.parametrize("text, expected", [
    ("stages[*].blocks=1,2,3", Vary("stages[*].blocks", values=(1, 2, 3))),
    (" stages[*].blocks = 1 , 2 ", Vary("stages[*].blocks", values=(1, 2))),
    ("train.lr=1e-3,3e-3,0.01", Vary("train.lr", values=(0.001, 0.003, 0.01))),
    ("train.lr=1", Vary("train.lr", values=(1.0,))),
    ("stages[0].skip=yes,no", Vary("stages[0].skip", values=(True, False))),
    ("stages[0].skip=True,OFF", Vary("stages[0].skip", values=(True, False))),
    ("train.recipe=fast,article", Vary("train.recipe", values=("fast", "article"))),
    ("stages[*].shortcut=zero_pad,projection", Vary("stages[*].shortcut", values=("zero_pad", "projection"))),
    ("train.max_steps=100,none", Vary("train.max_steps", values=(100, None))),
    ("name=a,b", Vary("name", values=("a", "b"))),
    ("stages[*].blocks=1:9", Vary("stages[*].blocks", low=1, high=9)),
    ("train.lr=1e-4:1e-1", Vary("train.lr", low=1e-4, high=0.1)),
    ("train.lr=1e-4:1e-1:log", Vary("train.lr", low=1e-4, high=0.1, scale="log")),
    ("train.lr=1e-4:1e-1: LOG ", Vary("train.lr", low=1e-4, high=0.1, scale="log")),
    ("train.lr=1e-4:1e-1:linear", Vary("train.lr", low=1e-4, high=0.1, scale="linear")),
    ("stages[*].channels=8:64:8", Vary("stages[*].channels", low=8, high=64, step=8)),
    ("stages[*].blocks=1:9:log", Vary("stages[*].blocks", low=1, high=9, scale="log")),
    ("train.lr=0:1:0.25", Vary("train.lr", low=0.0, high=1.0, step=0.25)),
    ("train.lr", Vary("train.lr")),
    ("stages[*].blocks", Vary("stages[*].blocks")),
])
def test_parse_vary(text, expected):
    vary = parse_vary(text, RESNET)
    assert vary == expected
    if vary.values:
        assert [type(v) for v in vary.values] == [type(v) for v in expected.values]
    if vary.low is not None:
        assert type(vary.low) is type(expected.low) and type(vary.high) is type(expected.high)


def test_parse_vary_reads_choices_by_their_own_type():
    assert parse_vary("stages[0].branch5x5_kernel=3,5", INCEPTION).values == (3, 5)
    with pytest.raises(StudyError, match=r"^stages\[0\]\.branch5x5_kernel: must be one of 5, 3, got '4'"):
        parse_vary("stages[0].branch5x5_kernel=4", INCEPTION)


@pytest.mark.parametrize("text, message", [
    ("stages[*].blocks=1,x", "stages[*].blocks: must be an integer, got 'x'"),
    ("stages[*].blocks=2.5", "stages[*].blocks: must be an integer, got '2.5'"),
    ("stages[*].blocks=0,1", "stages[*].blocks: must be >= 1, got 0"),
    ("stages[*].blocks=1,2,1", "stages[*].blocks: the value '1' is given twice"),
    ("stages[*].blocks=", "stages[*].blocks: no values after '='"),
    ("stages[*].blocks=1,,2", "stages[*].blocks: an empty value in '1,,2'"),
    ("stages[*].blocks=9:1", "stages[*].blocks: the range's low end 9 is above its high end 1"),
    ("stages[*].blocks=1:2:3", "stages[*].blocks: the range 1:2 is not a whole number of steps of 3 (e.g. 1:4:3)"),
    ("stages[*].channels=8:60:8", "stages[*].channels: the range 8:60 is not a whole number of steps of 8 (e.g. "
                                  "8:56:8 or 8:64:8)"),
    ("stages[*].channels=8:64:2.5", "stages[*].channels: a range's step must be a whole number above 0, got '2.5'"),
    ("stages[*].channels=8:64:0", "stages[*].channels: a range's step must be a whole number above 0, got '0'"),
    ("stages[*].channels=8:64:-8", "stages[*].channels: a range's step must be a whole number above 0"),
    ("stages[*].channels=8:64:cubic", "stages[*].channels: a range's scale is log, linear or a step (a number), "
                                      "got 'cubic'"),
    ("stages[*].channels=8:64:", "stages[*].channels: a range's scale is log, linear or a step (a number), got ''"),
    ("train.lr=0:1e-1:log", "train.lr: a log range needs a low end above 0, got 0"),
    ("train.lr=1:2:3:4", "train.lr: a range is LOW:HIGH or LOW:HIGH:SCALE (log, linear or a step), got '1:2:3:4'"),
    ("train.lr=0:1:0.3", "train.lr: the range 0:1 is not a whole number of steps of 0.3"),
    ("train.lr=1e-3:1e-1:" + "9" * 200, "train.lr: a range's scale is log, linear or a step (a number), got '999"),
    ("stages[*].blocks=none", "stages[*].blocks: must be an integer, got 'none'"),
    ("train.lr=nan", "train.lr: must be a number, got 'nan'"),
    ("train.lr=inf", "train.lr: must be a number, got 'inf'"),
    ("train.lr=-1", "train.lr: must be >= 0.0, got -1.0"),
    ("train.lr=1_0", "train.lr: must be a number, got '1_0'"),
    ("train.max_steps=none:10", "train.max_steps: a range needs two numbers"),
    ("stages[0].skip=maybe", "stages[0].skip: must be yes or no, got 'maybe'"),
    ("stages[0].skip=0:1", "stages[0].skip: a range needs a number field"),
    ("train.recipe=slow", "train.recipe: must be one of default, article, fast, got 'slow'"),
    ("stages[9].blocks=1,2", "stages[9].blocks: the network has 3 stages"),
    ("stages[*].growth_rate=1", "stages[*].growth_rate: no stage of this network has a field 'growth_rate'"),
    ("=1,2", "field path: empty"),
    ("stages[0].blocks=" + ",".join(map(str, range(1, 1100))), "stages[0].blocks: at most 1000 values, got 1099"),
])
def test_bad_vary_names_the_path(text, message):
    with pytest.raises(StudyError) as info:
        parse_vary(text, RESNET)
    assert str(info.value).startswith(message)


def test_a_range_says_its_scale():
    lr = parse_vary("train.lr=1e-3:5e-2:log").domain(RESNET)   # under two decades: linear unless it says log
    assert lr.log and not parse_vary("train.lr=1e-3:5e-2").domain(RESNET).log
    assert not parse_vary("train.lr=1e-4:1e-1:linear").domain(RESNET).log
    channels = parse_vary("stages[*].channels=8:64:8").domain(RESNET)
    assert (channels.kind, channels.low, channels.high, channels.step, channels.log) == ("int", 8, 64, 8, False)
    assert parse_vary("stages[*].blocks=1:9:log").domain(RESNET).log
    with pytest.raises(StudyError, match=r"^train\.lr: a range has a step or a log scale, not both"):
        domain(RESNET, "train.lr", low=1e-3, high=1e-1, scale="log", step=0.01)
    with pytest.raises(StudyError, match=r"^stages\[\*\]\.channels: a range's scale is log, linear or a step"):
        domain(RESNET, "stages[*].channels", low=8, high=64, scale="cubic")
    # stored with a study definition and read back the same
    from archs.studies.definition import StudyDefinition
    vary = [parse_vary(t, RESNET) for t in ("train.lr=1e-4:1e-1:log", "stages[*].channels=8:64:8",
                                             "train.momentum=0.5:0.9:linear")]
    assert [v.to_dict() for v in vary] == [
        {"path": "train.lr", "low": 1e-4, "high": 0.1, "scale": "log"},
        {"path": "stages[*].channels", "low": 8, "high": 64, "step": 8},
        {"path": "train.momentum", "low": 0.5, "high": 0.9, "scale": "linear"}]
    d = StudyDefinition.from_dict({"kind": "search", "name": "s", "spec": RESNET.to_dict(), "trials": 2,
                                   "vary": [v.to_dict() for v in vary]})
    assert d.varies(RESNET) == vary
    with pytest.raises(SpecError, match=r"^stages\[\*\]\.channels: the range 8:60 is not a whole number"):
        StudyDefinition.from_dict({**d.to_dict(), "vary": [{"path": "stages[*].channels", "low": 8, "high": 60,
                                                              "step": 8}]})


def test_log_and_step_ranges_draw_as_they_say():
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    domains = [parse_vary(t, RESNET).domain(RESNET) for t in ("train.lr=1e-4:1e-1:log", "stages[*].channels=8:64:8",
                                                               "train.weight_decay=0:1e-2:1e-3")]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = []
    for _ in range(300):
        trial = study.ask()
        drawn.append({d.path: d.suggest(trial) for d in domains})
        study.tell(trial, 0.0)
    dist = study.trials[0].distributions
    assert dist["train.lr"].log and dist["stages[*].channels"].step == 8 and dist["train.weight_decay"].step == 1e-3
    lrs = [a["train.lr"] for a in drawn]
    assert all(1e-4 <= v <= 1e-1 for v in lrs)
    assert 0.4 < sum(v < 10 ** -2.5 for v in lrs) / len(lrs) < 0.6  # log-uniform: half below the geometric middle
    channels = {a["stages[*].channels"] for a in drawn}
    assert channels == set(range(8, 65, 8))  # every multiple of the step, nothing between
    assert all(abs(a["train.weight_decay"] / 1e-3 - round(a["train.weight_decay"] / 1e-3)) < 1e-9 for a in drawn)


def test_a_width_multiplier_scales_every_width_and_keeps_the_pyramid():
    assert parse_path("width").text == "width" and field_info("width").kind == "float"
    half, _ = apply(RESNET, None, {"width": 0.5})
    assert [s.channels for s in RESNET.stages] == [16, 32, 64] and [s.channels for s in half.stages] == [8, 16, 32]
    assert half.stem[0].channels == 8 and [s.blocks for s in half.stages] == [3, 3, 3]   # depth untouched
    double, _ = apply(RESNET, None, {"width": 2.0})
    assert [s.channels for s in double.stages] == [32, 64, 128]
    assert half.num_params() < RESNET.num_params() < double.num_params()
    dense, _ = apply(DENSENET, None, {"width": 1.5})
    assert [s.growth_rate for s in dense.stages] == [round(s.growth_rate * 1.5) for s in DENSENET.stages]
    off = dataclasses.replace(INCEPTION.stages[0], branch5x5_reduce=0, branch5x5=0)
    inception = dataclasses.replace(INCEPTION, stages=(off, *INCEPTION.stages[1:]))
    wide, _ = apply(inception, None, {"width": 2})
    assert (wide.stages[0].branch5x5, wide.stages[0].branch1x1) == (0, 2 * off.branch1x1)  # a branch off stays off
    # a width set by its own path wins over the multiplier, whatever the order
    mixed, _ = apply(RESNET, None, {"stem[0].channels": 16, "width": 2.0})
    assert mixed.stem[0].channels == 16 and [s.channels for s in mixed.stages] == [32, 64, 128]
    assert parse_vary("width=0.5:2", RESNET).domain(RESNET) == Domain("width", "float", 0.5, 2.0, default=1.0)
    assert parse_vary("width=0.5:2:log", RESNET).domain(RESNET).log
    assert parse_vary("width=0.5,1,2", RESNET).values == (0.5, 1.0, 2.0)
    assert trial_label({"width": 1.5, "train.lr": 0.01}) == "width=1.5 lr=0.01"
    with pytest.raises(StudyError, match=r"^width: must be >= 0.125"):
        parse_vary("width=0:2", RESNET)


def test_a_vary_gives_its_domain():
    assert parse_vary("train.lr=1e-4:1e-1").domain(RESNET) == Domain("train.lr", "float", 1e-4, 0.1, log=True,
                                                                       default=0.001)
    assert parse_vary("stages[*].blocks").domain(RESNET).high == 200
    with pytest.raises(StudyError, match=r"^train\.lr: is a list of values: a search needs a range"):
        parse_vary("train.lr=1e-3,1e-2").domain(RESNET)


# --------------------------------------------------------------------------------------------- apply
def test_apply_sets_values_on_new_frozen_objects():
    base_train = TrainConfig()
    spec, train = apply(RESNET, base_train, {"stages[2].blocks": 5, "stem[0].channels": 8, "head.dropout": 0.25,
                                             "input_size": 28, "in_channels": 1, "train.lr": 0.01,
                                             "train.batch_size": 32})
    assert [s.blocks for s in spec.stages] == [3, 3, 5]
    assert spec.stem[0].channels == 8 and spec.head.dropout == 0.25 and spec.input_size == 28
    assert spec.in_channels == 1 and (train.lr, train.batch_size) == (0.01, 32)
    assert RESNET == PRESETS["cifar-resnet20"] and base_train == TrainConfig()      # untouched
    assert spec.stages[0] is RESNET.stages[0]                                       # unchanged parts are shared
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.input_size = 3
    assert NetSpec.from_dict(spec.to_dict()) == spec


def test_apply_with_nothing_returns_the_inputs():
    assert apply(RESNET, None, {}) == (RESNET, TrainConfig())


def test_a_wildcard_sets_every_stage_with_the_field_and_skips_the_others():
    spec, _ = apply(MIXED, None, {"stages[*].channels": 24})
    assert spec.stages[0] == MIXED.stages[0]                      # dense: no channels field
    assert (spec.stages[1].channels, spec.stages[2].channels) == (24, 24)
    assert spec.stem[0].channels == 8                             # stages[*] is not the stem
    spec, _ = apply(MIXED, None, {"stages[*].layers": 3})
    assert (spec.stages[0].layers, spec.stages[1].layers, spec.stages[2].blocks) == (3, 3, 1)


@pytest.mark.parametrize("assignment", [{"stages[*].blocks": 1, "stages[1].blocks": 4},
                                        {"stages[1].blocks": 4, "stages[*].blocks": 1}])
def test_an_indexed_path_wins_over_a_wildcard_in_any_order(assignment):
    spec, _ = apply(RESNET, None, assignment)
    assert [s.blocks for s in spec.stages] == [1, 4, 1]


def test_one_part_is_remade_once_with_all_its_new_values():
    # setting branch3x3 to 0 alone leaves a reduce width for a branch that is off: invalid
    with pytest.raises(SpecError) as info:
        apply(INCEPTION, None, {"stages[0].branch3x3": 0})
    assert str(info.value) == ("stages[0].branch3x3_reduce: must be 0 when branch3x3 is 0 (the branch is off), "
                               "got 96")
    assert info.value.path == "stages[0].branch3x3_reduce"
    spec, _ = apply(INCEPTION, None, {"stages[0].branch3x3": 0, "stages[0].branch3x3_reduce": 0})
    assert spec.stages[0].branch_chains(16)[1][0] == "b5x5"      # the 3x3 branch is gone


@pytest.mark.parametrize("spec, assignment, error, message, path", [
    (RESNET, {"input_size": 8, "stem[0].stride": 4}, SpecError,
     "stage 3 (residual): a 1x1 feature map cannot be halved (input 8x8)", "stages[2]"),
    (DENSENET, {"stages[2].growth_rate": 0}, StudyError, "stages[2].growth_rate: must be >= 1, got 0",
     "stages[2].growth_rate"),
    (RESNET, {"stages[0].channels": 8}, SpecError,
     "stages[0].shortcut: zero_pad cannot reduce 16 channels to 8; use a conv shortcut", "stages[0].shortcut"),
    (RESNET, {"stages[*].channels": 2048, "stages[*].blocks": 200}, SpecError,
     "network: at least 15,063,679,440 parameters, over the limit of 200,000,000", "stages"),
    (RESNET, {"input_size": 4}, StudyError, "input_size: must be >= 8, got 4", "input_size"),
    (RESNET, {"stages[0].blocks": 2.0}, StudyError, "stages[0].blocks: must be an integer, got 2.0",
     "stages[0].blocks"),
    (RESNET, {"stages[0].blocks": True}, StudyError, "stages[0].blocks: must be an integer, got true",
     "stages[0].blocks"),
    (RESNET, {"stages[0].skip": 1}, StudyError, "stages[0].skip: must be true or false, got 1", "stages[0].skip"),
    (RESNET, {"stages[*].shortcut": "magic"}, StudyError, "stages[*].shortcut: must be one of 'projection'",
     "stages[*].shortcut"),
    (RESNET, {"train.batch_size": 0}, StudyError, "train.batch_size: must be >= 1, got 0", "train.batch_size"),
    (RESNET, {"train.lr": float("nan")}, StudyError, "train.lr: must be a finite number, got nan", "train.lr"),
    (RESNET, {"train.recipe": "slow"}, StudyError, "train.recipe: must be one of 'default', 'article', 'fast'",
     "train.recipe"),
    (RESNET, {"stages[5].blocks": 2}, StudyError, "stages[5].blocks: the network has 3 stages", "stages[5].blocks"),
    (RESNET, {"stages[0].blocks": 2, " stages[0].blocks": 3}, StudyError, "stages[0].blocks: is set twice",
     "stages[0].blocks"),
])
def test_infeasible_assignments_raise_the_projects_message(spec, assignment, error, message, path):
    with pytest.raises(error) as info:
        apply(spec, None, assignment)
    assert str(info.value).startswith(message)
    assert isinstance(info.value, SpecError) and info.value.path == path


def test_floats_take_ints_and_the_result_round_trips():
    spec, train = apply(RESNET, None, {"head.dropout": 0, "train.lr": 1, "norm_eps": 1e-3})
    assert type(spec.head.dropout) is float and type(train.lr) is float
    assert NetSpec.from_json(spec.to_json()) == spec and TrainConfig.from_dict(train.to_dict()) == train


@pytest.mark.parametrize("order", [0, 1])
def test_a_recipe_applies_first_and_explicit_settings_win(order):
    items = [("train.recipe", "fast"), ("train.batch_size", 32)]
    assignment = dict(items if order == 0 else items[::-1])
    base = TrainConfig(epochs=2, seed=7)
    _, train = apply(RESNET, base, assignment)
    assert train == dataclasses.replace(apply_recipe("fast", base), batch_size=32)
    assert (train.optimizer, train.lr, train.schedule, train.epochs, train.seed) == ("sgd", 0.1, "onecycle", 2, 7)
    _, train = apply(RESNET, base, {"train.recipe": "article"})
    assert train == RECIPES["article"].apply(base) and train.batch_size == 32


def test_train_config_rules_are_named_under_train(monkeypatch):
    # a TrainConfig check beyond the field metadata (none today) still names the field under train.
    def refuse(settings):
        raise ConfigError("momentum: refused", "momentum")

    base = TrainConfig()
    monkeypatch.setattr("archs.training.config._check", refuse)
    with pytest.raises(ConfigError) as info:
        apply(RESNET, base, {"train.momentum": 0.5})
    assert (str(info.value), info.value.path) == ("train.momentum: refused", "train.momentum")


# --------------------------------------------------------------------------------------------- grid
def test_grid_is_the_product_seed_by_seed_in_a_stable_order():
    trials = grid([("stages[*].blocks", [1, 2]), ("train.lr", [1e-3, 1e-2, 1e-1])], seeds=2)
    assert len(trials) == 12
    assert trials[:4] == [{"stages[*].blocks": 1, "train.lr": 1e-3, "train.seed": 0},
                          {"stages[*].blocks": 1, "train.lr": 1e-2, "train.seed": 0},
                          {"stages[*].blocks": 1, "train.lr": 1e-1, "train.seed": 0},
                          {"stages[*].blocks": 2, "train.lr": 1e-3, "train.seed": 0}]
    assert [t["train.seed"] for t in trials] == [0] * 6 + [1] * 6
    assert [list(t) for t in trials] == [["stages[*].blocks", "train.lr", "train.seed"]] * 12
    assert trials == grid([("stages[*].blocks", [1, 2]), ("train.lr", [1e-3, 1e-2, 1e-1])], seeds=2)


def test_grid_takes_vary_objects_canonical_paths_and_seed_lists():
    trials = grid([parse_vary("stages[0].skip=yes,no", RESNET), (" head.dropout ", (0.0,))], seeds=[5, 3])
    assert trials == [{"stages[0].skip": True, "head.dropout": 0.0, "train.seed": 5},
                      {"stages[0].skip": False, "head.dropout": 0.0, "train.seed": 5},
                      {"stages[0].skip": True, "head.dropout": 0.0, "train.seed": 3},
                      {"stages[0].skip": False, "head.dropout": 0.0, "train.seed": 3}]
    assert grid([], seeds=3) == [{"train.seed": 0}, {"train.seed": 1}, {"train.seed": 2}]
    for trial in trials:
        apply(RESNET, None, trial)


@pytest.mark.parametrize("vary, seeds, message", [
    ([("train.lr", [1e-3]), ("train.lr ", [1e-2])], 1, "train.lr: is varied twice"),
    ([parse_vary("train.lr=1e-4:1e-1")], 1, "train.lr: is a range: a grid needs a list of values"),
    ([("train.seed", [1, 2])], 1, "train.seed: give seeds as the number of seeds"),
    ([("train.lr", [])], 1, "train.lr: has no values"),
    ([("train.nope", [1])], 1, "train.nope: unknown training setting"),
    ([], 0, "seeds: must be at least 1, got 0"),
    ([], [], "seeds: give at least one seed"),
    ([], [1, 1], "seeds: a seed is given twice"),
    ([], [-1], "seeds: must be whole numbers >= 0, got -1"),
    ([], True, "seeds: must be a count or a list of seeds, got bool"),
    ([("train.lr", list(range(1, 101))), ("train.epochs", list(range(1, 101)))], 2,
     f"grid: 20,000 trials, over the limit of {MAX_TRIALS:,}"),
])
def test_bad_grids(vary, seeds, message):
    with pytest.raises(StudyError) as info:
        grid(vary, seeds)
    assert str(info.value).startswith(message)


# --------------------------------------------------------------------------------------------- labels
def test_trial_labels_are_short_and_readable():
    assert trial_label({"stages[2].growth_rate": 12, "train.lr": 1e-3, "train.seed": 1}) == \
        "growth_rate=12 lr=0.001 seed=1"
    assert trial_label({"stages[0].channels": 16, "stages[1].channels": 32, "stages[*].skip": False,
                        "train.recipe": "fast", "head.dropout": 0.25, "train.max_steps": None}) == \
        "stages[0].channels=16 stages[1].channels=32 skip=no recipe=fast dropout=0.25 max_steps=none"
    assert trial_label({"train.lr": 3e-05}) == "lr=3e-05"
    assert trial_label({}) == "base"
    long = trial_label({f"train.{name}": 0.5 for name in ("lr", "momentum", "weight_decay", "label_smoothing",
                                                           "warmup_fraction", "eval_from")}, max_chars=40)
    assert len(long) == 40 and long.endswith("…") and long.startswith("lr=0.5 momentum=0.5")
    assert re.fullmatch(r"[\w.=\[\]* …-]+", trial_label({parse_path("stages[*].blocks"): 3})) and \
        trial_label({parse_path("stages[*].blocks"): 3}) == "blocks=3"


def test_domains_drive_a_real_optuna_search_without_training():
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    domains = [domain(RESNET, "stages[*].blocks", low=1, high=4), parse_vary("train.lr=1e-4:1e-1").domain(RESNET),
               domain(RESNET, "train.recipe"), domain(RESNET, "stages[0].skip"), domain(RESNET, "head.dropout")]
    seen = []

    def objective(trial):
        assignment = {d.path: d.suggest(trial) for d in domains}
        assert all(d.contains(assignment[d.path]) for d in domains)
        spec, train = apply(RESNET, None, assignment)
        seen.append((assignment, spec, train))
        return spec.num_params() * train.lr

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=12)
    assert len(seen) == 12 and set(study.best_params) == {d.path for d in domains}
    assert study.trials[0].distributions["train.lr"].log
    for assignment, spec, train in seen:
        assert {s.blocks for s in spec.stages} == {assignment["stages[*].blocks"]}
        assert spec.stages[0].skip is assignment["stages[0].skip"]
        assert train.optimizer == RECIPES[assignment["train.recipe"]].settings["optimizer"]
