"""Export: generated code and ONNX give the built network's outputs, weights round-trip, stored runs export
their trained weights, and what the exporter cannot handle is named."""

import importlib.util
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from run_fakes import FakeRun, install, trained_like
from torch import nn

from archs import PRESETS, NetSpec, build_model
from archs.cli import main
from archs.export import ExportError, export, export_bytes, file_stem, generate_code
from archs.export.formats.onnx import _onnx_bytes


def small(name: str) -> NetSpec:
    """The preset, at 64x64 where it is an ImageNet net (the same layers; quicker to run and export)."""
    spec = PRESETS[name]
    return replace(spec, input_size=64) if spec.input_size > 96 else spec


def reference(spec: NetSpec, weights: dict) -> nn.Module:
    model = build_model(spec)
    model.load_state_dict(weights)
    return model.eval()


def images(spec: NetSpec, n: int = 3) -> torch.Tensor:
    generator = torch.Generator().manual_seed(7)
    return torch.randn(n, spec.in_channels, spec.input_size, spec.input_size, generator=generator)


def load_module(path):
    module_spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


# one of each family and each kind of stage, shortcut and head
FAMILIES = ["resnet18", "resnet50", "densenet121", "googlenet", "d2l-resnet18", "d2l-densenet", "d2l-googlenet",
            "seed000-resnet", "seed002-inception", "seed004-resnet", "cifar-resnet20", "cifar-plain20"]


@pytest.mark.parametrize("name", FAMILIES)
def test_generated_code_gives_the_same_outputs_with_the_same_weights(name, tmp_path):
    spec = small(name)
    weights = trained_like(spec)
    paths = export(spec, "code", tmp_path, state_dict=weights)
    assert [p.name for p in paths] == [f"{file_stem(spec.name)}.{ext}" for ext in ("py", "pt", "json")]
    code = paths[0].read_text()
    assert "import archs" not in code and "from archs" not in code          # needs only torch
    module = load_module(paths[0])
    loaded = module.load()                                                 # the weights exported beside it
    assert not loaded.training and module.INPUT_SHAPE == (spec.in_channels, spec.input_size, spec.input_size)
    x = images(spec)
    with torch.no_grad():
        assert torch.equal(loaded(x), reference(spec, weights)(x))
    assert list(module.build().state_dict()) == list(weights)            # the same module tree
    assert NetSpec.from_json(paths[2].read_text()) == spec


def test_generated_code_reads_like_the_network():
    code = generate_code(PRESETS["cifar-resnet20"])
    assert "class ResidualBlock(nn.Module):" in code and "class ZeroPadShortcut(nn.Module):" in code
    assert "class DenseLayer" not in code                                   # only the blocks it uses
    assert "    # Residual x3 · 32 ch: N x 32 x 16 x 16\n    stage2 = nn.Sequential(OrderedDict(" in code
    assert "conv1=nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False)," in code
    assert "shortcut=ZeroPadShortcut(2, 8, 8)," in code
    assert '"""cifar-resnet20: 3 x 32 x 32 images -> 10 class scores, 269,722 parameters.' in code
    assert "nn.MaxPool2d(3, stride=2, ceil_mode=True)" in generate_code(PRESETS["googlenet"])
    compile(code, "cifar_resnet20.py", "exec")


# ResNet-50's bottleneck blocks are checked on its first two stages: over all four, float32 rounding alone
# moves PyTorch's own logits ~1e-4 from the exact (float64) ones, and onnxruntime's as far the other way
ONNX_FAMILIES = ["resnet18", "resnet50-stages12", "googlenet", "d2l-densenet", "seed000-resnet", "seed002-inception",
                 "cifar-resnet20"]


@pytest.mark.parametrize("name", ONNX_FAMILIES)
def test_onnx_in_onnxruntime_matches_pytorch(name):
    import onnxruntime

    if name == "resnet50-stages12":
        spec = replace(small("resnet50"), stages=PRESETS["resnet50"].stages[:2])
    else:
        spec = small(name)
    weights = trained_like(spec)
    files = export_bytes(spec, "onnx", weights)
    assert list(files) == [f"{file_stem(spec.name)}.onnx", f"{file_stem(spec.name)}.json"]
    session = onnxruntime.InferenceSession(files[f"{file_stem(spec.name)}.onnx"], providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"] and session.get_outputs()[0].name == "logits"
    for batch in (1, 5):                                                   # the batch dimension is free
        x = images(spec, batch)
        (out,) = session.run(["logits"], {"images": x.numpy()})
        with torch.no_grad():
            expected = reference(spec, weights)(x).numpy()
        assert out.shape == (batch, spec.num_classes)
        assert np.abs(out - expected).max() < 1e-4


def test_weights_round_trip_as_pt_and_safetensors(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file

    spec = PRESETS["seed004-resnet"]
    weights = trained_like(spec, seed=3)
    pt, pt_spec = export(spec, "pt", tmp_path / "pt", state_dict=weights)
    st, _ = export(spec, "safetensors", tmp_path / "st", state_dict=weights, name="my net")
    assert (pt.name, pt_spec.name, st.name) == ("seed004_resnet.pt", "seed004_resnet.json", "my_net.safetensors")
    for loaded in (torch.load(pt, weights_only=True), load_file(st)):
        assert set(loaded) == set(weights) and all(torch.equal(loaded[k], weights[k]) for k in weights)
    with safe_open(st, "pt") as handle:                                   # the spec travels in the metadata
        assert NetSpec.from_json(handle.metadata()["archs.spec"]) == spec


def test_without_weights_the_spec_is_initialised_from_seed_0():
    spec = PRESETS["cifar-resnet20"]
    first = torch.load(__import__("io").BytesIO(export_bytes(spec, "pt")["cifar_resnet20.pt"]), weights_only=True)
    torch.manual_seed(0)
    assert all(torch.equal(first[k], v) for k, v in build_model(spec).state_dict().items())


def test_a_stored_run_exports_its_trained_weights(monkeypatch, tmp_path, capsys):
    spec = PRESETS["seed002-inception"]
    weights = trained_like(spec, seed=5)
    install(monkeypatch, [FakeRun("20260101-run-abc123", spec, weights),
                          FakeRun("20260101-queued-def456", spec, None, status="queued")])
    assert main(["export", "20260101-run-abc123", "--format", "pt", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "trained weights of run 20260101-run-abc123" in out
    saved = torch.load(tmp_path / "seed002_inception.pt", weights_only=True)
    assert all(torch.equal(saved[k], weights[k]) for k in weights)
    assert main(["export", "20260101-queued-def456", "--format", "pt", "--out", str(tmp_path)]) == 2
    assert "has no saved weights" in capsys.readouterr().err


def test_cli_exports_a_preset_and_a_spec_file(tmp_path, capsys):
    assert main(["export", "cifar-resnet20", "--format", "safetensors", "--out", str(tmp_path / "a")]) == 0
    assert (tmp_path / "a" / "cifar_resnet20.safetensors").is_file()
    assert "weights initialised from seed 0" in capsys.readouterr().out
    path = tmp_path / "mine.json"
    path.write_text(replace(PRESETS["seed004-resnet"], name="mine").to_json())
    assert main(["export", str(path), "--format", "code", "--out", str(tmp_path / "b")]) == 0
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["mine.json", "mine.pt", "mine.py"]


@pytest.mark.parametrize("args, message", [
    (["export", "no-such-net", "--format", "pt", "--out", "x"],
     "error: 'no-such-net' is not a preset, a spec file or a run"),
    (["export", "missing.json", "--format", "pt", "--out", "x"], "error: missing.json: cannot read the spec file"),
])
def test_cli_bad_input_is_one_line_and_exit_2(args, message, capsys, monkeypatch):
    install(monkeypatch, [])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and len(err.strip().splitlines()) == 1


def test_cli_refuses_an_unknown_format(capsys):
    with pytest.raises(SystemExit) as info:
        main(["export", "cifar-resnet20", "--format", "tflite", "--out", "x"])
    assert info.value.code == 2 and "invalid choice: 'tflite'" in capsys.readouterr().err


class Picky(nn.Module):
    """Control flow on the data: neither the code exporter nor torch.export can follow it."""

    def forward(self, x):
        return x if x.sum() > 0 else -x


def test_a_module_the_code_exporter_does_not_know_is_named():
    spec = PRESETS["seed004-resnet"]
    model = build_model(spec)
    model.stage2.block1 = Picky()
    with pytest.raises(ExportError, match=r"^code export: stage2\.block1 is a Picky, which the code exporter does "
                                          r"not know; export as onnx, pt or safetensors instead"):
        generate_code(spec, model)


def test_a_network_onnx_cannot_express_gives_a_clear_message():
    spec = PRESETS["seed004-resnet"]
    model = build_model(spec).eval()
    model.stage1 = Picky()
    with pytest.raises(ExportError) as info:
        _onnx_bytes(spec, model)
    message = str(info.value)
    assert message.startswith("ONNX export of seed004-resnet failed: ")
    assert "data-dependent" in message and "can still be exported as pt or safetensors" in message
    assert "\x1b[" not in message and len(message) < 600


def test_weights_of_another_network_are_refused():
    with pytest.raises(ExportError, match="^the weights do not fit cifar-resnet20"):
        export_bytes(PRESETS["cifar-resnet20"], "pt", trained_like(PRESETS["seed004-resnet"]))
    with pytest.raises(ExportError, match="unknown format 'tflite'"):
        export_bytes(PRESETS["cifar-resnet20"], "tflite")


def test_file_names():
    assert file_stem("cifar-resnet20") == "cifar_resnet20" and file_stem("2 nets!") == "net_2_nets"
    assert file_stem("") == "network"
    assert file_stem("réseau") == "reseau" and file_stem("../../etc/passwd") == "etc_passwd"   # ASCII, no path
    assert (file_stem("torch"), file_stem("class"), file_stem("CON")) == ("net_torch", "net_class", "net_CON")
    assert len(file_stem("x" * 5000)) == 64 and file_stem("x" * 5000) != file_stem("x" * 4999)
    assert json.loads(export_bytes(PRESETS["cifar-resnet20"], "pt", name="x")["x.json"])["name"] == "cifar-resnet20"
