"""The server as a deployment runs it: the Dockerfile's CMD (which `make serve` also runs) answers the health
check its HEALTHCHECK uses; and a run started from the Train page in a real browser outlives the server.

The Docker image itself is untested here (no Docker engine on these machines); its command is.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from archs.training import RunStore

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "artifacts" / "screenshots"


def dockerfile_cmd() -> list[str]:
    text = (ROOT / "Dockerfile").read_text()
    return json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))


def healthcheck_cmd() -> str:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return re.search(r"^HEALTHCHECK .*? CMD (.*)$", text, re.M).group(1)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """The Dockerfile's command on a free port, in a process group of its own; killed by its pid only."""

    def __init__(self, runs_dir: Path, log: Path, env: dict | None = None):
        self.port = free_port()
        cmd = dockerfile_cmd()
        cmd[cmd.index("--server.port") + 1] = str(self.port)
        cmd[0] = sys.executable
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log, "a")
        env = {**os.environ, "ARCHS_RUNS_DIR": str(runs_dir), "ARCHS_EXECUTOR": "local", **(env or {})}
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 90
        while not self.healthy():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the server did not start; see {log}")
            time.sleep(0.3)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as reply:
                return reply.read() == b"ok"
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL the server process, as an out-of-memory killer or a crash would end it."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def test_make_serve_and_the_dockerfile_run_the_same_command():
    # --no-print-directory: under `make test` this is a sub-make, which would add "Leaving directory" lines
    make = subprocess.run(["make", "--no-print-directory", "-n", "serve", "PORT=8501", "HOST=0.0.0.0"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    made = shlex.split(make)
    cmd = dockerfile_cmd()
    assert made[1:] == cmd[1:]  # all but the interpreter (.venv/bin/python here, the image's python there)
    assert {"--server.headless", "--browser.gatherUsageStats"} <= set(cmd)
    assert cmd[cmd.index("--browser.gatherUsageStats") + 1] == "false"
    assert cmd[cmd.index("--client.showErrorDetails") + 1] == "none"   # no traceback in a page; the log keeps it


def test_the_dockerfile_command_serves_and_passes_its_healthcheck(tmp_path):
    server = Server(tmp_path / "runs", tmp_path / "server.log")
    try:
        check = healthcheck_cmd().replace("8501", str(server.port))
        assert subprocess.run(check, shell=True, timeout=30).returncode == 0
        with urllib.request.urlopen(server.url, timeout=10) as reply:
            assert reply.status == 200 and b"<html" in reply.read().lower()
    finally:
        server.stop()


chromium = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")


STEPS = 30  # the run's steps (max_steps): the server is killed at step 5


@pytest.mark.skipif(not (os.environ.get("CHROMIUM") or __import__("shutil").which("chromium")),
                    reason="no chromium on PATH (CI: apt-get install -y chromium)")
def test_a_run_started_in_the_browser_outlives_a_killed_server(tmp_path, browser):
    from test_browser import RERUN, settle

    runs_dir = tmp_path / "runs"
    store = RunStore(runs_dir)
    # one browser throughout (a context of the test session's Chromium, tests/conftest.py): its cookie's key makes
    # it the run's owner, across the server's restart
    server = Server(runs_dir, tmp_path / "server.log")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1440, "height": 1600})
    try:
        page.goto(f"{server.url}/train?preset=cifar-resnet20")
        settle(page, timeout=120_000)
        box = page.locator(".st-key-train-max_steps input").first  # 30 of the page's 110 steps: killed at 5, it
        box.fill(str(STEPS))                                          # still has most of its training ahead
        box.press("Enter")
        settle(page, timeout=120_000)
        page.get_by_role("button", name="Start").click()
        page.get_by_text("running since").first.wait_for(timeout=120_000)
        deadline = time.monotonic() + 120
        while not any((r["step"] or 0) >= 5 for r in store.list_runs()):  # it is training: kill the server
            assert time.monotonic() < deadline, "the run did not start training"
            time.sleep(0.2)
        server.kill()
        [row] = store.list_runs()
        assert row["status"] == "running" and row["step"] < row["total_steps"]
        deadline = time.monotonic() + 300
        while store.list_runs()[0]["status"] == "running":
            assert time.monotonic() < deadline, "the run did not finish after the server died"
            time.sleep(0.5)
        [row] = store.list_runs()
        assert row["status"] == "completed" and row["step"] == row["total_steps"] == STEPS
        server = Server(runs_dir, tmp_path / "server.log")  # restarted
        page.goto(f"{server.url}/runs")
        settle(page, timeout=120_000)
        page.locator('td[role="gridcell"]', has_text="completed").first.wait_for(state="attached", timeout=RERUN)
        page.get_by_text("· completed · you ·").first.wait_for(timeout=RERUN)  # the "One run" picker
        page.screenshot(path=SHOTS / "runs-after-server-restart.png", full_page=True)
        page.goto(f"{server.url}/train?preset=cifar-resnet20")
        settle(page, timeout=120_000)
        page.get_by_text("completed at").first.wait_for(timeout=RERUN)
        assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        page.context.close()
        server.stop()
