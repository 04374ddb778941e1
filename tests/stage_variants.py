"""Variants of every registered stage type, made from its fields' metadata alone (traingenerator's way: each
field at its default, then varied one at a time), so a new stage type is covered by every test that uses them
without a line added here. Small widths keep them quick."""

from __future__ import annotations

from dataclasses import replace

from archs import STAGE_TYPES, HeadSpec, NetSpec, SpecError
from archs.fields import spec_fields

SMALL = {"channels": 8, "blocks": 2, "layers": 2, "modules": 2, "growth_rate": 4, "cardinality": 4,
         "bottleneck_width": 16, "expansion": 2}
SIZE = 16


def small(cls):
    """The type's default spec with small widths and counts where it has such fields."""
    names = {info.name for info in spec_fields(cls)}
    return cls(**{k: v for k, v in SMALL.items() if k in names})


def one_at_a_time(cls) -> list:
    """The small default, then each bool flipped and each other choice taken, one field at a time (variants the
    type's own checks refuse are left out)."""
    base, out = small(cls), []
    out.append(base)
    for info in spec_fields(cls):
        values = [not info.default] if info.kind == "bool" else [c for c in info.choices or () if c != info.default]
        for value in values:
            try:
                out.append(replace(base, **{info.name: value}))
            except SpecError:
                pass
    return list(dict.fromkeys(out))


def net_with(stage, norm: str = "batch", in_channels: int = 8) -> NetSpec:
    return NetSpec(in_channels=in_channels, num_classes=3, input_size=SIZE, norm=norm, stages=(stage,),
                   head=HeadSpec())


def fitting_channels(stage, norm: str = "batch") -> int:
    """8 incoming channels, or the stage's own where it cannot take 8 (zero padding cannot drop channels, a
    ConvNeXt stage without downsampling keeps its channels)."""
    for c in (8, 4, stage.out_channels(8)):
        try:
            net_with(stage, norm, c).plan()
            return c
        except SpecError:
            continue
    raise AssertionError(f"{stage} fits none of the channel counts tried")


TYPE_DEFAULTS = {name: small(cls) for name, cls in sorted(STAGE_TYPES.items())}
TYPE_VARIANTS = [(f"{name}-{i}", stage) for name, cls in sorted(STAGE_TYPES.items())
                 for i, stage in enumerate(one_at_a_time(cls))]
