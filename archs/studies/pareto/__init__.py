"""Objectives of a study and the Pareto front of its runs. Pure Python: no torch, no numpy.

A run is better in one objective when its value is higher (``max``: accuracy) or lower (``min``: size,
cost, time). Run A *dominates* run B when A is at least as good as B in every objective and strictly
better in at least one; the Pareto front is the set of runs no other run dominates. Two runs with the
same values do not dominate each other, so a duplicate of a front run is on the front too.

``train_flops`` is an estimate of the arithmetic a training run did, from the network's mult-adds per
image (``archs.summarize(spec).mult_adds`` at batch size 1) and the images it was trained on::

    train_flops = 3 x 2 x mult_adds x images_seen        (images_seen = steps x batch size)

a forward pass costs 2 FLOPs (a multiply and an add) per mult-add, and the backward pass about twice
the forward one (a gradient for the activations and one for the weights), so a step costs about three
forward passes. It ignores norms, activations and the optimizer, as such estimates usually do.

The objectives are registered in :mod:`.builtin`; a new one is one new module in this package calling
``register_objective(name, Objective(direction, label, unit))``: the package imports every module of itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from archs._registry import add, import_modules

__all__ = ["OBJECTIVES", "Objective", "RESULT_KEYS", "dominates", "objective_value", "pareto_front",
           "register_objective", "train_flops"]


class Objective(NamedTuple):
    direction: str   # "max" or "min"
    label: str       # for an axis or a table column
    unit: str


OBJECTIVES: dict[str, Objective] = {}

# where a run's result holds an objective under another name (a point may use either)
RESULT_KEYS: dict[str, str] = {}


def register_objective(name: str, objective: Objective, result_key: str | None = None) -> Objective:
    """Make ``objective`` known as ``name`` (a search's ``--objectives``, the Studies page's axes and the Pareto
    front read :data:`OBJECTIVES`), and return it. Its value is a run's result of that name, or of
    ``result_key`` where the result calls it something else. A name already taken is refused."""
    if objective.direction not in ("max", "min"):
        raise ValueError(f"objective {name!r}: direction must be 'max' or 'min', got {objective.direction!r}")
    add(OBJECTIVES, name, objective, "objective")
    if result_key is not None:
        RESULT_KEYS[name] = result_key
    return objective

_DIRECTIONS = {"max": "max", "maximize": "max", "maximise": "max", "min": "min", "minimize": "min",
               "minimise": "min"}


def train_flops(mult_adds: float, images_seen: float) -> float:
    """Training FLOPs: ``3 * 2 * mult_adds * images_seen`` (mult-adds per image; see the module's text)."""
    return 6 * mult_adds * images_seen


def objective_value(point: Mapping[str, Any], name: str) -> float | None:
    """The point's value for an objective: ``point[name]``, else ``point[RESULT_KEYS[name]]`` (a run's
    ``test_accuracy`` for ``accuracy``); None where missing, None or NaN. A value that is not a number
    (a string, a bool) raises ValueError: that is a bug, not a missing result."""
    value = point.get(name)
    if value is None and name in RESULT_KEYS:
        value = point.get(RESULT_KEYS[name])
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}: must be a number, got {type(value).__name__}")
    return None if math.isnan(value) else value


def _directions(objectives: Sequence[str | tuple[str, str]] | Mapping[str, str]) -> list[tuple[str, str]]:
    if isinstance(objectives, Mapping):
        objectives = list(objectives.items())
    elif isinstance(objectives, str):
        objectives = [objectives]
    out = []
    for item in objectives:
        if isinstance(item, str):
            if item not in OBJECTIVES:
                raise ValueError(f"unknown objective {item!r} (known: {', '.join(OBJECTIVES)}; or give "
                                 "(name, 'max'/'min'))")
            name, direction = item, OBJECTIVES[item].direction
        else:
            name, direction = item
            if direction not in _DIRECTIONS:
                raise ValueError(f"{name}: direction must be 'max' or 'min', got {direction!r}")
            direction = _DIRECTIONS[direction]
        if name in (n for n, _ in out):
            raise ValueError(f"objective {name!r} is given twice")
        out.append((name, direction))
    if not out:
        raise ValueError("give at least one objective")
    return out


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether ``a`` dominates ``b``, both as values to *minimise*: no worse anywhere, better somewhere."""
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def pareto_front(points: Sequence[Mapping[str, Any]],
                 objectives: Sequence[str | tuple[str, str]] | Mapping[str, str],
                 *, id_key: str | None = None) -> list:
    """Indices (in input order) of the points on the Pareto front; with ``id_key``, their ``point[id_key]``.

    ``objectives`` are names of :data:`OBJECTIVES` (with their directions), ``(name, "max"|"min")``
    pairs, or a mapping name -> direction. Points missing any objective (absent, None, NaN) are left out.
    Equal points do not dominate each other: duplicates of a front point are on the front.

    Sorting the points best-first lexicographically puts every dominating point before those it
    dominates, so each point is checked against the front found so far: O(n log n + n * front * m).
    """
    directions = _directions(objectives)
    keyed = []
    for i, point in enumerate(points):
        values = [objective_value(point, name) for name, _ in directions]
        if any(v is None for v in values):
            continue
        keyed.append((tuple(v if d == "min" else -v for v, (_, d) in zip(values, directions)), i))
    keyed.sort()
    front: list[tuple[tuple, int]] = []
    for key, i in keyed:
        if not any(dominates(other, key) for other, _ in front):
            front.append((key, i))
    indices = sorted(i for _, i in front)
    return indices if id_key is None else [points[i][id_key] for i in indices]


import_modules(__name__, __path__)  # every module of the package: each registers its objectives
