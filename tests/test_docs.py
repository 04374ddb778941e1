"""Every fenced block of README.md and docs/*.md is run or checked, so none can go stale.

- ```python blocks run, each page's blocks in order in one module of their own (a later block may use what an
  earlier one defined), in a temporary folder that is also the runs, data and cache folder, downloads off;
- ```bash / ```sh / ```console blocks are read command by command: ``python -m archs ...`` runs through
  ``archs.cli.main``; ``make TARGET`` must pass ``make -n TARGET``; ``streamlit run FILE``, ``pip install -r FILE``,
  a script, ``ruff``, ``lint-imports``, ``torchrun``... must name files and executables that exist; a line of
  ``NAME=value`` settings must name variables the code reads. A command of any other kind fails the test, so
  a new kind is taught here, not skipped by accident;
- ```diff blocks (a change to an existing file) must match that file: every line they keep or remove is in it,
  in that order;
- ```text blocks are output and are not checked.

A block marked ``<!-- not run: why -->`` on the line before it is not executed (its archs commands are still
parsed by the command line's parser, and its other commands checked); ``test_blocks_not_run_are_deliberate``
lists them with their reasons and pins their number.

Everything that needs torch runs in one child process (``python tests/test_docs.py RUN jobs results``), so torch
is imported once for all the blocks and nothing they register leaks into the test process.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LANGUAGES = {"python", "bash", "sh", "console", "diff", "text"}
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(?P<why>.+?)\s*-->$")
#: blocks marked not run: raise it only with a reason in the block's marker (the test lists them)
EXPECTED_NOT_RUN = 9
JOB_SECONDS = 120          # one block or command, in the child
CHILD_SECONDS = 300        # the whole child


@dataclass(frozen=True)
class Block:
    page: Path
    line: int               # of the opening fence, 1-based
    lang: str
    text: str
    not_run: str | None     # the marker's reason

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def read_blocks(page: Path) -> list[Block]:
    lines = page.read_text().splitlines()
    found, i = [], 0
    while i < len(lines):
        opening = re.match(r"^```(\S*)\s*$", lines[i])
        if not opening:
            i += 1
            continue
        start = i
        i += 1
        while i < len(lines) and lines[i].rstrip() != "```":
            i += 1
        if i == len(lines):
            raise AssertionError(f"{page.name}:{start + 1}: a fence that is never closed")
        before = next((lines[j].strip() for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        marker = NOT_RUN.match(before)
        found.append(Block(page, start + 1, opening.group(1), "\n".join(lines[start + 1:i]) + "\n",
                           marker.group("why") if marker else None))
        i += 1
    return found


BLOCKS = [block for page in PAGES for block in read_blocks(page)]


# -- commands ----------------------------------------------------------------------------------------------------

ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")


def commands(block: Block) -> list[list[str]]:
    """The commands of a shell block, as argument lists: continuation lines joined, comments dropped, ``&&``
    chains split; a console block's commands are its ``$ `` lines."""
    text = block.text.replace("\\\n", " ")
    lines = text.splitlines()
    if block.lang == "console":
        lines = [line[2:] for line in lines if line.startswith("$ ")]
    out = []
    for line in lines:
        words = shlex.split(line, comments=True)
        command: list[str] = []
        for word in words + ["&&"]:
            if word == "&&":
                if command:
                    out.append(command)
                command = []
            else:
                command.append(word)
    return out


def archs_argv(command: list[str]) -> list[str] | None:
    """The arguments after ``-m archs`` when the command runs the archs command line (python or torchrun)."""
    words = [w for w in command if not ASSIGNMENT.match(w)] if command and ASSIGNMENT.match(command[0]) else command
    for i in range(len(words) - 1):
        if words[i] == "-m" and words[i + 1] == "archs":
            return words[i + 2:]
    return None


VENV_BIN = Path(sys.prefix) / "bin"
PYTHONS = {"python", "python3", ".venv/bin/python", "python3.11"}


def executable(name: str) -> bool:
    base = name.removeprefix(".venv/bin/")
    return (VENV_BIN / base).exists() or shutil.which(base) is not None


_SOURCES_TEXT: str | None = None


def code_text() -> str:
    """What the code reads settings from: the library, the app, the Makefile, the Dockerfile, the deploy scripts."""
    global _SOURCES_TEXT
    if _SOURCES_TEXT is None:
        files = [*ROOT.glob("archs/**/*.py"), *ROOT.glob("ui/**/*.py"), *ROOT.glob("pages/*.py"),
                 ROOT / "dashboard.py", ROOT / "Makefile", ROOT / "Dockerfile", *ROOT.glob("deploy/*")]
        _SOURCES_TEXT = "\n".join(f.read_text(errors="replace") for f in files if f.is_file())
    return _SOURCES_TEXT


def check_static(command: list[str]) -> str | None:
    """For a command that is not run here: None when what it names exists, else what is wrong. Raises KeyError
    for a kind of command this test does not know."""
    settings = [w for w in command if ASSIGNMENT.match(w)]
    words = command[len(settings):] if command[:len(settings)] == settings else command
    if not words:                                        # NAME=value ... only: the variables must be read somewhere
        unknown = [s.split("=", 1)[0] for s in settings if s.split("=", 1)[0] not in code_text()]
        return f"settings no code reads: {unknown}" if unknown else None
    program, args = words[0], words[1:]
    if program in PYTHONS:
        if args[:2] == ["-m", "archs"]:
            return None                                  # parsed or run in the child
        if args[:2] == ["-m", "venv"]:
            return None
        if args[:2] == ["-m", "pytest"]:
            return None if executable("pytest") else "pytest is not installed"
        if args and args[0].endswith(".py"):
            return None if (ROOT / args[0]).is_file() else f"no such script: {args[0]}"
        raise KeyError(program)
    if program == "make":
        targets = [a for a in args if not a.startswith("-") and "=" not in a]
        run = subprocess.run(["make", "-n", "-C", str(ROOT), *targets], capture_output=True, text=True, timeout=60)
        return None if run.returncode == 0 else f"make -n {' '.join(targets)}: {run.stderr.strip()}"
    base = program.removeprefix(".venv/bin/")
    if base == "pip" and args[:1] == ["install"]:
        files = [args[i + 1] for i, a in enumerate(args) if a == "-r"]
        missing = [f for f in files if not (ROOT / f).is_file()]
        return f"no such requirements file: {missing}" if missing else None
    if base == "streamlit" and args[:1] == ["run"]:
        return None if (ROOT / args[1]).is_file() and executable("streamlit") else f"cannot run {args[1]}"
    if base in {"ruff", "lint-imports", "tensorboard", "torchrun", "pytest"}:
        return None if executable(base) else f"{base} is not installed"
    if base in {"docker", "podman"}:                     # what it names must be the Dockerfile's and the code's
        dockerfile, missing = (ROOT / "Dockerfile").read_text(), []
        for flag, value in zip(args, args[1:]):
            if flag == "--build-arg" and f"ARG {value.split('=')[0]}" not in dockerfile:
                missing.append(value)
            elif flag == "-v" and f"VOLUME {value.split(':')[-1]}" not in dockerfile:
                missing.append(value)
            elif flag == "-e" and value.split("=")[0] not in code_text():
                missing.append(value)
        return f"not in the Dockerfile or the code: {missing}" if missing else None
    raise KeyError(program)


# -- the child: every block and command that needs torch, in one process ----------------------------------------

def jobs() -> list[dict]:
    out = []
    for block in BLOCKS:
        page = str(block.page.relative_to(ROOT))
        if block.lang == "python" and block.not_run is None:
            out.append({"id": block.id, "page": page, "kind": "python", "code": block.text, "line": block.line})
        elif block.lang in {"bash", "sh", "console"}:
            for n, command in enumerate(commands(block)):
                argv = archs_argv(command)
                if argv is not None:
                    kind = "parse" if block.not_run or command[0] not in PYTHONS else "cli"
                    out.append({"id": f"{block.id}#{n}", "page": page, "kind": kind, "argv": argv})
    return out


def _child(jobs_file: str, results_file: str) -> None:
    import contextlib
    import io
    import signal
    import traceback
    import types

    def alarm(*_):
        raise TimeoutError(f"over {JOB_SECONDS} s")

    signal.signal(signal.SIGALRM, alarm)
    sys.path.insert(0, str(ROOT))
    work = Path(results_file).parent
    results, modules = {}, {}
    for job in json.loads(Path(jobs_file).read_text()):
        folder = work / re.sub(r"\W", "_", job["page"])
        folder.mkdir(exist_ok=True)
        os.chdir(folder)
        os.environ.update(ARCHS_RUNS_DIR=str(folder / "runs"), ARCHS_DATA_DIR=str(folder / "data"),
                          ARCHS_CACHE_DIR=str(folder / "cache"))
        out = io.StringIO()
        started = time.perf_counter()
        ok, error = True, ""
        signal.alarm(JOB_SECONDS)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                if job["kind"] == "python":
                    name = "docs_" + re.sub(r"\W", "_", job["page"])
                    if name not in modules:
                        modules[name] = sys.modules[name] = types.ModuleType(name)
                    code = compile("\n" * (job["line"]) + job["code"], job["page"], "exec")
                    exec(code, modules[name].__dict__)
                else:
                    from archs.cli import build_parser, main

                    if job["kind"] == "parse":
                        build_parser().parse_args(job["argv"])
                    else:
                        status = main(job["argv"])
                        ok, error = status in (0, None), f"exit status {status}"
        except SystemExit as stop:
            ok, error = stop.code in (0, None), f"exit status {stop.code}"
        except BaseException:
            ok, error = False, traceback.format_exc()
        finally:
            signal.alarm(0)
        results[job["id"]] = {"ok": ok, "error": "" if ok else error, "output": out.getvalue()[-4000:],
                              "seconds": round(time.perf_counter() - started, 2)}
        Path(results_file).write_text(json.dumps(results))


# -- the tests ---------------------------------------------------------------------------------------------------

import pytest  # noqa: E402

# in one xdist process (`make test`: --dist loadgroup): its blocks run once, in one child process, for the whole module
pytestmark = pytest.mark.xdist_group("test_docs")


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("docs")
    (work / "jobs.json").write_text(json.dumps(jobs()))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ARCHS_ALLOW_DOWNLOAD": "0", "ARCHS_SUPERVISOR_IDLE": "2",
           "CUDA_VISIBLE_DEVICES": "", "ARCHS_EXECUTOR": "local", "NO_PROXY": "*",
           "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
    child = subprocess.run([sys.executable, __file__, "RUN", str(work / "jobs.json"), str(work / "results.json")],
                           cwd=work, env=env, capture_output=True, text=True, timeout=CHILD_SECONDS)
    found = json.loads((work / "results.json").read_text()) if (work / "results.json").exists() else {}
    if child.returncode != 0:
        pytest.fail(f"the child running the blocks failed ({child.returncode}):\n{child.stderr[-4000:]}")
    return found


def _report(result: dict) -> str:
    return f"{result['error']}\n--- output ---\n{result['output']}"


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.lang == "python" and b.not_run is None],
                         ids=lambda b: b.id)
def test_python_block_runs(block, results):
    result = results.get(block.id)
    assert result is not None, f"{block.id} was not run (an earlier block hung?)"
    assert result["ok"], _report(result)


SHELL = [b for b in BLOCKS if b.lang in {"bash", "sh", "console"}]


@pytest.mark.parametrize("block", SHELL, ids=lambda b: b.id)
def test_commands_run_or_name_what_exists(block, request):
    found = commands(block)
    assert found, f"{block.id}: a shell block without a command"
    for n, command in enumerate(found):
        try:
            problem = check_static(command)
        except KeyError:
            pytest.fail(f"{block.id}: {shlex.join(command)!r} is a kind of command test_docs does not know: mark the "
                        "block <!-- not run: why --> and teach check_static to check it")
        assert problem is None, f"{block.id}: {shlex.join(command)}: {problem}"
        if archs_argv(command) is not None:             # run (or parsed) in the child: only such blocks wait for it
            result = request.getfixturevalue("results").get(f"{block.id}#{n}")
            assert result is not None, f"{block.id}: {shlex.join(command)} was not run"
            assert result["ok"], f"{block.id}: {shlex.join(command)}: {_report(result)}"


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.lang == "diff"], ids=lambda b: b.id)
def test_diff_matches_the_file_it_changes(block):
    target = re.search(r"^--- a/(\S+)$", block.text, re.M)
    assert target, f"{block.id}: a diff block names its file with '--- a/PATH'"
    path = ROOT / target.group(1)
    assert path.is_file(), f"{block.id}: no such file {target.group(1)}"
    have = [line.rstrip() for line in path.read_text().splitlines()]
    at = 0
    for line in block.text.splitlines():
        if line.startswith(("---", "+++", "+")) or line == "...":
            continue
        wanted = line[1:].rstrip()
        try:
            at = have.index(wanted, at) + 1
        except ValueError:
            pytest.fail(f"{block.id}: {target.group(1)} has no line {wanted!r} (after line {at})")


def test_every_block_has_a_known_language():
    unknown = [f"{b.id}: ```{b.lang}" for b in BLOCKS if b.lang not in LANGUAGES]
    assert not unknown, f"blocks this test cannot check (use one of {sorted(LANGUAGES)}): {unknown}"


def test_blocks_not_run_are_deliberate(capsys):
    skipped = [b for b in BLOCKS if b.not_run is not None]
    with capsys.disabled():
        print(f"\n{len(skipped)} blocks not run (their archs commands parsed, the rest checked):")
        for block in skipped:
            print(f"  {block.id}: {block.not_run}")
    assert all(len(b.not_run) > 10 for b in skipped), "a not-run marker says why"
    assert len(skipped) == EXPECTED_NOT_RUN, (
        f"{len(skipped)} blocks are marked not run, {EXPECTED_NOT_RUN} expected: run the new one, or raise "
        "EXPECTED_NOT_RUN knowingly")


def test_the_readme_is_short_and_links_every_docs_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"docs/{page.name}" in readme, f"README.md does not link docs/{page.name}"
    for page in PAGES:
        for target, anchor in re.findall(r"\]\(([^)#:]+\.(?:png|md))(?:#([^)]*))?\)", page.read_text()):
            linked = page.parent / target
            assert linked.is_file(), f"{page.name} links {target}, which does not exist"
            if anchor:
                assert anchor in _anchors(linked), f"{page.name} links {target}#{anchor}: no such heading"


#: paths the documents name that are not meant to exist: placeholders, the example of a new file, the operator's own
# the example files of docs/layout.md's "Adding things", each a new thing in one file
NOT_FILES = {"pages/NAME.py", "archs/stages/separable.py", "archs/training/executors/inline.py",
             "archs/training/data/stripes.py", "archs/export/formats/npz.py", "archs/training/recipes/sgd_step.py",
             "archs/studies/families/separable.py", "archs/studies/pareto/test_loss.py", ".streamlit/secrets.toml"}


def test_every_path_named_exists():
    """A file or folder of the project named in backquotes exists (the README once named archs/training/store.py
    after it became a package)."""
    missing = []
    for page in PAGES:
        for path in re.findall(r"`((?:archs|tests|pages|ui|benchmarks|deploy|docs|\.ci|\.streamlit)/[\w/.-]*)`",
                               page.read_text()):
            if path not in NOT_FILES and not (ROOT / path).exists():
                missing.append(f"{page.name}: {path}")
    assert not missing, missing


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", page.read_text(), re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


if __name__ == "__main__" and sys.argv[1:2] == ["RUN"]:
    _child(sys.argv[2], sys.argv[3])
