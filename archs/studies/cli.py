"""``python -m archs study``: sweeps, searches and the seed articles' claims, from the command line.

::

    python -m archs study sweep SPEC --vary FIELD=V1,V2[,...] [--vary ...] [--seeds N] [train options] [--json]
    python -m archs study search SPEC --vary FIELD[=LOW:HIGH[:log|:linear|:STEP]] [--vary ...] --trials N
                                      [--objectives accuracy,params] [--seeds N]
    python -m archs study claim residual|dense|inception [--data NAME] [--seeds N] [--steps N | --budgets B] [--json]
    python -m archs study ladder residual|dense|inception [--json]
    python -m archs study show STUDY_ID [--json]
    python -m archs study list [--json]
    python -m archs study stop STUDY_ID
    python -m archs study delete STUDY_ID

``sweep``, ``search`` and ``claim`` store the study, start its driver (a process of its own) and wait for the
study to end, printing each trial as it ends (``--detach``: print the id and return; Ctrl-C stops the study).
``--json`` prints one object: ``study_id``, ``status``, ``trials`` and ``pareto``. ``claim --budgets 50,150,450x2``
starts one claim study per budget (``x2``: two seeds at that one), a budget ladder; ``ladder`` lays out a claim's
completed studies by budget: each one's verdict and gaps, and how the verdict moves with training. Train options
are ``archs train``'s. A bad field, value or setting prints one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

STATUS_EXIT = {"completed": 0, "stopped": 1, "failed": 4, "interrupted": 4}


def add_parser(subparsers) -> None:
    from archs.studies.definition import PRUNERS, SAMPLERS
    from archs.studies.families import CLAIMS
    from archs.studies.pareto import OBJECTIVES
    from archs.training.cli import add_train_options
    from archs.training.executors import EXECUTORS

    study = subparsers.add_parser("study", help="sweeps, searches and the seed articles' claims",
                                  description=__doc__.split("\n\n")[0])
    sub = study.add_subparsers(dest="study_command", required=True)

    def common(p, train: bool = True) -> None:
        if train:
            add_train_options(p)
            p.add_argument("--seeds", type=int, default=1, help="runs per setting, with seeds 0..N-1 (default 1); a "
                           "search is told each configuration's mean over them and shows the spread")
            p.add_argument("--parallel", type=int, default=None,
                           help="trials at once (default: the executor's concurrency, ARCHS_MAX_CONCURRENT_RUNS)")
            p.add_argument("--name", default=None, help="a name for the study")
            p.add_argument("--executor", choices=tuple(EXECUTORS), default=None,
                           help="where its runs execute (default $ARCHS_EXECUTOR, else local)")
            p.add_argument("--detach", action="store_true", help="print the study's id and return at once")
        p.add_argument("--owner", default=None, help="act as this owner (default cli:<your user name>)")
        p.add_argument("--runs-dir", default=None, help="the run store (default $ARCHS_RUNS_DIR or ./runs)")
        p.add_argument("--json", action="store_true", help="print one JSON object")

    sweep = sub.add_parser("sweep", help="a grid of values of one or more fields, times N seeds")
    sweep.add_argument("spec", help="a preset name or a JSON spec file")
    sweep.add_argument("--vary", action="append", required=True, metavar="FIELD=V1,V2",
                       help="a field (stages[2].growth_rate, stages[*].blocks, head.dropout, train.lr, ...) and its "
                            "values; repeat for a grid")
    common(sweep)
    search = sub.add_parser("search", help="an Optuna search over fields, for one or several objectives")
    search.add_argument("spec", help="a preset name or a JSON spec file")
    search.add_argument("--vary", action="append", required=True, metavar="FIELD[=LOW:HIGH[:SCALE]]",
                        help="a field and its range (default: the field's own range), its scale :log, :linear or a "
                             "step (train.lr=1e-4:1e-1:log, stages[*].channels=8:64:8), or FIELD=V1,V2 for a choice")
    search.add_argument("--objectives", default="accuracy", help=f"comma-separated, among {', '.join(OBJECTIVES)} "
                                                                 "(accuracy is maximised, the rest minimised)")
    search.add_argument("--trials", type=int, required=True, help="how many trials")
    search.add_argument("--sampler", choices=SAMPLERS, default="auto",
                        help="auto: TPE (multi-objective TPE for several objectives)")
    search.add_argument("--pruner", choices=PRUNERS, default="median",
                        help="stop hopeless trials early (one objective only)")
    common(search)
    claim = sub.add_parser("claim", help="one of the seed articles' claims, each net with N seeds on a fixed budget")
    claim.add_argument("claim", choices=tuple(CLAIMS))
    claim.add_argument("--data", default=None, help="the data set (default fashion-mnist)")
    claim.add_argument("--data-root", default=None, help="folder holding torchvision data sets")
    claim.add_argument("--seeds", type=int, default=3, help="seeds per network (default 3)")
    steps = claim.add_mutually_exclusive_group()
    steps.add_argument("--steps", type=int, default=None, help="training steps of every run (default: the claim's)")
    steps.add_argument("--budgets", default=None, metavar="STEPS[xSEEDS],...",
                       help="a budget ladder: one study per number of steps (50,150,450x2: 2 seeds at 450)")
    claim.add_argument("--test-limit", type=int, default=None, help="test on a fixed subset of N images")
    claim.add_argument("--executor", choices=tuple(EXECUTORS), default=None)
    claim.add_argument("--detach", action="store_true", help="print the study's id and return at once")
    claim.add_argument("--parallel", type=int, default=None)
    common(claim, train=False)
    lad = sub.add_parser("ladder", help="a claim's completed studies by budget: verdicts and gaps against steps")
    lad.add_argument("claim", choices=tuple(CLAIMS))
    common(lad, train=False)
    show = sub.add_parser("show", help="a study's trials and Pareto front (an interrupted study of yours carries on)")
    show.add_argument("study_id")
    show.add_argument("--admin", action="store_true", help="act as an administrator (carry on anyone's study)")
    common(show, train=False)
    listing = sub.add_parser("list", help="the stored studies, newest first")
    common(listing, train=False)
    stop = sub.add_parser("stop", help="stop a study (its runs in flight stop too)")
    stop.add_argument("study_id")
    stop.add_argument("--admin", action="store_true", help="act as an administrator")
    common(stop, train=False)
    delete = sub.add_parser("delete", help="delete a study that has ended: its trials, runs, Optuna records and logs")
    delete.add_argument("study_id")
    delete.add_argument("--admin", action="store_true", help="act as an administrator")
    common(delete, train=False)
    study.set_defaults(run=main)


def _definition(args):
    from archs.studies.definition import StudyDefinition
    from archs.training.cli import data_config, train_config

    if args.study_command == "claim":
        from archs.studies.families import CLAIMS

        claim = CLAIMS[args.claim]
        budget = claim.budget
        data = budget.data_config(args.data_root)
        if args.data or args.test_limit:
            data = type(data)(name=args.data or data.name, root=args.data_root, test_limit=args.test_limit)
        extra = {"steps": args.steps} if args.steps else {}
        return StudyDefinition(kind="claim", name=args.name if getattr(args, "name", None) else f"{claim.name} claim",
                               data=data.to_dict(), seeds=args.seeds, claim=claim.name, parallel=args.parallel,
                               objectives=("accuracy", claim.objective_x), **extra)
    from archs.presets import load_spec  # heavy (torch): `archs study list` must not import it
    from archs.studies.space import parse_vary

    spec = load_spec(args.spec)
    vary = []
    for text in args.vary:
        v = parse_vary(text, spec)
        vary.append(v.to_dict())  # a range keeps its scale (log, linear) or step
    train = train_config(args, keep_records=True)
    objectives = tuple(o.strip() for o in getattr(args, "objectives", "accuracy,params").split(",") if o.strip())
    return StudyDefinition(kind=args.study_command, name=args.name or f"{args.study_command} of {spec.name}",
                           spec=spec.to_dict(), train=train.to_dict(), data=data_config(args).to_dict(), vary=vary,
                           seeds=args.seeds, objectives=objectives, trials=getattr(args, "trials", 0) or 0,
                           parallel=args.parallel, sampler=getattr(args, "sampler", "auto"),
                           pruner=getattr(args, "pruner", "median"))


def main(args: argparse.Namespace) -> int:
    from archs.fields import SpecError
    from archs.training.cli import cli_owner
    from archs.training.data import DataError, check_data
    from archs.training.limits import LimitError
    from archs.training.store import RunError, RunStore

    try:
        if args.study_command in ("show", "list", "stop", "delete", "ladder"):
            store = RunStore(args.runs_dir)
            if args.study_command == "list":
                return _list(store, args)
            if args.study_command == "ladder":
                return _ladder(store, args)
            if args.study_command == "stop":
                store.studies.request_stop(args.study_id, cli_owner(args), admin=args.admin)
                print("stopping", args.study_id)
                return 0
            if args.study_command == "delete":
                from archs.studies.driver import delete_study

                runs = delete_study(store, args.study_id, cli_owner(args), admin=args.admin)
                print(f"deleted {args.study_id} and its {len(runs)} run{'s' if len(runs) != 1 else ''}")
                return 0
            from archs.studies.driver import ensure_driver, study_view

            try:  # opened again by its owner (or an administrator): an interrupted study carries on
                ensure_driver(store, args.study_id, by=cli_owner(args), admin=args.admin)
            except LimitError as error:
                print(f"note: {error}", file=sys.stderr)
            return _show(study_view(store, args.study_id), args)
        definitions = _definitions(args)
        from archs.studies.driver import start_study
        from archs.training.executors import get_executor

        check_data(definitions[0].base()[2])  # the data is there before anything is stored
        executor = get_executor(args.executor, args.runs_dir)
        owner = cli_owner(args)
        study_ids = []
        for definition in definitions:  # a ladder's rungs: each its own study (over a limit: those started run on)
            try:
                study_ids.append(start_study(executor, definition, owner=owner, owner_name=owner))
            except LimitError as error:
                if not study_ids:
                    raise
                print(f"error: {len(study_ids)} of {len(definitions)} budgets started ({', '.join(study_ids)}); "
                      f"the rest: {error}", file=sys.stderr)
                return 2
    except (SpecError, DataError, LimitError, RunError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.detach:
        print(json.dumps({"study_ids": study_ids} if len(study_ids) > 1 else {"study_id": study_ids[0]})
              if args.json else "\n".join(study_ids))
        return 0
    # Ctrl-C stops the study waited on and every later budget of the ladder
    codes = [_wait(executor.store, study_id, args, owner, also=study_ids[n + 1:])
             for n, study_id in enumerate(study_ids)]
    if len(study_ids) > 1 and not args.json:
        _ladder(executor.store, args)
    return max(codes)


def _definitions(args) -> list:
    """The study (or a ladder's studies, one per budget) the command line asks for."""
    if args.study_command == "claim" and getattr(args, "budgets", None):
        from archs.studies.ladder import parse_budgets, rung_definitions

        one = _definition(args)
        return rung_definitions(one.claim, parse_budgets(args.budgets), seeds=args.seeds, data=one.data,
                                parallel=args.parallel, objectives=one.objectives)
    return [_definition(args)]


def _ladder(store, args) -> int:
    """``study ladder CLAIM``: every ladder of the claim among the store's completed studies (one per data set
    and setting), each as its statement, or one JSON object ``{"ladders": [...]}``."""
    from archs.studies.ladder import claim_ladders, ladder

    ladders = [ladder(rungs) for key, rungs in claim_ladders(store.studies.list()).items() if key[0] == args.claim]
    if args.json:
        print(json.dumps({"ladders": ladders}, default=str))
        return 0
    if not ladders:
        print(f"no completed {args.claim} claim study in {store.root}")
    for lad in ladders:
        print(lad["statement"])
        for row in lad["rungs"]:
            gaps = " · ".join(f"{name} {100 * g['difference']:+.1f} pts" if g["difference"] is not None else
                              f"{name} -" for name, g in row["gaps"].items())
            print(f"  {row['steps']:>7,} steps · {row['seeds']} seeds · {row['verdict']:<13} · {gaps} · "
                  f"{row['study_id']}")
    return 0


def _wait(store, study_id: str, args, owner: str, also: list[str] | tuple = ()) -> int:
    from archs.studies.driver import study_view

    if not args.json:
        print(f"study {study_id} started; its driver hands the trials to the executor", flush=True)
    printed: set[int] = set()
    try:
        while True:
            view = study_view(store, study_id)
            if not args.json:
                for trial in view["trials"]:
                    if trial["number"] not in printed and trial["status"] not in ("pending", "queued", "running"):
                        printed.add(trial["number"])
                        print(_trial_line(trial, view["varied"]), flush=True)
            if view["status"] != "running":
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        for stopping in (study_id, *also):
            store.studies.request_stop(stopping, owner)
        print("stopping the study" + (f" and the ladder's {len(also)} later budgets" if also else ""), file=sys.stderr)
        while study_view(store, study_id)["status"] == "running":
            time.sleep(0.5)
        view = study_view(store, study_id)
    _show(view, args, trials=False)
    return STATUS_EXIT.get(view["status"], 4)


def _trial_line(trial: dict, varied: list[str]) -> str:
    values = " ".join(f"{k}={trial[k]}" for k in (varied or ["family", "size"]) if k in trial)
    acc = trial["test_accuracy"]
    acc_text = "-" if acc is None else f"{100 * acc:.2f} %"
    tail = f" ({trial['error']})" if trial["error"] and trial["status"] != "completed" else ""
    spread = ((trial.get("over_seeds") or {}).get("accuracy") or {})
    seeds = (f" · mean over {spread['n']} seeds {100 * spread['mean']:.2f} ± {100 * spread['sd']:.2f} % (SD)"
             if spread.get("n", 1) > 1 else "")
    return (f"trial {trial['number']}: {trial['status']}{tail} · {values} · seed {trial['seed']} · test accuracy "
            f"{acc_text} · {trial['params'] or '-':,} params{seeds}" if trial["params"] else
            f"trial {trial['number']}: {trial['status']}{tail} · {values} · seed {trial['seed']}")


def seed_table(view: dict) -> list[str]:
    """A search with several seeds: one line per configuration, each objective's mean ± SD over its seeds and n."""
    rows, seen = [], set()
    for trial in view["trials"]:
        spread = trial.get("over_seeds") or {}
        key = tuple(str(trial.get(k)) for k in view["varied"])
        if not spread or key in seen or max(s["n"] for s in spread.values()) < 2:
            continue
        seen.add(key)
        values = " ".join(f"{k}={trial[k]}" for k in view["varied"] if k in trial)
        # a search's accuracy here is what its sampler was told: the validation split's
        parts = [f"{'validation ' if o == 'accuracy' and view.get('selected_on') == 'validation' else ''}{o} "
                 f"{_pm(o, s)}" for o, s in spread.items()]
        rows.append(f"  {values} · {' · '.join(parts)} · n={next(iter(spread.values()))['n']}")
    return ["Over seeds (mean ± SD):", *rows] if rows else []


def _pm(objective: str, spread: dict) -> str:
    if objective == "accuracy":
        return f"{100 * spread['mean']:.2f} ± {100 * spread['sd']:.2f} %"
    return f"{spread['mean']:,.4g} ± {spread['sd']:,.3g}"


def _show(view: dict, args, trials: bool = True) -> int:
    if args.json:
        print(json.dumps({k: view[k] for k in ("study_id", "name", "kind", "status", "objectives", "trials", "pareto",
                                               "summary", "error")}, default=str))
        return 0
    print(f"{view['study_id']} · {view['name']} · {view['kind']} · {view['status']}")
    if trials:
        for trial in view["trials"]:
            print(_trial_line(trial, view["varied"]))
    for line in seed_table(view):
        print(line)
    print(f"Pareto front ({', '.join(view['objectives'])}): {', '.join(view['pareto']) or 'none yet'}")
    if view.get("error"):
        print(f"note: {view['error']}")
    verdict = (view.get("summary") or {}).get("verdict")
    if verdict:
        from archs.studies.families import verdict_text

        print(verdict_text(verdict))
    return 0


def _list(store, args) -> int:
    rows = store.studies.list()
    if args.json:
        print(json.dumps({"studies": [{k: r[k] for k in ("id", "name", "kind", "status", "owner", "created")}
                                      for r in rows]}))
        return 0
    if not rows:
        print(f"no studies in {store.root}")
    for r in rows:
        print(f"{r['id']:<56} {r['kind']:<7} {r['status']:<11} {r['name']}")
    return 0
