"""Dense stages (Huang et al. 2017): every layer sees the concatenation of all earlier outputs.

A block of L layers with growth rate k on C incoming channels outputs C + L*k channels; a transition
(norm-act-1x1 conv-2x2 average pool) then compresses them, e.g. to half (DenseNet-BC).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..fields import field_error, param
from .base import BuildContext, Size, StageSpec, conv_params, norm_params, reduce_size, register_stage


def _norm_act_conv(c_in: int, c_out: int, kernel: int, ctx: BuildContext, bias: bool) -> list:
    layers = [ctx.norm_layer(c_in)] if ctx.has_norm else []
    return layers + [ctx.act(), nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=bias)]


class DenseLayer(nn.Module):
    """Its input, concatenated with what its layers make of it: norm-act-conv (optionally a 1x1 bottleneck
    first) producing ``growth_rate`` new channels. Made by :meth:`DenseSpec.make_layer`."""

    def __init__(self, layers: nn.Module):
        super().__init__()
        self.layers = layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.layers(x)], dim=1)  # N x (C + growth) x H x W


class DenseStage(nn.Sequential):
    """A dense block; its children are layer1..layerN and, optionally, the transition."""


@register_stage
@dataclass(frozen=True)
class DenseSpec(StageSpec):
    type_name: ClassVar[str] = "dense"
    title: ClassVar[str] = "Dense"
    family: ClassVar[str] = "dense"
    family_rank: ClassVar[int] = 40

    layers: int = param(4, "Number of layers in the dense block.", range=(1, 128), step=1)
    growth_rate: int = param(32, "Channels each layer adds.", range=(1, 512), step=1)
    bottleneck: bool = param(True, "1x1 conv to bn_size x growth_rate before each 3x3 conv (DenseNet-B).")
    bn_size: int = param(4, "Bottleneck width, in multiples of the growth rate.", range=(1, 8), step=1)
    dropout: float = param(0.0, "Dropout after each layer.", range=(0.0, 0.9), step=0.05)
    conv_bias: bool = param(False, "Give the convolutions a bias.")
    transition: bool = param(True, "Norm-act-1x1 conv-2x2 average pool after the block.")
    compression: float = param(0.5, "Fraction of channels the transition keeps (DenseNet-C).",
                               range=(0.1, 1.0), step=0.05)

    def make_layer(self, in_channels: int, ctx: BuildContext) -> DenseLayer:
        layers: list[nn.Module] = []
        c = in_channels
        if self.bottleneck:
            layers += _norm_act_conv(c, self.bn_size * self.growth_rate, 1, ctx, self.conv_bias)
            c = self.bn_size * self.growth_rate
        layers += _norm_act_conv(c, self.growth_rate, 3, ctx, self.conv_bias)
        if self.dropout > 0:
            layers.append(nn.Dropout(self.dropout))
        return DenseLayer(nn.Sequential(*layers))

    def _block_channels(self, in_channels: int) -> int:
        return in_channels + self.layers * self.growth_rate

    def out_channels(self, in_channels: int) -> int:
        c = self._block_channels(in_channels)
        return max(int(c * self.compression), 1) if self.transition else c

    def check_input(self, in_channels: int) -> None:
        if self.transition and int(self._block_channels(in_channels) * self.compression) < 1:
            raise field_error("compression", "leaves no channels after the transition")

    def num_params(self, in_channels: int, ctx: BuildContext) -> int:
        total, c, k = 0, in_channels, self.growth_rate
        for _ in range(self.layers):
            inner = c
            if self.bottleneck:
                inner = self.bn_size * k
                total += norm_params(ctx, c) + conv_params(c, inner, 1, self.conv_bias)
            total += norm_params(ctx, inner) + conv_params(inner, k, 3, self.conv_bias)
            c += k
        if self.transition:
            total += norm_params(ctx, c) + conv_params(c, self.out_channels(in_channels), 1, self.conv_bias)
        return total

    def out_stride(self) -> int:
        return 2 if self.transition else 1

    def out_size(self, size: Size) -> Size:
        return reduce_size(size, 2, 2, 0) if self.transition else size

    def build(self, in_channels: int, ctx: BuildContext) -> nn.Sequential:
        blocks: OrderedDict[str, nn.Module] = OrderedDict()
        c = in_channels
        for i in range(self.layers):
            blocks[f"layer{i + 1}"] = self.make_layer(c, ctx)
            c += self.growth_rate
        if self.transition:
            blocks["transition"] = nn.Sequential(
                *_norm_act_conv(c, self.out_channels(in_channels), 1, ctx, self.conv_bias),
                nn.AvgPool2d(2, stride=2))
        return DenseStage(blocks)

    def label(self, in_channels: int) -> str:
        return f"Dense x{self.layers} · k={self.growth_rate} · {self.out_channels(in_channels)} ch"
