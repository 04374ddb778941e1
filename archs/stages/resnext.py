"""ResNeXt stages (Xie et al. 2017): bottleneck blocks whose 3x3 conv is split into ``cardinality`` groups.

A block on C incoming channels: 1x1 conv to the width, grouped 3x3 conv (stride on it, as torchvision), 1x1 conv
to 4 x ``channels``, each followed by a norm, an activation after the first two and after the add; a 1x1 conv +
norm shortcut where the shape changes. The width is torchvision's ``int(channels x bottleneck_width / 64) x
cardinality``: ResNeXt-50 32x4d has cardinality 32 and bottleneck width 4, so its first stage's blocks are
128 wide (32 groups of 4 channels) and output 256 channels. ``resnext50_32x4d`` matches torchvision's
25,028,904 parameters.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import ClassVar

from torch import nn

from ..fields import field_error, param
from .base import (
    BuildContext,
    CountedByBuilding,
    Size,
    StageSpec,
    chained_blocks,
    conv_bn_act,
    conv_bn_act_params,
    reduce_size,
    register_stage,
)
from .plain import PlainSpec
from .residual import ResidualBlock


class ResNeXtStage(nn.Sequential):
    """ResNeXt blocks block1..blockN (each a ResidualBlock whose branch has a grouped 3x3 conv)."""


@register_stage
@dataclass(frozen=True)
class ResNeXtSpec(CountedByBuilding, StageSpec):
    type_name: ClassVar[str] = "resnext"
    title: ClassVar[str] = "ResNeXt"
    family: ClassVar[str] = "resnext"
    family_rank: ClassVar[int] = 21

    blocks: int = param(3, "Number of ResNeXt blocks in the stage.", range=(1, 200), step=1)
    channels: int = param(64, "Planes of the blocks: each outputs 4x this.", range=(1, 2048), step=1)
    cardinality: int = param(32, "Groups of the 3x3 conv (the paths of the aggregated transform).",
                             range=(1, 128), step=1)
    bottleneck_width: int = param(4, "Channels of each group per 64 planes (the d in 32x4d): the blocks are "
                                  "int(channels x bottleneck_width / 64) x cardinality wide.", range=(1, 256), step=1)
    stride: int = param(1, "Stride of the first block (2 halves the feature map).", range=(1, 2), step=1)
    skip: bool = param(True, "Add the shortcut. Off gives the plain network with the same layers.")

    def check(self) -> None:
        if self.channels * self.bottleneck_width < 64:
            raise field_error("bottleneck_width", f"leaves the groups no channels: channels x bottleneck_width "
                                                  f"({self.channels} x {self.bottleneck_width}) must be at least 64")

    @property
    def width(self) -> int:
        return int(self.channels * self.bottleneck_width / 64) * self.cardinality

    def out_channels(self, in_channels: int) -> int:
        return 4 * self.channels

    def out_stride(self) -> int:
        return self.stride

    def out_size(self, size: Size) -> Size:
        return reduce_size(size, 3, self.stride, 1) if self.stride > 1 else size

    def _needs_shortcut(self, in_channels: int, stride: int) -> bool:
        return stride != 1 or in_channels != self.out_channels(in_channels)

    def make_block(self, in_channels: int, stride: int, ctx: BuildContext) -> ResidualBlock:
        width, out = self.width, self.out_channels(in_channels)
        branch = nn.Sequential(OrderedDict(
            conv1=conv_bn_act(in_channels, width, 1, ctx),                                # N x width x H x W
            conv2=conv_bn_act(width, width, 3, ctx, stride=stride, conv="grouped", groups=self.cardinality),
            conv3=conv_bn_act(width, out, 1, ctx, act=False),                             # N x 4 channels x H/s x W/s
        ))
        shortcut = None
        if self.skip and self._needs_shortcut(in_channels, stride):
            shortcut = conv_bn_act(in_channels, out, 1, ctx, stride=stride, act=False)
        return ResidualBlock(branch, shortcut, None, ctx.act(), self.skip)

    def _block_params(self, in_channels: int, stride: int, ctx: BuildContext) -> int:
        width, out = self.width, self.out_channels(in_channels)
        total = (conv_bn_act_params(in_channels, width, 1, ctx, bias=False)
                 + conv_bn_act_params(width, width, 3, ctx, bias=False, groups=self.cardinality)
                 + conv_bn_act_params(width, out, 1, ctx, bias=False))
        if self.skip and self._needs_shortcut(in_channels, stride):
            total += conv_bn_act_params(in_channels, out, 1, ctx, bias=False)
        return total

    def num_params(self, in_channels: int, ctx: BuildContext) -> int:
        rest = self._block_params(self.out_channels(in_channels), 1, ctx)
        return self._block_params(in_channels, self.stride, ctx) + (self.blocks - 1) * rest

    def build(self, in_channels: int, ctx: BuildContext) -> nn.Sequential:
        return ResNeXtStage(chained_blocks(self.blocks, in_channels, self.out_channels(in_channels), self.stride,
                                    lambda c_in, stride: self.make_block(c_in, stride, ctx)))

    def label(self, in_channels: int) -> str:
        kind = "ResNeXt" if self.skip else "Plain ResNeXt"
        shape = f"{self.cardinality}x{self.bottleneck_width}d"
        return f"{kind} {shape} x{self.blocks} · {self.out_channels(in_channels)} ch"

    def without_skips(self) -> ResNeXtSpec:
        return replace(self, skip=False)

    @classmethod
    def reference_networks(cls) -> dict[str, dict]:
        stages = tuple(cls(blocks=n, channels=c, cardinality=32, bottleneck_width=4, stride=1 if i == 0 else 2)
                       for i, (n, c) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512))))
        stem = PlainSpec(channels=64, kernel_size=7, stride=2, padding=3, pool="max", pool_kernel=3, pool_stride=2,
                         pool_padding=1)
        return {"resnext50_32x4d": dict(name="resnext50_32x4d", in_channels=3, num_classes=1000, input_size=224,
                                        init="kaiming_normal", stem=(stem,), stages=stages, head={})}
