"""Specs as data: JSON and URL round trips, field metadata, and every kind of bad spec raising a
SpecError that names the field."""

import json
import re
from dataclasses import replace

import pytest
from torch import nn

import archs
from archs import (
    PRESETS,
    STAGE_TYPES,
    DenseSpec,
    HeadSpec,
    NetSpec,
    PlainSpec,
    ResidualSpec,
    SpecError,
    build_model,
    decode_spec,
    encode_spec,
    spec_fields,
)


def preset_dict(name="cifar-resnet20"):
    return json.loads(PRESETS[name].to_json())


def test_specs_are_hashable_cache_keys():
    a, b = PRESETS["resnet18"], NetSpec.from_json(PRESETS["resnet18"].to_json())
    assert {a: 1}[b] == 1
    assert replace(a, num_classes=10) != a


def test_field_metadata_drives_a_generic_form():
    infos = {f.name: f for f in spec_fields(archs.DenseSpec)}
    growth = infos["growth_rate"]
    assert (growth.kind, growth.minimum, growth.maximum, growth.step) == ("int", 1, 512, 1)
    assert growth.help and growth.label == "Growth rate"
    assert infos["compression"].kind == "float"
    assert infos["bottleneck"].kind == "bool"
    assert spec_fields(ResidualSpec(blocks=3))[0].name == "blocks"
    assert {f.name: f for f in spec_fields(ResidualSpec)}["shortcut"].choices == (
        "projection", "conv3x3", "zero_pad", "conv1x1_bias")
    for cls in archs.STAGE_TYPES.values():  # every field of every stage type can be drawn
        for info in spec_fields(cls):
            assert info.help, f"{cls.__name__}.{info.name} has no help text"
            if info.kind in ("int", "float"):
                assert info.minimum is not None and info.maximum is not None


def test_url_round_trip_is_compact():
    for name in ("resnet50", "googlenet", "densenet121"):
        text = encode_spec(PRESETS[name])
        assert decode_spec(text) == PRESETS[name]
        assert len(text) < 1500 and text.replace("-", "").replace("_", "").isalnum()


@pytest.mark.parametrize("text", ["", "garbage!!", "eJzz", "A" * 20000, encode_spec(PRESETS["resnet18"])[:-5]])
def test_garbage_url_raises_spec_error(text):
    with pytest.raises(SpecError, match=r"^(url|spec)"):
        decode_spec(text)


def mutate(path, value, name="cifar-resnet20"):
    data = preset_dict(name)
    target = data
    *parents, last = path
    for key in parents:
        target = target[key]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return json.dumps(data)


BAD_SPECS = [
    (mutate(["stages", 2, "blocks"], 0), "stages[2].blocks: must be >= 1, got 0"),
    (mutate(["stages", 1, "channels"], "64"), "stages[1].channels: must be an integer, got '64'"),
    (mutate(["stages", 0, "skip"], 1), "stages[0].skip: must be true or false, got 1"),
    (mutate(["stages", 0, "shortcut"], "magic"), "stages[0].shortcut: must be one of 'projection', 'conv3x3', "
                                                 "'zero_pad', 'conv1x1_bias', got 'magic'"),
    (mutate(["stages", 0, "type"], "transformer"), "stages[0].type: unknown stage type 'transformer'"),
    (mutate(["stages", 0, "blocks"], KeyError), "stages[0].blocks: missing field"),
    (mutate(["stages", 0, "colour"], "red"), "stages[0].colour: unknown field"),
    (mutate(["stages", 0, "blocks"], 2.5), "stages[0].blocks: must be an integer, got 2.5"),
    (mutate(["stages", 0, "blocks"], True), "stages[0].blocks: must be an integer, got true"),
    (mutate(["stages", 3, "growth_rate"], 0, "d2l-densenet"), "stages[3].growth_rate: must be >= 1, got 0"),
    (mutate(["stages", 1, "compression"], 1.5, "d2l-densenet"), "stages[1].compression: must be <= 1.0, got 1.5"),
    (mutate(["stages", 0, "branch3x3"], 0, "googlenet"), "stages[0].branch3x3_reduce: must be 0 when branch3x3 is 0"),
    (mutate(["stem", 0, "padding"], 9), "stem[0].padding: must be <= 5, got 9"),
    (mutate(["stem", 0, "type"], "residual"), "stem[0]"),
    (mutate(["head", "pool"], "max"), "head.pool: must be one of"),
    (mutate(["head", "dropout"], float("nan")), "head.dropout: must be a finite number"),
    (mutate(["num_classes"], 0), "num_classes: must be >= 1, got 0"),
    (mutate(["norm"], "group"), "norm: must be one of 'batch', 'layer', 'none', got 'group'"),
    (mutate(["input_size"], 100000), "input_size: must be <= 1024, got 100000"),
    (mutate(["stages"], {"a": 1}), "stages: must be a list"),
    (mutate(["stages", 1], 7), "stages[1]: must be a JSON object"),
    (mutate(["stages", 2, "stride"], 2), None),  # valid: a control case
    ("{not json", "spec: not valid JSON"),
    ("[" * 100_000 + "]" * 100_000, "spec: JSON nested too deeply"),
    ("[1, 2]", "spec: must be a JSON object"),
    (mutate(["format"], "other/9"), "format: must be 'archs.netspec/1'"),
    (mutate(["stages", 2, "shortcut"], "zero_pad", "seed004-resnet") .replace('"channels": 64', '"channels": 8'),
     "stages[2].shortcut: zero_pad cannot reduce 32 channels to 8"),
]


@pytest.mark.parametrize("text,message", BAD_SPECS)
def test_bad_specs_name_the_field(text, message):
    if message is None:
        NetSpec.from_json(text)
        return
    with pytest.raises(SpecError) as info:
        NetSpec.from_json(text)
    assert str(info.value).startswith(message)
    assert isinstance(info.value, ValueError)


def test_spec_error_knows_the_stage_at_fault():
    with pytest.raises(SpecError) as info:
        NetSpec.from_json(mutate(["stages", 2, "blocks"], -1))
    assert info.value.path == "stages[2].blocks" and info.value.stage_index == 2


def test_constructor_checks_fields_too():
    with pytest.raises(SpecError, match="^growth_rate: must be >= 1, got 0"):
        DenseSpec(growth_rate=0)
    with pytest.raises(SpecError, match="^activation_before_add: cannot be combined with preactivation"):
        ResidualSpec(preactivation=True, activation_before_add=True)
    with pytest.raises(SpecError, match=r"^stages\[0\]: must be a"):
        NetSpec(stages=(HeadSpec(),))


def test_a_vanishing_feature_map_is_named_before_running():
    stages = tuple(ResidualSpec(blocks=1, channels=8, stride=2) for _ in range(6))
    spec = NetSpec(in_channels=1, input_size=28, stages=stages)
    with pytest.raises(SpecError) as info:
        build_model(spec)
    assert str(info.value) == "stage 6 (residual): a 1x1 feature map cannot be halved (input 28x28)"
    assert info.value.stage_index == 5
    assert [p.out_size for p in spec.plan(64)][:6] == [(32, 32), (16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]


def test_too_small_for_a_kernel_and_for_a_flatten_head():
    spec = NetSpec(in_channels=1, input_size=8, stem=(PlainSpec(channels=4, kernel_size=11, padding=0),))
    with pytest.raises(SpecError, match=r"^stem part 0 \(plain\): a 8x8 feature map is smaller than a 11x11"):
        spec.plan()
    with pytest.raises(SpecError, match=r"^head: a 1x1 feature map"):
        replace(PRESETS["resnet18"], head=HeadSpec(pool="avg", pool_kernel=2)).plan(32)


def test_size_limit_refuses_a_huge_net_without_building_it(monkeypatch):
    huge = NetSpec(stages=tuple(ResidualSpec(blocks=200, channels=2048, block="bottleneck") for _ in range(50)))

    def no_modules(*args, **kwargs):
        raise AssertionError("a module was built")

    monkeypatch.setattr(nn.Conv2d, "__init__", no_modules)
    with pytest.raises(SpecError, match=r"^network: at least [\d,]+ parameters, over the limit of 200,000,000"):
        build_model(huge)
    with pytest.raises(SpecError, match="over the limit"):
        NetSpec.from_json(huge.to_json())
    with pytest.raises(SpecError, match="over the limit of 1,000,000"):
        PRESETS["cifar-resnet110"].plan(max_params=1_000_000)
    assert len(PRESETS["cifar-resnet110"].plan(max_params=2_000_000)) == 5


def test_training_settings_use_the_same_field_metadata():
    from archs.fields import check_value
    from archs.training.config import TrainConfig

    infos = {f.name: f for f in spec_fields(TrainConfig)}
    assert (infos["max_steps"].kind, infos["max_steps"].optional, infos["max_steps"].minimum,
            infos["max_steps"].maximum) == ("int", True, 1, None)
    assert infos["optimizer"].choices == ("adam", "sgd") and infos["lr"].kind == "float"
    check_value(infos["max_steps"], None, "max_steps")  # optional: None means no limit
    with pytest.raises(SpecError, match="^blocks: must be an integer, got null"):
        check_value({f.name: f for f in spec_fields(ResidualSpec)}["blocks"], None, "blocks")


# ----------------------------------------------------------------------------- wrong JSON types anywhere
def _field_paths(value, path=()):
    """Every location in a spec's JSON, as key/index tuples, parents before children."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield path + (key,)
        yield from _field_paths(child, path + (key,))


def _dotted(path) -> str:
    text = ""
    for key in path:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else key)
    return text


def _replaced(data, path, value):
    data = json.loads(json.dumps(data))
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


WRONG_TYPES = {"an object": {"x": 1}, "a list": [1, 2], "null": None}


def _scalar_paths():
    out = []
    for name in ("resnet50", "googlenet", "densenet121", "seed002-inception", "d2l-densenet"):
        data = PRESETS[name].to_dict()
        for path in _field_paths(data):
            target = data
            for key in path:
                target = target[key]
            if not isinstance(target, (dict, list)) and path != ("format",):
                out.append((name, path))
    return out


@pytest.mark.parametrize("wrong", list(WRONG_TYPES))
def test_an_object_list_or_null_in_place_of_any_value_names_that_field(wrong):
    """Every scalar of five presets (names, numbers, booleans, choices, stage types), replaced in turn by
    an object, a list and null: always a SpecError that starts with the field's path, never a TypeError."""
    checked = 0
    for name, path in _scalar_paths():
        with pytest.raises(SpecError) as info:
            NetSpec.from_json(json.dumps(_replaced(PRESETS[name].to_dict(), path, WRONG_TYPES[wrong])))
        where = _dotted(path)
        assert str(info.value).startswith(where + ":"), (where, str(info.value))
        assert info.value.path == where
        assert f"got {wrong}" in str(info.value)
        checked += 1
    assert checked > 500


@pytest.mark.parametrize("path, value, message", [
    (("stages",), {"a": 1}, "stages: must be a list, got an object"),
    (("stem",), "conv", "stem: must be a list, got 'conv'"),
    (("stages", 1), [1], "stages[1]: must be a JSON object, got a list"),
    (("stem", 0), None, "stem[0]: must be a JSON object, got null"),
    (("head",), [], "head: must be a JSON object, got a list"),
    (("stages", 0, "type"), ["residual"], f"stages[0].type: must be a stage type name ({', '.join(sorted(STAGE_TYPES))}"
                                          "), got a list"),
    (("stages", 0, "type"), 3, "stages[0].type: must be a stage type name"),
    (("format",), {"v": 1}, "format: must be 'archs.netspec/1', got an object"),
    (("stages", 0, "channels"), 10**400, "stages[0].channels: must be <= 2048"),
    (("head", "dropout"), 10**400, "head.dropout: must be a finite number"),
    (("name",), "x" * 10_000, "name: must be at most 100 characters, got 10000"),
])
def test_wrong_containers_and_extreme_values_name_the_field(path, value, message):
    with pytest.raises(SpecError) as info:
        NetSpec.from_dict(_replaced(PRESETS["cifar-resnet20"].to_dict(), path, value))
    assert str(info.value).startswith(message)
    assert len(str(info.value)) < 300


@pytest.mark.parametrize("text, message", [
    (None, "spec: must be JSON text, got NoneType"),
    (42, "spec: must be JSON text, got int"),
    ('{"name": ' + "7" * 5000 + "}", "spec: not valid JSON"),      # Python refuses ints of over 4300 digits
])
def test_from_json_raises_only_spec_errors(text, message):
    with pytest.raises(SpecError, match="^" + re.escape(message)):
        NetSpec.from_json(text)
