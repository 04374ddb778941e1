"""Export with a hostile network name (issue 13): a name comes from a link, an upload or a stored run, so it
must never run as code when the exported module is imported, never leave the ``--out`` folder as a file
name, and never reach a terminal or an error message as raw control characters.

Each test plays the attacker: the payload, were it ever to run, would create the file ``PWNED`` in the
working directory and set ``$ARCHS_PWNED``; both are checked after every import.
"""

import ast
import importlib.util
import json
import keyword
import os
import re
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from run_fakes import trained_like

from archs import PRESETS, NetSpec, build_model
from archs.cli import main
from archs.export import FORMATS, ExportError, export, export_bytes, file_stem, generate_code

PAYLOAD = 'import os;open("PWNED","w");os.environ["ARCHS_PWNED"]="1"'
SLUG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
MAX_FILE_NAME = 100                      # the longest stem plus ".safetensors", well under any file system's 255


def _exactly_100() -> str:
    start = 'x"""\n' + PAYLOAD + '\n"""#\\'
    return start + "y" * (100 - len(start))


HOSTILE = {
    "triple-double-quotes": 'x"""\n' + PAYLOAD + '\n"""',
    "triple-double-quotes-inline": 'x""";' + PAYLOAD + ';"""',
    "escaped-triple-quotes": 'x\\"""\n' + PAYLOAD + '\n"""',
    "triple-single-quotes": "x'''\n" + PAYLOAD + "\n'''",
    "single-quotes": "x';" + PAYLOAD + ";'",
    "backslashes": "a\\b\\\\c\\N\\x\\u12\\0",
    "trailing-backslash": "net\\",
    "newlines": "a\nb\rc\r\nd\n" + PAYLOAD + "\n",
    "carriage-return-after-hash": "# a comment?\r" + PAYLOAD,
    "hash": "#!/bin/sh # not a comment",
    "control-characters": "bell\x07esc\x1b[31mred\x1b[0m\x08\x0b\x0c\x7f\x1c\x1d\x1e\x85\u2028\u2029\ttab",
    "non-ascii": "réseau 网络 \u202eevil\u202c 🚀\u200b ٣ \u2066x\u2069",
    "lone-surrogate": "a\ud800b",
    "nul": "a\x00b",
    "exactly-100-characters": _exactly_100(),
    "keyword-class": "class",
    "keyword-None": "None",
    "dunder": "__init__",
    "relative-path": "../../etc/passwd",
    "absolute-path": "/etc/passwd",
    "dot-dot": "..",
    "dot-file": ".bashrc",
    "windows-path": "..\\..\\Windows\\System32\\evil.dll",
    "windows-device": "CON",
    "format-braces": "{__import__('os').system('true')} %s %(x)s",
}
assert len(HOSTILE["exactly-100-characters"]) == 100
assert all(len(name) <= 100 for name in HOSTILE.values())       # what NetSpec accepts


def tiny(name: str) -> NetSpec:
    """cifar-resnet20 cut down to one residual block on 1 x 8 x 8 images: quick to build, export and run."""
    spec = PRESETS["cifar-resnet20"]
    return replace(spec, name=name, input_size=8, in_channels=1, stages=(replace(spec.stages[0], blocks=1),))


@pytest.fixture
def attacker_watch(tmp_path, monkeypatch):
    """A working directory the payload would write to; afterwards, nothing there and no variable set."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("ARCHS_PWNED", raising=False)
    yield cwd
    ran = "ARCHS_PWNED" in os.environ
    os.environ.pop("ARCHS_PWNED", None)        # the payload sets it directly: monkeypatch would not undo it
    assert not ran, "the payload in the network's name ran (it set $ARCHS_PWNED)"
    assert list(cwd.iterdir()) == [], "the payload in the network's name ran (it wrote a file)"


def import_fresh(path: Path):
    """Import a generated file under a module name used once (so nothing is cached between names)."""
    module_spec = importlib.util.spec_from_file_location(f"hostile_export_{uuid.uuid4().hex}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def shape_of(code: str) -> str:
    """The program's syntax tree with every string constant blanked: what the generated code *does*."""
    tree = ast.parse(code)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            node.value = "S"
    return ast.dump(tree)


def assert_slug_files(paths, out: Path):
    assert paths, "nothing was written"
    root = out.resolve()
    for path in paths:
        assert path.resolve().parent == root, f"{path} is outside {out}"
        assert SLUG.fullmatch(path.name) and len(path.name) <= MAX_FILE_NAME, f"not a slug file name: {path.name!r}"
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths)   # nothing else in the folder


def assert_no_raw_controls(text: str, what: str):
    bad = sorted({ch for ch in text if ch != "\n" and not ch.isprintable()})
    assert not bad, f"{what} holds raw control or invisible characters {bad!r}"


def images(spec: NetSpec) -> torch.Tensor:
    return torch.randn(3, spec.in_channels, spec.input_size, spec.input_size,
                       generator=torch.Generator().manual_seed(7))


def reference(spec: NetSpec, weights: dict) -> torch.nn.Module:
    model = build_model(spec)
    model.load_state_dict(weights)
    return model.eval()


BENIGN_SHAPE = shape_of(generate_code(tiny("benign")))


@pytest.mark.parametrize("name", list(HOSTILE.values()), ids=list(HOSTILE))
def test_generated_code_with_a_hostile_name_imports_inertly_and_works(name, tmp_path, attacker_watch):
    spec = tiny(name)
    weights = trained_like(spec, seed=1)
    out = tmp_path / "out"
    paths = export(spec, "code", out, state_dict=weights)
    assert_slug_files(paths, out)
    assert [p.suffix for p in paths] == [".py", ".pt", ".json"]
    code = paths[0].read_text(encoding="utf-8")
    module = import_fresh(paths[0])                                # the attacker_watch fixture checks the payload
    assert_no_raw_controls(code, "the generated code")          # no CR, no bidi override (Trojan Source)
    assert shape_of(code) == BENIGN_SHAPE                          # the name adds no statement, only text
    assert module.NAME == name                                     # the name round-trips, as a repr() literal
    assert module.WEIGHTS == paths[1]                              # load() reads the weights beside it, nothing else
    x = images(spec)
    expected = reference(spec, weights)(x)
    with torch.no_grad():
        assert torch.allclose(module.load()(x), expected, atol=1e-6)
        built = module.build()
        built.load_state_dict(weights)
        assert torch.allclose(built.eval()(x), expected, atol=1e-6)
    assert NetSpec.from_json(paths[2].read_text(encoding="utf-8")) == spec


@pytest.mark.parametrize("name", list(HOSTILE.values()), ids=list(HOSTILE))
@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
def test_weights_and_spec_files_with_a_hostile_name(fmt, name, tmp_path, attacker_watch):
    from safetensors import safe_open
    from safetensors.torch import load_file

    spec = tiny(name)
    weights = trained_like(spec, seed=2)
    out = tmp_path / "out"
    main_file, spec_file = paths = export(spec, fmt, out, state_dict=weights)
    assert_slug_files(paths, out)
    assert (main_file.suffix, spec_file.suffix) == (f".{fmt}", ".json")
    assert NetSpec.from_json(spec_file.read_bytes()).name == name         # round-trips in the JSON beside it
    if fmt == "pt":
        loaded = torch.load(main_file, weights_only=True)
    else:
        loaded = load_file(main_file)
        with safe_open(main_file, "pt") as handle:                       # and in the safetensors metadata
            assert NetSpec.from_json(handle.metadata()["archs.spec"]) == spec
    assert set(loaded) == set(weights) and all(torch.equal(loaded[k], weights[k]) for k in weights)


def test_onnx_with_a_hostile_name(tmp_path, attacker_watch):
    import onnxruntime

    name = HOSTILE["exactly-100-characters"]
    spec = tiny(name)
    weights = trained_like(spec, seed=3)
    out = tmp_path / "out"
    paths = export(spec, "onnx", out, state_dict=weights)
    assert_slug_files(paths, out)
    session = onnxruntime.InferenceSession(str(paths[0]), providers=["CPUExecutionProvider"])
    x = images(spec)
    (got,) = session.run(["logits"], {"images": x.numpy()})
    with torch.no_grad():
        assert torch.allclose(torch.from_numpy(got), reference(spec, weights)(x), atol=1e-4)
    assert NetSpec.from_json(paths[1].read_text(encoding="utf-8")).name == name


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "onnx"])      # ONNX: once, above (it is slow)
def test_every_format_names_its_files_as_slugs(fmt):
    """export_bytes (the Build page's download buttons) gives slug names too, for a name built to attack."""
    files = export_bytes(tiny(HOSTILE["relative-path"] + "/\u202e" + HOSTILE["triple-double-quotes"][:40]), fmt)
    for file_name in files:
        assert SLUG.fullmatch(file_name) and len(file_name) <= MAX_FILE_NAME and "/" not in file_name


STEM_ATTACKS = list(HOSTILE.values()) + [
    "", ".", "...", "-", "_", "__", "../", "./x", "x/../../y", "/", "//server/share", "C:\\x", "~/.ssh/id_rsa",
    "x" * 10_000, "é" * 300, "网络" * 200, "\x00" * 5, "\x00/../x", "٣٣", "²", "ﬁle", "Ⅻ", "🚀", "\u202e",
    "nul", "NUL.txt", "com1", "LPT9", "aux", "import", "def", "True", "_" + "x" * 200,
]


@pytest.mark.parametrize("text", STEM_ATTACKS, ids=[repr(t)[:40] for t in STEM_ATTACKS])
def test_file_stems_are_bounded_ascii_slugs_and_module_names(text):
    stem = file_stem(text)
    assert SLUG.fullmatch(stem) and not stem.startswith((".", "-")), repr(stem)
    assert len(f"{stem}.safetensors") <= MAX_FILE_NAME
    assert stem.isascii() and stem.isidentifier() and not keyword.iskeyword(stem)    # importable by name
    assert stem.split(".")[0].lower() not in {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
                                               *(f"lpt{i}" for i in range(10))}   # Windows device names
    assert file_stem(text) == stem                                                   # the same every time


def test_long_names_that_differ_get_different_files():
    a, b = "n" * 90 + "a", "n" * 90 + "b"
    assert file_stem(a) != file_stem(b)


@pytest.mark.parametrize("file_name", ["../../escaped", "/tmp/absolute-escape", "..", "a/../../b\x00c",
                                       "x" * 5000, "réseau\u202e🚀", "\\..\\..\\win"])
def test_cli_name_option_cannot_leave_the_out_folder(file_name, tmp_path, attacker_watch, capsys):
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(tiny("benign").to_json())
    out = tmp_path / "deep" / "out"
    for fmt in ("code", "pt", "safetensors"):
        assert main(["export", str(spec_path), "--format", fmt, "--out", str(out), "--name", file_name]) == 0
    capsys.readouterr()
    written = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert {p.parent for p in written} <= {out, tmp_path}                           # spec.json, and out/*
    assert [p for p in written if p.parent == tmp_path] == [spec_path]
    assert_slug_files([p for p in written if p.parent == out], out)


@pytest.mark.parametrize("name", [HOSTILE["control-characters"], HOSTILE["newlines"], HOSTILE["non-ascii"]],
                         ids=["control-characters", "newlines", "non-ascii"])
def test_cli_output_and_errors_show_the_name_escaped(name, tmp_path, attacker_watch, capsys):
    """A name printed to a terminal could move the cursor, rewrite earlier lines or fake output."""
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(tiny(name).to_json())
    assert main(["export", str(spec_path), "--format", "pt", "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr()
    assert_no_raw_controls(printed.out + printed.err, "the command's output")
    assert len(printed.out.splitlines()) == 3                                       # the header, two files
    with pytest.raises(ExportError) as info:                                        # weights of another network
        export_bytes(tiny(name), "pt", trained_like(PRESETS["seed004-resnet"]))
    assert_no_raw_controls(str(info.value), "the error message")
    assert "\n" not in str(info.value)


def test_safetensors_metadata_is_the_spec_json_and_nothing_more(tmp_path):
    from safetensors import safe_open

    spec = tiny(HOSTILE["triple-double-quotes"] + '","format":"evil')
    (path, _) = export(spec, "safetensors", tmp_path, state_dict=trained_like(spec))
    with safe_open(path, "pt") as handle:
        metadata = handle.metadata()
    assert set(metadata) == {"format", "archs.spec"} and metadata["format"] == "pt"
    assert json.loads(metadata["archs.spec"])["name"] == spec.name


def test_a_symbolic_link_in_the_out_folder_is_refused_not_followed(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    out = tmp_path / "out"
    out.mkdir()
    (out / "benign.pt").symlink_to(outside)
    with pytest.raises(ExportError, match="symbolic link"):
        export(tiny("benign"), "pt", out)
    assert outside.read_text() == "keep"


def test_generated_code_takes_only_plain_file_names_and_python_names():
    with pytest.raises(ExportError, match="not a plain file name"):
        generate_code(tiny("benign"), weights_file="../../elsewhere.pt")
    model = build_model(tiny("benign"))
    model.stage1.add_module('x=1;__import__("os")', torch.nn.ReLU())          # add_module allows any name
    with pytest.raises(ExportError, match="is not a Python name"):
        generate_code(tiny("benign"), model)
    model = build_model(tiny("benign"))
    model.add_module("class", torch.nn.ReLU())
    with pytest.raises(ExportError, match="is not a Python name"):
        generate_code(tiny("benign"), model)
