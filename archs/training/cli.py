"""``python -m archs train`` (one run) and ``python -m archs runs`` (the run store).

``train`` builds one :class:`~archs.training.request.RunRequest` and carries it out: here in this
process (the default; ``--save`` also records it in the run store), or through an executor
(``--executor local|ray``: queued like a run started from the dashboard; the command waits for it and
prints the same result, plus ``run_id``). Run it under ``torchrun --nproc-per-node N -m archs train ...``
to train one run on N processes (:mod:`archs.training.distributed`); rank 0 records and prints.

Bad input (an unknown preset, a broken spec file, a missing data set, a setting out of range, a
server limit) prints one line on stderr and exits with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import getpass
import json
import os
import sys

from archs.fields import spec_fields
from archs.training.config import DEFAULT_DATA, DEFAULT_PRESET, DataConfig, TrainConfig
from archs.training.executors import EXECUTORS, get_executor
from archs.training.executors.local import LocalExecutor
from archs.training.limits import LimitError, Limits
from archs.training.recipes import RECIPES, apply_recipe
from archs.training.request import MemoryRecorder, RunRequest, execute_request
from archs.training.speedrun import SPEEDRUNS, run_speedrun
from archs.training.store import RunError, RunStore, process_identity
from archs.training.stored import RunRecorder, metrics_csv_of

STATUS_EXIT = {"completed": 0, "stopped": 1, "diverged": 3, "failed": 4, "interrupted": 4}


def add_train_options(parser, data_default: str | None = DEFAULT_DATA) -> None:
    """The data and training-setting flags of ``train`` (``study`` takes the same ones)."""
    from archs.training.data import DATASETS  # heavy: torch (`archs runs` builds no train parser)

    parser.add_argument("--data", default=data_default,
                        help=f"{'|'.join(DATASETS)} or an image folder (default {data_default})")
    parser.add_argument("--data-root", default=None,
                        help="folder holding torchvision data sets (default $ARCHS_DATA_DIR or ./data)")
    parser.add_argument("--download", action="store_true", help="download a missing torchvision data set")
    parser.add_argument("--train-limit", type=int, default=None, help="train on a fixed random subset of N images")
    parser.add_argument("--test-limit", type=int, default=None, help="test on a fixed random subset of N images")
    parser.add_argument("--val-split", type=float, default=0.0,
                        help="hold out this fraction of the training images (stratified, seed 0) as a validation set, "
                             "evaluated beside the test set (a search uses 0.1 where this is 0)")
    parser.add_argument("--recipe", choices=tuple(RECIPES), default=None,
                        help="; ".join(f"{r.name}: {r.description}" for r in RECIPES.values()).replace("%", "%%"))
    settings = parser.add_argument_group("training settings (default: the recipe's, else TrainConfig's)")
    for info in spec_fields(TrainConfig):
        flag = "--" + info.name.replace("_", "-")
        if info.kind == "bool":
            settings.add_argument(flag, type=_yes_no, default=None, metavar="yes|no",
                                  help=f"{info.help} (default {'yes' if info.default else 'no'})".replace("%", "%%"))
        else:
            kind = {"int": int, "float": float}.get(info.kind, str)
            settings.add_argument(flag, type=kind, default=None, choices=info.choices,
                                  help=f"{info.help} (default {info.default})".replace("%", "%%"))


def add_parsers(subparsers) -> None:
    """Add ``train``, ``speedrun`` and ``runs`` to an ``argparse`` sub-parsers object."""
    parser = subparsers.add_parser(
        "train", help="train a network briefly and report its accuracy",
        description="Train a preset or a spec file on a data set and report loss, accuracy and speed. Every "
                    "setting of TrainConfig is a flag; --recipe fills several at once and flags given override it.")
    parser.add_argument("spec", nargs="?", default=DEFAULT_PRESET,
                        help=f"preset name or spec JSON file (default {DEFAULT_PRESET})")
    add_train_options(parser)
    parser.add_argument("--save", action="store_true",
                        help="record the run in the run store ($ARCHS_RUNS_DIR or ./runs), trained in this process")
    parser.add_argument("--executor", choices=tuple(EXECUTORS), default=None,
                        help="hand the run to an executor (recorded in the run store) and wait for it")
    parser.add_argument("--owner", default=None, help="who owns the run (default cli:<your user name>)")
    parser.add_argument("--runs-dir", default=None, help="the run store (default $ARCHS_RUNS_DIR or ./runs)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.set_defaults(run=train_main)

    speed = subparsers.add_parser("speedrun", help="train the project's fastest network and recipe for a data set "
                                                   "to its target accuracy",
                                  description="Train the network and recipe the project holds fastest for MNIST or "
                                              "Fashion-MNIST until the test accuracy reaches the target, and report "
                                              "the seconds it took.")
    speed.add_argument("data", choices=tuple(SPEEDRUNS))
    speed.add_argument("--data-root", default=None, help="folder holding the data set in torchvision's layout "
                                                         "(default $ARCHS_DATA_DIR or ./data)")
    speed.add_argument("--download", action="store_true", help="download a missing data set")
    speed.add_argument("--seed", type=int, default=0)
    speed.add_argument("--json", action="store_true", help="print one JSON object")
    speed.set_defaults(run=speedrun_main)

    add_runs_parser(subparsers)


def add_runs_parser(subparsers) -> None:
    """``runs``: light on purpose (no torch), so listing the store is quick."""
    runs = subparsers.add_parser("runs", help="list the run store (and stop or delete a run, or read its log)",
                                 description="List the runs in the run store, newest first. Stopping and deleting a "
                                             "run, and reading its log, is for its owner (you are cli:<user name> "
                                             "unless --owner says otherwise) or, with --admin, an administrator.")
    runs.add_argument("--runs-dir", default=None, help="the run store (default $ARCHS_RUNS_DIR or ./runs)")
    runs.add_argument("--json", action="store_true", help="print one JSON object")
    runs.add_argument("--stop", metavar="RUN_ID", help="ask a queued or running run to stop")
    runs.add_argument("--delete", metavar="RUN_ID", help="delete a finished run (a live one is stopped first)")
    runs.add_argument("--csv", metavar="RUN_ID", help="print a run's step, epoch and evaluation records as CSV")
    runs.add_argument("--logs", metavar="RUN_ID", help="print the last 200 lines of a run's worker output and warnings")
    runs.add_argument("--pin", metavar="RUN_ID", help="pin a run (administrators): ARCHS_MAX_RUNS_KEPT never prunes it")
    runs.add_argument("--unpin", metavar="RUN_ID", help="unpin a run (administrators)")
    runs.add_argument("--owner", default=None, help="act as this owner (default cli:<your user name>)")
    runs.add_argument("--admin", action="store_true", help="act as an administrator: stop or delete anyone's run")
    runs.set_defaults(run=runs_main)


def cli_owner(args: argparse.Namespace) -> str:
    """``--owner``, else ``cli:<OS user>``: every run has an owner, the command line's too."""
    if getattr(args, "owner", None):
        return args.owner
    try:
        return "cli:" + getpass.getuser()
    except (KeyError, OSError):
        return f"cli:uid{os.getuid()}"


def _yes_no(text: str) -> bool:
    if text.lower() in ("yes", "true", "on", "1"):
        return True
    if text.lower() in ("no", "false", "off", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected yes or no, got {text!r}")


def train_config(args: argparse.Namespace, keep_records: bool) -> TrainConfig:
    """TrainConfig's defaults, then the recipe's settings, then every flag given. Gradient norms are
    recorded only where the records are kept, unless asked for."""
    config = apply_recipe(args.recipe) if args.recipe else TrainConfig()
    given = {info.name: getattr(args, info.name) for info in spec_fields(TrainConfig)
             if getattr(args, info.name, None) is not None}
    if "grad_every" not in given and not keep_records:
        given["grad_every"] = 0
    return dataclasses.replace(config, **given)


def data_config(args: argparse.Namespace, default: str = DEFAULT_DATA):
    return DataConfig(name=args.data or default, root=args.data_root, download=args.download,
                      train_limit=args.train_limit, test_limit=args.test_limit,
                      val_split=getattr(args, "val_split", 0.0))


def build_request(args: argparse.Namespace):
    from archs.presets import load_spec  # heavy (torch): `archs runs` must not import it

    spec = load_spec(args.spec)
    config = train_config(args, keep_records=args.save or args.executor is not None)
    data = data_config(args)
    owner = cli_owner(args)
    return RunRequest(spec, config, data, recipe=args.recipe, owner=owner, owner_name=owner)


def train_main(args: argparse.Namespace) -> int:
    from archs.training.data import DataError, check_data  # heavy: torch

    try:
        request = build_request(args)
        if args.executor is None:  # the device must exist here; an executor's workers may have others
            from archs.training.device import resolve_device  # heavy: torch

            resolve_device(request.train.device)
        check_data(request.data)
        if args.executor is not None:
            from archs.training.distributed import launched_by_torchrun  # heavy: torch

            if launched_by_torchrun():
                raise ValueError("--executor: under torchrun each process trains its share here; drop --executor")
            status, run_id = _through_executor(request, args)
        else:
            status, run_id = _in_this_process(request, args)
    except (DataError, LimitError, ValueError) as error:  # SpecError and ConfigError are ValueErrors
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not _main_rank():  # under torchrun, rank 0 speaks for the run
        return STATUS_EXIT.get(status["status"], 4 if "result" not in status else 1)
    if status["status"] == "failed" or "result" not in status:
        print(f"error: {status.get('error') or 'the run failed'}", file=sys.stderr)
        return STATUS_EXIT.get(status["status"], 4)
    result = {"network": request.spec.name, "data": request.data.name, **status["result"]}
    if run_id is not None:
        result["run_id"] = run_id
    if args.json:
        print(json.dumps(result))
    else:
        acc = result.get("test_accuracy")
        print(f"{result['status']}: {request.spec.name} on {request.data.name}, {result['steps']} steps on "
              f"{result['device']}, train loss {_fmt(result.get('train_loss'))}, test accuracy "
              f"{'-' if acc is None else f'{100 * acc:.2f} %'}, {result['images_per_second']:.0f} images/s"
              + (f" (run {run_id})" if run_id else ""))
    return STATUS_EXIT.get(result["status"], 1)


def _in_this_process(request, args) -> tuple[dict, str | None]:
    progress = None if args.json or not _main_rank() else _print_progress
    if args.save and _main_rank():
        # the operator's own run: recorded like any other (the server's limits do not apply to the command line),
        # stoppable from the Runs page by its owner or an administrator through the store's stop flag
        run = RunStore(args.runs_dir).create(request, executor="cli", status="running", worker=process_identity())
        return execute_request(request, RunRecorder(run), should_stop=run.stop_request, on_metric=progress,
                               worker=process_identity()), run.id
    # no stop event: Ctrl-C interrupts the process, and an event would add stop hooks to every block
    return execute_request(request, MemoryRecorder(), on_metric=progress, worker=process_identity()), None


def _main_rank() -> bool:
    """False in the processes other than rank 0 of a ``torchrun`` run."""
    return int(os.environ.get("RANK", "0")) == 0


def _through_executor(request, args) -> tuple[dict, str]:
    executor = get_executor(args.executor, args.runs_dir)
    run_id = executor.submit(request)
    run = executor.store.get(run_id)
    if not args.json:
        print(f"run {run_id} handed to the {executor.name} executor", flush=True)
    seen = 0
    try:
        while not executor.wait(run_id, timeout=0.5):
            seen = _echo_new(run, seen, args)
    except KeyboardInterrupt:
        executor.stop(run_id, owner=request.owner)
        executor.wait(run_id, timeout=30)
    _echo_new(run, seen, args)
    return run.status(), run_id


def _echo_new(run, seen: int, args) -> int:
    records = run.metrics()
    if not args.json:
        for record in records[seen:]:
            _print_progress(record)
    return len(records)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def _print_progress(record: dict) -> None:
    if record.get("kind") == "epoch":
        print(f"epoch {record['epoch']}: loss {record['loss']:.4f}, train acc {100 * record['train_accuracy']:.1f} %, "
              f"test acc {100 * record['test_accuracy']:.2f} %, {record['images_per_second']:.0f} images/s",
              flush=True)


def runs_main(args: argparse.Namespace) -> int:
    store = RunStore(args.runs_dir)
    try:
        if args.csv:
            print(metrics_csv_of(store.get(args.csv)), end="")
            return 0
        if args.pin or args.unpin:
            admin = args.admin or Limits(admins=Limits.admins_from_env()).is_admin(cli_owner(args))
            store.pin(args.pin or args.unpin, pinned=bool(args.pin), admin=admin)
            print("pinned" if args.pin else "unpinned", args.pin or args.unpin)
            return 0
        if args.stop or args.delete or args.logs:
            # the store's stop flag reaches whoever runs the run (a local worker, the server relaying a Ray task), and
            # every built-in backend writes a run's log into its folder; no supervisor is started here, and nothing of
            # this process's environment is written anywhere
            executor = LocalExecutor(store, Limits(admins=Limits.admins_from_env()), resume=False)
            owner = cli_owner(args)
            if args.logs:
                print(executor.logs(args.logs, owner, admin=args.admin) or f"run {args.logs} has no log (yet)")
            if args.stop:
                print("stopping" if executor.stop(args.stop, owner, admin=args.admin) else "not active", args.stop)
            if args.delete:
                executor.delete(args.delete, owner, admin=args.admin)
                print("deleted", args.delete)
            return 0
        rows = store.list_runs()
    except RunError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"runs_dir": str(store.root), "queue": store.queued(), "runs": rows}))
        return 0
    if not rows:
        print(f"no runs in {store.root}")
        return 0
    print(f"{'id':<48} {'status':<11} {'step':>11} {'test acc':>8} {'images/s':>9}  {'started':<16} label")
    for row in rows:
        step = "" if row["step"] is None else f"{row['step']}/{row['total_steps'] or '?'}"
        if row["status"] == "queued" and row.get("queue_position"):
            step = f"#{row['queue_position']} in queue"
        acc = "" if row["test_accuracy"] is None else f"{100 * row['test_accuracy']:.2f}%"
        ips = "" if row["images_per_second"] is None else f"{row['images_per_second']:.0f}"
        started = row["started_at"] or row["created"]
        when = dt.datetime.fromtimestamp(started).strftime("%Y-%m-%d %H:%M") if started else ""
        print(f"{row['id']:<48} {row['status']:<11} {step:>11} {acc:>8} {ips:>9}  {when:<16} {row['label']}")
    return 0


def speedrun_main(args: argparse.Namespace) -> int:
    from archs.training.data import DataError  # heavy: torch

    try:
        figures = run_speedrun(args.data, args.data_root, seed=args.seed, download=args.download,
                               on_metric=None if args.json else _print_speedrun_progress)
    except (DataError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"{args.data}: {100 * figures['test_accuracy']:.2f} % test accuracy (target "
              f"{100 * figures['target']:.1f} %) in {figures['seconds']:.1f} s, {figures['steps']} steps "
              f"({figures['epochs']:.2f} epochs) of {figures['preset']} with the {figures['recipe']} recipe "
              f"({figures['runtime']}); reading the data took {figures['load_seconds']:.1f} s more")
    return 0 if figures["reached"] else 1


def _print_speedrun_progress(record: dict) -> None:
    if record.get("kind") in ("eval", "epoch"):
        print(f"step {record['step']}: test accuracy {100 * record['test_accuracy']:.2f} % after "
              f"{record['elapsed']:.1f} s", flush=True)
