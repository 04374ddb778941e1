"""Plain stages: a stack of conv (+norm)(+activation) layers and an optional pool.

Used for VGG-like stages and for stems (a 7x7/2 conv and a max-pool, a 3x3 conv, a bare conv).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from ..fields import field_error, param
from .base import BuildContext, PoolAfter, Size, StageSpec, conv_bn_act, conv_bn_act_params, reduce_size, register_stage


class PlainStage(nn.Sequential):
    """Conv layers layer1..layerN, then an optional pool (and activation, if it comes after the pool)."""


@register_stage
@dataclass(frozen=True)
class PlainSpec(PoolAfter, StageSpec):
    type_name: ClassVar[str] = "plain"
    title: ClassVar[str] = "Plain"

    layers: int = param(1, "Number of conv layers.", range=(1, 64), step=1)
    channels: int = param(64, "Output channels of every conv.", range=(1, 2048), step=1)
    kernel_size: int = param(3, "Kernel size of every conv.", range=(1, 11), step=1)
    stride: int = param(1, "Stride of the first conv.", range=(1, 4), step=1)
    padding: int = param(1, "Zero padding of every conv.", range=(0, 5), step=1)
    conv_bias: bool = param(False, "Give the convolutions a bias.")
    norm: bool = param(True, "Norm after each conv (if the network uses norm).")
    activation: bool = param(True, "Activation after each conv (after its norm).")
    activation_after_pool: bool = param(False, "Apply the last activation after the pool instead of before.")

    def check(self) -> None:
        self.check_pool()
        if 2 * self.padding > self.kernel_size:
            raise field_error("padding", f"must be at most half of kernel_size ({self.kernel_size}), "
                                         f"got {self.padding}")

    def out_channels(self, in_channels: int) -> int:
        return self.channels

    def num_params(self, in_channels: int, ctx: BuildContext) -> int:
        first = conv_bn_act_params(in_channels, self.channels, self.kernel_size, ctx, bias=self.conv_bias,
                                   norm=self.norm)
        rest = conv_bn_act_params(self.channels, self.channels, self.kernel_size, ctx, bias=self.conv_bias,
                                  norm=self.norm)
        return first + (self.layers - 1) * rest

    def out_stride(self) -> int:
        return self.stride * self.pool_stride_factor()

    def out_size(self, size: Size) -> Size:
        size = reduce_size(size, self.kernel_size, self.stride, self.padding)
        for _ in range(self.layers - 1):
            size = reduce_size(size, self.kernel_size, 1, self.padding)
        return self.pooled_size(size)

    def build(self, in_channels: int, ctx: BuildContext) -> nn.Sequential:
        blocks: OrderedDict[str, nn.Module] = OrderedDict()
        late_act = self.activation and self.activation_after_pool and self.pool != "none"
        for i in range(self.layers):
            last = i == self.layers - 1
            blocks[f"layer{i + 1}"] = conv_bn_act(
                in_channels if i == 0 else self.channels, self.channels, self.kernel_size, ctx,
                stride=self.stride if i == 0 else 1, padding=self.padding, bias=self.conv_bias,
                norm=self.norm, act=self.activation and not (last and late_act))
        pool = self.pool_module()
        if pool is not None:
            blocks["pool"] = pool
        if late_act:
            blocks["act"] = ctx.act()
        return PlainStage(blocks)

    def label(self, in_channels: int) -> str:
        pool = f" + {self.pool} pool" if self.pool != "none" else ""
        return f"Conv {self.kernel_size}x{self.kernel_size} x{self.layers} · {self.channels} ch{pool}"
