"""Every preset: built, run forward and backward, exact parameter count, JSON round trip."""

import pytest
import torch
from reference_nets import REFERENCES
from torch import nn

from archs import PRESETS, NetSpec, build_model

EXPECTED_PARAMS = {
    "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032, "densenet121": 7_978_856,
    "googlenet": 6_624_904,
    "d2l-resnet18": 11_178_378, "d2l-densenet": 758_226, "d2l-googlenet": 5_977_530,
    "seed000-resnet": 11_180_682, "seed002-inception": 97_298, "seed004-resnet": 195_450,
    # He et al. report 0.27 M, 0.46 M, 0.66 M, 0.85 M, 1.7 M
    "cifar-resnet20": 269_722, "cifar-resnet32": 464_154, "cifar-resnet44": 658_586,
    "cifar-resnet56": 853_018, "cifar-resnet110": 1_727_962,
    "cifar-plain20": 269_722, "cifar-plain56": 853_018, "cifar-plain110": 1_727_962,
    # by hand: conv 1->16 (144) + BN (32); conv 16->32 (4,608) + BN (64); conv 32->64 (18,432) + BN (128);
    # linear 64 x 7 x 7 -> 10 (31,370)
    "speedrun-mnist": 54_778, "speedrun-fashion-mnist": 54_778,
    # brought by their stage files (archs/stages/*.py reference_networks): torchvision's counts, and timm's
    # seresnet50 (ResNet-50's 25,557,032 + 2,530,992 in the SE modules: 2 x C x C/16 + C/16 + C per block)
    "resnext50_32x4d": 25_028_904, "mobilenet_v2": 3_504_872, "convnext_tiny": 28_589_128,
    "se-resnet50": 28_088_024,
}

TORCHVISION = {
    "resnet18": lambda m: m.resnet18(), "resnet34": lambda m: m.resnet34(), "resnet50": lambda m: m.resnet50(),
    "densenet121": lambda m: m.densenet121(),
    "googlenet": lambda m: m.googlenet(aux_logits=False, init_weights=False),
    "resnext50_32x4d": lambda m: m.resnext50_32x4d(), "mobilenet_v2": lambda m: m.mobilenet_v2(),
    "convnext_tiny": lambda m: m.convnext_tiny(),
}
# ConvNeXt's linear layers (on channels-last tensors) are 1x1 convs here: the same weights, shaped C x C' x 1 x 1
SQUEEZED = {"convnext_tiny"}


def shapes(model: nn.Module, squeeze: bool = False) -> list:
    def shape(p):
        dims = tuple(p.shape)
        while squeeze and len(dims) > 1 and dims[-1] == 1:
            dims = dims[:-1]
        return dims
    return sorted(shape(p) for p in model.parameters())


def test_every_preset_has_an_expected_count():
    assert set(PRESETS) == set(EXPECTED_PARAMS)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_builds_runs_and_counts_exactly(name):
    spec = PRESETS[name]
    model = build_model(spec).train()
    assert sum(p.numel() for p in model.parameters()) == EXPECTED_PARAMS[name]
    assert spec.num_params() == EXPECTED_PARAMS[name]  # the analytic count, before building
    assert [n for n, _ in model.named_children()] == ["stem"] + [f"stage{i + 1}" for i in range(len(spec.stages))] + ["head"]
    x = torch.randn(2, spec.in_channels, spec.input_size, spec.input_size)
    out = model(x)
    assert out.shape == (2, spec.num_classes)
    out.square().mean().backward()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs
    for conv in convs:
        assert conv.weight.grad is not None and torch.isfinite(conv.weight.grad).all()


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_json_round_trip(name):
    spec = PRESETS[name]
    again = NetSpec.from_json(spec.to_json())
    assert again == spec and hash(again) == hash(spec)


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_presets_match_torchvision(name):
    from archs._compat import import_torchvision

    reference = TORCHVISION[name](import_torchvision().models)
    ours = build_model(PRESETS[name], init_weights=False)
    assert sum(p.numel() for p in reference.parameters()) == EXPECTED_PARAMS[name]
    assert shapes(ours, name in SQUEEZED) == shapes(reference, name in SQUEEZED)


def test_se_resnet50_is_resnet50_with_an_se_module_per_block():
    ours = build_model(PRESETS["se-resnet50"], init_weights=False)
    se = [m for name, m in ours.named_modules() if name.endswith(".se")]
    assert len(se) == 16 and {(m.channels, m.reduced) for m in se} == {(256, 16), (512, 32), (1024, 64), (2048, 128)}
    extra = sum(p.numel() for m in se for p in m.parameters())
    assert EXPECTED_PARAMS["se-resnet50"] == EXPECTED_PARAMS["resnet50"] + extra == 28_088_024


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_book_and_article_presets_match_their_sources(name):
    spec = PRESETS[name]
    reference, ours = REFERENCES[name]().eval(), build_model(spec).eval()
    assert shapes(ours) == shapes(reference)
    x = torch.randn(2, spec.in_channels, spec.input_size, spec.input_size)
    assert ours(x).shape == reference(x).shape


def test_seed004_runs_on_unpadded_mnist():
    # the article's own network fails here: an 8x8 average pool over a 7x7 map
    spec = PRESETS["seed004-resnet"]
    plans = spec.plan(28)
    assert plans[-2].out_size == (7, 7)
    assert build_model(spec).eval()(torch.randn(3, 1, 28, 28)).shape == (3, 10)


def test_googlenet_5x5_branch_is_really_3x3_like_torchvision():
    model = build_model(PRESETS["googlenet"], init_weights=False)
    kernels = {m.weight.shape[-1] for name, m in model.named_modules()
               if isinstance(m, nn.Conv2d) and ".b5x5." in name}
    assert kernels == {1, 3}
    eps = {m.eps for m in model.modules() if isinstance(m, nn.BatchNorm2d)}
    assert eps == {1e-3}


def test_cifar_plain_nets_are_their_resnets_without_skips():
    for depth in (20, 56, 110):
        assert PRESETS[f"cifar-plain{depth}"].stages == PRESETS[f"cifar-resnet{depth}"].without_skips().stages
