"""AppTest for the dashboard as the server runs it, for tests and benchmarks.

With a ``pages/`` folder next to the entry script, Streamlit first runs an app in its old multipage mode,
until the entry script calls ``st.navigation``; from then on the server process uses only the pages that
``st.navigation`` lists. AppTest instead re-detects the folder on every run, so from the second run on it
would run a page file on its own, without ``dashboard.py``. ``app_test`` switches that detection off, as
the server's first ``st.navigation`` call does.
"""

from __future__ import annotations

from pathlib import Path

from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

from ui import jobs

DASHBOARD = Path(__file__).resolve().parent.parent / "dashboard.py"
_original_init = PagesManager.__init__


def _init_without_pages_folder(self, *args, **kwargs):
    PagesManager.uses_pages_directory = False
    _original_init(self, *args, **kwargs)


def app_test(timeout: float = 60, query: dict[str, str] | None = None) -> AppTest:
    """A fresh simulated session of the dashboard (optionally opened with URL query parameters). AppTest runs no
    fragment on a timer, so a page waits for its quick jobs (:mod:`ui.jobs`) within the run, up to ``timeout``."""
    PagesManager.__init__ = _init_without_pages_folder
    jobs.INLINE_SECONDS = max(jobs.INLINE_SECONDS, timeout)
    at = AppTest.from_file(str(DASHBOARD), default_timeout=timeout)
    if query:
        at.query_params.update(query)
    return at
