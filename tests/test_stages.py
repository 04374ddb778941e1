"""Every stage type in its variants: shapes and channels as planned, analytic parameter counts equal to
the built module's, finite gradients, and the behaviour each variant promises."""

import itertools
from dataclasses import replace

import pytest
import torch
from torch import nn

from archs import STAGE_TYPES, DenseSpec, HeadSpec, InceptionSpec, NetSpec, PlainSpec, ResidualSpec, build_model
from archs.stages.base import BuildContext
from archs.stages.residual import ZeroPadShortcut

RESIDUAL_VARIANTS = [
    ResidualSpec(blocks=2, channels=c, block=block, stride=stride, shortcut=shortcut, skip=skip,
                 activation_before_add=before, preactivation=pre, conv_bias=stride == 2)
    for block, shortcut, (stride, c), skip, (before, pre) in itertools.product(
        ("basic", "bottleneck"), ("projection", "conv3x3", "zero_pad", "conv1x1_bias"), ((1, 8), (2, 16)),
        (True, False), ((False, False), (True, False), (False, True)))
]
DENSE_VARIANTS = [
    DenseSpec(layers=3, growth_rate=5, bottleneck=b, bn_size=2, dropout=d, conv_bias=bias, transition=t,
              compression=c)
    for b, d, bias, t, c in itertools.product((True, False), (0.0, 0.2), (False, True), (True, False), (0.5, 0.3))
]
INCEPTION_VARIANTS = [
    InceptionSpec(modules=m, branch1x1=4, branch3x3_reduce=r, branch3x3=6, branch5x5_reduce=2, branch5x5=3,
                  branch5x5_kernel=k, double3x3_reduce=d, double3x3=d and 5, branch_pool_type=pt,
                  branch_pool_projection=pp, branch_norm=n, branch_activation=a, conv_bias=bias, pool=pool,
                  pool_kernel=3, pool_stride=2, pool_padding=1 if pool != "none" else 0)
    for m, r, k, d, pt, pp, n, a, bias, pool in [
        (1, 3, 5, 0, "max", 4, True, True, False, "none"), (2, 0, 3, 2, "avg", 4, False, False, True, "max"),
        (1, 3, 5, 2, "max", 0, True, False, True, "avg"), (3, 0, 3, 0, "avg", 2, False, True, False, "none")]
]
PLAIN_VARIANTS = [
    PlainSpec(layers=depth, channels=6, kernel_size=k, stride=s, padding=k // 2 if same else 0, conv_bias=bias, norm=n,
              activation=a, pool=pool, pool_kernel=2, pool_stride=2, activation_after_pool=late)
    for depth, k, s, same, bias, n, a, pool, late in [
        (1, 3, 1, True, False, True, True, "none", False), (2, 5, 2, False, True, False, True, "max", True),
        (3, 1, 1, True, True, True, False, "avg", False), (1, 7, 2, True, False, True, True, "max", False)]
]
ALL_VARIANTS = RESIDUAL_VARIANTS + DENSE_VARIANTS + INCEPTION_VARIANTS + PLAIN_VARIANTS


def net_with(stage, norm="batch", in_channels=8):
    return NetSpec(in_channels=in_channels, num_classes=3, input_size=16, norm=norm, stages=(stage,), head=HeadSpec())


def test_registry_holds_a_type_per_stage_file():
    """Each module of archs/stages but base registers its types (tests/test_stage_types.py covers them all)."""
    from pathlib import Path

    import archs.stages

    files = {p.stem for p in Path(archs.stages.__file__).parent.glob("*.py")} - {"__init__", "base"}
    assert {cls.__module__.rsplit(".", 1)[1] for cls in STAGE_TYPES.values()} == files
    assert {"residual", "dense", "inception", "plain", "resnext", "se_residual", "inverted_residual",
            "convnext"} <= set(STAGE_TYPES)


# every variant once, half of them (alternating) without normalisation
@pytest.mark.parametrize("stage,norm", [(s, ("batch", "none")[i % 2]) for i, s in enumerate(ALL_VARIANTS)],
                         ids=lambda v: getattr(v, "type_name", v))
def test_stage_contract(stage, norm):
    if stage.type_name == "residual" and stage.shortcut == "zero_pad" and stage.skip:
        in_channels = 4  # zero padding only adds channels
    else:
        in_channels = 8
    spec = net_with(stage, norm, in_channels)
    plan = {p.name: p for p in spec.plan()}["stage1"]
    module = stage.build(in_channels, BuildContext(norm=norm))
    assert sum(p.numel() for p in module.parameters()) == stage.num_params(in_channels, BuildContext(norm=norm))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in module.modules()) or norm == "batch"
    module.train()
    x = torch.randn(2, in_channels, 16, 16, requires_grad=True)
    y = module(x)
    assert y.shape == (2, plan.out_channels, *plan.out_size)
    assert plan.out_channels == stage.out_channels(in_channels)
    # the reported stride agrees with the sizes (up to rounding of odd sizes)
    assert -(-16 // stage.out_stride()) >= plan.out_size[0] >= 16 // stage.out_stride() - 4
    y.square().mean().backward()
    assert torch.isfinite(x.grad).all()
    for p in module.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all()


def test_zero_pad_shortcut_subsamples_and_pads_with_zeros():
    shortcut = ZeroPadShortcut.between(16, 32, 2)
    x = torch.randn(2, 16, 8, 8)
    y = shortcut(x)
    assert y.shape == (2, 32, 4, 4)
    assert torch.equal(y[:, 8:24], x[:, :, ::2, ::2])
    assert y[:, :8].abs().sum() == 0 and y[:, 24:].abs().sum() == 0
    assert sum(p.numel() for p in shortcut.parameters()) == 0


@pytest.mark.parametrize("shortcut,params", [("projection", 16 * 8 + 32), ("conv3x3", 16 * 8 * 9 + 32),
                                              ("zero_pad", 0), ("conv1x1_bias", 16 * 8 + 16)])
def test_shortcut_parameters(shortcut, params):
    spec = ResidualSpec(blocks=1, channels=16, stride=2, shortcut=shortcut)
    block = spec.make_block(8, 2, BuildContext())
    assert sum(p.numel() for p in block.shortcut.parameters()) == params


def test_identity_skip_carries_the_input_when_the_branch_is_silent():
    spec = ResidualSpec(blocks=1, channels=8)
    block = spec.make_block(8, 1, BuildContext(norm="none"))
    for p in block.branch.parameters():
        nn.init.zeros_(p)
    x = torch.randn(2, 8, 5, 5)
    assert torch.equal(block(x), torch.relu(x))
    plain = replace(spec, skip=False).make_block(8, 1, BuildContext(norm="none"))
    for p in plain.branch.parameters():
        nn.init.zeros_(p)
    assert plain(x).abs().sum() == 0
    assert plain.shortcut is None


def test_activation_before_add_applies_relu_to_the_branch_too():
    block = ResidualSpec(blocks=1, channels=8, activation_before_add=True).make_block(8, 1, BuildContext())
    names = [type(m).__name__ for m in block.branch]
    assert names == ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "BatchNorm2d", "ReLU"]
    standard = ResidualSpec(blocks=1, channels=8).make_block(8, 1, BuildContext())
    assert [type(m).__name__ for m in standard.branch][-1] == "BatchNorm2d"


def test_preactivation_orders_norm_before_conv_and_has_no_final_activation():
    block = ResidualSpec(blocks=1, channels=8, preactivation=True).make_block(8, 1, BuildContext())
    assert [type(m).__name__ for m in block.preact] == ["BatchNorm2d", "ReLU"]
    assert [type(m).__name__ for m in block.branch] == ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d"]
    assert block.act is None


def test_dense_channel_arithmetic():
    # 3 + 2 x 10 = 23 channels, as d2l teaches growth rate; a transition with compression 0.5 keeps 11
    assert DenseSpec(layers=2, growth_rate=10, transition=False).out_channels(3) == 23
    assert DenseSpec(layers=2, growth_rate=10, transition=True, compression=0.5).out_channels(3) == 11
    stage = DenseSpec(layers=2, growth_rate=10, transition=False).build(3, BuildContext())
    x = torch.randn(1, 3, 6, 6)
    y = stage(x)
    assert y.shape == (1, 23, 6, 6) and torch.equal(y[:, :3], x)  # the input is carried through


def test_inception_concatenates_the_branches_that_are_on():
    stage = InceptionSpec(branch1x1=4, branch3x3_reduce=0, branch3x3=0, branch5x5_reduce=0, branch5x5=0,
                          double3x3_reduce=2, double3x3=5, branch_pool_projection=3)
    assert stage.out_channels(7) == 12
    module = stage.build(7, BuildContext())
    assert list(module.module1.branches) == ["b1x1", "double3x3", "pool"]
    assert module(torch.randn(1, 7, 9, 9)).shape == (1, 12, 9, 9)


def test_real_5x5_versus_torchvision_stand_in():
    real = InceptionSpec(branch5x5_kernel=5).build(8, BuildContext())
    stand_in = InceptionSpec(branch5x5_kernel=3).build(8, BuildContext())
    assert real.module1.branches["b5x5"][1].conv.kernel_size == (5, 5)
    assert stand_in.module1.branches["b5x5"][1].conv.kernel_size == (3, 3)


def test_plain_activation_after_pool_order():
    stage = PlainSpec(channels=4, kernel_size=5, padding=0, conv_bias=True, norm=False, pool="max",
                      activation_after_pool=True).build(1, BuildContext(norm="none"))
    assert list(stage._modules) == ["layer1", "pool", "act"]
    assert list(stage.layer1._modules) == ["conv"]


def test_norm_none_removes_every_norm_layer():
    from archs import PRESETS
    model = build_model(replace(PRESETS["cifar-resnet20"], norm="none"))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())



NEW_STAGE_FILE = """
from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from ..fields import param
from .base import StageSpec, register_stage


class PointwiseStage(nn.Sequential):
    pass


@register_stage
@dataclass(frozen=True)
class PointwiseSpec(StageSpec):
    type_name: ClassVar[str] = "pointwise"
    channels: int = param(8, "Output channels.", range=(1, 64), step=1)

    def out_channels(self, in_channels): return self.channels
    def out_stride(self): return 1
    def out_size(self, size): return size
    def num_params(self, in_channels, ctx): return in_channels * self.channels
    def build(self, in_channels, ctx): return PointwiseStage(nn.Conv2d(in_channels, self.channels, 1, bias=False))
"""

CHECK = """
import json
from archs import STAGE_TYPES, NetSpec, build_model
data = {"format": "archs.netspec/1", "name": "n", "in_channels": 3, "num_classes": 10, "input_size": 16,
        "norm": "batch", "norm_eps": 1e-5, "activation": "relu", "init": "default", "stem": [],
        "stages": [{"type": "pointwise", "channels": 5}],
        "head": {"pool": "global_avg", "pool_kernel": 2, "norm_activation": False, "dropout": 0.0}}
spec = NetSpec.from_json(json.dumps(data))
model = build_model(spec)
print(sorted(STAGE_TYPES), spec.num_params(), sum(p.numel() for p in model.parameters()))
"""


def test_a_new_stage_type_is_one_new_file(tmp_path):
    """A copy of the package plus one file in archs/stages: specs, JSON and the builder know the type."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import archs

    shutil.copytree(Path(archs.__file__).parent, tmp_path / "archs", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "archs" / "stages" / "pointwise.py").write_text(NEW_STAGE_FILE)
    result = subprocess.run([sys.executable, "-c", CHECK], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    names = sorted([*STAGE_TYPES, "pointwise"])
    assert result.stdout.split("\n")[0] == f"{names} 75 75"  # 3x5 conv + 5x10+10 linear
