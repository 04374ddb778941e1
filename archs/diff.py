"""Per-stage comparison of two summarised networks: parameters, mult-adds and output shapes side by
side, matched by position (stem with stem, stage k with stage k, head with head)."""

from __future__ import annotations

from dataclasses import dataclass

from .inspect import StageTotal, Summary

__all__ = ["StageDiff", "diff_summaries"]


@dataclass(frozen=True)
class StageDiff:
    name: str                                   # "stem", "stage3", "head"
    label_a: str                                # "" where network A has no such part
    label_b: str
    params_a: int
    params_b: int
    mult_adds_a: int                            # per image
    mult_adds_b: int
    shape_a: tuple[int, ...] | None             # output shape without the batch dimension
    shape_b: tuple[int, ...] | None

    @property
    def params_delta(self) -> int:
        return self.params_b - self.params_a

    @property
    def same_shape(self) -> bool:
        return self.shape_a == self.shape_b


def _order(name: str) -> tuple[int, int]:
    if name == "stem":
        return 0, 0
    if name == "head":
        return 2, 0
    return 1, int(name[5:]) if name[5:].isdigit() else 0


def diff_summaries(a: Summary, b: Summary) -> list[StageDiff]:
    """One row per part present in either network, in network order."""
    by_a = {s.name: s for s in a.stages}
    by_b = {s.name: s for s in b.stages}

    def pick(totals: dict[str, StageTotal], name: str, summary: Summary):
        total = totals.get(name)
        if total is None:
            return "", 0, 0, None
        return (total.label, total.params, total.mult_adds // max(summary.batch_size, 1),
                tuple(total.output_shape[1:]))

    rows = []
    for name in sorted(set(by_a) | set(by_b), key=_order):
        la, pa, ma, sa = pick(by_a, name, a)
        lb, pb, mb, sb = pick(by_b, name, b)
        rows.append(StageDiff(name, la, lb, pa, pb, ma, mb, sa, sb))
    return rows
