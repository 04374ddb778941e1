"""How many people one server serves: N sessions at once against one dashboard server (`make serve`'s command),
each editing a network on the Build page at a person's pace (one change every 5-10 s, jittered: a stage's block
count or width), while one training run trains beside them. Reported per N: the p50/p95/max seconds from an edit
to the page's answer, and the run's images/s against the same run alone (measured in the same invocation, before
and after the loaded rounds; their mean is the baseline). Aim (issue 18): 30 people at p95 under 1 s with the run
at 0.8 or more of its speed alone.

    python benchmarks/bench_capacity.py                      # N = 1, 10, 30
    python benchmarks/bench_capacity.py --sessions 1,10,30 --epochs 8
    python benchmarks/bench_capacity.py --quick              # N = 1, 2 and a short run: checks that it works
    python benchmarks/bench_capacity.py --client browser --sessions 1,5    # the same, with Chromium pages

Which client is honest. A person sees the page in a browser: ``--client browser`` opens one Playwright context
per person in one Chromium, moves the stage's Blocks slider with the keyboard, and times until the Parameters
metric shows the new count and Streamlit's running indicator is gone. But 30 Chromium pages (a renderer each,
Plotly and React redrawing on every answer) need more CPU than the 2 cores the server has, so the clients would
slow the server they measure. The default, ``--client protocol``, speaks Streamlit's websocket protocol itself
(``streamlit.proto``): it opens a session as the browser does (a ``rerun_script`` BackMsg with the page's query
and a cookie of its own), reads the ForwardMsgs (deltas, then ``script_finished``), and changes a widget as the
front end does (a ``rerun_script`` carrying the widget's new state). It times from sending the change to the
``script_finished`` that ends the answering script run: every element of the answer has been sent by then, so
what it leaves out is the browser's drawing (tens of ms for the Build page, per ``bench_app.py --browser``). It
costs a few % of a core for 30 people (printed), so it scales to N = 30 on the server's own 2 cores.

The run: ``python -m archs train cifar-resnet20 --data digits --save`` (offline data), a separate process as a
run's worker is; its images/s are the trainer's own count. Its epochs (``--epochs``) should make it last long enough
for every person to make several edits: 40 by default, about 80 s on a quiet 2-core machine. Edits are counted while the run trains (from its start to its
end); each person waits for the answer before the next change, as a person does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

PRESET = "cifar-resnet20"
PACE = (5.0, 10.0)              # seconds between one person's edits (uniform)
ANSWER_TIMEOUT = 120.0          # an answer slower than this counts as lost (reported as such)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its reaped children, from /proc (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


# ------------------------------------------------------------------------------------------ the protocol client
@dataclass
class Widget:
    id: str
    kind: str                   # "slider" or "number_input"
    label: str
    low: float
    high: float
    value: float


class ProtocolPerson:
    """One person's browser tab, as Streamlit's front end talks to the server: a websocket of BackMsg/ForwardMsg
    protobufs. Keeps the widgets the last answer drew; changes one stage's Blocks slider or Channels box."""

    def __init__(self, url: str, rng: random.Random):
        self.url, self.rng = url, rng
        self.widgets: dict[str, Widget] = {}
        self.changed: dict[str, float] = {}     # what this person has set so far (sent with every rerun)
        self.cookie = f"archs_session={secrets.token_urlsafe(24)}"
        self.ws = None
        self.params = ""                        # the Parameters metric of the last answer
        self.unchanged = 0                      # answers whose Parameters did not change (wrong answers)

    async def open(self) -> float:
        from websockets.asyncio.client import connect

        ws_url = self.url.replace("http://", "ws://") + "/_stcore/stream"
        start = time.monotonic()
        self.ws = await connect(ws_url, subprotocols=["streamlit"], additional_headers={"Cookie": self.cookie},
                                max_size=None, ping_interval=None, open_timeout=ANSWER_TIMEOUT)
        await self._rerun()
        await self._answer()
        return time.monotonic() - start

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()

    def editable(self) -> list[Widget]:
        """The stages' Blocks sliders and Channels boxes (keys like ``f2.residual.blocks``; ``f1.plain`` is the
        stem)."""
        return [w for w in self.widgets.values() if w.id.endswith((".residual.blocks", ".residual.channels"))]

    async def edit(self) -> float:
        """Change one stage's block count (1-6) or width: seconds from sending it to the answer. Widths stay
        non-decreasing from stage to stage (16-32, 32-64, 64-128), as He et al.'s zero-padding shortcuts need,
        so every change makes a valid network with another parameter count: an answer that does not show a new
        count is a wrong one (counted)."""
        choices = self.editable()
        if not choices:
            raise RuntimeError("no stage widgets on the page: " + ", ".join(w.label for w in self.widgets.values()))
        widget = self.rng.choice(choices)
        if widget.label == "Blocks":
            options = [v for v in range(1, 7) if v != widget.value]
        else:
            stage = [w for w in choices if w.label == "Channels"].index(widget)
            low = 16 * 2**stage
            options = [v for v in range(low, 2 * low + 1, 16) if v != widget.value]
        value = self.rng.choice(options)
        self.changed[widget.id] = value
        widget.value = value
        before = self.params
        start = time.monotonic()
        await self._rerun()
        await self._answer()
        seconds = time.monotonic() - start
        if self.params == before:              # every change of blocks or width changes the count
            self.unchanged += 1
        return seconds

    async def _rerun(self) -> None:
        from streamlit.proto.BackMsg_pb2 import BackMsg

        msg = BackMsg()
        state = msg.rerun_script
        state.query_string = f"preset={PRESET}"
        state.page_script_hash = ""
        state.context_info.url = f"{self.url}/?preset={PRESET}"
        state.context_info.timezone = "UTC"
        state.context_info.locale = "en-GB"
        for wid, value in self.changed.items():
            w = state.widget_states.widgets.add()
            w.id = wid
            if self.widgets[wid].kind == "slider":
                w.double_array_value.data.append(float(value))
            else:
                w.int_value = int(value)
        await self.ws.send(msg.SerializeToString())

    async def _answer(self) -> None:
        """Read ForwardMsgs until a script run ends other than by a rerun it asked for; note the widgets."""
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        deadline = time.monotonic() + ANSWER_TIMEOUT
        while True:
            data = await asyncio.wait_for(self.ws.recv(), timeout=max(0.1, deadline - time.monotonic()))
            msg = ForwardMsg()
            msg.ParseFromString(data)
            kind = msg.WhichOneof("type")
            if kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                self._note(msg.delta.new_element)
            elif kind == "script_finished":
                if msg.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                    return

    def _note(self, element) -> None:
        kind = element.WhichOneof("type")
        if kind == "metric" and element.metric.label == "Parameters":
            self.params = element.metric.body
        elif kind == "slider":
            s = element.slider
            value = (list(s.value) if s.set_value else list(s.default)) or [s.min]
            old = self.widgets.get(s.id)
            self.widgets[s.id] = Widget(s.id, kind, s.label, s.min, s.max,
                                        old.value if old and s.id in self.changed else value[0])
        elif kind == "number_input":
            n = element.number_input
            old = self.widgets.get(n.id)
            value = n.value if n.set_value else n.default
            self.widgets[n.id] = Widget(n.id, kind, n.label, n.min, n.max,
                                        old.value if old and n.id in self.changed else value)


# ------------------------------------------------------------------------------------------ the browser client
class BrowserPerson:
    """One person in a context of one shared Chromium (Playwright's async API): moves a stage's Blocks slider
    with an arrow key and waits until the Parameters metric has changed and the script has finished."""

    metric = '[data-testid="stMetricValue"]'

    def __init__(self, url: str, rng: random.Random, browser):
        self.url, self.rng, self.browser = url, rng, browser
        self.page = None

    async def open(self) -> float:
        start = time.monotonic()
        self.page = await (await self.browser.new_context(viewport={"width": 1440, "height": 1800})).new_page()
        await self.page.goto(f"{self.url}/?preset={PRESET}", timeout=ANSWER_TIMEOUT * 1000)
        await self._settle()
        for n in (1, 2, 3):       # open the stages' expanders once, as a person editing them has
            await self._stage(n).locator("summary").click()
        await self._settle()
        return time.monotonic() - start

    def _stage(self, n: int):
        return self.page.locator('[data-testid="stExpander"]').filter(has_text=f"Stage {n} ").first

    async def _settle(self) -> None:
        """test_browser.settle, awaited: until Streamlit's running indicator has gone (twice, 0.3 s apart)."""
        await self.page.wait_for_selector('[data-testid="stApp"]', timeout=ANSWER_TIMEOUT * 1000)
        for _ in range(2):
            await self.page.wait_for_function(
                "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=ANSWER_TIMEOUT * 1000)
            await self.page.wait_for_timeout(300)

    async def edit(self) -> float:
        thumb = self._stage(self.rng.randint(1, 3)).get_by_role("slider").first          # "Blocks"
        now = int(await thumb.get_attribute("aria-valuenow") or 1)
        key = "ArrowLeft" if now >= 6 or (now > 1 and self.rng.random() < 0.5) else "ArrowRight"
        before = await self.page.locator(self.metric).first.inner_text()
        await thumb.focus()
        start = time.monotonic()
        await thumb.press(key)
        await self.page.wait_for_function(
            f"() => document.querySelector('{self.metric}').innerText !== {before!r}", timeout=ANSWER_TIMEOUT * 1000)
        seconds = time.monotonic() - start       # the new count is on screen
        await self._settle()                     # (and the page has finished, off the clock: settle waits 0.6 s)
        return seconds

    async def close(self) -> None:
        if self.page is not None:
            await self.page.context.close()


# ------------------------------------------------------------------------------------------ one round
@dataclass
class Round:
    sessions: int
    opens: list[float] = field(default_factory=list)
    edits: list[float] = field(default_factory=list)      # seconds per edit made while the run trained
    lost: int = 0                                         # edits with no answer within ANSWER_TIMEOUT
    unchanged: int = 0                                    # answers that did not show the new parameter count
    run: dict | None = None
    server_cpu: float = 0.0                               # cores the server used during the run
    client_cpu: float = 0.0                               # cores this benchmark's clients used


def train_command(runs_dir: Path, epochs: int) -> list[str]:
    return [sys.executable, "-m", "archs", "train", PRESET, "--data", "digits", "--epochs", str(epochs), "--save",
            "--runs-dir", str(runs_dir), "--json"]


async def train(runs_dir: Path, epochs: int) -> dict:
    start = time.monotonic()
    proc = await asyncio.create_subprocess_exec(*train_command(runs_dir, epochs), cwd=ROOT,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"the training run failed:\n{err.decode()[-2000:]}")
    result = json.loads(out)
    return {"images_per_second": result["images_per_second"], "test_accuracy": result.get("test_accuracy"),
            "wall_seconds": time.monotonic() - start}


async def one_round(url: str, n: int, runs_dir: Path, epochs: int, server_pid: int, seed: int,
                    client: str) -> Round:
    """N people arrive within 5 s, then edit at their pace while one training run trains; the round ends with
    the run."""
    result = Round(n)
    playwright = browser = None
    lost_answer: tuple[type[BaseException], ...] = (TimeoutError,)    # asyncio's, since Python 3.11
    if client == "browser":
        from playwright.async_api import Error as PlaywrightError
        from playwright.async_api import async_playwright

        lost_answer = (TimeoutError, PlaywrightError)                   # its timeouts

        playwright = await async_playwright().start()
        browser = await playwright.chromium.launch(executable_path=shutil.which("chromium"), headless=True,
                                                   args=CHROMIUM_ARGS)
        people = [BrowserPerson(url, random.Random(seed * 1000 + i), browser) for i in range(n)]
    else:
        people = [ProtocolPerson(url, random.Random(seed * 1000 + i)) for i in range(n)]
    try:
        async def arrive(person, delay):
            await asyncio.sleep(delay)
            result.opens.append(await person.open())

        await asyncio.gather(*(arrive(p, random.Random(seed + i).uniform(0, 5)) for i, p in enumerate(people)))
        stop = asyncio.Event()

        async def work(person, rng):
            await asyncio.sleep(rng.uniform(0, PACE[1]))           # out of step with each other
            while not stop.is_set():
                try:
                    seconds = await person.edit()
                    if not stop.is_set():
                        result.edits.append(seconds)
                except lost_answer:
                    result.lost += 1
                try:
                    await asyncio.wait_for(stop.wait(), timeout=rng.uniform(*PACE))
                except TimeoutError:
                    pass

        cpu0, me0, wall0 = cpu_seconds(server_pid), time.process_time(), time.monotonic()
        workers = [asyncio.create_task(work(p, random.Random(seed * 7 + i))) for i, p in enumerate(people)]
        result.run = await train(runs_dir, epochs)
        stop.set()
        wall = time.monotonic() - wall0
        result.server_cpu = (cpu_seconds(server_pid) - cpu0) / wall
        result.client_cpu = (time.process_time() - me0) / wall   # this process only (not Chromium's)
        await asyncio.gather(*workers)
        result.unchanged = sum(getattr(p, "unchanged", 0) for p in people)
    finally:
        await asyncio.gather(*(p.close() for p in people), return_exceptions=True)
        if browser is not None:
            await browser.close()
            await playwright.stop()
    return result


async def warm_up(url: str) -> None:
    """One session opened and edited before anything is timed: a fresh server's first script run imports
    torch and the pages (tens of seconds), which no later visitor pays."""
    person = ProtocolPerson(url, random.Random(-1))
    await person.open()
    await person.edit()
    await person.close()


# ------------------------------------------------------------------------------------------ main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", default="1,10,30", help="comma-separated numbers of people (default 1,10,30)")
    parser.add_argument("--epochs", type=int, default=40,
                        help="the training run's epochs on the digits (1,437 images each; default 40: about 80 s "
                             "at the 700 images/s of a quiet 2-core machine)")
    parser.add_argument("--client", choices=("protocol", "browser"), default="protocol")
    parser.add_argument("--quick", action="store_true", help="N = 1, 2 and a 2-epoch run: check that it works")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    counts = [1, 2] if args.quick else [int(n) for n in args.sessions.split(",") if n.strip()]
    epochs = 2 if args.quick else args.epochs
    if args.client == "browser" and shutil.which("chromium") is None:
        print("no chromium on PATH: apt-get install -y chromium")
        return 1
    from _server import capacity_server

    work = Path(tempfile.mkdtemp(prefix="bench-capacity-"))
    rounds: list[Round] = []
    alone: list[dict] = []
    try:
        with capacity_server(work) as server:
            print(f"server {server.url} (pid {server.proc.pid}); the run: {' '.join(train_command(Path('RUNS'), epochs)[1:])}",
                  flush=True)
            asyncio.run(warm_up(server.url))
            alone.append(asyncio.run(train(work / "alone", epochs)))
            print(f"run alone: {alone[-1]['images_per_second']:.1f} images/s, {alone[-1]['wall_seconds']:.0f} s from "
                  "start to end", flush=True)
            for n in counts:
                r = asyncio.run(one_round(server.url, n, work / f"n{n}", epochs, server.proc.pid, args.seed,
                                          args.client))
                rounds.append(r)
                print(f"N={n}: {len(r.edits)} edits, p50 {percentile(r.edits, 50):.3f} s, p95 "
                      f"{percentile(r.edits, 95):.3f} s, max {max(r.edits, default=float('nan')):.3f} s, "
                      f"{r.lost} lost, {r.unchanged} wrong; run {r.run['images_per_second']:.1f} images/s; server "
                      f"{100 * r.server_cpu:.0f} % of a core, clients {100 * r.client_cpu:.0f} %", flush=True)
            alone.append(asyncio.run(train(work / "alone-after", epochs)))
            print(f"run alone again: {alone[-1]['images_per_second']:.1f} images/s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    base = statistics.mean(a["images_per_second"] for a in alone)
    print(f"\n{args.client} client; the run alone: {base:.1f} images/s (mean of "
          + ", ".join(f"{a['images_per_second']:.1f}" for a in alone) + ")")
    print(f"{'N':>4} {'edits':>6} {'open p50':>9} {'edit p50':>9} {'edit p95':>9} {'max':>7} {'lost':>5} {'wrong':>6} "
          f"{'run img/s':>10} {'vs alone':>9} {'server CPU':>11}")
    for r in rounds:
        ratio = r.run["images_per_second"] / base
        print(f"{r.sessions:>4} {len(r.edits):>6} {percentile(r.opens, 50):>8.2f}s {percentile(r.edits, 50):>8.3f}s "
              f"{percentile(r.edits, 95):>8.3f}s {max(r.edits, default=float('nan')):>6.2f}s {r.lost:>5} {r.unchanged:>6} "
              f"{r.run['images_per_second']:>10.1f} {ratio:>9.3f} {100 * r.server_cpu:>9.0f} %")
    for r in rounds:
        if len(r.edits) < 3 * r.sessions:
            print(f"N={r.sessions}: only {len(r.edits) / r.sessions:.1f} edits per person while the run trained: "
                  "raise --epochs for a steadier p95")
    for r in rounds:
        ok = (percentile(r.edits, 95) < 1.0 and r.run["images_per_second"] / base >= 0.8 and not r.lost
              and not r.unchanged)
        print(f"N={r.sessions}: p95 {percentile(r.edits, 95):.3f} s (aim < 1 s), run at "
              f"{r.run['images_per_second'] / base:.2f} of alone (aim >= 0.8): {'meets' if ok else 'misses'} the aim")
    return 0


if __name__ == "__main__":
    sys.exit(main())
