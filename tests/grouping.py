"""How ``make test`` groups the tests for pytest-xdist (``--dist loadgroup``): a pytest hook that tests/conftest.py
re-exports, in a module of its own (it imports neither torch nor the library) so that tests/test_grouping.py can
run it in a small session of its own and check that it groups."""

from __future__ import annotations

from pathlib import Path

import pytest

BROWSER_FIXTURE = "browser"  # tests/conftest.py's Chromium, one per module


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook, which reads the marks to group the tests
def pytest_collection_modifyitems(session, config, items):
    """The modules whose tests use ``browser`` run first, each module whole, in one pytest-xdist process (an
    ``xdist_group`` of its own, unless the module names one): they are the suite's longest tests, so under
    ``make test`` one process starts them while the other takes the short ones, and neither waits idle for the
    other at the end (when they ran last, one process spent the last minutes alone on them). Without
    ``tryfirst`` the marks came after xdist had read them: each browser module ran in both processes, and its
    module fixtures (a server, a training run) were made twice."""
    def module(item) -> str:
        return item.nodeid.split("::")[0]

    browser_modules = {module(item) for item in items if BROWSER_FIXTURE in getattr(item, "fixturenames", ())}
    for item in items:
        if module(item) in browser_modules and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(Path(module(item)).stem))
    items[:] = ([item for item in items if module(item) in browser_modules]
                + [item for item in items if module(item) not in browser_modules])
