"""Squeeze-and-excitation residual stages (Hu et al. 2018): a residual stage whose blocks recalibrate their
channels before the add.

Each block's branch ends in a squeeze-and-excitation module: a global average pool squeezes every channel to
one number, a 1x1 conv (with bias) reduces the channels by ``se_reduction``, an activation, a 1x1 conv (with
bias) restores them, a sigmoid makes a gate in (0, 1) per channel, and the branch's output is multiplied by
it. Everything else is the residual stage's (block kind, shortcuts, pre-activation, the plain twin).

``se-resnet50`` is timm's ``seresnet50`` (28,088,024 parameters): ResNet-50 (torchvision's layout, stride on
the 3x3 conv) with an SE module after each block's last norm, reduced to channels // 16 (timm rounds
channels / 16 to a multiple of 8, the same numbers for ResNet-50's 256 to 2048 channels) and a ReLU inside.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..fields import param
from .base import BuildContext, CountedByBuilding, conv_params, register_stage
from .plain import PlainSpec
from .residual import ResidualBlock, ResidualSpec


class SqueezeExcite(nn.Module):
    """x times a per-channel gate computed from x's channel means: N x C x H x W -> the same shape."""

    def __init__(self, channels: int, reduced: int, act: nn.Module):
        super().__init__()
        self.channels, self.reduced = channels, reduced
        self.fc1 = nn.Conv2d(channels, reduced, 1)
        self.act = act
        self.fc2 = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = F.adaptive_avg_pool2d(x, 1)                        # N x C x 1 x 1: squeeze
        gate = self.fc2(self.act(self.fc1(gate)))                 # N x C/r x 1 x 1, then N x C x 1 x 1: excite
        return x * torch.sigmoid(gate)


@register_stage
@dataclass(frozen=True)
class SEResidualSpec(CountedByBuilding, ResidualSpec):
    type_name: ClassVar[str] = "se_residual"
    title: ClassVar[str] = "SE residual"
    family: ClassVar[str] = "se-resnet"
    family_rank: ClassVar[int] = 22

    se_reduction: int = param(16, "Squeeze-and-excitation reduction: the gate's hidden layer has channels // this.",
                              range=(1, 256), step=1)

    def _reduced(self, channels: int) -> int:
        return max(channels // self.se_reduction, 1)

    def make_block(self, in_channels: int, stride: int, ctx: BuildContext) -> ResidualBlock:
        block = super().make_block(in_channels, stride, ctx)
        out = self.out_channels(in_channels)
        block.branch.add_module("se", SqueezeExcite(out, self._reduced(out), ctx.act()))
        return block

    def num_params(self, in_channels: int, ctx: BuildContext) -> int:
        out = self.out_channels(in_channels)
        reduced = self._reduced(out)
        se = conv_params(out, reduced, 1, True) + conv_params(reduced, out, 1, True)
        return super().num_params(in_channels, ctx) + self.blocks * se

    def label(self, in_channels: int) -> str:
        return "SE " + super().label(in_channels)

    @classmethod
    def reference_networks(cls) -> dict[str, dict]:
        stages = tuple(cls(blocks=n, channels=c, block="bottleneck", stride=1 if i == 0 else 2)
                       for i, (n, c) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512))))
        stem = PlainSpec(channels=64, kernel_size=7, stride=2, padding=3, pool="max", pool_kernel=3, pool_stride=2,
                         pool_padding=1)
        return {"se-resnet50": dict(name="se-resnet50", in_channels=3, num_classes=1000, input_size=224,
                                    init="kaiming_normal", stem=(stem,), stages=stages, head={})}
