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


@contextlib.contextmanager
def capacity_server(work: Path):
    """`make serve`'s command on 127.0.0.1 and a free port (tests/test_hostile_server.py's server, without its
    address-space cap), its runs folder under ``work``; yields the server (``.url``, ``.proc``); afterwards
    kills it and the executor processes it started, each by its id."""
    from test_hostile_server import HostedServer

    server = HostedServer(Path(work), address_space=None)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        server.stop_helpers()
