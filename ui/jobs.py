"""Quick jobs: the measurements a page asks for (gradients and activation health at initialisation, a stored
run's activation health, measured cost, an export) are carried out by a worker of the local executor, never in
this web server (issue 18), each bounded by a memory cap the OS enforces and a wall-clock limit after which its
worker is killed. The server keeps only the small result, shared by every session that asks for the same thing.

A page describes one measurement as a :class:`Job` and calls :func:`measure`: it returns the result when it is
known, and otherwise asks (a button) or submits, waits a moment for a quick answer, and then shows the job's
progress with a Cancel button, redrawn by a fragment until the job ends and the page reruns with its result.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import streamlit as st

from archs.fields import SpecError
from archs.training.config import ACTIVE_STATUSES, ConfigError
from archs.training.executors import Executor, get_executor
from archs.training.limits import LimitError
from archs.training.request import RunRequest, bound_quick_job
from archs.training.store import RunError

from . import fmt, identity

# How long a rerun waits for a job it has just submitted before it shows progress instead: a measurement of a
# small network ends within it (a worker forked from the supervisor's fork server, torch loaded, starts at once),
# so its chart appears in the same rerun, without the fragment's next tick; a click on Cancel waits at most this
# long to be handled.
INLINE_SECONDS = 2.0
POLL_SECONDS = 0.5  # the progress fragment's redraws while a job runs
KEPT = 128  # results kept by this server (small: per-layer numbers, or the names of exported files)
_STATE = "_quick_jobs"  # session state: job name -> (key, run id)
_CANCELLED = "_quick_jobs_cancelled"  # session state: ids of the jobs this session cancelled
# The owner of measurements made for visitors who own nothing (ARCHS_AUTH=required): one owner for all of them, so
# ARCHS_MAX_QUEUED_PER_OWNER, counted in the store's transaction, bounds what they all have waiting together.
# Within it each visitor (ui/identity.viewer, recorded as the job's owner name) has VIEWER_QUEUED waiting at most,
# so that no one of them takes the places of the others (and every other visitor's Gradients page with them).
ANONYMOUS = "anonymous:viewers"
VIEWER_QUEUED = 1


@dataclass(frozen=True)
class Job:
    """One measurement a page asks for: ``name`` (one at a time per session and name: "cost", "export"), ``key``
    (what is measured: the result is kept under it), ``request`` (makes the run request, only when submitted),
    ``read`` (turns the job's stored result and its run id into what the page draws) and ``what`` (words for
    the progress line: "Measuring resnet18 at batch 16")."""

    name: str
    key: tuple
    request: Callable[[str, str | None], RunRequest]   # (owner, owner name) -> request
    read: Callable[[dict, str], Any]
    what: str


class _Kept:
    """Results by key, newest last, at most :data:`KEPT`; shared by the sessions of this server."""

    def __init__(self):
        self.items: OrderedDict = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
            return None

    def put(self, key, value) -> None:
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > KEPT:
                self.items.popitem(last=False)


@st.cache_resource(show_spinner=False)
def _kept() -> _Kept:
    return _Kept()


def forget() -> None:
    """Forget every kept result (tests)."""
    _kept.clear()


def forget_one(job: Job) -> None:
    """Forget the job's result (its files are gone): the next ask measures again."""
    kept = _kept()
    with kept.lock:
        kept.items.pop((job.name, job.key), None)


def executor() -> Executor:
    """The executor of quick jobs: always this machine's workers (a measurement is about this server's hardware,
    and its data or weights are read from this server's store)."""
    return get_executor("local")


def known(job: Job):
    """The job's result if this server has it, else None."""
    return _kept().get((job.name, job.key))


def owner() -> tuple[str, str | None]:
    """Who a job is submitted for: the session's owner, or one owner for every visitor who owns nothing (with
    which visitor it is as the owner's name)."""
    me = identity.current()
    if me.as_owner is not None:
        return me.as_owner, me.name
    return ANONYMOUS, identity.viewer()


def may_start() -> bool:
    """Whether this visitor may ask for a measurement (an anonymous visitor where login is required may not)."""
    return identity.current().may_act


def measure(job: Job, *, ask: str | None = None, button: str = "Measure", button_key: str | None = None,
            may_ask: bool = True):
    """The job's result, or None while it is asked for, queued, running, or failed (each said on the page).

    ``ask``: words shown with a button (``button``, key ``button_key``) that starts the job; None submits it at
    once. ``may_ask`` False disables that button (a visitor who must log in first)."""
    found = known(job)
    if found is not None:
        return found
    jobs = st.session_state.setdefault(_STATE, {})
    pending = jobs.get(job.name)
    if pending is None or pending[0] != job.key:
        if ask is not None:
            st.info(ask, icon=":material/timer:")
            clicked = st.button(button, key=button_key or f"{job.name}_measure", icon=":material/play_arrow:",
                                disabled=not may_ask,
                                help=None if may_ask else "Log in to start measurements on this server.")
            if not clicked:
                return None
        if pending is not None:  # settings changed while a job of the older ones waits or runs: one at a time
            cancel(pending[1])
        run_id = submit(job)
        if run_id is None:
            return None
        pending = jobs[job.name] = (job.key, run_id)
    run_id = pending[1]
    with st.spinner(f"{job.what}…"):
        status = wait(run_id, INLINE_SECONDS)
    if status is None:  # its run was deleted meanwhile: start over
        jobs.pop(job.name, None)
        st.rerun()
    if status["status"] in ACTIVE_STATUSES:
        st.fragment(run_every=POLL_SECONDS)(_progress)(job.name, run_id, job.what)
        return None
    return finish(job, run_id, status, asked=ask is not None)


def submit(job: Job) -> str | None:
    """Queue the job; None (with the reason on the page) when it cannot be."""
    who, name = owner()
    ex = executor()
    try:
        if who == ANONYMOUS:
            # one visitor's share of the places all of them have: checked here, before the store's transaction
            # (a race of this visitor's own tabs goes over it by a job or two, still within the shared cap)
            waiting = [r for r in ex.store.list_runs(owner=ANONYMOUS, status="queued") if r["owner_name"] == name]
            if len(waiting) >= VIEWER_QUEUED:
                st.warning(f"Not measured yet: a visitor who is not logged in has {VIEWER_QUEUED} measurement"
                           f"{'s' if VIEWER_QUEUED != 1 else ''} at a time waiting on this server, and yours (in "
                           "another tab?) is still waiting for a worker. This page measures when you come back to "
                           "it after that one has started, or log in.", icon=":material/hourglass_top:")
                return None
        return ex.submit(bound_quick_job(job.request(who, name)))  # over the memory budget: SpecError
    except LimitError as error:
        if who == ANONYMOUS and error.limit == "ARCHS_MAX_QUEUED_PER_OWNER":  # not "you already have ...": theirs
            st.error(f"Not measured: visitors who are not logged in share {ex.limits.max_queued_per_owner} places in "
                     "this server's queue (ARCHS_MAX_QUEUED_PER_OWNER), and other visitors' measurements, waiting "
                     "for a worker, hold all of them. Try again in a moment, or log in to measure in your own name.",
                     icon=":material/error:")
        else:
            st.error(f"Not measured: {fmt.plain(error)}", icon=":material/error:")
        return None
    except (SpecError, ConfigError, RunError) as error:
        st.error(f"Not measured: {fmt.plain(error)}", icon=":material/error:")
        return None


def cancel(run_id: str, ex: Executor | None = None) -> None:
    """Stop a job this session started, if it has not ended (nothing to say if it has, or has gone). ``ex``: the
    executor it was submitted to (a depth sweep's measurements go to the configured one), else :func:`executor`."""
    st.session_state.setdefault(_CANCELLED, set()).add(run_id)
    try:
        (ex or executor()).stop(run_id, owner()[0])
    except RunError:
        pass


def cancel_study(study_id: str, ex: Executor) -> None:
    """Stop a study this session started (the depth sweep: a quick job per network): its driver starts no more of
    its jobs, and those that wait or run are stopped here and now rather than at the driver's next look."""
    st.session_state.setdefault(_CANCELLED, set()).add(study_id)
    try:
        ex.store.studies.request_stop(study_id, owner()[0])
        active = [r["id"] for r in ex.store.list_runs(group=study_id) if r["status"] in ACTIVE_STATUSES]
    except RunError:  # gone, or someone else's (this session logged out since): nothing of ours to stop
        return
    for run_id in active:
        cancel(run_id, ex)


def cancelled(job_id: str) -> bool:
    """Whether this session cancelled that job (a run's id) or study."""
    return job_id in st.session_state.get(_CANCELLED, ())


def progress(fraction, text: str, key: str) -> bool:
    """A job's progress bar (``fraction`` of it done, 0 when not a number) and its Cancel button (``key``): True
    when Cancel was clicked. Every measurement a page waits for shows these two, the same way."""
    cols = st.columns([5, 1], vertical_alignment="bottom")
    cols[0].progress(min(max(float(fraction), 0.0), 1.0) if isinstance(fraction, (int, float)) else 0.0,
                     text=fmt.plain(text))
    return cols[1].button("Cancel", key=key, icon=":material/stop:")


def wait(run_id: str, seconds: float) -> dict | None:
    """The job's status once it has ended, or after ``seconds``; None if it has gone from the store."""
    deadline = time.monotonic() + seconds
    ex = executor()
    while True:
        try:
            status = ex.status(run_id)
        except RunError:
            return None
        if status["status"] not in ACTIVE_STATUSES or time.monotonic() >= deadline:
            return status
        time.sleep(0.02)


def finish(job: Job, run_id: str, status: dict, asked: bool = False):
    """A job that has ended: its result kept and returned, or why it has none (and a button to try again). A job
    that was asked for and stopped (Cancel) is simply asked for again."""
    if status["status"] == "completed":
        try:
            value = job.read(status["result"], run_id)
        except (KeyError, TypeError, ValueError) as error:
            st.error(f"The measurement's result cannot be read: {fmt.plain(error)}", icon=":material/error:")
        else:
            _kept().put((job.name, job.key), value)
            st.session_state.get(_STATE, {}).pop(job.name, None)
            return value
    if asked and status["status"] == "stopped" and run_id in st.session_state.get(_CANCELLED, ()):
        st.session_state.get(_STATE, {}).pop(job.name, None)
        st.rerun()
    reason = status.get("error") or status.get("message") or status["status"]
    st.error(f"{job.what}: {status['status']}. {fmt.plain(reason)}", icon=":material/error:")
    if st.button("Try again", key=f"{job.name}_again", icon=":material/refresh:"):
        st.session_state.get(_STATE, {}).pop(job.name, None)
        st.rerun()
    return None


def _progress(name: str, run_id: str, what: str) -> None:
    """While the job waits or runs: where it is, and Cancel; when it has ended, the whole page again."""
    ex = executor()
    try:
        status = ex.status(run_id)
    except RunError:
        st.session_state.get(_STATE, {}).pop(name, None)
        st.rerun()
    if status["status"] not in ACTIVE_STATUSES:
        st.rerun()  # the whole page: it draws the result (or says why there is none)
    told = status.get("progress") if isinstance(status.get("progress"), dict) else {}
    if status["status"] == "queued":
        ahead = len([r for r in ex.queue() if r != run_id])
        text = f"{what}: waiting for a worker" + (f" ({ahead} ahead)" if ahead else "") + "…"
    else:
        text = f"{what}: {told.get('message') or 'measuring…'}"
    if progress(told.get("fraction"), text, key=f"{name}_cancel"):
        cancel(run_id)
        st.rerun()  # the whole page: it says the job stopped (or asks again), never submits it again by itself
