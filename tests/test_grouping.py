"""`make test` runs each browser module whole in one pytest-xdist process (tests/grouping.py): checked in a small
session of its own, as `make test` runs it (`-n 2 --dist loadgroup`), on modules that only record where they ran."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

CONFTEST = '''
import os
import pytest
from grouping import pytest_collection_modifyitems  # noqa: F401 (as tests/conftest.py does)

@pytest.fixture(scope="module")
def browser():
    with open(os.environ["WHERE"], "a") as out:
        out.write(f"browser {os.getpid()}\\n")
    yield
'''

BROWSER_MODULE = '''
import os, time
import pytest

@pytest.mark.parametrize("n", range(6))
def test_page(n, browser):
    with open(os.environ["WHERE"], "a") as out:
        out.write(f"page {os.getpid()}\\n")
    time.sleep(0.1)
'''

OTHER_MODULE = '''
import os, time
import pytest

@pytest.mark.parametrize("n", range(12))
def test_other(n):
    with open(os.environ["WHERE"], "a") as out:
        out.write(f"other {os.getpid()}\\n")
    time.sleep(0.05)
'''


def test_a_browser_module_runs_whole_in_one_xdist_process_and_its_fixture_is_made_once(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_pages.py").write_text(BROWSER_MODULE)
    (tmp_path / "test_other.py").write_text(OTHER_MODULE)
    where = tmp_path / "where.txt"
    env = {**os.environ, "WHERE": str(where), "PYTHONPATH": str(TESTS)}
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_ADDOPTS"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2",
                           "--dist", "loadgroup"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line.split() for line in where.read_text().splitlines()]
    pages = {pid for kind, pid in lines if kind == "page"}
    assert len([1 for kind, _ in lines if kind == "page"]) == 6 and len(pages) == 1, lines
    assert [pid for kind, pid in lines if kind == "browser"] == list(pages)   # the module's fixture, made once
    assert len([1 for kind, _ in lines if kind == "other"]) == 12
