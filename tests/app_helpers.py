"""Small helpers for the dashboard's AppTest tests: open the app, read what it shows."""

from __future__ import annotations

import re
import time

from streamlit.testing.v1 import AppTest

from archs.training.executors import get_executor
from ui.apptest import app_test
from ui.identity import browser_identity


def open_app(*, session: str | None = None, **query: str) -> AppTest:
    """A new session of the dashboard, opened with these URL query parameters, after its first run.
    ``session``: as the browser whose cookie holds that key would open it (``ui/identity.py``; AppTest sends
    no cookies), so two calls with one key are one owner, as a reload or a second tab of one browser is."""
    at = app_test(timeout=120, query=query or None)
    if session is not None:
        at.session_state["_identity"] = browser_identity(session)
    at.run()
    assert_clean(at)
    return at


def assert_clean(at: AppTest) -> None:
    """No exception (traceback) anywhere on the page."""
    assert not at.exception, [e.message for e in at.exception]


def metric(at: AppTest, label: str) -> str:
    values = [m.value for m in at.metric if m.label == label]
    assert values, f"no metric {label!r} among {[m.label for m in at.metric]}"
    return values[0]


def texts(elements, raw: bool = False) -> str:
    """The text of these elements, joined; Markdown escapes removed unless ``raw``."""
    text = "\n".join(str(e.value) for e in elements)
    return text if raw else re.sub(r"\\(.)", r"\1", text)


def stage_key(at: AppTest, index: int, field: str) -> str:
    """The widget key of a field of the stage at ``index`` on the Build page."""
    part = at.session_state["draft"].stages[index]
    return part.key(field)


def stem_key(at: AppTest, index: int, field: str) -> str:
    return at.session_state["draft"].stem[index].key(field)


def run(at_or_widget) -> AppTest:
    """Rerun (an AppTest, or a widget just changed: its ``run`` reruns its app) and check for exceptions."""
    at = at_or_widget.run()
    assert_clean(at)
    return at


def network_query(at: AppTest) -> dict:
    """The URL's query without a session key (``ui/identity.py`` drops one from a link): what describes the
    network."""
    return {k: v for k, v in at.query_params.items() if k != "session"}


def stop_all(runs_dir) -> None:
    """Stop every study (its driver stops its runs) and every run, and wait for them to end."""
    executor = get_executor("local", runs_dir)
    studies = [s["id"] for s in executor.store.studies.list() if s["status"] in ("running", "interrupted")]
    for study_id in studies:
        executor.store.studies.request_stop(study_id, None, admin=True)
    deadline = time.monotonic() + 60
    while any(executor.store.studies.get(i)["status"] == "running" for i in studies):
        assert time.monotonic() < deadline, "the studies did not stop"
        time.sleep(0.2)
    for run_id in executor.active():
        executor.stop(run_id, admin=True)
    assert executor.wait(timeout=60)
