"""Inspectors: the torchinfo summary, gradient norms per depth, the plain twin, and the measured fact
that BatchNorm plain nets' gradients grow toward the input while residual nets' stay near flat."""

import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from archs import (
    PRESETS,
    build_model,
    gradient_norms,
    gradient_profile,
    plain_twin,
    summarize,
)
from archs.stages.residual import ResidualBlock


def test_summary_totals_rows_and_stages():
    spec = PRESETS["cifar-resnet20"]
    summary = summarize(spec)
    assert summary.total_params == summary.trainable_params == 269_722
    assert [s.name for s in summary.stages] == ["stem", "stage1", "stage2", "stage3", "head"]
    assert sum(s.params for s in summary.stages) == 269_722
    assert [s.output_shape for s in summary.stages][1:4] == [(1, 16, 32, 32), (1, 32, 16, 16), (1, 64, 8, 8)]
    assert summary.mult_adds == sum(s.mult_adds for s in summary.stages) == 40_552_426
    first_conv = next(r for r in summary.rows if r.type == "Conv2d")
    assert first_conv.name == "stem.0.layer1.conv" and first_conv.stage == "stem"
    assert first_conv.mult_adds == 3 * 16 * 9 * 32 * 32 and first_conv.params == 432
    assert summary.activation_bytes > 0
    assert {r.stage for r in summary.rows} == {"stem", "stage1", "stage2", "stage3", "head"}
    plans = {p.name: p for p in spec.plan()}
    assert all(s.params == plans[s.name].params for s in summary.stages)


def test_summary_is_cached_and_scales_with_batch_and_input():
    spec = PRESETS["seed004-resnet"]
    assert summarize(spec) is summarize(spec)
    one, eight = summarize(spec, batch_size=1), summarize(spec, batch_size=8)
    assert eight.mult_adds == 8 * one.mult_adds and eight.activation_bytes == 8 * one.activation_bytes
    at28 = summarize(spec, (1, 28, 28))
    assert at28.stages[-2].output_shape == (1, 64, 7, 7)
    assert at28.total_params == one.total_params


def test_summary_to_dict_has_the_cli_keys():
    d = summarize(PRESETS["seed002-inception"]).to_dict()
    assert {"total_params", "trainable_params", "mult_adds", "stages", "layers"} <= set(d)
    assert d["stages"][-2]["output_shape"] == [1, 88, 4, 4]
    assert set(d["stages"][0]) >= {"name", "output_shape", "params", "mult_adds"}


def test_gradient_norms_cover_every_layer_and_leave_the_model_as_found():
    torch.manual_seed(0)
    spec = PRESETS["seed004-resnet"]
    model = build_model(spec).train()
    sentinel = {n: torch.full_like(p, 7.0) for n, p in model.named_parameters()}
    for n, p in model.named_parameters():
        p.grad = sentinel[n].clone()
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    x, y = torch.randn(8, 1, 32, 32), torch.randint(0, 10, (8,))
    result = gradient_norms(model, x, y)
    weighted = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert sorted(r.name for r in result.layers) == sorted(weighted)
    assert [r.depth for r in result.layers] == list(range(1, len(weighted) + 1))
    assert result.layers[0].name == "stem.0.layer1.conv" and result.layers[-1].type == "Linear"
    assert all(math.isfinite(r.grad_norm) and r.grad_norm > 0 for r in result.layers)
    assert result.layers[1].stage == "stage1" and result.layers[1].block == "stage1.block1"
    assert [b.name for b in result.blocks] == ["stem.0"] + [f"stage{s}.block{b}" for s in (1, 2, 3) for b in (1, 2)]
    assert all(b.grad_norm > 0 for b in result.blocks)
    for n, p in model.named_parameters():
        assert torch.equal(p.grad, sentinel[n])
    for n, b in model.named_buffers():
        assert torch.equal(b, buffers[n])
    assert model.training


def test_gradient_norms_match_a_plain_backward_pass():
    torch.manual_seed(1)
    model = build_model(PRESETS["cifar-resnet20"]).train()
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    result = gradient_norms(model, x, y)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    conv = model.stage2.block1.branch.conv1
    record = next(r for r in result.layers if r.name == "stage2.block1.branch.conv1")
    assert record.grad_norm == pytest.approx(float(conv.weight.grad.norm()), rel=1e-4)


def test_plain_twin_has_no_skip_left():
    for name in ("resnet50", "seed000-resnet", "cifar-resnet56", "d2l-densenet", "googlenet"):
        twin = plain_twin(PRESETS[name])
        model = build_model(twin, init_weights=False)
        blocks = [m for m in model.modules() if isinstance(m, ResidualBlock)]
        assert all(not b.skip and b.shortcut is None for b in blocks)
        assert all(not getattr(s, "skip", False) for s in twin.stages)
        assert plain_twin(twin) == twin
    assert plain_twin(PRESETS["d2l-densenet"]) == PRESETS["d2l-densenet"]  # concatenation stays
    # projection shortcuts vanish with the skips
    assert plain_twin(PRESETS["resnet18"]).num_params() == 11_689_512 - (8192 + 256) - (32768 + 512) - (131072 + 1024)


def test_gradient_profile_is_seeded():
    spec = PRESETS["cifar-resnet20"]
    a = gradient_profile(replace(spec, name="x"), 8, 3)
    b = gradient_profile(replace(spec, name="y"), 8, 3)
    assert [r.grad_norm for r in a.layers] == [r.grad_norm for r in b.layers]
    assert a.first_last_ratio() > 0


def test_plain_110_gradients_explode_toward_the_input_residual_110_stay_flat(capsys):
    """The measured fact: at initialisation (batch 64, train mode, BatchNorm) the first/last conv
    gradient-norm ratio is at least 100 times larger without skips than with them."""
    plain = gradient_profile(PRESETS["cifar-plain110"], 64, 0).first_last_ratio()
    residual = gradient_profile(PRESETS["cifar-resnet110"], 64, 0).first_last_ratio()
    with capsys.disabled():
        print(f"\nfirst/last conv gradient-norm ratio: cifar-plain110 {plain:.4g}, cifar-resnet110 "
              f"{residual:.4g}, quotient {plain / residual:.4g}")
    assert plain >= 100 * residual
