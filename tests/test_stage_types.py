"""The contract every registered stage type honours, checked over ``STAGE_TYPES``: a new stage type file is
covered by every test here without a line added (its variants come from its fields' metadata,
tests/stage_variants.py).

Per variant: the analytic parameter count equals the built module's, channels, size and stride match a real
forward pass, gradients exist and are finite. Per type: JSON and URL round trips, the plain twin keeps every
parameter but the skip's, generated code and ONNX give the built network's outputs, a few training steps lower
the loss, the family, the budget's counts, receptive fields and activation health."""

from __future__ import annotations

import importlib.util
from dataclasses import replace

import pytest
import torch
from stage_variants import SIZE, TYPE_DEFAULTS, TYPE_VARIANTS, fitting_channels, net_with
from torch import nn

from archs import (
    STAGE_TYPES,
    NetSpec,
    PlainSpec,
    SpecError,
    build_model,
    decode_spec,
    encode_spec,
    gradient_profile,
    summarize,
)
from archs.budget import footprint
from archs.fields import spec_fields
from archs.health import activation_health
from archs.receptive import receptive_fields
from archs.stages.base import BuildContext
from archs.studies.results import FAMILIES, network_family
from archs.studies.space import apply, domain

NORMS = ("batch", "none", "layer")
TYPES = sorted(TYPE_DEFAULTS)


def params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("case", range(len(TYPE_VARIANTS)), ids=[name for name, _ in TYPE_VARIANTS])
def test_contract(case):
    stage, norm = TYPE_VARIANTS[case][1], NORMS[case % len(NORMS)]
    in_channels = fitting_channels(stage, norm)
    ctx = BuildContext(norm=norm)
    plan = {p.name: p for p in net_with(stage, norm, in_channels).plan()}["stage1"]
    module = stage.build(in_channels, ctx).train()
    assert params(module) == stage.num_params(in_channels, ctx) == plan.params
    x = torch.randn(2, in_channels, SIZE, SIZE, requires_grad=True)
    y = module(x)
    assert y.shape == (2, stage.out_channels(in_channels), *stage.out_size((SIZE, SIZE)))
    assert (plan.out_channels, plan.out_size) == (y.shape[1], tuple(y.shape[2:]))
    # the stride agrees with a real pass on a larger map (up to the rounding of sizes that padding loses)
    big = module(torch.randn(1, in_channels, 64, 64)).shape[-1]
    assert round(64 / big) == stage.out_stride() or 64 // stage.out_stride() - 8 <= big <= 64 // stage.out_stride()
    y.square().mean().backward()
    assert torch.isfinite(x.grad).all()
    for name, p in module.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("name", TYPES)
def test_fields_are_sliders(name):
    """Every field has what the Build page's generic form draws a control from."""
    for info in spec_fields(STAGE_TYPES[name]):
        assert info.help and info.kind in ("int", "float", "bool", "choice")
        if info.kind in ("int", "float"):
            assert info.minimum is not None and info.maximum is not None


@pytest.mark.parametrize("name", TYPES)
def test_json_and_url_round_trip(name):
    spec = net_with(TYPE_DEFAULTS[name], in_channels=fitting_channels(TYPE_DEFAULTS[name]))
    assert NetSpec.from_json(spec.to_json()) == spec
    assert decode_spec(encode_spec(spec)) == spec


@pytest.mark.parametrize("name", TYPES)
def test_the_plain_twin_drops_the_skip_and_keeps_everything_else(name):
    stage = TYPE_DEFAULTS[name]
    twin = stage.without_skips()
    assert twin.without_skips() == twin
    if not hasattr(stage, "skip"):
        assert twin == stage                          # no skips to drop
        return
    assert twin.skip is False and type(twin) is type(stage)
    c = fitting_channels(stage)
    ours = dict(stage.build(c, BuildContext()).named_parameters())
    theirs = dict(twin.build(c, BuildContext()).named_parameters())
    assert set(theirs) <= set(ours)
    assert all(".shortcut." in key for key in set(ours) - set(theirs))
    assert all(theirs[k].shape == ours[k].shape for k in theirs)
    assert network_family(net_with(twin, in_channels=c)) == "plain"


@pytest.mark.parametrize("name", TYPES)
def test_family_comes_from_the_stage_type(name):
    stage = TYPE_DEFAULTS[name]
    assert network_family(net_with(stage, in_channels=fitting_channels(stage))) == stage.family
    assert stage.family in FAMILIES


def _load(code: str, tmp_path, name: str):
    path = tmp_path / f"exported_{name}.py"
    path.write_text(code)
    module_spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", TYPES)
def test_code_export_round_trip(name, tmp_path):
    from archs.export import generate_code

    stage = TYPE_DEFAULTS[name]
    spec = net_with(stage, in_channels=fitting_channels(stage))
    model = build_model(spec).eval()
    code = generate_code(spec, model)
    assert "import archs" not in code and "from archs" not in code
    exported = _load(code, tmp_path, name).build()
    assert list(exported.state_dict()) == list(model.state_dict())
    exported.load_state_dict(model.state_dict())
    x = torch.randn(2, spec.in_channels, SIZE, SIZE)
    with torch.no_grad():
        assert torch.equal(exported.eval()(x), model(x))


@pytest.mark.parametrize("name", TYPES)
def test_onnx_export_matches(name):
    import numpy as np
    import onnxruntime

    from archs.export import export_bytes, file_stem

    stage = TYPE_DEFAULTS[name]
    spec = net_with(stage, in_channels=fitting_channels(stage))
    model = build_model(spec).eval()
    files = export_bytes(spec, "onnx", model.state_dict())
    session = onnxruntime.InferenceSession(files[f"{file_stem(spec.name)}.onnx"], providers=["CPUExecutionProvider"])
    x = torch.randn(3, spec.in_channels, SIZE, SIZE)
    (out,) = session.run(["logits"], {"images": x.numpy()})
    with torch.no_grad():
        assert np.abs(out - model(x).numpy()).max() < 1e-4


@pytest.mark.parametrize("name", TYPES)
def test_a_few_training_steps_lower_the_loss(name):
    torch.manual_seed(0)
    stage = TYPE_DEFAULTS[name]
    spec = net_with(stage, in_channels=fitting_channels(stage))
    model = build_model(spec).train()
    x, y = torch.randn(16, spec.in_channels, SIZE, SIZE), torch.randint(0, spec.num_classes, (16,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]


@pytest.mark.parametrize("name", TYPES)
def test_budget_counts_match_the_built_network(name):
    stage = TYPE_DEFAULTS[name]
    spec = net_with(stage, in_channels=fitting_channels(stage))
    fp = footprint(spec)
    model = build_model(spec, init_weights=False)
    assert fp.modules == sum(1 for _ in model.modules())
    assert fp.params == params(model) == spec.num_params()


@pytest.mark.parametrize("name", TYPES)
def test_receptive_fields_and_activation_health_cover_every_block(name):
    stage = TYPE_DEFAULTS[name]
    spec = net_with(stage, in_channels=fitting_channels(stage))
    rf = receptive_fields(spec)
    assert [r.name for r in rf.layers] == [r.name for r in summarize(spec).rows]
    assert rf.get("stage1").size[0] > 1
    health = activation_health(spec, 4, 0)
    stage_blocks = [b for b in health.blocks if b.stage == "stage1"]
    assert stage_blocks and all(b.std == b.std for b in stage_blocks)   # measured, not NaN


@pytest.mark.parametrize("name", TYPES)
def test_every_field_is_a_vary_path(name):
    """A study can vary each field of the type (``stages[0].<field>``), set to another value of its domain."""
    stage = TYPE_DEFAULTS[name]
    spec = net_with(stage, in_channels=fitting_channels(stage))
    for info in spec_fields(STAGE_TYPES[name]):
        path = f"stages[0].{info.name}"
        assert domain(spec, path) is not None
        current = getattr(stage, info.name)
        if info.kind == "bool":
            value = not current
        elif info.kind == "choice":
            value = next((c for c in info.choices if c != current), current)
        else:
            continue
        try:
            varied, _ = apply(spec, None, {path: value})
        except SpecError:
            continue                                   # a combination the type refuses, named by its path
        assert getattr(varied.stages[0], info.name) == value


@pytest.mark.parametrize("name", TYPES)
def test_gradients_per_depth_beside_the_plain_twin(name):
    """The Gradients page's story: block gradient norms of the type and of its plain twin, block for block."""
    stage = TYPE_DEFAULTS[name]
    c = fitting_channels(stage)

    def net(s):                                       # a stem, as every network the page shows has one
        return replace(net_with(s, in_channels=3), stem=(PlainSpec(channels=c),))

    ours, twin = (gradient_profile(net(s), 4, 0) for s in (stage, stage.without_skips()))
    assert [b.name for b in ours.blocks] == [b.name for b in twin.blocks]
    for profile in (ours, twin):
        assert all(b.grad_norm >= 0 and b.grad_norm == b.grad_norm for b in profile.blocks)
        assert all(g.grad_norm == g.grad_norm for g in profile.layers)
