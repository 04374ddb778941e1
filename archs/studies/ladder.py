"""A claim's budget ladder: the same claim judged at several training budgets, so that a reader sees whether its
verdict appears, strengthens or vanishes as training goes on (issue 19).

A rung is one claim study at one number of steps per run. ``python -m archs study claim dense --budgets
50,150,450x2`` starts one study per rung (``x2``: that rung runs 2 seeds instead of ``--seeds``), and the Studies
page's claim tab does the same; each rung is judged on its own by :func:`archs.studies.families.judge`, exactly
as a single claim study is. :func:`claim_ladders` gathers a store's completed claim studies into ladders, one per
claim and setting (data set, test subset, precision, memory layout, training settings), the newest study at each
number of steps; :func:`ladder` lays out their verdicts and gaps by budget, and :func:`ladder_text` says it in
words (the page, ``study ladder`` and its JSON say the same).

A ladder reads stored verdicts and trains nothing; a stored verdict of an earlier rule, or one not shaped as
:func:`judge` writes it, is no rung.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from archs.studies.space import StudyError

__all__ = ["MAX_RUNGS", "Rung", "claim_ladders", "ladder", "ladder_key", "ladder_text", "parse_budgets",
           "rung_definitions"]

MAX_RUNGS = 8
ALPHA = 0.05  # each budget's verdict: the claim's error rate (archs.studies.families.base.ALPHA)
MAX_STEPS = 1_000_000
_MAX_TEXT = 200
_RUNG = re.compile(r"([0-9]+)(?:x([0-9]+))?")


@dataclass(frozen=True)
class Rung:
    """One budget of a ladder: ``steps`` per run, and ``seeds`` where this rung runs its own number of them."""

    steps: int
    seeds: int | None = None

    @property
    def text(self) -> str:
        return f"{self.steps}" if self.seeds is None else f"{self.steps}x{self.seeds}"


def _bad(problem: str) -> StudyError:
    return StudyError(f"budgets: {problem}", "budgets")


def parse_budgets(text: str) -> tuple[Rung, ...]:
    """``"50,150,450x2"`` as rungs, shortest first: each ``STEPS`` (1 to 1,000,000) or ``STEPSxSEEDS`` (1 to 20
    seeds), at most :data:`MAX_RUNGS` distinct numbers of steps. Anything else raises :class:`StudyError` naming
    ``budgets``."""
    from archs.studies.definition import MAX_SEEDS

    if not isinstance(text, str) or not text.strip():
        raise _bad("give one or more numbers of steps, e.g. 50,150,450 (450x2: 2 seeds at 450 steps)")
    if len(text) > _MAX_TEXT:
        raise _bad(f"at most {_MAX_TEXT} characters")
    rungs = []
    for part in text.split(","):
        part = part.strip().lower()
        match = _RUNG.fullmatch(part)  # ASCII digits only: int() would also read other scripts' digits
        if not match:
            raise _bad(f"{part[:30]!r} is not STEPS or STEPSxSEEDS (e.g. 150 or 450x2)")
        steps = int(match[1])
        if not 1 <= steps <= MAX_STEPS:
            raise _bad(f"{steps} steps: each budget is 1 to {MAX_STEPS:,} steps")
        seeds = int(match[2]) if match[2] else None
        if seeds is not None and not 1 <= seeds <= MAX_SEEDS:
            raise _bad(f"{part}: seeds must be 1 to {MAX_SEEDS}")
        rungs.append(Rung(steps, seeds))
    if len({r.steps for r in rungs}) != len(rungs):
        raise _bad("a number of steps is given twice")
    if len(rungs) > MAX_RUNGS:
        raise _bad(f"at most {MAX_RUNGS} budgets, got {len(rungs)}")
    return tuple(sorted(rungs, key=lambda r: r.steps))


def rung_definitions(claim: str, rungs: Iterable[Rung], *, seeds: int, data: dict, parallel: int | None = None,
                     objectives: tuple[str, ...] | None = None, name: str | None = None) -> list:
    """One claim study definition per rung (the rung's seeds, else ``seeds``), named after the claim and its
    budget, every other setting the same, so :func:`claim_ladders` puts them on one ladder."""
    from archs.studies.definition import StudyDefinition, claim_of

    base = claim_of(StudyDefinition(kind="claim", claim=claim, name=claim))
    out = []
    for rung in rungs:
        definition = StudyDefinition(kind="claim", claim=claim, seeds=rung.seeds or seeds, steps=rung.steps,
                                     name=f"{name or claim + ' claim'} · {rung.steps} steps", data=data,
                                     parallel=parallel, objectives=objectives or ("accuracy", base.objective_x))
        out.append(definition)
    return out


def ladder_key(definition: Mapping[str, Any]) -> tuple:
    """What studies of one ladder share: the claim, the data set and its test subset and validation split, the
    precision and memory layout, and any training settings of its own (a page's); never the data's folder."""
    data = definition.get("data") or {}
    return (definition.get("claim"), data.get("name"), data.get("test_limit"), data.get("val_split"),
            definition.get("amp"), definition.get("channels_last"),
            json.dumps(definition.get("train") or {}, sort_keys=True, default=str))


def claim_ladders(records: Iterable[Mapping[str, Any]]) -> dict[tuple, list[dict]]:
    """Completed claim studies (store records, each with ``definition`` and ``summary``, newest first as
    ``store.studies.list`` gives them) as ladders: key (:func:`ladder_key`) -> rungs, shortest budget first, each
    ``{"study_id", "steps", "verdict"}`` with the newest study at that number of steps. A study stopped,
    failed or still running is no rung: its verdict would judge some of its runs only."""
    from archs.studies.families.base import RULE_VERSION

    ladders: dict[tuple, dict[int, dict]] = {}
    for record in records:
        definition = record.get("definition")
        summary = record.get("summary")
        verdict = summary.get("verdict") if isinstance(summary, dict) else None
        if record.get("kind") != "claim" or record.get("status") != "completed" or not isinstance(definition, dict) \
                or not _well_formed(verdict, RULE_VERSION):
            continue
        steps = verdict["budget"]["steps"]
        rungs = ladders.setdefault(ladder_key(definition), {})
        rungs.setdefault(steps, {"study_id": record.get("id"), "steps": steps, "verdict": verdict})
    return {key: [rungs[s] for s in sorted(rungs)] for key, rungs in ladders.items()}


def _well_formed(verdict: Any, version: int) -> bool:
    """A verdict as this version's :func:`judge` writes it, in the parts a ladder reads."""
    if not isinstance(verdict, dict) or verdict.get("rule_version") != version:
        return False
    budget, primary = verdict.get("budget"), verdict.get("primary")
    steps = budget.get("steps") if isinstance(budget, dict) else None
    return (isinstance(steps, int) and not isinstance(steps, bool) and steps >= 1 and isinstance(primary, dict)
            and all(isinstance(t, dict) for t in primary.values())
            and isinstance(verdict.get("verdict"), str) and isinstance(verdict.get("failed", []), list)
            and isinstance(verdict.get("against", {}), dict))


def _gap(test: Mapping[str, Any]) -> dict:
    mean = test.get("difference", test.get("mean"))
    return {"difference": mean, "lower": test.get("lower"), "upper": test.get("upper"), "n": test.get("n", 0)}


def ladder(rungs: Iterable[Mapping[str, Any]]) -> dict:
    """A claim's rungs (``{"study_id", "steps", "verdict"}``, a verdict as :func:`judge` stores it) laid out by
    budget: ``claim``, ``question``, ``subject``, ``kind``, ``gap_labels`` and ``gap_names`` (each gap's short
    label and what it is in words) and ``rungs``, each with ``steps``, ``epochs``, ``images``, ``seeds``, ``runs``,
    ``failed``, ``verdict``, ``against``, ``gaps`` (per baseline, or per family for the residual claim: the primary
    test's mean difference and its interval, in accuracy units), ``converged`` and ``ended`` (runs with an
    accuracy) and ``study_id``; and ``statement`` (:func:`ladder_text`)."""
    rows, first = [], None
    for rung in sorted(rungs, key=lambda r: r["steps"]):
        v = rung["verdict"]
        first = first or v
        budget = v.get("budget") or {}
        ended = sum(budget.get(k) or 0 for k in ("converged", "not_converged", "convergence_unknown"))
        rows.append({"study_id": rung.get("study_id"), "steps": budget.get("steps", rung["steps"]),
                     "epochs": budget.get("epochs"), "images": budget.get("images"), "seeds": v.get("seeds"),
                     "runs": v.get("runs"), "failed": len(v.get("failed") or []), "verdict": v.get("verdict"),
                     "against": v.get("against") or {},
                     "gaps": {name: _gap(test) for name, test in (v.get("primary") or {}).items()},
                     "converged": budget.get("converged") or 0, "ended": ended})
    if first is None:
        return {"claim": None, "rungs": [], "statement": "No completed claim study yet: nothing to lay out."}
    subject = first.get("subject")
    unit = "parameters" if first.get("objective_x") == "params" else "mult-adds"
    depth = first.get("kind") == "depth"
    gaps = ("plain", "residual") if depth else tuple(first.get("primary") or {})
    # each gap's short label (a chart's legend) and what it is in words (the statement, a hover)
    labels = {name: f"{name}-56 − {name}-20" if depth else f"{subject} − {name}" for name in gaps}
    names = {name: f"{name}-56 minus {name}-20 (test accuracy, paired by seed)" if depth else
             f"{subject} minus {name} at equal {unit} (test accuracy, paired by seed, averaged over the compared "
             "sizes)" for name in gaps}
    out = {"claim": first.get("claim"), "question": first.get("question"), "subject": subject,
           "kind": first.get("kind"), "gap_labels": labels, "gap_names": names, "rungs": rows}
    out["statement"] = ladder_text(out)
    return out


def _pts(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:+.1f}"


def _gap_text(gap: Mapping[str, Any]) -> str:
    if gap.get("difference") is None:
        return "no pairs of runs"
    if gap.get("lower") is None:
        return f"{_pts(gap['difference'])} points (n = {gap.get('n', 0)}, no interval)"
    return f"{_pts(gap['difference'])} points [{_pts(gap['lower'])}, {_pts(gap['upper'])}] (n = {gap['n']})"


_WORDS = {"holds": "holds", "does not hold": "does not hold", "not decided": "is not decided"}


def ladder_text(lad: Mapping[str, Any]) -> str:
    """The ladder in words: each budget's verdict and gaps, how the verdict changes with the budget, and what the
    ladder cannot say."""
    rows = lad["rungs"]
    if not rows:
        return lad.get("statement") or "No completed claim study yet: nothing to lay out."
    steps = ", ".join(f"{r['steps']:,}" for r in rows)
    parts = [f"Budget ladder of the {lad['claim']} claim, {len(rows)} budget{'s' if len(rows) != 1 else ''} "
             f"({steps} steps per run), each judged on its own by the claim's rule. Gaps are in points of test "
             "accuracy with the verdict's own interval in brackets (Student t over seeds; its lower end at one-sided "
             "2.5 %, its upper end at 2.5 % divided by the number of baselines)."]
    for r in rows:
        epochs = "" if r["epochs"] is None else f", {r['epochs']:.2g} epochs"
        gaps = "; ".join(f"{name} {_gap_text(g)}" for name, g in r["gaps"].items())
        failed = f", {r['failed']} failed or diverged" if r["failed"] else ""
        parts.append(f"At {r['steps']:,} steps ({r['seeds']} seed{'s' if r['seeds'] != 1 else ''}, {r['runs']} runs"
                     f"{failed}{epochs}; {r['converged']} of {r['ended']} converged): the claim "
                     f"{_WORDS.get(r['verdict'], r['verdict'])}; gaps {gaps}.")
    verdicts = [r["verdict"] for r in rows]
    if len(rows) == 1:
        parts.append("One budget is no ladder: run the claim at more budgets to see how its verdict moves.")
    elif len(set(verdicts)) == 1:
        parts.append(f"The verdict is the same at every budget: the claim {_WORDS.get(verdicts[0], verdicts[0])}.")
    else:
        runs_of, start = [], 0
        for i in range(1, len(rows) + 1):
            if i == len(rows) or verdicts[i] != verdicts[start]:
                span = (f"{rows[start]['steps']:,}" if i - 1 == start else
                        f"{rows[start]['steps']:,} to {rows[i - 1]['steps']:,}")
                runs_of.append(f"{_WORDS.get(verdicts[start], verdicts[start])} at {span} steps")
                start = i
        trend = ("appears with training" if verdicts[-1] == "holds" and "holds" not in verdicts[:-1] else
                 "vanishes with training" if verdicts[0] == "holds" and verdicts[-1] != "holds" else
                 "changes with the budget")
        parts.append(f"The claim {trend}: it " + "; ".join(runs_of) + ".")
    seeds = [r["seeds"] for r in rows if r["seeds"]]
    if len(set(seeds)) > 1:
        from scipy.stats import t

        most = max(seeds)
        fewer = [r for r in rows if r["seeds"] and r["seeds"] < most]
        widths = ", ".join(f"{t.ppf(0.975, n - 1):.1f} at {n}" for n in sorted({r['seeds'] for r in fewer} | {most})
                           if n >= 2)
        which = ", ".join(f"{r['steps']:,} steps: {r['seeds']}" for r in fewer)
        parts.append(f"Budgets with fewer seeds ({which}) "
                     f"have wider intervals (Student t with n - 1 degrees of freedom, in standard errors: {widths} "
                     "seeds), so a verdict that changes there may be the seeds', not the budget's.")
    for name in lad.get("gap_names", {}):
        series = [(r["steps"], r["gaps"].get(name, {}).get("difference")) for r in rows]
        series = [(s, d) for s, d in series if d is not None]
        if len(series) >= 2:
            parts.append(f"Gap {lad['gap_names'][name]}: {_pts(series[0][1])} points at {series[0][0]:,} steps, "
                         f"{_pts(series[-1][1])} at {series[-1][0]:,}.")
    if len(rows) >= 2:
        chance = 1 - (1 - ALPHA) ** len(rows)
        parts.append(f"Each budget is tested at the claim's 5 % level on its own, so across {len(rows)} budgets a "
                     f"decision somewhere by chance is more likely than 5 % (up to {100 * chance:.0f} % were the "
                     "budgets independent; runs of one seed share their initialisation across budgets, so they are "
                     "not); a change of the gap between budgets is read, not tested.")
    last = rows[-1]
    if last["ended"] and last["converged"] < last["ended"]:
        parts.append(f"At the longest budget {last['converged']} of {last['ended']} runs had converged; the paper's "
                     "claim is about converged nets, so a longer budget may still change the verdict.")
    return " ".join(parts)

