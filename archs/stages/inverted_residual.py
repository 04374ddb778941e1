"""Inverted residual stages (Sandler et al. 2018, MobileNetV2): expand, filter depthwise, project linearly.

A block on C incoming channels: a 1x1 conv expands to ``round(C x expansion)`` channels (left out where the
expansion is 1), a depthwise ``kernel_size`` conv filters each channel alone (stride on it), and a 1x1 conv
projects to ``channels`` with a norm and no activation (the linear bottleneck: an activation on the narrow
output would destroy information). The skip adds the input only where the shapes allow it (stride 1 and as many
channels in as out); there is no projection shortcut and no activation after the add. The network's activation
is used inside (MobileNetV2's is ReLU6, ``activation="relu6"``).

``mobilenet_v2`` matches torchvision's 3,504,872 parameters: a 3x3/2 conv stem of 32 channels, seven stages
of (expansion, channels, blocks, stride) (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
(6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1), a 1x1 conv to 1,280 channels, and dropout 0.2 before the
classifier.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import ClassVar

from torch import nn

from ..fields import param
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


class InvertedResidualStage(nn.Sequential):
    """Inverted residual blocks block1..blockN (each a ResidualBlock with no activation after the add)."""


@register_stage
@dataclass(frozen=True)
class InvertedResidualSpec(CountedByBuilding, StageSpec):
    type_name: ClassVar[str] = "inverted_residual"
    title: ClassVar[str] = "Inverted residual"
    family: ClassVar[str] = "mobilenet"
    family_rank: ClassVar[int] = 23

    blocks: int = param(2, "Number of inverted residual blocks in the stage.", range=(1, 200), step=1)
    channels: int = param(32, "Output channels of every block (the narrow bottleneck).", range=(1, 2048), step=1)
    expansion: int = param(6, "Expansion factor: the depthwise conv works on this many times the block's "
                           "input channels (1: no expanding conv).", range=(1, 16), step=1)
    kernel_size: int = param(3, "Kernel of the depthwise conv.", choices=(3, 5, 7))
    stride: int = param(1, "Stride of the first block's depthwise conv (2 halves the feature map).",
                        range=(1, 2), step=1)
    skip: bool = param(True, "Add the input where the shapes allow. Off gives the plain network with the same "
                       "layers.")

    def out_channels(self, in_channels: int) -> int:
        return self.channels

    def out_stride(self) -> int:
        return self.stride

    def out_size(self, size: Size) -> Size:
        return reduce_size(size, self.kernel_size, self.stride, self.kernel_size // 2)

    def _hidden(self, in_channels: int) -> int:
        return int(round(in_channels * self.expansion))

    def make_block(self, in_channels: int, stride: int, ctx: BuildContext) -> ResidualBlock:
        hidden = self._hidden(in_channels)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        if self.expansion != 1:
            layers["expand"] = conv_bn_act(in_channels, hidden, 1, ctx)                 # N x tC x H x W
        layers["depthwise"] = conv_bn_act(hidden, hidden, self.kernel_size, ctx, stride=stride,
                                          conv="depthwise")                            # N x tC x H/s x W/s
        layers["project"] = conv_bn_act(hidden, self.channels, 1, ctx, act=False)      # N x channels x H/s x W/s
        add = self.skip and stride == 1 and in_channels == self.channels
        return ResidualBlock(nn.Sequential(layers), None, None, None, add)

    def _block_params(self, in_channels: int, ctx: BuildContext) -> int:
        hidden = self._hidden(in_channels)
        expand = conv_bn_act_params(in_channels, hidden, 1, ctx, bias=False) if self.expansion != 1 else 0
        return (expand + conv_bn_act_params(hidden, hidden, self.kernel_size, ctx, bias=False, groups=hidden)
                + conv_bn_act_params(hidden, self.channels, 1, ctx, bias=False))

    def num_params(self, in_channels: int, ctx: BuildContext) -> int:
        return self._block_params(in_channels, ctx) + (self.blocks - 1) * self._block_params(self.channels, ctx)

    def build(self, in_channels: int, ctx: BuildContext) -> nn.Sequential:
        return InvertedResidualStage(chained_blocks(self.blocks, in_channels, self.channels, self.stride,
                                    lambda c_in, stride: self.make_block(c_in, stride, ctx)))

    def label(self, in_channels: int) -> str:
        kind = "Inverted residual" if self.skip else "Plain inverted"
        return f"{kind} t={self.expansion} x{self.blocks} · {self.channels} ch"

    def without_skips(self) -> InvertedResidualSpec:
        return replace(self, skip=False)

    @classmethod
    def reference_networks(cls) -> dict[str, dict]:
        settings = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                    (6, 320, 1, 1))
        stages = tuple(cls(blocks=n, channels=c, expansion=t, stride=s) for t, c, n, s in settings)
        last = PlainSpec(channels=1280, kernel_size=1, padding=0)                       # 320 -> 1,280, 1x1
        return {"mobilenet_v2": dict(name="mobilenet_v2", in_channels=3, num_classes=1000, input_size=224,
                                     activation="relu6", init="kaiming_normal",
                                     stem=(PlainSpec(channels=32, kernel_size=3, stride=2, padding=1),),
                                     stages=(*stages, last), head={"dropout": 0.2})}
