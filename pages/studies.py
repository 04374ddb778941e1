"""Studies: architecture questions asked once and answered with a chart.

A study is a set of runs with one purpose (a sweep, an Optuna search, a claim of the seed articles), driven by a
process of its own through the executor; everything here is read back from the run store, so it survives reloads
and server restarts (an interrupted study carries on when it is opened again). The chart puts each setting's test
accuracy against a cost, one colour per network family, with the seeds' spread and the Pareto front; selecting a
point opens its network on the Build page, two points open Compare.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

import archs
from archs import SpecError
from archs.studies.curves import cost_ratio_at, learning_curves, log_linear_fits
from archs.studies.definition import StudyDefinition
from archs.studies.driver import delete_study, ensure_driver, optuna_url, start_study, study_view
from archs.studies.families import CLAIMS, verdict_text
from archs.studies.ladder import claim_ladders, ladder, ladder_key, parse_budgets, rung_definitions
from archs.studies.results import AXES, recorded_mult_adds, setting_points, stored_run_points, study_runs
from archs.studies.space import parse_vary
from archs.training.config import ConfigError, DataConfig, TrainConfig
from archs.training.data import DATASETS, DataError, check_data
from archs.training.limits import LimitError
from archs.training.store import RunError
from archs.training.stored import spec_of
from ui import compute, draft, fmt, identity, runs, settings, study_charts

AXIS_NAMES = {"params": "Parameters", "mult_adds": "Mult-adds", "train_flops": "Training FLOPs",
              "train_seconds": "Training seconds"}
STUDY_STATUS_SECONDS = 5.0

settings.init()
st.title("Studies")
executor = runs.executor()
store = executor.store
me = identity.current()
spec = draft.spec()
st.caption("Each study's runs go through the executor like any run (" + runs.limits_caption(executor).rstrip(".")
           + "), driven by a process of its own, never this page: close it, the study goes on.")


# ------------------------------------------------------------------------------------------ starting one
def paths_for(net) -> list[str]:
    """The fields a study can vary on this network: every stage's numeric and choice fields (one stage, or every
    stage that has it), the width multiplier (every stage's channels at once, the pyramid kept), the head's, and
    the main training settings."""
    out = []
    seen: dict[str, int] = {}
    for index, stage in enumerate(net.stages):
        for info in archs.spec_fields(type(stage)):
            if info.kind in ("int", "float", "bool", "choice") and info.name != "type_name":
                out.append(f"stages[{index}].{info.name}")
                seen[info.name] = seen.get(info.name, 0) + 1
    wildcards = [f"stages[*].{name}" for name, n in seen.items() if n > 1]
    head = [f"head.{i.name}" for i in archs.spec_fields(archs.HeadSpec) if i.kind in ("int", "float", "bool")]
    train = ["train.lr", "train.batch_size", "train.recipe", "train.weight_decay", "train.optimizer", "train.epochs"]
    return wildcards + ["width"] + out + head + train


def start(definition: StudyDefinition) -> bool:
    try:
        check_data(definition.base()[2])
        study_id = start_study(executor, definition, owner=me.owner, owner_name=me.name)
    except (SpecError, ConfigError, DataError, LimitError, RunError) as error:
        st.error(f"No study started: {fmt.plain(error)}", icon=":material/error:")
        return False
    st.session_state["studies_pick"] = study_id
    return True


def start_ladder(claim: str, budgets: str, seeds: int, data: dict) -> None:
    """One claim study per budget of ``budgets`` (``50,150,450x2``); a bad list or a limit reached is said, and
    the studies already started run on."""
    try:
        definitions = rung_definitions(claim, parse_budgets(budgets), seeds=seeds, data=data)
    except SpecError as error:
        st.error(f"No study started: {fmt.plain(error)}", icon=":material/error:")
        return
    for n, definition in enumerate(definitions):
        if not start(definition):
            if n:
                st.warning(f"{n} of {len(definitions)} budgets started; the rest did not (above).",
                           icon=":material/warning:")
            return
    st.rerun()


with st.expander("Start a study", icon=":material/science:", expanded=not store.studies.list(limit=1)):
    if not me.may_act:
        st.info(identity.LOG_IN_TO_ACT, icon=":material/login:")
    claim_tab, sweep_tab, search_tab = st.tabs(["A claim of the seed articles", "Sweep", "Search (Optuna)"])
    with claim_tab:
        cols = st.columns([2, 2, 1, 1], vertical_alignment="bottom")
        name = cols[0].selectbox("Claim", list(CLAIMS), key="study_claim",
                                 format_func=lambda n: f"{n}: {CLAIMS[n].question}")
        claim = CLAIMS[name]
        data_name = cols[1].selectbox("Data", list(DATASETS), key="study_claim_data",
                                      index=list(DATASETS).index(claim.budget.data))
        seeds = cols[2].number_input("Seeds", 1, 10, 3, key="study_claim_seeds")
        steps = cols[3].number_input("Steps per run", 10, 100_000, claim.budget.steps, key="study_claim_steps")
        budgets = st.text_input("Budget ladder (optional)", key="study_claim_budgets", max_chars=200,
                                placeholder="e.g. 50,150,450x2",
                                help="Steps per run, comma-separated: one study per budget, each judged on its own, "
                                     "laid out together (450x2: 2 seeds at 450 steps). Empty: one study at the "
                                     "steps above.")
        st.caption(f"{len(claim.nets)} networks ({', '.join(n.label for n in claim.nets)}) × {seeds} seeds, "
                   f"{steps} steps each on one budget (or one study per budget of the ladder). {claim.rule}")
        if st.button("Run the claim", key="study_claim_start", type="primary", icon=":material/play_arrow:",
                     disabled=not me.may_act, help=None if me.may_act else identity.LOG_IN_TO_ACT):
            if budgets.strip():
                start_ladder(name, budgets, int(seeds), DataConfig(name=data_name).to_dict())
            else:
                start(StudyDefinition(kind="claim", claim=name, name=f"{name} claim on {data_name}",
                                      seeds=int(seeds), steps=int(steps), data=DataConfig(name=data_name).to_dict(),
                                      objectives=("accuracy", claim.objective_x)))

    def vary_rows(prefix: str, search: bool) -> list[str]:
        options = ["", *paths_for(spec)]
        rows = []
        for n in range(3):
            cols = st.columns([2, 3])
            path = cols[0].selectbox(f"Field {n + 1}", options, key=f"{prefix}_path{n}",
                                     format_func=lambda p: p or "(none)")
            text = cols[1].text_input("Range LOW:HIGH, or values V1,V2" if search else "Values V1,V2,…",
                                      key=f"{prefix}_values{n}", disabled=not path, max_chars=2000,
                                      placeholder="empty: the field's own range" if search else "e.g. 8,12,16",
                                      help="A range may say its scale: 1e-4:1e-1:log (log-uniform), 0.1:0.9:linear, "
                                           "8:64:8 (steps of 8)." if search else None)
            if path:
                rows.append(f"{path}={text.strip()}" if text.strip() else path)
        return rows

    def budget_row(prefix: str) -> tuple[TrainConfig, DataConfig, int]:
        cols = st.columns(4)
        data_name = cols[0].selectbox("Data", list(DATASETS), key=f"{prefix}_data")
        steps = cols[1].number_input("Steps per run", 1, 100_000, 200, key=f"{prefix}_steps")
        batch = cols[2].number_input("Batch size", 1, 4096, 64, key=f"{prefix}_batch")
        seeds = cols[3].number_input("Seeds", 1, 10, 1, key=f"{prefix}_seeds")
        return (TrainConfig(epochs=1000, max_steps=int(steps), batch_size=int(batch)), DataConfig(name=data_name),
                int(seeds))

    def vary_items(texts: list[str]) -> list[dict]:
        items = []
        for text in texts:
            v = parse_vary(text, spec)
            items.append(v.to_dict())  # a range keeps its scale (log, linear) or step
        return items

    with sweep_tab:
        st.caption(f"Every combination of the values below on **{fmt.plain(spec.name, 60)}** (the Build page's "
                   "network), each with every seed.")
        texts = vary_rows("sweep", search=False)
        train, data, seeds = budget_row("sweep")
        if st.button("Run the sweep", key="study_sweep_start", type="primary", icon=":material/play_arrow:",
                     disabled=not me.may_act, help=None if me.may_act else identity.LOG_IN_TO_ACT):
            try:
                start(StudyDefinition(kind="sweep", name=f"sweep of {spec.name}", spec=spec.to_dict(),
                                      train=train.to_dict(), data=data.to_dict(), vary=tuple(vary_items(texts)),
                                      seeds=seeds))
            except SpecError as error:
                st.error(f"No study started: {fmt.plain(error)}", icon=":material/error:")
    with search_tab:
        st.caption(f"Optuna samples **{fmt.plain(spec.name, 60)}**'s fields within the ranges below: TPE for one "
                   "objective, multi-objective TPE for several; the median pruner stops hopeless trials (one "
                   "objective, one seed). With Seeds above 1 each configuration runs once per seed and Optuna is "
                   "told their mean; the table shows the spread (SD, n).")
        texts = vary_rows("search", search=True)
        cols = st.columns([3, 1])
        objectives = cols[0].multiselect("Objectives", ["accuracy", *AXES], ["accuracy", "params"],
                                         key="search_objectives", help="Accuracy is maximised, the others minimised.")
        n_trials = cols[1].number_input("Trials", 1, 200, 12, key="search_trials")
        train, data, seeds = budget_row("search")
        if st.button("Run the search", key="study_search_start", type="primary", icon=":material/play_arrow:",
                     disabled=not me.may_act, help=None if me.may_act else identity.LOG_IN_TO_ACT):
            try:
                start(StudyDefinition(kind="search", name=f"search of {spec.name}", spec=spec.to_dict(),
                                      train=train.to_dict(), data=data.to_dict(), vary=tuple(vary_items(texts)),
                                      objectives=tuple(objectives), trials=int(n_trials), seeds=seeds))
            except SpecError as error:
                st.error(f"No study started: {fmt.plain(error)}", icon=":material/error:")


# ------------------------------------------------------------------------------------------ one study
def open_selection(points: list[dict], selection, key: str) -> None:
    """Buttons (and links) for the chart's selected points: one opens its network on the Build page, two open
    Compare on their runs."""
    picked = []
    for item in (selection or {}).get("selection", {}).get("points", []):
        run_id = item.get("customdata")
        if isinstance(run_id, str) and run_id not in picked:
            picked.append(run_id)
    if not picked:
        st.caption("Select a point (click it) to open its network on the Build page; select two (shift-click, or a "
                   "box) to compare them.")
        return
    if len(picked) == 1:
        run_spec = spec_of(store.get(picked[0]))
        cols = st.columns([1, 3], vertical_alignment="center")
        if cols[0].button("Open on the Build page", key=f"{key}_build", icon=":material/construction:"):
            draft.load(run_spec)
            st.switch_page("pages/build.py")
        cols[1].markdown(f"[Link to this network](/?spec={archs.encode_spec(run_spec)}) · run `{picked[0]}`")
        return
    a, b = picked[:2]
    cols = st.columns([1, 3], vertical_alignment="center")
    if cols[0].button("Compare the two", key=f"{key}_compare", icon=":material/compare_arrows:"):
        settings.assign({"compare_a": f"run:{a}", "compare_b": f"run:{b}"})
        st.switch_page("pages/compare.py")
    cols[1].markdown(f"[Link to this comparison](/compare?a=run:{a}&b=run:{b})")


def trial_table(view: dict) -> pd.DataFrame:
    varied = view["varied"] or ["family", "size"]
    rows = view["trials"]
    table = {"#": [t["number"] for t in rows], "status": [t["status"] for t in rows]}
    for path in varied:
        table[path] = [str(t.get(path, "")) for t in rows]
    table["seed"] = [t["seed"] for t in rows]
    if view.get("selected_on") == "validation":  # what the search was told and pruned on; the test set only reported
        table["validation accuracy"] = [t.get("val_accuracy") for t in rows]
    table.update({"test accuracy": [t["test_accuracy"] for t in rows],
                  "parameters": [t["params"] for t in rows], "mult-adds": [t["mult_adds"] for t in rows],
                  "training FLOPs": [t["train_flops"] for t in rows], "seconds": [t["train_seconds"] for t in rows],
                  "run": [t["run_id"] or "" for t in rows], "why": [t["error"] or "" for t in rows]})
    spreads = [((t.get("over_seeds") or {}).get("accuracy") or {}) for t in rows]
    if any(s.get("n", 1) > 1 for s in spreads):  # a search with seeds: its configuration's mean over them
        words = "validation" if view.get("selected_on") == "validation" else "test"
        table.update({f"mean {words} accuracy (seeds)": [s.get("mean") for s in spreads],
                      "SD (seeds)": [s.get("sd") for s in spreads], "n (seeds)": [s.get("n") for s in spreads]})
    return pd.DataFrame(table)


@st.cache_data(max_entries=32, show_spinner=False)
def optuna_parallel(root: str, study_id: str, objectives: tuple[str, ...], finished: int):
    """Optuna's parallel coordinates of a search: (figure, None), or (None, why not). Made once per new finished
    trial (``finished`` is part of the cache's key) for every viewer, not by each viewer at each refresh."""
    import optuna  # heavy: only for a search

    try:
        study = optuna.load_study(study_name=study_id, storage=optuna_url(store))
        target = (lambda t: t.values[0]) if len(objectives) > 1 else None
        figure = optuna.visualization.plot_parallel_coordinate(study, target=target, target_name=objectives[0])
        return study_charts.escaped(figure), None       # a list's values (names) reach it: Plotly draws HTML
    except Exception as error:  # noqa: BLE001 - too few trials, a study Optuna has not seen yet
        return None, fmt.plain(error, 160)


def optuna_views(view: dict) -> None:
    finished = sum(t["status"] not in ("pending", "queued", "running") for t in view["trials"])
    figure, why = optuna_parallel(str(store.root), view["study_id"], tuple(view["objectives"]), finished)
    importances = (view.get("summary") or {}).get("importances")  # its driver's, once per completed trial
    cols = st.columns(2)
    if figure is not None:
        cols[0].plotly_chart(figure, key="study_parallel")
    else:
        cols[0].caption(f"Optuna's parallel coordinates appear with finished trials ({why}).")
    if importances and importances.get("values"):
        cols[1].plotly_chart(study_charts.importance_bars(importances["values"], importances["objective"]),
                             key="study_importance")
        cols[1].caption(f"fANOVA over {importances['finished']} completed trials.")
    else:
        cols[1].caption("Parameter importances appear with two completed trials.")


@st.cache_data(max_entries=16, show_spinner=False)
def study_learning_curves(root: str, study_id: str, runs_of: tuple[tuple[str, tuple[str, ...]], ...]) -> list[dict]:
    """The learning curves of a study's compared networks: per label, its runs' step records as the store picks
    them for a chart (a few hundred each, :meth:`~archs.training.store.Run.chart_metrics`). Read once per set of
    finished runs for every viewer (the runs are part of the key)."""
    series = {}
    for label, run_ids in runs_of:
        series[label] = []
        for run_id in run_ids:
            try:
                series[label].append(store.get(run_id).chart_metrics(("step",)))
            except RunError:
                continue  # deleted meanwhile
    return learning_curves(series)


BASELINES = ("residual", "plain")  # what a family's fitted line is read against, first present first


def fit_caption(fits: dict, x: str) -> str:
    """What the dashed lines are, and the cost ratio each family's line gives against a baseline's."""
    words = AXIS_NAMES[x].lower()
    text = (f"Dashed: each family's least-squares line of mean test accuracy against log {words} over its "
            "settings (three at least), shaded: its 95 % confidence band (Student's t, n − 2 degrees of freedom).")
    readings = []
    for family, fit in fits.items():
        base = next((b for b in BASELINES if b in fits and b != family), None)
        if base is None or family in BASELINES and BASELINES.index(family) < BASELINES.index(base):
            continue
        ratio = cost_ratio_at(fit, fits[base])
        if ratio is not None:
            readings.append(f"at {ratio[0]:.1%} accuracy, {fmt.plain(family)} needs {ratio[1]:.2g}× the {words} "
                            f"of {fmt.plain(base)}")
    if readings:
        text += (" Read off the lines: " + "; ".join(readings) + ". A reading of fitted lines at this budget, not "
                 "a test; the verdict above is what decides.")
    return text


def learning_curve_views(view: dict) -> None:
    """A claim's compared networks' training loss against step, overlaid (mean over seeds, their range shaded)."""
    if not st.toggle("Learning curves of the compared networks", key=f"study_curves_{view['study_id']}",
                     help="Training loss against step for each network, the mean over its seeds as a line and the "
                          "range over its seeds shaded: did training go on improving, and alike for each family?"):
        return
    labels: dict[str, list[str]] = {}
    for trial in view["trials"]:
        if trial["status"] in ("completed", "stopped", "failed") and trial.get("run_id"):
            labels.setdefault(f"{trial.get('family')} {trial.get('size')}", []).append(trial["run_id"])
    if not labels:
        st.caption("No finished run yet.")
        return
    curves = study_learning_curves(str(store.root), view["study_id"],
                                   tuple((label, tuple(ids)) for label, ids in labels.items()))
    st.plotly_chart(study_charts.learning_curves(curves), key=f"study_curves_chart_{view['study_id']}")


def delete(study_id: str) -> None:
    """The Delete button's callback: it runs before the page does, so the study picker can move on to another."""
    try:
        delete_study(store, study_id, me.owner, admin=executor.limits.is_admin(me.owner))
    except RunError as error:
        st.session_state["studies_delete_error"] = fmt.plain(error)
        return
    st.session_state["studies_pick"] = ""
    st.session_state["studies_deleted"] = True


def show_study(study_id: str, was_running: bool, revival: str | None = None) -> None:
    if st.session_state.pop("studies_deleted", False):  # the study is gone: the whole page again, not this part
        st.rerun()
    try:
        view = study_view(store, study_id)
    except RunError as error:
        st.info(fmt.plain(error))
        return
    running = view["status"] == "running"
    if running != was_running:
        st.rerun()
    trials = view["trials"]
    done = sum(t["status"] not in ("pending", "queued", "running") for t in trials)
    head = st.columns([5, 1, 1], vertical_alignment="center")
    head[0].subheader(fmt.plain(view["name"], 100), anchor=False)
    mine = me.may_act and (view["owner"] == me.owner or executor.limits.is_admin(me.owner))
    if running and head[1].button("Stop", key="study_stop", icon=":material/stop:", disabled=not mine) and mine:
        store.studies.request_stop(study_id, me.owner, admin=executor.limits.is_admin(me.owner))
        st.toast("Stopping the study…")
    if not running:
        head[2].button("Delete", key="study_delete", icon=":material/delete:", disabled=not mine,
                       help="The study, its trials, its runs, its search's records and its driver's log.",
                       on_click=delete if mine else None, args=(study_id,))
    if "studies_delete_error" in st.session_state:
        st.error(st.session_state.pop("studies_delete_error"))
    total = view["planned"]
    st.progress(min(done / max(total, 1), 1.0), text=f"{view['status']} · {done} of {total} trials ended · "
                                           f"a {view['kind']} by {identity.describe(view['owner'], None)}")
    if view["status"] == "interrupted":
        st.warning(f"Its driver stopped (a server restart?). {revival}" if revival else
                   "Its driver stopped (a server restart?); it carries on when its owner (or an administrator) "
                   "opens it.", icon=":material/restart_alt:")
    if view.get("error") and view["status"] != "interrupted":  # e.g. a search whose draws were all infeasible
        st.warning(fmt.plain(view["error"], 1000), icon=":material/warning:")
    if view.get("selected_on") == "validation":
        st.caption(f"Its sampler and pruner are told each trial's accuracy on a validation split: "
                   f"{view['val_split']:.0%} of the training images of each class held out (the same images for "
                   "every trial), so its test accuracy is reported, never optimised.")
    verdict = (view.get("summary") or {}).get("verdict")
    if verdict:
        st.info(fmt.plain(verdict_text(verdict), 6000), icon=":material/gavel:")
    points = setting_points(study_runs(view, compute.run_spec_or_none), tuple(view["objectives"]))
    settings.declare("studies_x", "sx", "params", settings.one_of(AXES))
    x = st.segmented_control("Accuracy against", list(AXES), key="studies_x", format_func=AXIS_NAMES.get)
    settings.write_url()  # a fragment's rerun does not reach dashboard.py's: the address keeps the axis all the same
    if points and x:
        fits = log_linear_fits(points, x)
        selection = st.plotly_chart(study_charts.accuracy_vs_cost(points, x, fits=fits),
                                    key=f"study_chart_{study_id}", on_select="rerun", selection_mode=("points", "box"))
        if fits:
            st.caption(fit_caption(fits, x))
        open_selection(points, selection, "study_open")
    elif not points:
        st.caption("No finished trial yet.")
    if view["kind"] == "claim":
        learning_curve_views(view)
        ladder_view(view)
    st.dataframe(trial_table(view), hide_index=True, width="stretch", column_config={
        "test accuracy": st.column_config.NumberColumn(format="percent"),
        "mean test accuracy (seeds)": st.column_config.NumberColumn(format="percent"),
        "mean validation accuracy (seeds)": st.column_config.NumberColumn(format="percent"),
        "validation accuracy": st.column_config.NumberColumn(format="percent"),
        "SD (seeds)": st.column_config.NumberColumn(format="percent"),
        "parameters": st.column_config.NumberColumn(format="%d"),
        "seconds": st.column_config.NumberColumn(format="%.1f")})
    if view["kind"] == "search":
        optuna_views(view)


def ladder_view(view: dict) -> None:
    """The claim's budget ladder this study is a rung of (its claim's completed studies on the same data and
    settings, the newest at each number of steps): verdict and gap against budget."""
    key = ladder_key(store.studies.get(view["study_id"])["definition"])
    rungs = claim_ladders(store.studies.list(limit=200)).get(key, [])
    st.markdown("**Budget ladder**")
    if len(rungs) < 2:
        st.caption(f"{'One completed budget' if rungs else 'No completed budget yet'} of this claim on these settings: "
                   "run it at more budgets (the claim tab's Budget ladder, or `study claim NAME --budgets "
                   "50,150,450`) to see whether its verdict appears, strengthens or vanishes with training.")
        return
    lad = ladder(rungs)
    st.plotly_chart(study_charts.budget_ladder(lad), key=f"study_ladder_{view['study_id']}")
    st.caption(fmt.plain(lad["statement"], 6000))


def revive(study_id: str) -> str | None:
    """Opened again by its owner or an administrator, an interrupted study carries on from its stored state (anyone
    else only looks: opening a page never spends someone's quota). What to say when its driver cannot start."""
    admin = me.may_act and executor.limits.is_admin(me.owner)
    try:
        ensure_driver(store, study_id, by=me.owner if me.may_act else None, admin=admin,
                      max_drivers=executor.limits.max_study_drivers)
    except LimitError as error:
        return f"It carries on when a driver is free: {fmt.plain(error)}"
    except RunError as error:  # a lock file or log planted where the driver's go: its owner removes it
        return f"Its driver cannot start: {fmt.plain(error)}"
    return None


studies = store.studies.list(limit=200)
st.subheader("A study", anchor=False)
if not studies:
    st.info("No studies yet: start one above.", icon=":material/science:")
else:
    labels = {r["id"]: f"{r['name']} · {r['kind']} · {r['status']} · {identity.describe(r['owner'], None)} · "
                       f"{r['id']}" for r in studies}
    settings.declare("studies_pick", "study", "", settings.optional(settings.STUDY_ID, "a study id"))
    if st.session_state["studies_pick"] not in labels:
        st.session_state["studies_pick"] = next(iter(labels))
    picked = st.selectbox("Study", list(labels), key="studies_pick", format_func=labels.get)
    revival = revive(picked)
    was_running = {r["id"]: r["status"] for r in studies}[picked] == "running"  # as its label says: a change reruns
    st.fragment(run_every=STUDY_STATUS_SECONDS if was_running else None)(show_study)(picked, was_running, revival)


# ------------------------------------------------------------------------------------------ every run
st.subheader("Every stored run", anchor=False)
st.caption("The newest 500 finished training runs, study or not: runs of one network on one budget are one point.")
settings.declare("studies_all_x", "ax", "params", settings.one_of(AXES))
all_x = st.segmented_control("Accuracy against", list(AXES), key="studies_all_x", format_func=AXIS_NAMES.get)
rows = store.list_runs(kind="train", limit=500)
# no network is built for this chart: hundreds of runs' distinct networks would be built in the web server at one
# opening (seconds each for a large one); parameters come from each spec's plan, mult-adds as the runs recorded them
all_runs = stored_run_points(rows, compute.run_spec_or_none, recorded_mult_adds(rows, store.studies.trials))
all_points = setting_points(all_runs, ("accuracy", all_x or "params"))
if all_points and all_x:
    selection = st.plotly_chart(study_charts.accuracy_vs_cost(all_points, all_x), key="study_all_chart",
                                on_select="rerun", selection_mode=("points", "box"))
    open_selection(all_points, selection, "all_open")
    unrecorded = sum(p["mult_adds"] is None for p in all_points)
    if all_x in ("mult_adds", "train_flops") and unrecorded:
        st.caption(f"Not drawn: {unrecorded} of the {len(all_points)} points, whose runs have no mult-adds recorded. "
                   "Only a study's runs record them (its driver counts them); counting a run's means building its "
                   "network, which this chart does not do. Against parameters every point is drawn; the Build page "
                   "counts one network's mult-adds.")
else:
    st.caption("No finished training run with a test accuracy yet.")
