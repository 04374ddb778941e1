"""A study's results (or any runs') as points for an accuracy-against-cost chart: one point per setting, its seeds'
spread, its family, and the Pareto front. Plain data in, plain data out: the page only draws it.

- :func:`network_family` names what a network is made of, from its stage types' ``family`` (``dense``,
  ``inception``, ``residual``, ``plain``, and whatever a registered stage type declares; a net of several kinds is
  named after the stage of highest ``family_rank``), so every chart colours by the same families;
- :func:`setting_points` groups runs that differ only in their seed into one point: the mean test accuracy, its
  standard deviation over the seeds (the error bar) and the costs;
- :func:`stored_run_points` makes the same points of every stored run, study or not, without building a network:
  parameters from each spec's plan, mult-adds as recorded when the run ran (:func:`recorded_mult_adds`).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping
from typing import Any

from archs.stages import STAGE_TYPES
from archs.studies.pareto import OBJECTIVES, pareto_front, train_flops

__all__ = ["AXES", "FAMILIES", "network_family", "recorded_mult_adds", "setting_points", "stored_run_points",
           "study_runs"]

# every family a registered stage type declares, highest rank first ("dense", "inception", ..., "plain")
FAMILIES = tuple(dict.fromkeys(cls.family for cls in sorted(STAGE_TYPES.values(), key=lambda c: -c.family_rank)))
AXES = ("params", "mult_adds", "train_flops", "train_seconds")  # the costs accuracy is charted against


def network_family(spec) -> str:
    """The family of the network's stage of highest ``family_rank`` (a stage type's class attributes), where a
    stage whose skips are off (``skip=False``: the plain twin) counts as ``plain``: ``dense`` if the network has a
    dense stage, else ``inception`` if it has an Inception stage, ..., else ``residual`` if it has a residual stage
    with skips, else ``plain``."""
    best = max(((stage.family_rank, stage.family) for stage in spec.stages if getattr(stage, "skip", True)),
               default=(0, "plain"))
    return best[1]


def _mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    values = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def setting_points(runs: Iterable[Mapping[str, Any]], objectives: tuple[str, ...] = ("accuracy", "params")
                   ) -> list[dict]:
    """One point per setting. Each run is a mapping with ``run_id``, ``setting`` (what it tried, without the seed:
    any JSON-able value; runs with equal settings are one point), ``label``, ``family``, ``seed``,
    ``test_accuracy`` and the costs (``params``, ``mult_adds``, ``train_flops``, ``train_seconds``).

    Returns points ``{"label", "family", "setting", "run_ids", "seeds", "accuracy", "accuracy_sd", "accuracy_min",
    "accuracy_max", <each cost as its mean>, "pareto"}``, in the order their settings first appear; ``pareto``
    marks the points on the front of ``objectives`` (computed on the means)."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for run in runs:
        groups.setdefault(json.dumps(run.get("setting"), sort_keys=True, default=str), []).append(run)
    points = []
    for key, members in groups.items():
        accuracies = [m.get("test_accuracy") for m in members]
        mean, sd = _mean_sd(accuracies)
        finite = [a for a in accuracies if isinstance(a, (int, float)) and math.isfinite(a)]
        point = {"label": members[0].get("label"), "family": members[0].get("family"), "setting": json.loads(key),
                 "run_ids": [m.get("run_id") for m in members], "seeds": [m.get("seed") for m in members],
                 "accuracy": mean, "accuracy_sd": sd, "accuracy_min": min(finite, default=None),
                 "accuracy_max": max(finite, default=None)}
        for axis in AXES:
            point[axis] = _mean_sd([m.get(axis) for m in members])[0]
        points.append(point)
    front = set(pareto_front(points, [o for o in objectives if o in OBJECTIVES]))
    for n, point in enumerate(points):
        point["pareto"] = n in front
    return points


def stored_run_points(rows: Iterable[Mapping[str, Any]], spec_of,
                      mult_adds_of: Mapping[str, float] | None = None) -> list[dict]:
    """Every stored training run with a test accuracy as a run for :func:`setting_points`: ``rows`` are
    :meth:`RunStore.list_runs` rows and ``spec_of(run_id)`` gives a run's NetSpec (None if unreadable). A run's
    parameters come from its spec's plan (:meth:`NetSpec.num_params`: nothing is built), its mult-adds per image from
    ``mult_adds_of`` (run id -> what was recorded when it ran, :func:`recorded_mult_adds`): a run with none recorded
    has no mult-adds and no training FLOPs, since counting them means building the network, and a page that built
    each of hundreds of runs' networks in the web server would stall it. A run's setting is its network, data set
    and training length: runs of one network on one budget with different seeds are one point."""
    mult_adds_of = mult_adds_of or {}
    out = []
    for row in rows:
        if row.get("test_accuracy") is None or row.get("status") not in ("completed", "stopped"):
            continue
        spec = spec_of(row["id"])
        if spec is None:
            continue
        mult_adds = mult_adds_of.get(row["id"])
        steps, batch, speed = row.get("step"), row.get("batch_size"), row.get("images_per_second")
        images = steps * batch if steps and batch else None
        out.append({"run_id": row["id"], "label": row.get("label"), "family": network_family(spec),
                    "setting": [spec.to_json(), row.get("data"), steps, batch, row.get("lr"), row.get("optimizer")],
                    "seed": None, "test_accuracy": row["test_accuracy"], "params": spec.num_params(),
                    "mult_adds": mult_adds,
                    "train_flops": train_flops(mult_adds, images) if images and mult_adds is not None else None,
                    "train_seconds": images / speed if images and speed else None})
    return out


def recorded_mult_adds(rows: Iterable[Mapping[str, Any]], trials_of) -> dict[str, float]:
    """Mult-adds per image of the runs among ``rows`` that were recorded when they ran, by run id: a study's driver
    counts them in its own process as it submits a trial (its ``mult_adds`` objective). ``trials_of(group)`` is
    :meth:`StudyRecords.trials` (a study's runs have its id as their group). A run outside a study has none: the
    worker records no mult-adds. One read per study among the rows."""
    out: dict[str, float] = {}
    for group in dict.fromkeys(row.get("group") for row in rows if row.get("group")):
        for trial in trials_of(group):
            value = trial["objectives"].get("mult_adds")
            if trial.get("run_id") and isinstance(value, (int, float)) and math.isfinite(value):
                out[trial["run_id"]] = value
    return out


def study_runs(view: Mapping[str, Any], spec_of) -> list[dict]:
    """A study's completed trials (as :func:`archs.studies.driver.study_view` gives them) as runs for
    :func:`setting_points`: a claim's trial is its net (family and size), any other its varied values."""
    from archs.studies.space import trial_label

    out = []
    for trial in view["trials"]:
        if trial["status"] != "completed" or trial["test_accuracy"] is None:
            continue
        if view["kind"] == "claim":
            setting = {"family": trial.get("family"), "size": trial.get("size")}
            label, family = f"{trial.get('family')} {trial.get('size')}", trial.get("family")
        else:
            setting = {path: trial.get(path) for path in view["varied"]}
            label = trial_label(setting)
            spec = spec_of(trial["run_id"])
            family = network_family(spec) if spec is not None else None
        out.append({"run_id": trial["run_id"], "setting": setting, "label": label, "family": family,
                    "seed": trial["seed"], **{k: trial.get(k) for k in ("test_accuracy", *AXES)}})
    return out
