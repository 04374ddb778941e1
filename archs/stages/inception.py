"""Inception stages (Szegedy et al. 2015): parallel branches of different receptive fields, concatenated.

Branches, each switched off by a width of 0: 1x1; 1x1 reduce then 3x3; 1x1 reduce then 5x5 (or
torchvision's 3x3 stand-in, which its GoogLeNet calls 5x5); 1x1 reduce then two 3x3; a 3x3 pool
(stride 1) then a 1x1 projection. A reduce width of 0 feeds the input straight to the wide conv.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..fields import field_error, param
from .base import BuildContext, PoolAfter, Size, StageSpec, conv_bn_act, conv_bn_act_params, register_stage


class InceptionModule(nn.Module):
    """Parallel branches on the same input, concatenated along the channels. Made by
    :meth:`InceptionSpec.make_module`."""

    def __init__(self, branches: nn.ModuleDict):
        super().__init__()
        self.branches = branches

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches.values()], dim=1)


class InceptionStage(nn.Sequential):
    """Inception modules (module1..moduleN) and an optional pool."""


@register_stage
@dataclass(frozen=True)
class InceptionSpec(PoolAfter, StageSpec):
    type_name: ClassVar[str] = "inception"
    title: ClassVar[str] = "Inception"
    family: ClassVar[str] = "inception"
    family_rank: ClassVar[int] = 30

    modules: int = param(1, "Number of identical Inception modules.", range=(1, 10), step=1)
    branch1x1: int = param(64, "Width of the 1x1 branch (0: no such branch).", range=(0, 1024), step=1)
    branch3x3_reduce: int = param(96, "1x1 reduction before the 3x3 conv (0: none).", range=(0, 1024), step=1)
    branch3x3: int = param(128, "Width of the 3x3 branch (0: no such branch).", range=(0, 1024), step=1)
    branch5x5_reduce: int = param(16, "1x1 reduction before the 5x5 conv (0: none).", range=(0, 1024), step=1)
    branch5x5: int = param(32, "Width of the 5x5 branch (0: no such branch).", range=(0, 1024), step=1)
    branch5x5_kernel: int = param(5, "Kernel of the '5x5' branch: a real 5x5, or the 3x3 that torchvision's "
                                  "GoogLeNet uses there.", choices=(5, 3))
    double3x3_reduce: int = param(0, "1x1 reduction before the double 3x3 branch (0: none).",
                                  range=(0, 1024), step=1)
    double3x3: int = param(0, "Width of the double 3x3 branch (0: no such branch).", range=(0, 1024), step=1)
    branch_pool_type: str = param("max", "Pooling of the pool branch (3x3, stride 1).", choices=("max", "avg"))
    branch_pool_projection: int = param(32, "1x1 projection after the pool branch (0: no pool branch).",
                                        range=(0, 1024), step=1)
    branch_norm: bool = param(True, "Norm after each branch conv (if the network uses norm).")
    branch_activation: bool = param(True, "Activation after each branch conv.")
    conv_bias: bool = param(False, "Give the convolutions a bias.")

    def check(self) -> None:
        self.check_pool()
        for reduce_name, width_name in (("branch3x3_reduce", "branch3x3"), ("branch5x5_reduce", "branch5x5"),
                                        ("double3x3_reduce", "double3x3")):
            if getattr(self, width_name) == 0 and getattr(self, reduce_name) > 0:
                raise field_error(reduce_name, f"must be 0 when {width_name} is 0 (the branch is off), "
                                               f"got {getattr(self, reduce_name)}")
        if not self.branch_chains(1):
            raise field_error("branch1x1", "every branch is off: at least one width must be > 0")

    def branch_chains(self, in_channels: int) -> list[tuple[str, list[tuple[int, int, int]]]]:
        """(branch name, [(c_in, c_out, kernel), ...]) of every branch that is on."""
        def chain(reduce: int, widths: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
            convs, c = [], in_channels
            if reduce:
                convs.append((c, reduce, 1))
                c = reduce
            for width, kernel in widths:
                convs.append((c, width, kernel))
                c = width
            return convs

        chains = []
        if self.branch1x1:
            chains.append(("b1x1", [(in_channels, self.branch1x1, 1)]))
        if self.branch3x3:
            chains.append(("b3x3", chain(self.branch3x3_reduce, [(self.branch3x3, 3)])))
        if self.branch5x5:
            chains.append(("b5x5", chain(self.branch5x5_reduce, [(self.branch5x5, self.branch5x5_kernel)])))
        if self.double3x3:
            chains.append(("double3x3", chain(self.double3x3_reduce, [(self.double3x3, 3)] * 2)))
        if self.branch_pool_projection:
            chains.append(("pool", [(in_channels, self.branch_pool_projection, 1)]))
        return chains

    def make_module(self, in_channels: int, ctx: BuildContext) -> InceptionModule:
        branches = nn.ModuleDict()
        for name, chain in self.branch_chains(in_channels):
            if name == "pool":
                pool_cls = nn.MaxPool2d if self.branch_pool_type == "max" else nn.AvgPool2d
                # ceil_mode as torchvision; with stride 1 and padding 1 it changes nothing
                layers = [pool_cls(3, stride=1, padding=1, ceil_mode=True)]
            else:
                layers = []
            layers += [conv_bn_act(c_in, c_out, k, ctx, bias=self.conv_bias, norm=self.branch_norm,
                                   act=self.branch_activation) for c_in, c_out, k in chain]
            branches[name] = nn.Sequential(*layers)
        return InceptionModule(branches)

    def out_channels(self, in_channels: int) -> int:
        return sum(chain[-1][1] for _, chain in self.branch_chains(in_channels))

    def num_params(self, in_channels: int, ctx: BuildContext) -> int:
        def per_module(c: int) -> int:
            return sum(conv_bn_act_params(i, o, k, ctx, bias=self.conv_bias, norm=self.branch_norm)
                       for _, chain in self.branch_chains(c) for i, o, k in chain)

        out = self.out_channels(in_channels)
        return per_module(in_channels) + (self.modules - 1) * per_module(out)

    def out_stride(self) -> int:
        return self.pool_stride_factor()

    def out_size(self, size: Size) -> Size:
        return self.pooled_size(size)

    def build(self, in_channels: int, ctx: BuildContext) -> nn.Sequential:
        blocks: OrderedDict[str, nn.Module] = OrderedDict()
        c = in_channels
        for i in range(self.modules):
            blocks[f"module{i + 1}"] = self.make_module(c, ctx)
            c = self.out_channels(c)
        pool = self.pool_module()
        if pool is not None:
            blocks["pool"] = pool
        return InceptionStage(blocks)

    def label(self, in_channels: int) -> str:
        return f"Inception x{self.modules} · {self.out_channels(in_channels)} ch"
