"""The size budget (archs.budget): counted from the spec alone, exact against the built network and torchinfo,
letting every preset and He et al.'s networks through, and refusing the hostile ones wherever they come in
(a link, a file, the Build and Compare pages, a study trial, a run request) with the setting's name."""

import json
from dataclasses import replace

import pytest
import torch
from app_helpers import metric, open_app, run, stage_key, texts
from torch import nn

import archs
from archs import PRESETS, DenseSpec, HeadSpec, InceptionSpec, NetSpec, PlainSpec, ResidualSpec, SpecError
from archs.budget import Budget, BudgetError, check, estimate, footprint
from archs.presets import cifar_resnet, torchvision_resnet
from archs.training.config import DataConfig, TrainConfig
from archs.training.limits import LimitError, Limits
from archs.training.request import RunRequest
from ui import draft

SETTINGS = ("ARCHS_MAX_STAGES", "ARCHS_MAX_BLOCKS", "ARCHS_MAX_MODULES", "ARCHS_MAX_PARAMS", "ARCHS_MAX_MEMORY_MB")

# the link of the issue: 100 residual stages of 200 blocks, 93 M parameters (under the parameter limit)
ATTACK = NetSpec(name="attack", stages=tuple(ResidualSpec(blocks=200, channels=16) for _ in range(100)))


@pytest.fixture(autouse=True)
def default_budget(monkeypatch):
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)


def no_building(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a module was built")

    monkeypatch.setattr(nn.Conv2d, "__init__", refuse)


def preact_resnet1001() -> NetSpec:
    """He et al. 2016's pre-activation bottleneck ResNet-1001 for CIFAR-10."""
    return NetSpec(name="preact-resnet1001", stem=(PlainSpec(channels=16, norm=False, activation=False),),
                   stages=tuple(ResidualSpec(blocks=111, channels=c, stride=s, block="bottleneck", preactivation=True)
                                for c, s in ((16, 1), (32, 2), (64, 2))),
                   head=HeadSpec(norm_activation=True))


HE_ET_AL = {"resnet101": torchvision_resnet("resnet101", "bottleneck", (3, 4, 23, 3)),
            "resnet152": torchvision_resnet("resnet152", "bottleneck", (3, 8, 36, 3)),
            "cifar-resnet1202": cifar_resnet(1202), "cifar-plain1202": cifar_resnet(1202, skip=False),
            "preact-resnet1001": preact_resnet1001()}

VARIANTS = {
    "preactivation": replace(PRESETS["cifar-resnet20"], stages=tuple(
        replace(s, preactivation=True, shortcut="projection") for s in PRESETS["cifar-resnet20"].stages)),
    "bottleneck, no norm": replace(PRESETS["cifar-resnet20"], norm="none", stages=tuple(
        replace(s, block="bottleneck", activation_before_add=True, shortcut="conv1x1_bias")
        for s in PRESETS["cifar-resnet20"].stages)),
    "no stem": replace(PRESETS["cifar-resnet20"], stem=()),
    "dense": NetSpec(stages=(DenseSpec(bottleneck=False, dropout=0.2), DenseSpec(layers=3, transition=False)),
                     head=HeadSpec(norm_activation=True, dropout=0.5)),
    "inception": NetSpec(stages=(
        InceptionSpec(modules=3, double3x3=16, double3x3_reduce=8, branch_norm=False, pool="max"),
        InceptionSpec(branch_activation=False, branch_pool_type="avg", pool="avg", pool_ceil_mode=True,
                      pool_kernel=3))),
    "plain": NetSpec(stem=(PlainSpec(layers=3, stride=2, pool="max", activation_after_pool=True, kernel_size=5,
                                     padding=2),),
                     stages=(PlainSpec(norm=False, activation=False, pool="avg"),), head=HeadSpec(pool="flatten")),
}


# ------------------------------------------------------------------------------------------ the counts
@pytest.mark.parametrize("spec", [*PRESETS.values(), *VARIANTS.values()], ids=[*PRESETS, *VARIANTS])
def test_counts_from_the_spec_match_the_built_network(spec):
    fp = footprint(spec)
    with torch.device("meta"):
        model = archs.build_model(spec, init_weights=False)
    assert fp.modules == sum(1 for _ in model.modules())
    assert fp.params == sum(p.numel() for p in model.parameters())
    assert fp.stages == len(spec.stem) + len(spec.stages)
    blocks = sum(len([n for n in stage._modules if n not in ("pool", "act", "transition")])
                 for stage in [*model.stem, *list(model.children())[1:-1]])
    assert fp.blocks == blocks


@pytest.mark.parametrize("name", ["resnet50", "densenet121", "googlenet", "cifar-resnet20", "seed002-inception",
                                  "preactivation", "bottleneck, no norm", "dense", "inception", "plain"])
def test_activations_match_torchinfos_rows(name):
    spec = PRESETS.get(name) or VARIANTS[name]
    summary = archs.summarize(spec)
    fp = footprint(spec)
    leaves = sum(_numel(row.output_shape) for row in summary.rows if row.is_leaf)
    assert fp.layer_elements == leaves
    assert 2 * 4 * fp.weighted_elements == summary.activation_bytes  # the Build page's "Activations" figure


def _numel(shape) -> int:
    n = 1
    for d in shape[1:]:
        n *= d
    return n


def test_the_training_estimate_bounds_the_measured_peak():
    """Checked against PyTorch's own count of a training step's peak (MemTracker on the CPU): the estimate is an
    upper bound within a factor of about two (a generous band: allocators and kernels differ)."""
    spec, batch = PRESETS["cifar-resnet20"], 16
    report = archs.measure_cost(spec, batch_size=batch, repeats=1)
    estimated = estimate(spec, batch)
    assert 0.3 * estimated < report.peak_bytes < 1.2 * estimated, (report.peak_bytes, estimated)


def test_estimates_scale_with_the_batch_and_the_mode():
    spec = PRESETS["resnet50"]
    fp = footprint(spec)
    assert estimate(spec, 64) - estimate(spec, 32) == 32 * 4 * fp.saved_elements
    assert estimate(spec, 32, mode="forward") < estimate(spec, 32, mode="backward") < estimate(spec, 32)
    assert estimate(spec, 1, input_size=448) > 3.9 * (estimate(spec, 1) - 16 * fp.params)
    assert fp.to_dict(8)["train_bytes"] == estimate(spec, 8)
    with pytest.raises(ValueError, match="mode must be one of 'train', 'backward', 'forward', got 'fly'"):
        estimate(spec, 1, mode="fly")


# ------------------------------------------------------------------------------------------ what passes
@pytest.mark.parametrize("spec", [*PRESETS.values(), *HE_ET_AL.values()], ids=[*PRESETS, *HE_ET_AL])
def test_every_preset_and_he_et_al_network_passes_at_the_pages_default_batches(spec):
    for batch, mode in ((64, "train"), (32, "train"), (16, "backward"), (256, "forward")):  # Train, Build,
        check(spec, batch, mode=mode)                                     # Gradients, a run's evaluation
    spec.plan()
    NetSpec.from_json(spec.to_json())
    request = RunRequest(spec=spec, train=TrainConfig(batch_size=64), owner="session:a")
    assert Limits().prepare(request) == request


def test_budget_settings_come_from_the_environment():
    assert Budget.from_env({}) == Budget() == Budget(64, 1_000, 6_000, 200_000_000, 32_768)
    budget = Budget.from_env({"ARCHS_MAX_STAGES": "8", "ARCHS_MAX_BLOCKS": "junk", "ARCHS_MAX_MODULES": "-3",
                              "ARCHS_MAX_PARAMS": "50e6", "ARCHS_MAX_MEMORY_MB": "2048"})
    assert budget == Budget(max_stages=8, max_params=50_000_000, max_memory_mb=2048)
    assert Limits.from_env({"ARCHS_MAX_MEMORY_MB": "100"}).budget.max_memory_mb == 100


# ------------------------------------------------------------------------------------------ what is refused
def test_the_100_by_200_link_is_refused_naming_the_budget_before_anything_is_built(monkeypatch):
    no_building(monkeypatch)
    link = archs.encode_spec(ATTACK)
    assert len(link) < 1000
    with pytest.raises(BudgetError) as info:
        archs.decode_spec(link)
    assert str(info.value) == "network: 100 stages, over this server's budget of 64 stages (ARCHS_MAX_STAGES=64)"
    assert info.value.limit == "ARCHS_MAX_STAGES" and info.value.path == "stages"
    with pytest.raises(BudgetError, match=r"ARCHS_MAX_STAGES=64"):
        archs.build_model(ATTACK)
    fewer = replace(ATTACK, stages=ATTACK.stages[:40])  # 40 stages of 200 blocks: still 8,000 blocks
    with pytest.raises(BudgetError, match=r"^network: 8,000 blocks, over this server's budget of 1,000 blocks "
                                          r"\(ARCHS_MAX_BLOCKS=1000\)$"):
        NetSpec.from_json(fewer.to_json())


def test_each_budget_is_named_when_it_is_the_one_passed(monkeypatch):
    spec = PRESETS["cifar-resnet110"]  # 4 parts, 55 blocks, 448 modules, 1.7 M parameters, 14 MB an image
    for name, value, says in (("ARCHS_MAX_STAGES", "3", "4 stages"), ("ARCHS_MAX_BLOCKS", "50", "55 blocks"),
                              ("ARCHS_MAX_MODULES", "400", "448 modules"),
                              ("ARCHS_MAX_PARAMS", "1000000", "at least 1,727,312 parameters"),
                              ("ARCHS_MAX_MEMORY_MB", "10", "needs about 40 MB to train")):
        monkeypatch.setenv(name, value)
        with pytest.raises(BudgetError) as info:
            spec.plan()
        assert says in str(info.value) and f"({name}={value})" in str(info.value)
        assert info.value.limit == name
        monkeypatch.delenv(name)
    assert spec.num_params() == 1_727_962  # counting alone is never refused


def test_a_hostile_json_is_refused_before_its_parts_are_made(monkeypatch):
    made = []
    monkeypatch.setattr(PlainSpec, "check", lambda self: made.append(self))
    data = {"format": "archs.netspec/1", "stem": [], "stages": [{"type": "plain"}] * 50_000, "head": {}}
    with pytest.raises(BudgetError, match=r"^network: 50,000 stages, over this server's budget of 64 stages"):
        NetSpec.from_json(json.dumps(data, separators=(",", ":")))   # under a megabyte of JSON
    with pytest.raises(BudgetError, match=r"^network: 1,000,000 stages, over this server's budget of 64 stages"):
        NetSpec.from_dict({**data, "stages": [{"type": "plain"}] * 1_000_000})
    assert made == []
    wide = NetSpec(name="wide", input_size=1024, stages=(PlainSpec(layers=4, channels=2048),))  # 151 M parameters
    with pytest.raises(BudgetError, match=r"^input_size: wide at batch 1 and input 1024x1024 needs about 98 GB "
                                          r"to train .*\(ARCHS_MAX_MEMORY_MB=32768\): make the network or its "
                                          "input smaller$"):
        NetSpec.from_json(wide.to_json())


def test_a_run_at_input_1024_is_refused_at_submit_with_the_budget(tmp_path):
    from archs.training.executors.local import LocalExecutor
    from archs.training.store import RunStore

    mnist_1024 = replace(PRESETS["cifar-resnet20"], in_channels=1, input_size=1024)  # itself within the budget
    request = RunRequest(spec=mnist_1024, data=DataConfig(name="mnist"), train=TrainConfig(batch_size=64),
                         owner="session:a")
    executor = LocalExecutor(RunStore(tmp_path / "runs"), Limits(max_concurrent=1), threads=1)
    with pytest.raises(LimitError) as info:
        executor.submit(request)
    assert info.value.limit == "ARCHS_MAX_MEMORY_MB"
    assert str(info.value).startswith("batch_size: cifar-resnet20 at batch 64 and input 1024x1024 needs about "
                                      "162 GB to train (estimated from its layers), over this server's budget of "
                                      "32 GB (ARCHS_MAX_MEMORY_MB=32768): lower the batch size or the input size")
    assert executor.store.runs() == []
    small = replace(request, train=TrainConfig(batch_size=8))  # 20 GB to train, but 49 GB to evaluate
    with pytest.raises(LimitError, match=r"^batch_size: cifar-resnet20 at batch 256 and input 1024x1024 needs about "
                                         r"49 GB to evaluate \(a training run evaluates at batch 256 or its own"):
        Limits().prepare(small)
    at_256 = replace(small, spec=replace(mnist_1024, input_size=256), train=TrainConfig(batch_size=64))
    assert Limits().prepare(at_256) == at_256
    gradients = replace(request, kind="gradients", train=TrainConfig(batch_size=16))
    assert Limits(budget=Budget(max_memory_mb=4096)).prepare(replace(gradients, spec=PRESETS["resnet50"]))
    with pytest.raises(LimitError, match="needs about 41 GB for a forward and backward pass"):
        Limits(budget=Budget(max_memory_mb=4096)).prepare(gradients)
    # the Measured cost of ResNet-50 at batch 256: a training step of 36 GB
    with pytest.raises(BudgetError, match=r"at batch 256 and input 224x224 needs about 36 GB to train"):
        check(PRESETS["resnet50"], 256)


def test_a_stored_run_stays_readable_after_the_operator_lowers_the_budget(tmp_path, monkeypatch):
    from archs.training.store import RunStore
    from archs.training.stored import spec_of

    store = RunStore(tmp_path / "runs")
    spec = PRESETS["resnet50"]
    run_ = store.create(RunRequest(spec=spec, data=DataConfig(name="digits"), owner="session:a"))
    monkeypatch.setenv("ARCHS_MAX_STAGES", "2")
    monkeypatch.setenv("ARCHS_MAX_PARAMS", "1000")
    with pytest.raises(BudgetError, match=r"ARCHS_MAX_STAGES=2"):
        NetSpec.from_json(spec.to_json())  # a new network over the lowered budget is refused
    assert spec_of(store.get(run_.id)) == spec  # the one admitted before still reads back whole


def test_a_study_trial_over_the_budget_is_infeasible_with_the_message(monkeypatch):
    from archs.studies.space import apply

    monkeypatch.setenv("ARCHS_MAX_BLOCKS", "100")
    with pytest.raises(SpecError, match=r"^network: 601 blocks, over this server's budget of 100 blocks "
                                        r"\(ARCHS_MAX_BLOCKS=100\)") as info:
        apply(PRESETS["cifar-resnet20"], None, {"stages[*].blocks": 200})
    assert info.value.path == "stages"  # the study driver records str(error) as the infeasible trial's reason
    spec, train = apply(PRESETS["cifar-resnet20"], TrainConfig(), {"input_size": 512, "train.batch_size": 512})
    with pytest.raises(LimitError, match="ARCHS_MAX_MEMORY_MB"):  # at submit: infeasible, not a full queue
        Limits().prepare(RunRequest(spec=spec, train=train, owner="session:a"))


# ------------------------------------------------------------------------------------------ the pages
def test_the_build_page_opened_with_the_link_says_why_and_keeps_serving(monkeypatch):
    built = []
    original = ResidualSpec.build
    monkeypatch.setattr(ResidualSpec, "build", lambda self, *a: built.append(self.blocks) or original(self, *a))
    at = open_app(spec=archs.encode_spec(ATTACK))
    assert at.session_state["spec"] == PRESETS[draft.DEFAULT_NETWORK]
    warning = texts(at.warning)
    assert "100 stages, over this server's budget of 64 stages (ARCHS_MAX_STAGES=64)" in warning
    assert draft.DEFAULT_NETWORK in warning
    assert 200 not in built
    assert metric(at, "Parameters") == f"{PRESETS[draft.DEFAULT_NETWORK].num_params():,}"
    run(at.slider(key=stage_key(at, 0, "blocks")).set_value(4))   # the session goes on
    assert metric(at, "Parameters") != f"{PRESETS[draft.DEFAULT_NETWORK].num_params():,}"


def test_an_edit_over_the_budget_shows_the_budget_and_keeps_the_last_network(monkeypatch):
    monkeypatch.setenv("ARCHS_MAX_BLOCKS", "12")
    at = open_app(preset="cifar-resnet20")                         # a stem conv and 3 x 3 blocks: 10
    run(at.slider(key=stage_key(at, 0, "blocks")).set_value(5))   # 12
    assert at.session_state["spec"].stages[0].blocks == 5
    run(at.slider(key=stage_key(at, 0, "blocks")).set_value(6))   # 13
    assert "13 blocks, over this server's budget of 12 blocks (ARCHS_MAX_BLOCKS=12)" in texts(at.error)
    assert at.session_state["spec"].stages[0].blocks == 5


def test_the_compare_page_refuses_the_link_as_a_side():
    at = open_app(b="spec:" + archs.encode_spec(ATTACK))
    run(at.switch_page("pages/compare.py"))
    shown = texts(at.error) + texts(at.warning)
    assert "ARCHS_MAX_STAGES" in shown, shown


def test_the_build_page_says_when_its_batch_is_over_the_memory_budget(monkeypatch):
    monkeypatch.setenv("ARCHS_MAX_MEMORY_MB", "100")   # cifar-resnet20 trains in 84 MB at batch 32, 167 MB at 64
    at = open_app(preset="cifar-resnet20")
    assert not at.warning
    run(at.number_input(key="mem_batch").set_value(64))
    assert ("cifar-resnet20 at batch 64 and input 32x32 needs about 167 MB to train (estimated from its layers), "
            "over this server's budget of 100 MB (ARCHS_MAX_MEMORY_MB=100)") in texts(at.warning)
