"""What the Train and Runs pages share: the executor, the limits in words, a run's place and times.

Runs do not execute in the web server: the pages hand requests to the executor
(``archs.training.executors``) and read everything back from the run store.
"""

from __future__ import annotations

import datetime as dt

from archs.training.executors import Executor, get_executor

from . import fmt

# How often a view of runs that go on redraws itself. Measured (benchmarks/bench_web.py and a CPU profile of
# headless Chromium on the 2-core server, a run streaming beside it): a refresh of the Train page's status
# (progress, metrics) costs the browser ~0.09 s of CPU, a plotly redraw ~0.3 s per chart. With status every 2 s
# and both charts every 6 s the browser took 13-14 % of a core, the run's own threads lost as much, and the page's
# run trained at 0.76-0.88 of the command line's images/s; at 3 s / 8 s / 24 s the browser takes 9-10 %.
# TensorBoard reloads every 30 s.
STATUS_SECONDS = 3.0
CHART_SECONDS = 8.0  # the loss and accuracy curves
HEATMAP_SECONDS = 24.0  # gradient norms are recorded every grad_every steps (50 by default): fewer new columns
LIVE_CHART = {"staticPlot": True}  # plotly config while runs go on: no hover or zoom layers to rebuild each time


def executor() -> Executor:
    """The configured executor (``ARCHS_EXECUTOR``) for the configured run store (``ARCHS_RUNS_DIR``), shared
    by every session of this server."""
    return get_executor()


def clock(value) -> str:
    """A timestamp as the time of day (and the date when not today)."""
    if not isinstance(value, (int, float)):
        return "–"
    moment = dt.datetime.fromtimestamp(value)
    return moment.strftime("%H:%M:%S" if moment.date() == dt.date.today() else "%Y-%m-%d %H:%M")


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def where_text(row: dict) -> str:
    """'queued · 2nd in line (1 run ahead)', 'running since 10:32:05', 'completed at 10:40:11'."""
    status = row["status"]
    if status == "queued":
        position = row.get("queue_position")
        if position:
            ahead = position - 1
            return (f"queued · {ordinal(position)} in line"
                    + (f" ({ahead} run{'s' if ahead != 1 else ''} ahead)" if ahead else " (next to start)"))
        return "queued"
    if status == "running":
        return f"running since {clock(row.get('started_at'))}"
    when = row.get("finished_at")
    return f"{status} at {clock(when)}" if when else status


def limits_caption(ex: Executor) -> str:
    return (f"Runs execute in {fmt.plain(ex.describe()['where'])}. This server allows "
            + " · ".join(ex.limits.describe()) + ".")
