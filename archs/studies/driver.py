"""The study driver: a process of its own that hands a study's trials to the executor and records what they give.

:func:`start_study` stores a study and starts its driver; :func:`ensure_driver` starts one for a study whose
driver has stopped (a server restart, SIGKILL), which carries on from the stored state: trials whose runs
finished are read back, never run again; trials whose runs go on are followed; the rest are submitted. A driver
is a detached process (its own session, like the local executor's supervisor), one per study (an exclusive
``flock``), never the web server's. Only the study's owner or an administrator starts one again (someone else
opening an interrupted study only looks), and at most ``ARCHS_MAX_STUDY_DRIVERS`` studies are driven at once on a
server: a study past that is refused (LimitError), counted in the transaction that would store it or mark its
driver as being started. :func:`delete_study` deletes a study with its Optuna records, lock file and log.

Each trial is a run request handed to the configured executor (so on a Ray cluster trials run side by side), at
most ``parallel`` at once (default: the executor's concurrency) and one more waiting in the queue (so a slot never
idles while the driver notices that a run ended), through the server's limits like any run: a full
queue makes a trial wait (read from the store without its write lock, looked at less and less often), a network
over a limit or values that make no valid network make it ``infeasible`` with the message, never a crash of the
study.

A search asks Optuna for each trial and tells it the result (ask-and-tell: no process blocks per trial). Its
storage is ``optuna.db`` beside the run store (``sqlite:///<runs>/optuna.db``), the Optuna study named after ours,
so a driver that starts again finds every trial Optuna has seen. With one objective, each evaluation of a run is
reported as an intermediate value, and the pruner (median, by default) stops a hopeless trial through the run's
own stop; Optuna cannot prune on several objectives, so a multi-objective search runs every trial to its end.
With ``seeds`` > 1 each configuration Optuna draws runs once per seed (our trials share its Optuna trial), Optuna is
told the mean over the seeds, and the spread (``over_seeds``: mean, SD, n) is stored with each trial; such a search
is not pruned (the seeds' runs would report one curve). A configuration that cannot be built or is over a limit is
told to Optuna as a constraint violation (``Trial.set_constraint``) and does not use the trial budget; after
``INFEASIBLE_DRAWS_PER_TRIAL`` (10) x the budget of infeasible draws the search ends, saying why.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from archs.fields import SpecError
from archs.studies.definition import SEARCH_VAL_SPLIT, StudyDefinition, plan_trials, selection_metric, trial_request
from archs.studies.pareto import OBJECTIVES, pareto_front, train_flops
from archs.training.limits import LimitError, Limits
from archs.training.store import RunError, RunStore, process_identity
from archs.training.store.files import UnsafeFile, safe_append_fd
from archs.training.store.processes import lock_held
from archs.training.store.studies import TRIAL_FINAL

__all__ = ["DRIVER_POLL_SECONDS", "delete_study", "drive", "ensure_driver", "start_study", "study_view"]

DRIVER_POLL_SECONDS = 0.25
QUEUE_BACKOFF_SECONDS = 2.0  # the longest a driver waiting on a full queue sleeps between two looks at it
QUEUE_LIMITS = ("ARCHS_MAX_QUEUED", "ARCHS_MAX_QUEUED_PER_OWNER")  # wait and try again: not the trial's fault
INFEASIBLE_DRAWS_PER_TRIAL = 10  # a search ends after 10 x its trial budget of infeasible draws
INFEASIBLE_DRAWS_PER_STEP = 10   # at most this many in one pass (the first pass is the web server's request)
RUN_TO_TRIAL = {"completed": "completed", "stopped": "stopped", "diverged": "diverged", "failed": "failed",
                "interrupted": "failed"}


def sampler_seed(study_id: str, asked: int) -> int:
    """The seed of a search's sampler for its next trial, from the study's id and how many trials were asked."""
    digest = hashlib.sha256(f"{study_id}/{asked}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def optuna_url(store: RunStore) -> str:
    return f"sqlite:///{(store.root / 'optuna.db').resolve()}"


# ------------------------------------------------------------------------------------------ starting
def start_study(executor, definition: StudyDefinition, *, owner: str, owner_name: str | None = None,
                start_driver: bool = True) -> str:
    """Store a study (with its planned trials) and start its driver; return its id. Raises StudyError (a
    SpecError) for a definition that cannot run and LimitError over the server's study limits."""
    definition.base()
    planned = plan_trials(definition)
    limits = executor.limits
    total = definition.trials * definition.seeds if definition.kind == "search" else len(planned)
    if limits.max_trials_per_study and total > limits.max_trials_per_study:
        raise LimitError(f"this study has {total:,} trials; this server runs at most {limits.max_trials_per_study:,} "
                         "per study (ARCHS_MAX_TRIALS_PER_STUDY)", "ARCHS_MAX_TRIALS_PER_STUDY")

    def admit(conn, n_trials: int) -> None:
        if limits.max_study_drivers:
            driven = executor.store.studies.driven(conn)
            if driven >= limits.max_study_drivers:
                raise LimitError(drivers_full_message(driven, limits.max_study_drivers), "ARCHS_MAX_STUDY_DRIVERS")
        if limits.max_studies_per_owner:
            running = executor.store.studies.counts(conn, owner)["running"]
            if running >= limits.max_studies_per_owner:
                raise LimitError(f"you already have {running} stud{'ies' if running != 1 else 'y'} running; this "
                                 f"server runs at most {limits.max_studies_per_owner} per person "
                                 "(ARCHS_MAX_STUDIES_PER_OWNER): stop one or wait", "ARCHS_MAX_STUDIES_PER_OWNER")

    study_id = executor.store.studies.create(owner=owner, owner_name=owner_name, kind=definition.kind,
                                             name=definition.name, definition=definition.to_dict(),
                                             executor=executor.name, trials=[{"params": p} for p in planned],
                                             admit=admit)
    if start_driver:
        # the first trials are handed over here, at once, so that the driver's start (a second or two of imports)
        # runs beside them instead of before them; from then on only the driver submits
        try:
            StudyDriver(executor.store, study_id, executor).step()
        except SpecError as error:
            fail(executor.store, study_id, error)
            raise
        try:
            ensure_driver(executor.store, study_id, by=owner, max_drivers=limits.max_study_drivers)
        except LimitError:  # a revived study took the last slot meanwhile: this one carries on when opened again
            pass
    return study_id


def fail(store: RunStore, study_id: str, error: Exception) -> None:
    """End a study whose definition cannot run: ``failed`` with the reason, never ``running`` again."""
    store.studies.update(study_id, status="failed", error=f"the study cannot run: {error}", finished_at=time.time())


def drivers_full_message(driven: int, cap: int) -> str:
    return (f"{driven} stud{'ies are' if driven != 1 else 'y is'} being driven; this server drives at most {cap} at "
            "once, everyone's together (ARCHS_MAX_STUDY_DRIVERS): try again when one has ended")


def max_study_drivers() -> int | None:
    """``ARCHS_MAX_STUDY_DRIVERS`` as :class:`Limits` reads it, without ``Limits.from_env``'s probe of the GPUs."""
    try:
        value = int(os.environ.get("ARCHS_MAX_STUDY_DRIVERS", ""))
    except ValueError:
        value = 0
    return value if value > 0 else Limits.max_study_drivers


def _lock_path(store: RunStore, study_id: str) -> Path:
    return store.root / f".{study_id}.lock"


def _log_path(store: RunStore, study_id: str) -> Path:
    return store.root / f".{study_id}.log"


def _refused(path: Path, what: str, error: OSError) -> UnsafeFile | None:
    """The error to give for ``path`` when opening it found a link (``O_NOFOLLOW`` answers ``ELOOP``) or a file not
    its own (:func:`safe_append_fd`): a shell user of the server planted it there. None for any other error."""
    if isinstance(error, UnsafeFile) or error.errno == errno.ELOOP:
        return UnsafeFile(f"the study's {what} {path} is a link or a file not its own, put there by someone: it is "
                          "not opened (remove it to go on)")
    return None


def _open_private(path: Path, what: str) -> int:
    """A descriptor appending to the study's file ``path`` (created ``0600``), never through a link: a link planted
    there would have the server's user create or append to its target. UnsafeFile for a planted file."""
    try:
        return safe_append_fd(path)
    except OSError as error:
        raise _refused(path, what, error) or error from None


def driver_running(store: RunStore, study_id: str) -> bool:
    """Whether a driver holds the study's lock. RunError (the page shows it) for a planted lock file."""
    path = _lock_path(store, study_id)
    try:
        return lock_held(path)  # never through a link either
    except OSError as error:
        refused = _refused(path, "lock file", error)
        if refused is None:
            raise
        raise RunError(str(refused)) from None


def ensure_driver(store: RunStore, study_id: str, *, by: str | None, admin: bool = False,
                  max_drivers: int | None = None) -> bool:
    """Start the study's driver unless it runs or the study has ended; True if one was started. Only the study's
    owner (``by``) or an administrator starts one: someone else opening an interrupted study only looks at it.
    Raises LimitError when ``max_drivers`` (default: ``ARCHS_MAX_STUDY_DRIVERS``) other studies are driven."""
    record = store.studies.get(study_id)
    if record.get("stored_status", record["status"]) != "running":
        return False
    if not admin and (not by or by != record["owner"]):
        return False
    deadline = time.monotonic() + 10
    while driver_running(store, study_id):
        # a killed driver's main thread reads as dead while its other threads still hold its files for a moment
        if record["status"] == "running" or time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    from archs.training.executors.local import _pythonpath

    try:  # its own log, readable by the server's user only, deleted with the study
        log = os.fdopen(_open_private(_log_path(store, study_id), "driver log"), "ab")
    except UnsafeFile as error:
        raise RunError(str(error)) from None
    try:
        cap = max_study_drivers() if max_drivers is None else max_drivers
        driven = store.studies.claim_start(study_id, cap)  # being started: it reads as running, not interrupted
        if driven is not None:
            raise LimitError(drivers_full_message(driven, cap), "ARCHS_MAX_STUDY_DRIVERS")
        subprocess.Popen([sys.executable, "-c", "import sys; from archs.studies.driver import drive; "
                          "sys.exit(drive(sys.argv[1], sys.argv[2]))", str(store.root.resolve()), study_id],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, cwd=os.getcwd(),
                         env={**os.environ, "PYTHONPATH": _pythonpath()})
    finally:
        log.close()
    return True


def delete_study(store: RunStore, study_id: str, owner: str | None, admin: bool = False) -> list[str]:
    """Delete a study that is not running: its record, trials and runs (:meth:`StudyRecords.delete`), its Optuna
    study in ``optuna.db``, its driver's lock file and log. Returns the runs' ids."""
    run_ids = store.studies.delete(study_id, owner, admin=admin)
    if (store.root / "optuna.db").exists():
        import optuna  # heavy: only where a search may have left records

        storage = optuna.storages.RDBStorage(optuna_url(store), engine_kwargs={"connect_args": {"timeout": 30}})
        try:
            optuna.delete_study(study_name=study_id, storage=storage)
        except KeyError:  # a sweep or a claim: Optuna never saw it
            pass
    for path in (_lock_path(store, study_id), _log_path(store, study_id)):
        path.unlink(missing_ok=True)
    return run_ids


def drive(root: str | os.PathLike, study_id: str) -> int:
    """The driver process's body: drive the study until it ends (0), or return at once: 0 if another drives it, 1 if
    its lock file is a link or a file not its own (its log says so)."""
    store = RunStore(root)
    try:
        handle = os.fdopen(_open_private(_lock_path(store, study_id), "lock file"), "a")
    except OSError as error:  # its log (stderr) says why; the study reads as interrupted until the file is removed
        print(f"study driver: {error}", file=sys.stderr)
        return 1
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0
    try:
        StudyDriver(store, study_id).run()
    except SpecError as error:  # its definition cannot run (stored before it was checked as now): it ends here,
        fail(store, study_id, error)  # rather than failing again each time it is opened
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
    return 0


def _spread(values: list) -> dict | None:
    """``mean``, ``sd`` (sample standard deviation; 0.0 for one value) and ``n`` of an objective over seeds; None
    when a value is missing or not a number."""
    if not values or any(v is None or not isinstance(v, (int, float)) or math.isnan(v) for v in values):
        return None
    n, mean = len(values), sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "sd": sd, "n": n}


def infeasible_message(infeasible: int, budget: int, asked: int) -> str:
    return (f"the search ended after {infeasible} infeasible draws ({INFEASIBLE_DRAWS_PER_TRIAL} x its budget of "
            f"{budget} trials) with {asked} feasible: the ranges give networks that cannot be built or are over a "
            "limit; narrow them")


# ------------------------------------------------------------------------------------------ driving
class StudyDriver:
    """Drives one study; everything it knows is re-read from the store, so it can start again at any point."""

    def __init__(self, store: RunStore, study_id: str, executor=None):
        from archs.training.executors import get_executor

        self.store, self.study_id = store, study_id
        record = store.studies.get(study_id)
        self.record = record
        self.owner, self.owner_name = record["owner"], record["owner_name"]
        self.definition = StudyDefinition.from_dict(record["definition"])
        self.executor = executor or get_executor(record["executor"], store.root)
        self.parallel = self.definition.parallel or self.executor.limits.max_concurrent
        self.optuna_study = self._optuna() if self.definition.kind == "search" else None
        self.reported: dict[int, set[int]] = {}
        self.waiting_on_queue = False  # the last step found the queue full
        self.costs: dict[str, tuple[int, int]] = {}

    # ----- Optuna
    def _optuna(self):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = optuna.storages.RDBStorage(optuna_url(self.store), engine_kwargs={"connect_args": {"timeout": 30}})
        directions = ["maximize" if OBJECTIVES[o].direction == "max" else "minimize"
                      for o in self.definition.objectives]
        return optuna.create_study(storage=storage, study_name=self.study_id, directions=directions,
                                   sampler=self._sampler(len(directions)), pruner=self._pruner(len(directions)),
                                   load_if_exists=True)

    def _sampler(self, n_objectives: int, asked: int = 0):
        """The study's sampler (TPE and NSGA-II read each trial's constraint, see :meth:`_tell`), seeded by
        the study and the number of trials asked so far: any process that asks the next trial (the one that stores
        the study, a driver, a driver started again) draws afresh, and none repeats an earlier trial's draw, while a
        study's draws stay reproducible."""
        import optuna

        name, seed = self.definition.sampler, sampler_seed(self.study_id, asked)
        if name == "auto":
            # one objective: TPE. Several: multi-objective TPE, by measurement (bench_study.py): on ZDT1 at 12, 24
            # and 48 trials its median hypervolume (10 seeds) was 10.17, 10.46, 11.05 against NSGA-II's 8.58, 9.47,
            # 10.09 and random sampling's 9.05, 9.50, 10.00: at the few trials a study affords, NSGA-II's generations
            # barely start
            name = "tpe"
        if name == "nsga2":
            population = max(4, min(50, self.definition.trials // 3))
            return optuna.samplers.NSGAIISampler(population_size=population, seed=seed)
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, min(10, self.definition.trials // 3)))

    def _pruner(self, n_objectives: int):
        import optuna

        if self.definition.pruner == "none" or n_objectives > 1:
            return optuna.pruners.NopPruner()
        # no pruning in a run's first quarter (its early evaluations say little), where its steps are known
        steps = (self.definition.train or {}).get("max_steps")
        warmup = steps // 4 if isinstance(steps, int) and not isinstance(steps, bool) and steps > 0 else 0
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=warmup)

    def _ask(self) -> dict:
        """A new trial from Optuna (recorded before anything is submitted, so a restart finds it): one of our
        trials per seed (``seeds``: the base settings' seed, +1, ...), all under the one Optuna trial, which is
        told their mean. Returns the first; ``group`` holds them all."""
        spec, train, _ = self.definition.base()
        asked = len(self.optuna_study.get_trials(deepcopy=False))
        self.optuna_study.sampler = self._sampler(len(self.definition.objectives), asked)
        trial = self.optuna_study.ask()
        params = {d.path: d.suggest(trial, d.path) for d in self.definition.domains(spec, train)}
        seeds = [train.seed + i for i in range(self.definition.seeds)]  # a search samples networks, not seeds
        rows = [{"params": {**params, "train.seed": seed}, "optuna_number": trial.number} for seed in seeds]
        numbers = self.store.studies.add_trials(self.study_id, rows)
        group = [{"number": n, "params": row["params"], "optuna_number": trial.number, "status": "pending"}
                 for n, row in zip(numbers, rows)]
        return {**group[0], "group": group}

    def _drawn(self, trials: list[dict]) -> tuple[int, int]:
        """(draws that count against the trial budget, infeasible draws): an Optuna trial all of whose runs are
        infeasible (over a limit, values that make no network) does not use the budget."""
        groups: dict[int, list[str]] = {}
        for t in trials:
            if t.get("optuna_number") is not None:
                groups.setdefault(t["optuna_number"], []).append(t["status"])
        infeasible = sum(all(s == "infeasible" for s in g) for g in groups.values())
        return len(groups) - infeasible, infeasible

    def _max_infeasible(self) -> int:
        return INFEASIBLE_DRAWS_PER_TRIAL * self.definition.trials

    def _tell(self, trial: dict) -> None:
        """Tell Optuna a trial's end once every seed's run of it has ended (the store holds each one's status):
        completed, the mean of each objective over the seeds, whose spread (``mean``, ``sd``, ``n``) is stored
        with each of the group's trials (``objectives["over_seeds"]``) and the Optuna trial's user attributes;
        all infeasible, a constraint violation (the objectives' worst values and the constraint ``infeasible``
        1.0; 0.0 on every other trial), so the sampler learns where the space cannot be built; a pruned seed,
        pruned; anything else, failed. The constraint is set with ``Trial.set_constraint``, Optuna 5's way:
        the samplers' ``constraints_func`` it replaces is deprecated there (a FutureWarning)."""
        if self.optuna_study is None or trial.get("optuna_number") is None:
            return
        import optuna

        group = [t for t in self.store.studies.trials(self.study_id)
                 if t.get("optuna_number") == trial["optuna_number"]]
        if not group or any(t["status"] not in TRIAL_FINAL for t in group):
            return
        statuses = {t["status"] for t in group}
        trial_id = self._trial_id(trial["optuna_number"])
        if self.optuna_study._storage.get_trial(trial_id).state.is_finished():
            return
        objectives = self.definition.objectives
        handle = optuna.trial.Trial(self.optuna_study, trial_id)
        if statuses == {"infeasible"}:
            worst = [0.0 if OBJECTIVES[o].direction == "max" else math.inf for o in objectives]
            handle.set_user_attr("infeasible", group[0]["error"] or "infeasible")
            handle.set_constraint("infeasible", 1.0)
            self.optuna_study.tell(trial["optuna_number"], worst, skip_if_finished=True)
            return
        handle.set_constraint("infeasible", 0.0)
        state, values_list = optuna.trial.TrialState.FAIL, None
        if statuses <= {"completed", "repeated"}:
            told = {"accuracy": "val_accuracy"} if self.definition.selection_metric == "val_accuracy" else {}
            spread = {o: _spread([t["objectives"].get(told.get(o, o)) for t in group]) for o in objectives}
            if all(s is not None for s in spread.values()):
                state, values_list = optuna.trial.TrialState.COMPLETE, [spread[o]["mean"] for o in objectives]
                for t in group:
                    self.store.studies.update_trial(self.study_id, t["number"],
                                                    objectives={**t["objectives"], "over_seeds": spread})
                handle.set_user_attr("over_seeds", spread)
        elif "pruned" in statuses:
            state = optuna.trial.TrialState.PRUNED
        self.optuna_study.tell(trial["optuna_number"], values_list, state=state, skip_if_finished=True)

    # ----- one pass
    def run(self, poll: float = DRIVER_POLL_SECONDS) -> str:
        me = process_identity()
        if not self.store.studies.claim_driver(self.study_id, me):
            return "running"
        try:
            delay = poll
            while True:
                status = self.step()
                if status is not None:
                    return status
                # waiting on a full queue: look again less and less often (it is read, never written, meanwhile)
                delay = min(QUEUE_BACKOFF_SECONDS, delay * 2) if self.waiting_on_queue else poll
                time.sleep(delay)
        except Exception as error:  # noqa: BLE001 - a bug or a broken store: the study says why, resumable
            self.store.studies.update(self.study_id, error=f"the driver stopped: {type(error).__name__}: {error}")
            raise

    def step(self) -> str | None:
        """One pass: follow the runs in flight, start new trials, finish the study. Returns its final status."""
        trials = self.store.studies.trials(self.study_id)
        stopping = self.store.studies.stop_requested(self.study_id)
        in_flight = [t for t in trials if t["status"] in ("queued", "running")]
        for trial in in_flight:
            self._follow(trial, stopping)
        trials = self.store.studies.trials(self.study_id)
        in_flight = [t for t in trials if t["status"] in ("queued", "running")]
        pending = [t for t in trials if t["status"] == "pending"]
        if stopping:
            for trial in pending:
                self.store.studies.update_trial(self.study_id, trial["number"], status="stopped",
                                                error="the study was stopped")
                self._tell(trial)
            if not in_flight:
                return self._finish("stopped")
            return None
        # one more than run at once waits in the queue, so a slot never idles while the driver notices a run ended
        slots = self.parallel + 1 - len(in_flight)
        self.waiting_on_queue = False
        slots = self._start_some(pending, slots)
        search, rejected = self.definition.kind == "search", 0
        while not self.waiting_on_queue and slots > 0 and search and rejected < INFEASIBLE_DRAWS_PER_STEP:
            asked, infeasible = self._drawn(self.store.studies.trials(self.study_id))
            if asked >= self.definition.trials or infeasible >= self._max_infeasible():
                break
            if self._queue_full():  # no trial asked for a queue with no room: it would only wait
                self.waiting_on_queue = True
                break
            slots = self._start_some(self._ask()["group"], slots)  # seeds beyond the slots wait, pending
            rejected += self._drawn(self.store.studies.trials(self.study_id))[1] - infeasible
        trials = self.store.studies.trials(self.study_id)
        if not all(t["status"] in TRIAL_FINAL for t in trials):
            return None
        if not search:
            return self._finish("completed")
        asked, infeasible = self._drawn(trials)
        if asked >= self.definition.trials:
            return self._finish("completed")
        if infeasible >= self._max_infeasible():
            self.store.studies.update(self.study_id, error=infeasible_message(infeasible, self.definition.trials,
                                                                              asked))
            return self._finish("completed" if asked else "failed")
        return None

    def _start_some(self, trials: list[dict], slots: int) -> int:
        """Start ``trials`` in order while ``slots`` last; the slots left. A full queue stops it and sets
        :attr:`waiting_on_queue`; the trials not started stay pending for the next pass."""
        for trial in trials:
            if slots <= 0:
                break
            started = self._start(trial)
            if started is None:
                self.waiting_on_queue = True
                break
            slots -= started
        return slots

    def _start(self, trial: dict) -> int | None:
        """Submit a pending trial's run: 1 if it started, 0 if it is infeasible or a repeat (answered from its twin,
        or waiting for it), None if the queue is full."""
        twin = self._twin(trial) if self.definition.kind == "search" else None
        if twin is not None:
            if twin["status"] in ("pending", "queued", "running"):
                return 0  # its twin's result will answer it: no second run of the same values
            if twin["status"] in ("completed", "pruned", "infeasible"):
                return self._answer(trial, twin)
        if self._queue_full():
            return None
        try:
            request = trial_request(self.definition, trial["params"], study_id=self.study_id, owner=self.owner,
                                    owner_name=self.owner_name)
            run_id = self.executor.submit(request)
        except LimitError as error:
            if error.limit in QUEUE_LIMITS:
                return None
            return self._infeasible(trial, str(error))
        except (SpecError, ValueError) as error:  # StudyError, ConfigError, DataError: the values or the data
            return self._infeasible(trial, str(error))
        self.store.studies.update_trial(self.study_id, trial["number"], status="queued", run_id=run_id)
        params, mult_adds = self._costs(request.spec)  # after the submit: a slot does not wait for torchinfo
        self.store.studies.update_trial(self.study_id, trial["number"],
                                        objectives={"params": params, "mult_adds": mult_adds})
        return 1

    def _twin(self, trial: dict) -> dict | None:
        """The first earlier trial of a search that tried exactly these values (the sampler may draw a configuration
        again, above all among a list's choices), or None."""
        for other in self.store.studies.trials(self.study_id):
            if other["number"] >= trial["number"]:
                return None
            if other["params"] == trial["params"] and other["status"] != "repeated":
                return other
        return None

    def _answer(self, trial: dict, twin: dict) -> int:
        """Answer a repeated configuration from its twin's stored result, not trained again: Optuna is told the
        twin's values (a completed twin) or its end (pruned, infeasible); the trial reads ``repeated``."""
        status = "repeated" if twin["status"] == "completed" else twin["status"]
        self.store.studies.update_trial(self.study_id, trial["number"], status=status, objectives=twin["objectives"],
                                        error=f"the values of trial {twin['number']}: answered from its result, "
                                              "not run again")
        self._tell(trial)
        return 0

    def _queue_full(self) -> bool:
        """Whether the queue has no room for one more of the owner's runs, read without the store's write lock
        (a submit would take it only to be refused; a driver waits on a full queue for as long as it stays full)."""
        limits = self.executor.limits
        if not limits.max_queued and not limits.max_queued_per_owner:
            return False
        everyone, mine = self.store.studies.queued(self.owner)
        return bool((limits.max_queued and everyone >= limits.max_queued)
                    or (limits.max_queued_per_owner and mine >= limits.max_queued_per_owner))

    def _infeasible(self, trial: dict, message: str) -> int:
        self.store.studies.update_trial(self.study_id, trial["number"], status="infeasible", error=message)
        self._tell(trial)
        return 0

    def _costs(self, spec) -> tuple[int, int]:
        key = spec.to_json()
        if key not in self.costs:
            from archs.inspect import summarize

            self.costs[key] = (spec.num_params(), summarize(spec).mult_adds)
        return self.costs[key]

    def _follow(self, trial: dict, stopping: bool) -> None:
        try:
            run = self.store.get(trial["run_id"])
            status = run.status()
        except RunError:
            self.store.studies.update_trial(self.study_id, trial["number"], status="failed",
                                            error="its run was deleted")
            self._tell(trial)
            return
        state = status["status"]
        if state in ("queued", "running"):
            if state != trial["status"]:
                self.store.studies.update_trial(self.study_id, trial["number"], status=state)
            if stopping:
                self.executor.stop(run.id, self.owner, admin=True)
            elif state == "running" and self._should_prune(trial, run):
                self.executor.stop(run.id, self.owner, admin=True)
                self.store.studies.update_trial(self.study_id, trial["number"], error="pruned")
            return
        result = status.get("result") or {}
        objectives = dict(trial["objectives"])
        if self.definition.run_kind == "gradients":  # a measurement at initialisation: its figures
            objectives.update({k: result.get(k) for k in ("ratio", "first", "last_conv", "loss")})
        else:
            steps, batch = result.get("steps"), (run.settings().get("train") or {}).get("batch_size")
            objectives.update(accuracy=result.get("test_accuracy"), val_accuracy=result.get("val_accuracy"),
                              train_seconds=result.get("seconds"),
                              train_flops=train_flops(objectives["mult_adds"], steps * batch)
                              if steps and batch and objectives.get("mult_adds") else None)
        final = "pruned" if trial["error"] == "pruned" else RUN_TO_TRIAL.get(state, "failed")
        self._report(trial, run)  # evaluations made since the last poll, before Optuna hears the final state
        self.store.studies.update_trial(self.study_id, trial["number"], status=final, objectives=objectives,
                                        error=None if final in ("completed", "pruned") else status.get("error")
                                        or status.get("message") or state)
        self._tell(trial)
        if final == "completed" and self.optuna_study is not None:
            self._store_importances()

    def _should_prune(self, trial: dict, run) -> bool:
        """Report the run's new evaluations to Optuna; True when its pruner says stop (one objective only)."""
        handle = self._report(trial, run)
        return handle is not None and self.definition.pruner != "none" and handle.should_prune()

    def _report(self, trial: dict, run):
        """Report each of the run's evaluations Optuna has not seen yet as an intermediate value (a search of
        accuracy alone: Optuna takes intermediate values for one objective only); the Optuna trial's handle if
        any was new, else None. Called while the run goes on and once more when it has ended, before the final
        state is told, so a run that ends between two polls still reports every evaluation it made."""
        if (self.optuna_study is None or trial.get("optuna_number") is None or len(self.definition.objectives) > 1
                or self.definition.objectives[0] != "accuracy" or self.definition.seeds > 1):
            # several seeds share one Optuna trial, whose intermediate values are one curve: not pruned
            return None
        import optuna

        trial_id = self._trial_id(trial["optuna_number"])
        if trial["number"] not in self.reported:  # a driver that starts again learns what an earlier one reported
            frozen = self.optuna_study._storage.get_trial(trial_id)
            if frozen.state.is_finished():  # told before that driver stopped: nothing more to report
                return None
            self.reported[trial["number"]] = set(frozen.intermediate_values)
        seen = self.reported[trial["number"]]
        metric = self.definition.selection_metric  # a search's validation accuracy, never the test set's
        fresh = [r for r in run.metrics("eval") + run.metrics("epoch")
                 if r.get(metric) is not None and r["step"] not in seen]
        if not fresh:
            return None
        handle = optuna.trial.Trial(self.optuna_study, trial_id)
        for record in sorted(fresh, key=lambda r: r["step"]):
            if record["step"] in seen:  # an eval and an epoch record at the same step: the first one counts
                continue
            handle.report(float(record[metric]), int(record["step"]))
            seen.add(record["step"])
        return handle

    def _trial_id(self, number: int) -> int:
        return self.optuna_study._storage.get_trial_id_from_study_id_trial_number(self.optuna_study._study_id,
                                                                                  number)

    def _store_importances(self) -> None:
        """Optuna's parameter importances (fANOVA) for the first objective, computed here once per newly completed
        trial and stored in the study's summary (``importances``: ``finished``, ``objective``, ``values``), so a
        page shows them without computing them for each viewer at each refresh. Too few trials: nothing stored."""
        import optuna

        complete = [t for t in self.optuna_study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
                    if "infeasible" not in t.user_attrs]  # a constraint violation's values are placeholders
        if len(complete) < 2:
            return
        target = (lambda t: t.values[0]) if len(self.definition.objectives) > 1 else None
        try:
            feasible = optuna.create_study(directions=self.optuna_study.directions)  # in memory: these trials only
            feasible.add_trials(complete)
            values = optuna.importance.get_param_importances(feasible, target=target)
        except Exception:  # noqa: BLE001 - a view, never a reason for the driver to stop: the page says none yet
            return
        summary = self.store.studies.get(self.study_id)["summary"] or {}
        summary["importances"] = {"finished": len(complete), "objective": self.definition.objectives[0],
                                  "values": {name: float(v) for name, v in values.items() if math.isfinite(v)}}
        self.store.studies.update(self.study_id, summary=summary)

    def _finish(self, status: str) -> str:
        view = study_view(self.store, self.study_id)
        summary = {"pareto": view["pareto"], "trials": len(view["trials"]),
                   "completed": sum(t["status"] == "completed" for t in view["trials"])}
        stored = view["summary"] or {}
        if "importances" in stored:
            summary["importances"] = stored["importances"]
        if self.definition.kind == "claim":
            from archs.studies.families import judge

            summary["verdict"] = judge(self.definition.claim, claim_results(view["trials"], self.store))
        self.store.studies.update(self.study_id, status=status, summary=summary, finished_at=time.time())
        return status


# ------------------------------------------------------------------------------------------ reading
def claim_results(trials: list[dict], store: RunStore | None = None) -> list[dict]:
    """A claim's trials (as :func:`study_view` gives them) as :func:`archs.studies.families.judge` takes them:
    the completed ones and those that failed or diverged (no accuracy: the verdict counts them at chance). With
    the ``store``, each also carries its run's budget (``steps``, ``batch_size``, ``train_size`` from its start
    record, ``data``) and ``converged`` (:func:`archs.studies.families.converged` on its train-loss records): one
    read of each run's few records."""
    from archs.studies.families import converged

    rows = []
    for t in trials:
        if t["status"] not in ("completed", "failed", "diverged"):
            continue
        row = {"family": t.get("family"), "size": t.get("size"), "seed": t["seed"],
               "test_accuracy": t["test_accuracy"] if t["status"] == "completed" else None,
               "params": t["params"], "mult_adds": t["mult_adds"], "train_seconds": t["train_seconds"],
               "status": t["status"]}
        if store is not None and t.get("run_id"):
            try:
                run = store.get(t["run_id"])
                start = (run.metrics("start") or [{}])[-1]
                losses = [(r.get("step"), r.get("loss")) for r in run.metrics("step")]
                row.update(steps=start.get("total_steps"), batch_size=start.get("batch_size"),
                           train_size=start.get("train_size"),
                           data=(run.settings().get("data") or {}).get("name"),
                           converged=converged(losses, start.get("total_steps")))
            except RunError:  # deleted since: judged on what the trial kept
                pass
        rows.append(row)
    return rows


def study_view(store: RunStore, study_id: str) -> dict:
    """The study as ``python -m archs study show --json`` prints it: ``study_id``, ``status``, ``trials`` (each
    with ``run_id``, ``status``, ``seed``, ``test_accuracy``, ``params`` (the network's parameters),
    ``mult_adds``, ``train_flops``, ``train_seconds``, ``over_seeds`` (a search's: each objective's ``mean``,
    ``sd`` and ``n`` over the seeds of its configuration, once they have all ended, else None), and each varied
    value under its path, e.g.
    ``"stages[*].blocks": 2``; a claim's trials name their ``family`` and ``size``) and ``pareto`` (the run ids
    on the front for the study's objectives)."""
    record = store.studies.get(study_id)
    definition = record["definition"]
    objectives = definition.get("objectives") or ["accuracy", "params"]
    trials = []
    for t in store.studies.trials(study_id):
        o = t["objectives"]
        varied = {k: v for k, v in t["params"].items() if k != "train.seed"}
        trials.append({**varied, "number": t["number"], "run_id": t["run_id"], "status": t["status"],
                       "seed": t["params"].get("train.seed"), "error": t["error"], "test_accuracy": o.get("accuracy"),
                       "val_accuracy": o.get("val_accuracy"),
                       "params": o.get("params"), "mult_adds": o.get("mult_adds"),
                       "train_flops": o.get("train_flops"), "train_seconds": o.get("train_seconds"),
                       "over_seeds": o.get("over_seeds")})
    points = [{"id": t["run_id"], "accuracy": t["test_accuracy"], "params": t["params"], "mult_adds": t["mult_adds"],
               "train_flops": t["train_flops"], "train_seconds": t["train_seconds"]}
              for t in trials if t["status"] == "completed"]
    front = pareto_front(points, objectives, id_key="id")
    planned = (definition.get("trials") or 0) * (definition.get("seeds") or 1) if record["kind"] == "search" \
        else len(trials)
    selected_on = selection_metric(record["kind"])
    return {"study_id": study_id, "name": record["name"], "kind": record["kind"], "status": record["status"],
            "selected_on": "validation" if selected_on == "val_accuracy" else "test",
            "val_split": ((definition.get("data") or {}).get("val_split") or SEARCH_VAL_SPLIT)
            if selected_on == "val_accuracy" else None,
            "owner": record["owner"], "objectives": objectives, "planned": planned or len(trials),
            "varied": [v["path"] for v in definition.get("vary", [])],
            "trials": trials, "pareto": front, "summary": record["summary"], "error": record["error"]}


def dumps_view(view: dict) -> str:
    return json.dumps(view, allow_nan=False, default=str)
