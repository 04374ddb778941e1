"""What the Train and Runs pages share: the executor, the limits in words, a run's place and times.

Runs do not execute in the web server: the pages hand requests to the executor
(``archs.training.executors``) and read everything back from the run store.
"""

from __future__ import annotations

import datetime as dt

from archs.training.executors import Executor, get_executor

from . import fmt

# How often a view of runs that go on redraws itself. Measured (benchmarks/bench_web.py, headless Chromium on
# the 2-core server): each refresh of the Train page's figures cost the browser ~0.1 s of CPU and each plotly
# redraw ~0.25 s; at 1 s for both, with Streamlit's post-run gc.collect, the run beside them trained at 0.57-0.83
# of the command line's images/s. TensorBoard reloads every 30 s.
STATUS_SECONDS = 2.0
CHART_SECONDS = 6.0
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
    info = ex.describe()
    where = {"local": "worker processes on this machine", "ray": f"Ray ({info.get('address')})"}.get(
        info["executor"], info["executor"])
    return f"Runs execute in {fmt.plain(where)}. This server allows " + " · ".join(ex.limits.describe()) + "."
