"""Every parser of text from outside (a form's field, a link's parameter, an uploaded or stored JSON spec, a run
request, a data folder's name, an id) answers 1 MB of hostile text with a clear error in under 50 ms (issue 18):
each text has a length limit checked before it is read, and nothing reads it with a backtracking pattern. At
c9dd131 the study's float pattern took 5 s on 16,000 digits and an x, and minutes on 50,000.

Also: every text box of the pages has a ``max_chars``; a 50,000-character value typed into Studies › Sweep is
refused with a message naming the field; an over-long link parameter is dropped with a notice; the served
deployment shows no tracebacks.
"""

from __future__ import annotations

import ast
import json
import time
from pathlib import Path

import pytest
from app_helpers import open_app, run, texts

import archs
from archs import PRESETS, NetSpec, SpecError
from archs.spec import MAX_URL_CHARS
from archs.studies import space
from archs.studies.definition import StudyDefinition
from archs.training.config import DataConfig, TrainConfig
from archs.training.datadir import DataError, resolve_folder
from archs.training.request import RunRequest
from archs.training.store import RunError, RunStore
from ui import fmt, settings

ROOT = Path(__file__).resolve().parents[1]
MB = 1_000_000
BUDGET_S = 0.050       # the issue's figure, for the best of three tries (a shared machine is noisy)

HOSTILE = {
    "digits-then-x": "1" * MB + "x",                # the float pattern's worst case at c9dd131
    "open-parens": "(" * MB,
    "nested-arrays": "[" * MB,                      # JSON nested a million deep
    "nested-objects": '{"a":' * (MB // 5),
    "unclosed-string": '"' + "a" * MB,
    "long-fraction": "0." + "1" * MB,
    "huge-exponent": "1e" + "9" * MB,
    "commas": "1," * (MB // 2),
    "dashes": "8-" * (MB // 2),
    "spaces-then-x": " " * MB + "x",
    "many-colons": "1:" * (MB // 2),
    "brackets-path": "stages[" + "9" * MB + "].blocks",
}


def _store_get(text: str):
    return RunStore(_store_get.root).get(text)


def _study_get(text: str):
    return RunStore(_store_get.root).studies.get(text)


def _study(path: str, **vary) -> StudyDefinition:
    return StudyDefinition.from_dict({"kind": "sweep", "name": "hostile", "spec": PRESETS["cifar-resnet20"].to_dict(),
                                      "vary": [{"path": path, **vary}]})


def _info(path: str):
    return space.field_info(space.parse_path(path))


# name -> (parser, the error it must raise): each gets every text of HOSTILE
PARSERS = {
    # a study's fields and values (Studies page, the study CLI, a stored study definition)
    "study float value": (lambda t: space.parse_value(_info("train.lr"), t, "train.lr"), space.StudyError),
    "study int value": (lambda t: space.parse_value(_info("train.batch_size"), t, "train.batch_size"),
                        space.StudyError),
    "study bool value": (lambda t: space.parse_value(_info("train.decay_all"), t, "train.decay_all"),
                         space.StudyError),
    "study choice value": (lambda t: space.parse_value(_info("norm"), t, "norm"), space.StudyError),
    "study text value": (lambda t: space.parse_value(_info("name"), t, "name"), space.StudyError),
    "study path": (space.parse_path, space.StudyError),
    "study vary": (space.parse_vary, space.StudyError),
    "study vary values": (lambda t: space.parse_vary("train.lr=" + t), space.StudyError),
    "study vary on a net": (lambda t: space.parse_vary("stages[*].blocks=" + t, PRESETS["cifar-resnet20"]),
                            space.StudyError),
    "study definition path": (lambda t: _study(t, values=[1]), SpecError),
    "study definition value": (lambda t: _study("train.lr", values=[t]), SpecError),
    "study definition range": (lambda t: _study("train.lr", low=t, high=1), SpecError),
    # networks: a link's spec=, an uploaded or stored JSON spec, a run request (the Ray executor's)
    "decode_spec": (archs.decode_spec, SpecError),
    "NetSpec.from_json": (NetSpec.from_json, SpecError),
    "NetSpec.from_json bytes": (lambda t: NetSpec.from_json(t.encode()), SpecError),
    "RunRequest.from_json": (RunRequest.from_json, SpecError),
    "TrainConfig value": (lambda t: TrainConfig.from_dict({"lr": t}), SpecError),
    # data sets: a name, a folder of the data folder
    "DataConfig name": (lambda t: DataConfig(name=t), SpecError),
    "DataConfig folder": (lambda t: DataConfig(name="folder:" + t), SpecError),
    "resolve_folder": (resolve_folder, DataError),
    # ids from a link or a form
    "run id": (_store_get, RunError),
    "study id": (_study_get, RunError),
    # a link's page settings (ui/settings.py), as the pages declare them
    "setting flag": (settings.flag, ValueError),
    "setting number": (settings.int_in(1, 4096), ValueError),
    "setting choice": (settings.one_of(("Per stage", "Receptive field")), ValueError),
    "setting int choice": (settings.one_of((2, 4, 8, 16, 32, 64), int), ValueError),
    "setting run id": (settings.optional(settings.RUN_ID, "a run id"), ValueError),
    "setting study id": (settings.optional(settings.STUDY_ID, "a study id"), ValueError),
}


def best_time(parse, text: str, error: type) -> tuple[float, BaseException]:
    best, raised = float("inf"), None
    for _ in range(3):
        start = time.perf_counter()
        try:
            parse(text)
        except error as caught:
            raised = caught
        best = min(best, time.perf_counter() - start)
    return best, raised


@pytest.fixture(scope="module", autouse=True)
def _store(tmp_path_factory):
    _store_get.root = tmp_path_factory.mktemp("runs")
    RunStore(_store_get.root)


@pytest.mark.parametrize("kind", HOSTILE)
@pytest.mark.parametrize("name", PARSERS)
def test_every_parser_answers_a_megabyte_of_hostile_text_with_a_clear_error_in_50_ms(name, kind):
    parse, error = PARSERS[name]
    seconds, raised = best_time(parse, HOSTILE[kind], error)
    assert raised is not None, f"{name} took {kind!r} without an error"
    message = str(raised)
    assert 0 < len(message) <= 1000, f"{name}: a message of {len(message):,} characters"  # never the text itself
    assert seconds < BUDGET_S, f"{name} took {seconds * 1000:.0f} ms on {kind!r}"


def test_the_sweep_value_of_the_issue_is_refused_naming_the_field_and_the_limit():
    start = time.perf_counter()
    with pytest.raises(space.StudyError, match=r"^train\.lr: FIELD=VALUES is at most 20,000 characters, "
                                               r"got 50,010"):
        space.parse_vary("train.lr=" + "1" * 50_000 + "x")
    with pytest.raises(space.StudyError, match=r"^train\.lr: a value is at most 100 characters, got 2,001$"):
        space.parse_vary("train.lr=" + "1" * 2000 + "x")
    with pytest.raises(space.StudyError, match=r"^train\.lr: must be a number, got '1{57}\.\.\.'$"):
        space.parse_vary("train.lr=" + "1" * 99 + "x")
    assert time.perf_counter() - start < 3 * BUDGET_S


@pytest.mark.parametrize("text, value", [("1e-3", 0.001), ("0.5", 0.5), (".5", 0.5), ("5.", 5.0), ("+1E0", 1.0),
                                         (" 2.5e+0 ", 2.5), ("007", 7.0), ("1e-300", 1e-300)])
def test_the_linear_number_parser_takes_what_the_pattern_took(text, value):
    assert space.parse_value(_info("train.lr"), text, "train.lr") == value


@pytest.mark.parametrize("text", [".", "e5", "1e", "1e+", "1e1234", "1.2.3", "", "+", "inf", "nan", "1_0", "٣", "0x1",
                                  "1 0", "--1", "1e-3x"])
def test_the_linear_number_parser_refuses_what_the_pattern_refused(text):
    with pytest.raises(space.StudyError, match=r"^train\.lr: must be a number, got "):
        space.parse_value(_info("train.lr"), text, "train.lr")


@pytest.mark.parametrize("text", ["1.0", "1" * 19, "٣", "+", "-", "1e2", "+-1"])
def test_an_integer_is_digits_with_a_sign(text):
    with pytest.raises(space.StudyError, match=r"^train\.batch_size: must be an integer, got "):
        space.parse_value(_info("train.batch_size"), text, "train.batch_size")
    assert space.parse_value(_info("train.batch_size"), "+12", "train.batch_size") == 12


def test_a_link_parameter_over_the_limit_is_dropped_with_a_notice_naming_it():
    kept, notice = settings.bounded_query({"preset": "resnet18", "tab": "x" * (settings.MAX_PARAM_CHARS + 1),
                                           "y" * 41: "1"})
    assert kept == {"preset": "resnet18"}
    assert notice == (f"Ignored from the link: tab ({settings.MAX_PARAM_CHARS + 5:,} characters, over the limit of "
                      f"{settings.MAX_PARAM_CHARS:,}); {'y' * 40}… (43 characters, over the limit of "
                      f"{settings.MAX_PARAM_CHARS:,}).")
    many = {f"p{i}": "1" for i in range(settings.MAX_PARAMS + 5)}
    kept, notice = settings.bounded_query(many)
    assert len(kept) == settings.MAX_PARAMS and notice == f"Ignored from the link: 5 parameters after the first " \
                                                          f"{settings.MAX_PARAMS}."
    spec = {"spec": "x" * MB, "preset": "y" * MB}
    assert settings.bounded_query(spec) == (spec, None)       # the network's own: decode_spec bounds it, with its message
    side = {"a": "spec:" + "x" * MAX_URL_CHARS}
    assert settings.bounded_query(side) == (side, None)       # the longest a setting may hold: Compare's side


def test_a_page_opened_with_an_over_long_parameter_shows_the_notice_and_drops_it():
    at = open_app(preset="resnet18", tab="x" * (settings.MAX_PARAM_CHARS + 1))
    assert at.session_state["spec"] == PRESETS["resnet18"]
    assert "Ignored from the link: tab (" in texts(at.warning)
    assert "tab" not in at.query_params


def test_every_text_box_of_the_pages_has_a_length_limit():
    calls = []
    for path in [ROOT / "dashboard.py", *sorted((ROOT / "pages").glob("*.py")), *sorted((ROOT / "ui").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in (
                    "text_input", "text_area", "chat_input"):
                calls.append((f"{path.relative_to(ROOT)}:{node.lineno}", {k.arg for k in node.keywords}))
    assert calls, "no text boxes found"
    assert [where for where, keywords in calls if "max_chars" not in keywords] == []


def test_uploads_are_limited_to_what_a_spec_needs():
    import tomllib

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == 1                      # MB: a preset's JSON is under 7 kB
    assert max(len(spec.to_json()) for spec in PRESETS.values()) < 10_000


def test_a_50000_character_sweep_value_is_refused_with_a_message_and_nothing_hangs(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHS_RUNS_DIR", str(tmp_path / "runs"))
    at = open_app(preset="cifar-resnet20", session="hostile-parsers-session-01")
    at = run(at.switch_page("pages/studies.py"))
    at.selectbox(key="sweep_path0").select("train.lr")
    at = run(at)
    box = at.text_input(key="sweep_values0")
    assert box.max_chars == 2000
    box.set_value("1" * 50_000 + "x")            # what a browser bypassing the box's limit would send
    start = time.perf_counter()
    at = run(at.button(key="study_sweep_start").click())
    assert time.perf_counter() - start < 10                     # a page run, not minutes of backtracking
    assert "No study started: train.lr: a value is at most 100 characters, got 2,000" in texts(at.error)
    assert RunStore(tmp_path / "runs").studies.list() == []


HOSTILE_NAME = '<a href="http://x">y</a><span style="font-size:99px">big</span> %{meta}'


def _figures():
    from archs.cost import PartCost
    from archs.health import ActivationHealth, BlockActivity
    from archs.inspect import BlockGradient, GradientNorms, LayerGradient
    from ui import charts, study_charts, train_charts

    name = HOSTILE_NAME       # a network's name, a run's label, a trial's label; parts named so as well
    records = [{"kind": "step", "step": 1, "loss": 2.0, "train_accuracy": 0.1},
               {"kind": "step", "step": 2, "loss": float("nan"), "train_accuracy": 0.1},
               {"kind": "eval", "step": 2, "test_loss": 2.0, "test_accuracy": 0.2}]
    point = {"label": name, "family": name, "run_ids": ["r1"], "params": 10, "accuracy": 0.5, "accuracy_sd": 0,
             "accuracy_min": 0.5, "accuracy_max": 0.5, "pareto": True}
    grads = GradientNorms((LayerGradient(1, name, name, name, name, 0.1),), (BlockGradient(1, name, name, 0.2),), 1.0)
    health = ActivationHealth((BlockActivity(1, name, name, 0.0, 1.0, 4, 1, 0.5),), 2, True)
    part = PartCost(name, name, 10, 0.1, 0.1, 0.1, 100, 100)
    yield "curves", train_charts.curves([(name, records)])
    yield "heatmap", train_charts.grad_heatmap({"layers": [name], "steps": [1], "values": [[1.0]]})
    yield "compare", charts.compare_bars([name], [1], [2], name, name, name)
    yield "study", study_charts.accuracy_vs_cost([point, {**point, "params": 20, "accuracy": 0.6}], "params")
    yield "gradients", charts.gradient_lines([(name, grads)])
    yield "blocks", charts.block_lines([(name, grads)])
    yield "health", charts.health_lines([(name, health)])
    yield "cost shares", charts.cost_shares([part])
    yield "cost memory", charts.cost_memory([part])


def _optuna_figure():
    import optuna  # heavy: only here

    from ui import study_charts

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda trial: len(trial.suggest_categorical("name", [HOSTILE_NAME, "b"]))
                   + trial.suggest_float("train.lr", 0, 1), n_trials=6)      # a search over a list of names
    return study_charts.escaped(optuna.visualization.plot_parallel_coordinate(study))


@pytest.mark.parametrize("which, figure", [*_figures(), ("optuna", _optuna_figure())],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_a_network_named_with_html_reaches_every_chart_escaped(which, figure):
    strings = list(_strings(json.loads(figure.to_json())))   # names, hover templates, text, ticks, annotations
    for raw in ("<a", "<span", "</a>", "%{meta}"):
        assert not [s for s in strings if raw in s], f"{which}: {raw!r} reaches the figure unescaped"
    shown = '&lt;a href="http://x"&gt;y&lt;/a&gt;&lt;span style="font-size:99px"&gt;big&lt;/span&gt; %&#123;meta}'
    assert any(shown in s for s in strings), which           # Plotly shows it as text; not a template variable


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def test_the_chart_escape_keeps_plain_names_and_shortens_long_ones():
    assert fmt.chart("resnet18 · run 3 (abc123)") == "resnet18 · run 3 (abc123)"
    assert fmt.chart("a & b <c> {d} \"e\"") == 'a &amp; b &lt;c&gt; &#123;d} "e"'
    assert fmt.chart("x" * 200) == "x" * 120 + "…"


def test_the_served_deployment_shows_no_tracebacks_and_make_run_does():
    import subprocess

    from streamlit import config
    from streamlit.testing.v1 import AppTest
    from test_serve import dockerfile_cmd

    cmd = dockerfile_cmd()                                              # make serve runs the same (test_serve.py)
    served = cmd[cmd.index("--client.showErrorDetails") + 1]
    run_line = subprocess.run(["make", "--no-print-directory", "-n", "run"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip().splitlines()[-1]
    assert "showErrorDetails" not in run_line + (ROOT / ".streamlit" / "config.toml").read_text()  # laptop: full
    before = config.get_option("client.showErrorDetails")
    try:
        config.set_option("client.showErrorDetails", served)
        at = AppTest.from_string("raise ValueError('the server path /srv/secret')")
        at.run()
    finally:
        config.set_option("client.showErrorDetails", before)
    [shown] = at.exception
    assert shown.message.startswith("This app has encountered an error. The original error message is redacted")
    assert "secret" not in str(shown.proto) and not shown.stack_trace and not shown.proto.type
