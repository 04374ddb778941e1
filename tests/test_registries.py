"""One way to register things (issue 20 section 2): stage types, executors, data sources, export formats, recipes,
claims and objectives each live in a package that imports every module of itself, and each thing carries its
kind's ``register_*``. So a new one is one new file in its package: here each kind gets one, written into a folder
added to its package's ``__path__`` (as if saved beside the built-in ones), and every consumer sees it with nothing
else edited. A name already taken is refused, naming the kind and the name."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import archs.export.formats as formats_package
import archs.stages as stages_package
import archs.studies.families as families_package
import archs.studies.pareto as pareto_package
import archs.training.data as data_package
import archs.training.executors as executors_package
import archs.training.recipes as recipes_package
from archs import PRESETS, NetSpec, build_model
from archs._registry import add, import_modules
from archs.cli import build_parser
from archs.export import FORMATS, export_bytes
from archs.export.formats import ExportFormat
from archs.stages import STAGE_TYPES, PlainSpec
from archs.studies.families import CLAIMS, Claim, judge, register_claim
from archs.studies.pareto import OBJECTIVES, RESULT_KEYS, Objective, pareto_front, register_objective
from archs.training.config import DataConfig, TrainConfig
from archs.training.data import DATASETS, DatasetInfo, check_data, check_dataset, load_dataset, register_source
from archs.training.executors import EXECUTORS, get_executor
from archs.training.recipes import RECIPES, Recipe, apply_recipe, register_recipe

PACKAGES = {  # package -> (its registry, the modules that register nothing: the shared code beside the things)
    stages_package: (STAGE_TYPES, {"base"}),
    executors_package: (EXECUTORS, {"base"}),
    data_package: (DATASETS, {"base", "registry", "load", "augment", "folder"}),
    formats_package: (FORMATS, {"base"}),
    recipes_package: (RECIPES, set()),
    families_package: (CLAIMS, {"base"}),
    pareto_package: (OBJECTIVES, set()),
}

TESTS = Path(__file__).resolve().parent


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_the_package_imports_every_module_of_itself(package):
    """No import line names a module: importing the package imported all of them, and its registry is filled."""
    registry, shared = PACKAGES[package]
    modules = {m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_")}
    assert modules - shared, f"{package.__name__} holds no module that registers anything"
    for name in modules:
        assert f"{package.__name__}.{name}" in sys.modules, f"{package.__name__}.{name} was not imported"
    assert registry
    assert import_modules(package.__name__, package.__path__) == sorted(modules - {"base"})  # again: no change
    for thing in registry.values():  # a class or function says where it was registered: a module of the package
        thing = thing.files if isinstance(thing, ExportFormat) else thing
        if isinstance(thing, type) or inspect.isfunction(thing):
            where = Path(inspect.getfile(thing)).resolve()  # a test's own registration lives under tests/
            assert thing.__module__.startswith(f"{package.__name__}.") or TESTS in where.parents, thing


def parses(*argv: str) -> bool:
    """Whether the command line accepts ``argv`` (its choices are read from the registries when it is built)."""
    try:
        build_parser().parse_args(list(argv))
    except SystemExit:
        return False
    return True


@pytest.fixture
def new_file(tmp_path, monkeypatch):
    """``new_file(package, name, source)``: the module saved as if beside the package's own (a folder added to its
    ``__path__``), then the package's scan run as importing it runs it. Registries and modules are restored after."""
    snapshots = [(registry, dict(registry)) for registry, _ in PACKAGES.values()] + [(RESULT_KEYS, dict(RESULT_KEYS))]
    added = []

    def write(package, name: str, source: str):
        folder = tmp_path / package.__name__
        folder.mkdir(exist_ok=True)
        (folder / f"{name}.py").write_text(textwrap.dedent(source))
        monkeypatch.setattr(package, "__path__", [*package.__path__, str(folder)])
        importlib.invalidate_caches()
        assert name in import_modules(package.__name__, package.__path__)
        added.append(f"{package.__name__}.{name}")
        return sys.modules[added[-1]]

    yield write
    for name in added:
        sys.modules.pop(name, None)
    for registry, before in snapshots:
        registry.clear()
        registry.update(before)


def test_a_new_stage_type_is_one_file(new_file):
    new_file(stages_package, "test_wide_plain", """
        from dataclasses import dataclass
        from typing import ClassVar

        from archs.stages.base import register_stage
        from archs.stages.plain import PlainSpec


        @register_stage
        @dataclass(frozen=True)
        class WidePlainSpec(PlainSpec):
            type_name: ClassVar[str] = "test-wide-plain"
            title: ClassVar[str] = "Wide plain (a test's)"
        """)
    wide = STAGE_TYPES["test-wide-plain"]
    spec = NetSpec(name="wide", in_channels=1, input_size=8, stages=(PlainSpec(channels=4), wide(channels=6)))
    assert NetSpec.from_json(spec.to_json()) == spec and spec.stages[1].type_name == "test-wide-plain"
    assert spec.num_params() == sum(p.numel() for p in build_model(spec).parameters())


def test_a_new_executor_is_one_file(new_file, tmp_path, monkeypatch):
    monkeypatch.setattr(executors_package, "_SHARED", {})
    new_file(executors_package, "test_nowhere", """
        from archs.training.executors.base import Executor, register


        @register
        class NowhereExecutor(Executor):
            name = "test-nowhere"
            where = "nowhere (a test's)"

            def _start(self, run, request) -> None:
                raise RuntimeError("never started")
        """)
    executor = get_executor("test-nowhere", runs_dir=tmp_path / "runs")
    assert type(executor).__name__ == "NowhereExecutor" and executor.describe()
    assert "test-nowhere" in EXECUTORS and parses("train", "speedrun-mnist", "--executor", "test-nowhere")


def test_a_new_data_source_is_one_file(new_file):
    new_file(data_package, "test_checker", """
        import torch

        from archs.training.data.base import DatasetInfo, Raw, register_source


        def load(root, lenient):
            images = (torch.arange(64).view(4, 1, 4, 4) % 2 * 255).to(torch.uint8)
            labels = torch.tensor([0, 1, 0, 1])
            return Raw(images, labels, images[:2], labels[:2], ("even", "odd"), "made here")


        register_source(DatasetInfo("test-checker", "Checker (a test's)", "generated", 1, 4, "none",
                                    check=lambda root, lenient: "made here", load=load))
        """)
    assert check_dataset("test-checker") == "made here"
    assert check_data(DataConfig("test-checker")) == "made here"           # what a run checks before it starts
    data = load_dataset("test-checker", input_size=8, in_channels=1, cache=False)
    assert data.train_x.shape == (4, 1, 8, 8) and data.classes == ("even", "odd")
    assert list(DATASETS)[0] == "digits"  # the offline default stays first: rank 0


def test_a_new_export_format_is_one_file(new_file):
    new_file(formats_package, "test_names", """
        from archs.export.formats.base import register_format


        @register_format("test-names", "The weights' names, one a line (a test's).")
        def names_files(spec, model, weights, stem):
            return {f"{stem}.txt": "\\n".join(weights).encode()}
        """)
    files = export_bytes(PRESETS["speedrun-mnist"], "test-names")
    assert list(files) == ["speedrun_mnist.txt", "speedrun_mnist.json"]
    assert b"head.fc.weight" in files["speedrun_mnist.txt"]
    assert FORMATS["test-names"].help.startswith("The weights' names")       # the Build page's caption
    assert parses("export", "speedrun-mnist", "--format", "test-names", "--out", "exported")


def test_a_new_recipe_is_one_file(new_file):
    new_file(recipes_package, "test_slow", """
        from archs.training.recipes import Recipe, register_recipe

        register_recipe(Recipe("test-slow", "Adam at 1e-4 (a test's).", {"optimizer": "adam", "lr": 1e-4}))
        """)
    assert apply_recipe("test-slow").lr == 1e-4
    assert parses("train", "speedrun-mnist", "--recipe", "test-slow")
    from archs.studies.space import apply as apply_field  # a study's train.recipe reads it too

    assert apply_field(PRESETS["speedrun-mnist"], TrainConfig(), {"train.recipe": "test-slow"})[1].lr == 1e-4


def test_a_new_claim_is_one_file(new_file):
    new_file(families_package, "test_tiny", """
        from archs.studies.families.base import MATCHED_BUDGET, Claim, ClaimNet, register_claim, residual_net


        def tiny_nets():
            return ([ClaimNet("residual", f"w{w}", residual_net(w, blocks=1)) for w in (2, 4)]
                    + [ClaimNet("plain", f"w{w}", residual_net(w, skip=False, blocks=1)) for w in (2, 3, 4)])


        register_claim(Claim("test-tiny", "Are tiny residual nets better (a test's)?", tuple(tiny_nets()), "params",
                             "residual", ("plain",), MATCHED_BUDGET, "a test's rule"))
        """)
    claim = CLAIMS["test-tiny"]
    assert claim.families == ("residual", "plain") and len(claim.runs()) == 5 * claim.budget.seeds
    assert judge("test-tiny", [])["claim"] == "test-tiny"          # judged by name like the others
    assert parses("study", "claim", "test-tiny")


def test_a_new_objective_is_one_file(new_file):
    new_file(pareto_package, "test_loss", """
        from archs.studies.pareto import Objective, register_objective

        register_objective("test-loss", Objective("min", "Test loss", "cross-entropy"), result_key="test_loss")
        """)
    points = [{"id": "a", "test_loss": 0.5, "params": 10}, {"id": "b", "test_loss": 0.4, "params": 20},
              {"id": "c", "test_loss": 0.6, "params": 30}]
    assert pareto_front(points, ["test-loss", "params"], id_key="id") == ["a", "b"]


@pytest.mark.parametrize("register, thing, message", [
    (lambda: register_source(DatasetInfo("digits", "Another", "generated", 1, 8, "none")), "data set", "digits"),
    (lambda: register_recipe(Recipe("fast", "Another", {})), "recipe", "fast"),
    (lambda: register_objective("params", Objective("max", "Another", "")), "objective", "params"),
    (lambda: register_claim(Claim("dense", "Another?", (), "params", "dense", ())), "claim", "dense"),
    (lambda: __import__("archs.export.formats", fromlist=["register_format"]).register_format("pt", "Another")(
        lambda spec, model, weights, stem: {}), "export format", "pt"),
], ids=["source", "recipe", "objective", "claim", "format"])
def test_a_name_already_taken_is_refused(register, thing, message, new_file):
    with pytest.raises(ValueError, match=f"^{thing} '{message}' is already registered$"):
        register()


def test_the_helper_refuses_a_taken_name_and_allows_the_same_thing_again():
    registry: dict = {}
    thing = object()
    assert add(registry, "a", thing, "widget") is thing and add(registry, "a", thing, "widget") is thing
    with pytest.raises(ValueError, match="widget 'a' is already registered"):
        add(registry, "a", object(), "widget")
    with pytest.raises(ValueError, match="a name must be a non-empty string"):
        add(registry, "", thing, "widget")


def test_a_recipe_setting_that_is_not_a_train_config_field_is_refused():
    with pytest.raises(ValueError, match="recipe 'typo': lrr not a field of TrainConfig"):
        register_recipe(Recipe("typo", "A typo.", {"lrr": 0.1}))
    assert "typo" not in RECIPES


def test_the_executors_package_imports_no_ray():
    """The package imports every backend, so each must import cheaply: Ray only when its executor is made."""
    code = "import sys, archs.training.executors as e; assert 'ray' in e.EXECUTORS; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr[-2000:]
