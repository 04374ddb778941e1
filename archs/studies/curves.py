"""What a researcher reads off a study's charts (issue 19 §4), as plain data for a page to draw:

- :func:`log_linear_fits`: per family, test accuracy fitted against the log of a cost (parameters, mult-adds, ...)
  by least squares on the settings' mean accuracies, with the 95 % confidence band of the fitted mean (Student's t
  on n - 2 degrees of freedom), so "the same accuracy with a third of the parameters" is read off the chart as the
  horizontal distance between two families' lines. :func:`cost_ratio_at` reads it off in numbers, where the two
  fits overlap in accuracy.
- :func:`learning_curves`: the training loss of the compared networks, mean and range over their seeds at each
  recorded step (runs of one setting share ``log_every``, so their steps line up).

A fit needs three settings of a family with distinct costs (one degree of freedom for its noise); a family with
fewer is drawn as points only.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Fit", "cost_ratio_at", "learning_curves", "log_linear_fits"]

LEVEL = 0.95
GRID = 40  # points of a drawn line and band


@dataclass(frozen=True)
class Fit:
    """accuracy ≈ ``intercept`` + ``slope`` · ln(cost) over ``n`` settings; ``sd`` is the residuals' standard
    deviation (n - 2 degrees of freedom). ``xs``, ``mean``, ``low``, ``high``: the line and its band on a grid
    spanning the fitted costs."""

    family: str | None
    n: int
    intercept: float
    slope: float
    sd: float
    xs: tuple[float, ...]
    mean: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]

    def at(self, cost: float) -> float:
        return self.intercept + self.slope * math.log(cost)

    def cost_for(self, accuracy: float) -> float | None:
        """The cost at which the fitted line reaches ``accuracy`` (None for a flat line)."""
        if self.slope <= 0:
            return None
        return math.exp((accuracy - self.intercept) / self.slope)

    def per_doubling(self) -> float:
        """Accuracy gained per doubling of the cost, by the fit."""
        return self.slope * math.log(2)


@functools.lru_cache(maxsize=64)
def _quantile(dof: int) -> float:
    from scipy.stats import t  # heavy, and only where a page draws a fit

    return float(t.ppf(0.5 + LEVEL / 2, dof))


def _fit(family, costs: Sequence[float], accuracies: Sequence[float]) -> Fit | None:
    u = [math.log(c) for c in costs]
    n = len(u)
    if n < 3 or len(set(u)) < 2:
        return None
    u_mean, y_mean = sum(u) / n, sum(accuracies) / n
    sxx = sum((v - u_mean) ** 2 for v in u)
    slope = sum((v - u_mean) * (y - y_mean) for v, y in zip(u, accuracies)) / sxx
    intercept = y_mean - slope * u_mean
    residual = sum((y - intercept - slope * v) ** 2 for v, y in zip(u, accuracies))
    sd = math.sqrt(residual / (n - 2))
    q = _quantile(n - 2)
    lo, hi = min(u), max(u)
    grid = [lo + (hi - lo) * i / (GRID - 1) for i in range(GRID)]
    mean = [intercept + slope * v for v in grid]
    half = [q * sd * math.sqrt(1 / n + (v - u_mean) ** 2 / sxx) for v in grid]
    return Fit(family, n, intercept, slope, sd, tuple(math.exp(v) for v in grid), tuple(mean),
               tuple(m - h for m, h in zip(mean, half)), tuple(m + h for m, h in zip(mean, half)))


def log_linear_fits(points: Iterable[Mapping], x: str) -> dict[str | None, Fit]:
    """One :class:`Fit` per family with at least three settings of distinct positive ``x`` (the points of
    :func:`archs.studies.results.setting_points`: their mean accuracy and mean cost)."""
    by_family: dict[str | None, list[tuple[float, float]]] = {}
    for point in points:
        cost, accuracy = point.get(x), point.get("accuracy")
        if isinstance(cost, (int, float)) and cost > 0 and isinstance(accuracy, (int, float)) and \
                math.isfinite(accuracy):
            by_family.setdefault(point.get("family"), []).append((float(cost), float(accuracy)))
    fits = {}
    for family, pairs in by_family.items():
        fit = _fit(family, [c for c, _ in pairs], [a for _, a in pairs])
        if fit is not None:
            fits[family] = fit
    return fits


def cost_ratio_at(a: Fit, b: Fit, accuracy: float | None = None) -> tuple[float, float] | None:
    """(accuracy, cost of ``a`` / cost of ``b``) where both fitted lines reach that accuracy: by default the middle
    of the accuracies both fits span. None where they do not overlap or a line is flat. This is a reading of the
    fitted lines, not a test: the page says so, and the claim's verdict is what decides."""
    if accuracy is None:
        low = max(min(a.mean), min(b.mean))
        high = min(max(a.mean), max(b.mean))
        if low > high:
            return None
        accuracy = (low + high) / 2
    ca, cb = a.cost_for(accuracy), b.cost_for(accuracy)
    if ca is None or cb is None:
        return None
    return accuracy, ca / cb


def learning_curves(series: Mapping[str, Sequence[Sequence[Mapping]]], value: str = "loss") -> list[dict]:
    """``series``: per label (a compared network), the step records of each of its runs (one list per seed).
    Returns per label ``{"label", "runs", "steps", "mean", "low", "high"}``: at each step that every one of its
    runs recorded, the mean of ``value`` and its range (lowest, highest) over the runs."""
    out = []
    for label, runs in series.items():
        tables = [{r["step"]: r[value] for r in records if isinstance(r.get(value), (int, float))
                   and math.isfinite(r[value]) and isinstance(r.get("step"), int)} for records in runs]
        tables = [t for t in tables if t]
        if not tables:
            continue
        steps = sorted(set.intersection(*(set(t) for t in tables)))
        values = [[t[s] for t in tables] for s in steps]
        out.append({"label": label, "runs": len(tables), "steps": steps,
                    "mean": [sum(v) / len(v) for v in values], "low": [min(v) for v in values],
                    "high": [max(v) for v in values]})
    return out
