"""``streamlit run dashboard.py`` for the benchmarks that time the dashboard in a real browser: the tests'
server (the Dockerfile's command on a free port, with a start deadline), over a throwaway runs folder."""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


@contextlib.contextmanager
def dashboard_server():
    """Start the dashboard, wait until it is healthy (or fail), yield its URL; stop it afterwards."""
    from test_serve import Server

    with tempfile.TemporaryDirectory(prefix="bench-server-") as work:
        server = Server(Path(work) / "runs", Path(work) / "server.log")
        try:
            yield server.url
        finally:
            server.stop()
